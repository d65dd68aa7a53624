// SPDX-License-Identifier: GPL-2.0

//! What the 7.3 `kernel` crate lacks and this module needs: safe
//! abstractions over C APIs, written as they would be upstream.
//!
//! Every `unsafe` of the module is in this folder (one operation per block,
//! see the crate's `deny` of `clippy::multiple_unsafe_ops_per_block`); the
//! driver around it is safe Rust.  The exceptions are the `init()` calls of
//! the two `global_lock!` statics (`debugfs.rs`'s `ROOT`, `hold_budget.rs`'s
//! `HOLDS`), which the kernel's `global_lock!` makes the user promise to
//! make once, from module init, before any use: only the module can keep
//! that promise.  Driver code imports these through the crate
//! root (`crate::mmu_notifier`, …), so that moving a piece upstream is a
//! change of `crate::` into `kernel::`.
//!
//! Per piece, what 7.3 lacks and what the upstream API would look like:
//!
//! - [`mmu_notifier`]: `kernel::mm` has `Mm`, `MmWithUser` and VMAs but no
//!   notifiers.  Upstream: this file as `kernel::mm::mmu_notifier` — a
//!   `#[vtable]` trait of callbacks, a pinned `Registration` that
//!   unregisters on drop, the range as a borrowed type with accessors.
//! - [`user_page`]: `kernel::page::Page` is only ever a page the kernel
//!   allocated; there is no GUP.  Upstream:
//!   `MmWithUser::get_user_pages_remote()` (and a `FOLL_NOFAULT` lookup)
//!   returning a reference-counted `ARef<Page>`, with the atomic word
//!   accessors of a device on `Page`.
//! - [`flush_work`]: `kernel::workqueue::Work` can be queued but not
//!   flushed.  Upstream: `Work::flush(&self) -> bool`.
//! - [`mm_ext`]: `kernel::mm::Mm` does not expose `tlb_flush_pending`.
//!   Upstream: `Mm::tlb_flush_pending(&self)`, as `mm_tlb_flush_pending()`
//!   and `mm_tlb_flush_nested()` read it.
//! - [`debugfs_file`]: `kernel::debugfs` builds its `file_operations` with a
//!   `NULL` owner, so an open file does not pin the module (a use after
//!   free at close after `rmmod`).  Upstream: a fix of `kernel::debugfs`
//!   that sets `owner` to the module; this file then goes.
//! - [`file_cred`]: the `kernel` crate has no capability checks.  Upstream:
//!   `File::ns_capable()` over `file_ns_capable()`, with a `Capability`
//!   type instead of the raw `CAP_*` number.
//! - [`task_ext`]: `kernel::task::Task` does not say whether a task is a
//!   kernel thread.  Upstream: `Task::is_kthread(&self)` over `PF_KTHREAD`.
//! - [`transmute`]: `kernel::transmute`'s byte traits, which `uaccess`
//!   takes, and zerocopy's checked derives are not connected.  Upstream:
//!   the `kernel::transmute` traits implemented for zerocopy's (or
//!   `uaccess` taking zerocopy's), so no driver writes an `unsafe impl`.

pub(crate) mod debugfs_file;
pub(crate) mod file_cred;
pub mod flush_work;
pub mod mm_ext;
pub mod mmu_notifier;
pub mod task_ext;
pub(crate) mod tracepoint;
pub(crate) mod transmute;
pub mod user_page;
