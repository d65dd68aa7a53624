// SPDX-License-Identifier: GPL-2.0

//! `flush_work()` for [`kernel::workqueue::Work`], which 7.3's workqueue
//! abstraction does not offer yet.
//!
//! A module must not let a work item of its own run after the object that
//! queued it is gone (the module may be unloaded right after).  Cancelling
//! is not an option for `Arc`-based work items (the queued reference would
//! leak), so the owner makes the work finish quickly and flushes it.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use kernel::{bindings, workqueue::Work};

/// Waits until the last queueing of `work` has finished executing; returns
/// whether it had to wait.  May sleep.
pub fn flush_work<T: ?Sized, const ID: u64>(work: &Work<T, ID>) -> bool {
    // SAFETY: `work` is a reference, so the pointer is aligned and not
    // dangling, as `raw_get` requires.
    let raw = unsafe { Work::raw_get(work) };
    // SAFETY: `raw` is the `work_struct` of a `Work` that exists, so it was
    // initialised, as `flush_work` requires.
    unsafe { bindings::flush_work(raw) }
}
