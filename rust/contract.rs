// SPDX-License-Identifier: GPL-2.0

//! Invalidation contracts: which notifier callback invalidates what.
//!
//! A contract is the device's promise to the core mm.  The correct ones keep
//! every device access coherent with the CPU page tables; the broken ones
//! exist to show what goes wrong, and when.

use kernel::prelude::*;

use crate::uapi;

/// How the device reacts to mmu_notifier callbacks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Contract {
    /// Shadow page table, invalidated eagerly: `invalidate_range_start` drops
    /// the dPT and dTLB entries of the range before the CPU page tables
    /// change, and device faults wait until no invalidation covering their
    /// page is in progress (the `mmu_interval_read_begin/retry` protocol).
    /// Models GPUs with SVM, KVM's shadow MMU and `lib/test_hmm.c`.  Correct.
    Sync,
    /// Shadow page table invalidated only in `invalidate_range_end`, after
    /// the CPU page tables already changed: between the two the device keeps
    /// using the old page (seed 001: this corrupts COW).  Broken on purpose.
    DeferredEnd,
    /// Shared page table: no dPT, every dTLB miss walks the CPU page tables,
    /// and the dTLB is flushed only from `arch_invalidate_secondary_tlbs`,
    /// next to every CPU TLB flush of the mm.  Models an IOMMU doing SVA
    /// (Intel VT-d, AMD IOMMUv2, Arm SMMUv3 with BTM off).  Correct.
    Sva,
    /// Never invalidates: the negative control, stale by construction.
    None,
    /// Shadow page table with batched dTLB flushes: `invalidate_range_start`
    /// opens a gather that clears dPT entries, `invalidate_range_end` closes
    /// it and flushes the dTLB as the pending-flush tracker decides (see
    /// `tracker.rs`).  Models a GPU or IOMMU driver that batches its TLB
    /// invalidations like the CPU's `mmu_gather`.  Correct, with every tracker
    /// but `naive`, only for invalidations whose CPU flush also comes after
    /// `invalidate_range_end` (zap and unmap through `tlb_finish_mmu()`); with
    /// *any* tracker it is unsafe where the CPU flushes before the range ends
    /// and relies on the secondary TLB being clean by then: COW and
    /// soft-dirty/write-protect (the `cow_stale_read` and
    /// `dirty_window_lost_dirty` cells of the race matrix).
    Batched,
}

/// The callbacks that can invalidate device translations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    RangeStart,
    RangeEnd,
    SecondaryTlbs,
}

impl Contract {
    /// Parses the uapi value.
    pub(crate) fn from_uapi(v: u32) -> Result<Self> {
        match v {
            uapi::TLBRACE_CONTRACT_SYNC => Ok(Self::Sync),
            uapi::TLBRACE_CONTRACT_DEFERRED_END => Ok(Self::DeferredEnd),
            uapi::TLBRACE_CONTRACT_SVA => Ok(Self::Sva),
            uapi::TLBRACE_CONTRACT_NONE => Ok(Self::None),
            uapi::TLBRACE_CONTRACT_BATCHED => Ok(Self::Batched),
            _ => Err(EINVAL),
        }
    }

    /// Whether the callback `hook` invalidates the device's translations.
    pub(crate) fn invalidates_at(self, hook: Hook) -> bool {
        matches!(
            (self, hook),
            (Self::Sync, Hook::RangeStart)
                | (Self::DeferredEnd, Hook::RangeEnd)
                | (Self::Sva, Hook::SecondaryTlbs)
        )
    }

    /// Whether device faults fill a dPT (shadow page table) or only the dTLB.
    pub(crate) fn has_dpt(self) -> bool {
        self != Self::Sva
    }

    /// Whether device faults wait for the invalidations in progress that
    /// cover their page (the `mmu_interval_read_begin()` protocol).
    /// `batched` needs it as much as `sync`: a walk that overlaps a zap may
    /// return the page being zapped, and only the dTLB flush is what
    /// batching defers.
    pub(crate) fn faults_wait_for_invalidations(self) -> bool {
        matches!(self, Self::Sync | Self::Batched)
    }
}

impl core::fmt::Display for Contract {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Sync => "sync",
            Self::DeferredEnd => "deferred-end",
            Self::Sva => "sva",
            Self::None => "none",
            Self::Batched => "batched",
        })
    }
}
