// SPDX-License-Identifier: GPL-2.0

//! What `kernel::task` does not expose about the current task: whether it
//! is a kernel thread, which injection must never hold at a callback point
//! (kswapd, kcompactd, khugepaged cannot be interrupted, and others wait for
//! them).
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h)

use kernel::{bindings, task::Task};

/// Whether the current task is a kernel thread (`PF_KTHREAD`), including one
/// that borrows a user mm with `kthread_use_mm()` (its `mm` is not `NULL`).
pub fn current_is_kthread() -> bool {
    let task = Task::current_raw();
    // SAFETY: `current` is always a valid task for the running context, so
    // the address of its `flags` is valid for a read.
    let flags = unsafe { &raw const (*task).flags };
    // SAFETY: `flags` is valid for a read (above).  `PF_KTHREAD` is set
    // when the task is created and never changes; the read is volatile
    // (`READ_ONCE`) as C's plain `current->flags & PF_KTHREAD` is, because a
    // few other bits of `flags` may be written meanwhile.
    let flags = unsafe { core::ptr::read_volatile(flags) };
    flags & bindings::PF_KTHREAD != 0
}
