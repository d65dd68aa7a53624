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
///
/// [`Mmu::check_invariant`] checks the first two.
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

    /// Drops the dPT and dTLB entries of `[start, end)`; returns how many.
    pub(crate) fn invalidate(&mut self, start: Vpn, end: Vpn, stats: &Stats) -> usize {
        self.inval_seq += 1;
        let n = self.dtlb.invalidate(start, end) + self.dpt.invalidate(start, end);
        stats.add(Counter::Invalidated, n as u64);
        n
    }

    /// Drops the dTLB entries of `[start, end)` (a shared page table's
    /// IOTLB invalidation); returns how many.
    pub(crate) fn invalidate_dtlb(&mut self, start: Vpn, end: Vpn, stats: &Stats) -> usize {
        self.inval_seq += 1;
        let n = self.dtlb.invalidate(start, end);
        stats.add(Counter::Invalidated, n as u64);
        n
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

    /// The address space is gone: drops every translation for good;
    /// returns how many dTLB entries went and the dPT, for the caller to
    /// free after unlocking.
    #[must_use = "the dPT taken out is to be dropped after unlocking"]
    pub(crate) fn release(&mut self, stats: &Stats) -> (usize, Dpt) {
        self.released = true;
        self.flush_all(stats)
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

    /// Whether the first two invariants of [`Mmu`] hold.  Walks the whole
    /// dTLB: for the KUnit tests, not for the hot paths.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn check_invariant(&self) -> bool {
        if !self.contract.has_dpt() {
            return self.dpt.len() == 0;
        }
        self.dtlb.iter_in(0, Vpn::MAX).all(|(vpn, _)| {
            self.dpt.get(vpn).is_some() || self.gathers.iter().any(|g| g.cleared_page(vpn))
        })
    }
}

#[kernel::macros::kunit_tests(tlbrace_mmu)]
mod tests {
    use super::*;
    use crate::{
        device::Device, dtlb::Geometry, dtlb::Replacement, mmu_notifier::RangeKey, tracker, uapi,
        user_page::UserPage,
    };
    use kernel::sync::Arc;

    /// What a device fault allocates before it takes the MMU lock.
    struct Prepared {
        page: Arc<UserPage>,
        node: DptReservation,
    }

    fn prepare(n: usize) -> Result<KVec<Prepared>> {
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let page = Arc::new(UserPage::new_kernel_page()?, GFP_KERNEL)?;
            let node = DptReservation::new(GFP_KERNEL)?;
            v.push(Prepared { page, node }, GFP_KERNEL)?;
        }
        Ok(v)
    }

    fn translation(mmu: &mut Mmu, page: Arc<UserPage>) -> Translation {
        Translation {
            page,
            writable: false,
            dirty: false,
            accessed: false,
            fill_gen: mmu.next_fill_gen(),
            flagged: None,
            stale: None,
        }
    }

    /// A device fault's fill of `vpn`: dPT, then dTLB.
    fn fill(dev: &Device, mmu: &mut Mmu, vpn: Vpn, p: &mut KVec<Prepared>) -> Result {
        let Prepared { page, node } = p.pop().ok_or(ENOMEM)?;
        let t = translation(mmu, page);
        mmu.fill_dpt(vpn, t.clone(), node)?;
        mmu.fill_dtlb(vpn, t, &dev.stats);
        Ok(())
    }

    /// 16 dTLB slots: nothing is evicted, so every fill stays in the dTLB.
    const GEO: Geometry = Geometry {
        sets: 8,
        ways: 2,
        replacement: Replacement::Lru,
    };

    /// A device under `batched/naive`: a close flushes only what its gather
    /// cleared, so the dTLB keeps what an older open gather cleared.
    fn naive_device() -> Result<Arc<Device>> {
        let dev = Arc::pin_init(Device::new()?, GFP_KERNEL)?;
        let naive = tracker::from_uapi(uapi::TLBRACE_TRACKER_NAIVE)?;
        dev.configure(Contract::Batched, GEO, naive)?;
        Ok(dev)
    }

    #[test]
    fn invariant_holds_through_fills_invalidations_and_gathers() -> Result {
        let dev = naive_device()?;
        let key = RangeKey::from_number;
        let mut p = prepare(10)?;
        let mut mmu = dev.mmu.lock();
        for vpn in 0..8 {
            fill(&dev, &mut mmu, vpn, &mut p)?;
            assert!(mmu.check_invariant());
        }

        // Gather A clears 0..4 from the dPT; the dTLB keeps them until A
        // closes, covered by A's cleared set.
        let seq = mmu.inval_seq();
        dev.gather_open(&mut mmu, key(1), 0, 4);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.dpt().get(2).is_none() && mmu.dtlb().peek(2).is_some());
        assert!(mmu.check_invariant());
        // B overlaps A: it clears 4 only (A took 2 and 3).
        let seq = mmu.inval_seq();
        dev.gather_open(&mut mmu, key(2), 2, 5);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.check_invariant());
        let seq = mmu.inval_seq();
        mmu = dev.gather_close(mmu, key(2), 2, 5, false);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.dtlb().peek(4).is_none() && mmu.dtlb().peek(2).is_some());
        assert!(mmu.check_invariant());

        // Page 1 refilled while A is open (a fault would wait for A; the
        // invariant must not depend on it).
        fill(&dev, &mut mmu, 1, &mut p)?;
        assert!(mmu.check_invariant());
        let seq = mmu.inval_seq();
        let _ = mmu.invalidate(6, 8, &dev.stats);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.check_invariant());
        let seq = mmu.inval_seq();
        mmu = dev.gather_close(mmu, key(1), 0, 4, false);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.gathers.is_empty());
        assert!(mmu.check_invariant());
        // A's close dropped what A cleared, the refilled page 1 too (a
        // dTLB entry may go; the dPT keeps page 1).
        assert!((0..4).all(|v| mmu.dtlb().peek(v).is_none()));
        assert!(mmu.dpt().get(1).is_some());

        // The check can fail: a dPT entry dropped behind the dTLB's back.
        fill(&dev, &mut mmu, 5, &mut p)?;
        assert!(mmu.check_invariant());
        mmu.dpt.invalidate(5, 6);
        assert!(!mmu.check_invariant());
        mmu.dtlb.invalidate(5, 6);
        assert!(mmu.check_invariant());

        // A whole flush, and a contract without a dPT.
        let seq = mmu.inval_seq();
        let (_, dpt) = mmu.flush_all(&dev.stats);
        assert!(mmu.inval_seq() > seq);
        assert!(mmu.check_invariant());
        drop(mmu);
        drop(dpt);
        let naive = tracker::from_uapi(uapi::TLBRACE_TRACKER_NAIVE)?;
        dev.configure(Contract::Sva, GEO, naive)?;
        let page = Arc::new(UserPage::new_kernel_page()?, GFP_KERNEL)?;
        let mut mmu = dev.mmu.lock();
        let t = translation(&mut mmu, page);
        mmu.fill_dtlb(3, t, &dev.stats);
        assert!(mmu.check_invariant());
        drop(mmu);
        Ok(())
    }

    /// A gather with no room left to defer invalidates at once, like
    /// `sync`, and says how many entries that dropped (the trace's
    /// `dropped`); a deferred one drops nothing at open.
    #[test]
    fn gather_without_room_reports_what_it_dropped() -> Result {
        let dev = naive_device()?;
        let key = RangeKey::from_number;
        let mut p = prepare(2)?;
        let mut mmu = dev.mmu.lock();
        fill(&dev, &mut mmu, 0, &mut p)?;
        fill(&dev, &mut mmu, 1, &mut p)?;
        assert_eq!(dev.gather_open(&mut mmu, key(0), 0, 1), 0);
        for i in 1..MAX_GATHERS {
            assert_eq!(dev.gather_open(&mut mmu, key(i), 100 + i, 101 + i), 0);
        }
        // Page 1's dPT and dTLB entries, right away.
        assert_eq!(dev.gather_open(&mut mmu, key(MAX_GATHERS), 1, 2), 2);
        assert!(mmu.dpt().get(1).is_none() && mmu.dtlb().peek(1).is_none());
        assert!(mmu.dtlb().peek(0).is_some());
        mmu = dev.gather_close(mmu, key(MAX_GATHERS), 1, 2, false);
        mmu = dev.gather_close(mmu, key(0), 0, 1, false);
        for i in 1..MAX_GATHERS {
            mmu = dev.gather_close(mmu, key(i), 100 + i, 101 + i, false);
        }
        assert!(mmu.gathers.is_empty() && mmu.dtlb().peek(0).is_none());
        drop(mmu);
        Ok(())
    }
}
