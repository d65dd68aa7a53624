// SPDX-License-Identifier: GPL-2.0

//! The device's translation state, under `Device::mmu`: the dTLB, the dPT,
//! the gathers of the `batched` contract and the counters that order device
//! faults against invalidations.
//!
//! The fields are private: what adds or drops translations goes through the
//! methods here and in [`gather`], which keep the invariant of [`Mmu`].

use kernel::prelude::*;

use crate::{
    contract::Contract,
    dpt::{Dpt, DptReservation},
    dtlb::{Displaced, Dtlb},
    staleness::Truth,
    stats::{Counter, Stats},
    tracker::Tracker,
    translation::{Translation, Vpn},
};

pub(crate) mod gather;

use gather::{Gather, MAX_GATHERS};

/// The device's translation state.
///
/// # Invariants
///
/// - Under a contract with a dPT, every page the dTLB caches is in the dPT,
///   or an open gather cleared it from the dPT: it is in that gather's
///   cleared set, or in its requested range if the set could not be
///   recorded.  The deferred flush of `batched` is the only time the dTLB
///   maps what the dPT does not; the gather's close drops it.
/// - Under a contract without a dPT, the dPT is empty.
/// - `inval_seq` grows with every invalidation the device processes (every
///   dPT entry dropped, every dTLB entry dropped for the notifier), before
///   the lock is released: a fault that sampled it before its CPU walk and
///   finds it unchanged after knows that no invalidation ran in between.
pub(crate) struct Mmu {
    contract: Contract,
    dtlb: Dtlb,
    dpt: Dpt,
    inval_seq: u64,
    /// Fill counter; its value at fill time is a translation's `fill_gen`.
    fill_gen: u64,
    /// The staleness oracle's record of the mm, apart from the device's
    /// translations (see `staleness.rs`).
    pub(crate) truth: Truth,
    /// The address space is gone (`release`): no more translations.
    released: bool,
    /// `batched`: the pending-flush tracker and the open gathers.
    tracker: KBox<dyn Tracker>,
    gathers: KVec<Gather>,
    next_gather: u64,
}

impl Mmu {
    /// The state of a new device: an empty dTLB and dPT under `sync`.
    ///
    /// An initializer, not a value: `Truth` takes kilobytes, and moving a
    /// whole `Mmu` through the callers' frames overflowed a KUnit thread's
    /// stack.
    pub(crate) fn new(dtlb: Dtlb, tracker: KBox<dyn Tracker>) -> Result<impl Init<Self>> {
        let gathers = KVec::with_capacity(MAX_GATHERS, GFP_KERNEL_ACCOUNT)?;
        Ok(init!(Self {
            contract: Contract::Sync,
            dtlb,
            dpt: Dpt::new(),
            inval_seq: 0,
            fill_gen: 0,
            truth: Truth::new(),
            released: false,
            tracker,
            gathers,
            next_gather: 0,
        }))
    }

    /// The contract.
    pub(crate) fn contract(&self) -> Contract {
        self.contract
    }

    /// The dTLB.
    pub(crate) fn dtlb(&self) -> &Dtlb {
        &self.dtlb
    }

    /// The dPT.
    pub(crate) fn dpt(&self) -> &Dpt {
        &self.dpt
    }

    /// The pending-flush tracker of `batched`.
    pub(crate) fn tracker(&self) -> &dyn Tracker {
        &*self.tracker
    }

    /// The invalidation sequence (see the invariants).
    pub(crate) fn inval_seq(&self) -> u64 {
        self.inval_seq
    }

    /// Whether the address space is gone.
    pub(crate) fn released(&self) -> bool {
        self.released
    }

    /// Swaps in a new contract, dTLB, dPT and tracker; the old ones are left
    /// in the arguments, for the caller to drop after unlocking (the dTLB
    /// may be vmalloc'd, the dPT large).  `EBUSY`, changing nothing, while
    /// a gather is open: it belongs to the old tracker.
    pub(crate) fn reconfigure(
        &mut self,
        contract: Contract,
        dtlb: &mut Dtlb,
        dpt: &mut Dpt,
        tracker: &mut KBox<dyn Tracker>,
        stats: &Stats,
    ) -> Result {
        if !self.gathers.is_empty() {
            return Err(EBUSY);
        }
        self.inval_seq += 1;
        stats.inc(Counter::FullFlushes);
        core::mem::swap(&mut self.dtlb, dtlb);
        core::mem::swap(&mut self.dpt, dpt);
        core::mem::swap(&mut self.tracker, tracker);
        self.contract = contract;
        Ok(())
    }

    /// Drops the dPT and dTLB entries of `[start, end)`.
    pub(crate) fn invalidate(&mut self, start: Vpn, end: Vpn, stats: &Stats) {
        self.inval_seq += 1;
        let n = self.dtlb.invalidate(start, end) + self.dpt.invalidate(start, end);
        stats.add(Counter::Invalidated, n as u64);
    }

    /// Drops the dTLB entries of `[start, end)` (a shared page table's
    /// IOTLB invalidation).
    pub(crate) fn invalidate_dtlb(&mut self, start: Vpn, end: Vpn, stats: &Stats) {
        self.inval_seq += 1;
        let n = self.dtlb.invalidate(start, end);
        stats.add(Counter::Invalidated, n as u64);
    }

    /// Drops every dTLB entry; returns how many.
    pub(crate) fn flush(&mut self, stats: &Stats) -> usize {
        self.inval_seq += 1;
        stats.inc(Counter::FullFlushes);
        self.dtlb.flush()
    }

    /// Drops every dTLB entry and takes the whole dPT out, for the caller to
    /// free after unlocking (up to [`crate::dpt::MAX_PAGES`] entries).
    #[must_use = "the dPT taken out is to be dropped after unlocking"]
    pub(crate) fn flush_all(&mut self, stats: &Stats) -> (usize, Dpt) {
        let n = self.flush(stats);
        (n, self.dpt.take())
    }

    /// The address space is gone: drops every translation for good, and
    /// returns the dPT for the caller to free after unlocking.
    #[must_use = "the dPT taken out is to be dropped after unlocking"]
    pub(crate) fn release(&mut self, stats: &Stats) -> Dpt {
        self.released = true;
        self.flush_all(stats).1
    }

    /// Seed 000: under `batched`, drops the dTLB entry of `vpn` if a flush
    /// may be pending for it (the device's own flush before a fault, not an
    /// invalidation); returns whether one was.
    pub(crate) fn flush_if_pending(&mut self, vpn: Vpn) -> bool {
        if self.contract != Contract::Batched || !self.tracker.pending(vpn) {
            return false;
        }
        self.dtlb.invalidate(vpn, vpn + 1);
        true
    }

    /// The next fill generation.
    pub(crate) fn next_fill_gen(&mut self) -> u64 {
        self.fill_gen += 1;
        self.fill_gen
    }

    /// Inserts the translation of `vpn` into the dPT (`ENOSPC` if full).
    pub(crate) fn fill_dpt(&mut self, vpn: Vpn, t: Translation, node: DptReservation) -> Result {
        self.dpt.insert(vpn, t, node)
    }

    /// Caches a translation in the dTLB, counting evictions.  Under a
    /// contract with a dPT, `t` comes from it (a dPT hit, or a fault that
    /// filled it first).
    pub(crate) fn fill_dtlb(&mut self, vpn: Vpn, t: Translation, stats: &Stats) {
        if let Displaced::Evicted = self.dtlb.insert(vpn, t) {
            stats.inc(Counter::Evictions);
        }
    }

    /// Looks `vpn` up in the dTLB (refreshing its LRU age), with the
    /// oracle's record, to use the translation.
    pub(crate) fn lookup(&mut self, vpn: Vpn) -> (Option<&mut Translation>, &Truth) {
        (self.dtlb.lookup(vpn), &self.truth)
    }

    /// Calls `f` on every cached translation of `[start, end)`, dTLB then
    /// dPT, to update their bits (accessed, the oracle's flags).
    pub(crate) fn for_each_cached(
        &mut self,
        start: Vpn,
        end: Vpn,
        mut f: impl FnMut(Vpn, &mut Translation),
    ) {
        self.dtlb.for_each_in(start, end, &mut f);
        self.dpt.for_each_in(start, end, &mut f);
    }

    /// A CPU TLB flush of `[start, end)`: the oracle records it and flags
    /// the cached translations it covers, to be judged before their next use.
    pub(crate) fn cpu_flush(&mut self, start: Vpn, end: Vpn) {
        let f = self.truth.cpu_flush(start, end);
        self.for_each_cached(f.start, f.end, |_, t| {
            if t.stale.is_none() {
                t.flagged.get_or_insert(f.event);
            }
        });
    }

    /// A copy of the translation of `vpn` (dTLB first, then dPT) that a
    /// CPU flush flagged and the oracle has not judged yet.
    pub(crate) fn flagged(&self, vpn: Vpn) -> Option<Translation> {
        let flagged = |t: &&Translation| t.flagged.is_some();
        self.dtlb
            .peek(vpn)
            .filter(flagged)
            .or_else(|| self.dpt.get(vpn).filter(flagged))
            .cloned()
    }
}
