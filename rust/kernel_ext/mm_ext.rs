// SPDX-License-Identifier: GPL-2.0

//! Read-only views of `struct mm_struct` fields that `kernel::mm` does not
//! expose: the stock pending-flush counter, to compare the trackers with
//! what the real kernel saw during the same workload.
//!
//! C header: [`include/linux/mm_inline.h`](srctree/include/linux/mm_inline.h)

use kernel::{bindings, mm::Mm};

/// `mm->tlb_flush_pending`: the number of page-table batches of `mm` whose
/// TLB flush is still pending (`mm_tlb_flush_pending()` tests it for non-zero,
/// `mm_tlb_flush_nested()` for more than one).
pub fn tlb_flush_pending(mm: &Mm) -> i32 {
    // SAFETY: `mm` is a live `mm_struct` (the reference keeps it so): the
    // field's address is in bounds of it.
    let pending = unsafe { &raw const (*mm.as_raw()).__bindgen_anon_1.tlb_flush_pending };
    // SAFETY: `pending` is a live `atomic_t`, and `atomic_read` of it is a
    // plain atomic load, as in `mm_tlb_flush_pending()`.
    unsafe { bindings::atomic_read(pending) }
}
