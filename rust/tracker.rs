// SPDX-License-Identifier: GPL-2.0

//! Pending-flush trackers of the `batched` contract.
//!
//! Under `batched`, `invalidate_range_start` opens a *gather*: it clears the
//! dPT entries of the range and remembers which it cleared, and the dTLB flush
//! waits for the gather to close in `invalidate_range_end`.  Two gathers over
//! overlapping ranges race as in seed 003: gather B finds an entry that open
//! gather A already cleared, so B's cleared set lacks it, B closes, and its
//! caller returns while the dTLB still maps the page until A closes.
//!
//! A tracker decides at each close how much of the dTLB to flush, given the
//! gathers still open, and answers the fault path's "is a flush pending for
//! this address?" (seed 000):
//!
//! - [`Naive`]: flush only what this gather cleared.  Reproduces seed 003.
//! - [`Counter`]: the stock rule of `inc_tlb_flush_pending()` /
//!   `mm_tlb_flush_nested()` / `dec_tlb_flush_pending()`: more than one
//!   gather open at close means flush everything.
//! - [`Ranges`]: the experiment (seed 003, `mmu_gather_pending {start, end,
//!   next}`): only gathers whose *requested* ranges overlap this one force a
//!   wider flush, of the overlapping ranges (or of the whole dTLB, `full`).
//! - `RangesWait` ([`Ranges`] with `wait`): PeterZ's synchronisation
//!   restricted to overlap: a gather does not complete while an older
//!   overlapping one is open.
//!
//! Overlap is judged on the ranges gathers were *asked* to cover, never on
//! what they cleared: B skipped the entry precisely because A had cleared it.
//!
//! Gathers open and close under the device's MMU lock, and clear their dPT
//! entries atomically at open; so an entry a gather skipped was cleared by an
//! *older* open gather, which is why waiting for older overlapping gathers is
//! enough (and cannot deadlock: waits only go from younger to older).

use kernel::{
    prelude::*,
    sync::atomic::{Acquire, Atomic, Full, Relaxed, Release},
};

use crate::{translation::Vpn, uapi};

/// Identifies a gather: its opening sequence number (older is smaller).
pub(crate) type GatherId = u64;

/// What a closing gather must flush from the dTLB.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// The entries this gather cleared.
    Cleared,
    /// The entries it cleared and every entry in these ranges.
    Ranges(KVec<(Vpn, Vpn)>),
    /// The whole dTLB.
    All,
}

/// An open gather as the trackers see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Open {
    pub(crate) id: GatherId,
    pub(crate) start: Vpn,
    pub(crate) end: Vpn,
}

impl Open {
    fn overlaps(&self, start: Vpn, end: Vpn) -> bool {
        self.start < end && start < self.end
    }
}

/// A pending-flush tracker.  Called under the device's MMU lock, in notifier
/// callbacks: nothing here may sleep.
pub(crate) trait Tracker: Send + Sync {
    /// A gather opens over the requested range `[start, end)`.
    fn open(&mut self, g: Open) -> Result;
    /// Gather `g` closes: what must be flushed?  (Before the flush.)
    fn close(&mut self, g: Open) -> Flush;
    /// Gather `g` is gone; its flush is done.  (After the flush.)
    fn closed(&mut self, g: Open);
    /// Whether `g` must wait before it may complete.
    fn must_wait(&self, _g: &Open) -> bool {
        false
    }
    /// Whether a flush may be pending for `vpn`.
    fn pending(&self, vpn: Vpn) -> bool;
    /// The gathers this tracker counts as open (`naive` counts none; for
    /// `counter` this is its mirror of `mm->tlb_flush_pending`).
    fn open_gathers(&self) -> usize;
    /// The uapi name, `TLBRACE_TRACKER_*`.
    fn kind(&self) -> u32;
}

/// Flushes what the gather cleared and nothing else.
pub(crate) struct Naive;

impl Tracker for Naive {
    fn open(&mut self, _g: Open) -> Result {
        Ok(())
    }
    fn close(&mut self, _g: Open) -> Flush {
        Flush::Cleared
    }
    fn closed(&mut self, _g: Open) {}
    fn pending(&self, _vpn: Vpn) -> bool {
        false
    }
    fn open_gathers(&self) -> usize {
        0
    }
    fn kind(&self) -> u32 {
        uapi::TLBRACE_TRACKER_NAIVE
    }
}

/// The stock counter, `mm->tlb_flush_pending`.
///
/// Orderings, mirroring `include/linux/mm_inline.h`:
/// - `open` increments before any dPT entry is cleared (the stock
///   `inc_tlb_flush_pending()` precedes the PTE changes, and its
///   `smp_mb__after_atomic()` in the callers orders it before them): `Full`.
/// - `close` reads the count before flushing (`mm_tlb_flush_nested()` in
///   `tlb_finish_mmu()`): more than one open means some other gather may
///   have cleared entries in this range that this one skipped.  A plain
///   read, as C's `atomic_read()`: `Relaxed` (`&mut self` excludes every
///   other update anyway).
/// - `closed` decrements only after the flush (`dec_tlb_flush_pending()`
///   after `flush_tlb_range()`, with `smp_mb__before_atomic()`): `Release`,
///   so a reader that sees the count drop also sees the flushed dTLB.
/// - `pending` is the fault path's `mm_tlb_flush_pending()`: `Acquire`.
///
/// The device's MMU lock already orders all of these against each other;
/// the atomics keep the mirror faithful for a lockless fault-path check.
pub(crate) struct Counter(Atomic<usize>);

impl Counter {
    pub(crate) fn new() -> Self {
        Self(Atomic::new(0))
    }
}

impl Tracker for Counter {
    fn open(&mut self, _g: Open) -> Result {
        self.0.fetch_add(1, Full);
        Ok(())
    }
    fn close(&mut self, _g: Open) -> Flush {
        if self.0.load(Relaxed) > 1 {
            Flush::All
        } else {
            Flush::Cleared
        }
    }
    fn closed(&mut self, _g: Open) {
        self.0.fetch_sub(1, Release);
    }
    fn pending(&self, _vpn: Vpn) -> bool {
        self.0.load(Acquire) > 0
    }
    fn open_gathers(&self) -> usize {
        self.0.load(Acquire)
    }
    fn kind(&self) -> u32 {
        uapi::TLBRACE_TRACKER_COUNTER
    }
}

/// Open gathers tracked at once; more fall back to the counter's answer.
const MAX_OPEN: usize = 64;

/// The open gathers' requested ranges, in a small list (the proposal's
/// `mmu_gather_pending` list; with at most a few open gathers per mm a list
/// beats an interval tree, see Documentation/trackers.rst).
pub(crate) struct Ranges {
    open: KVec<Open>,
    /// Gathers opened while the list was full: treated as overlapping all.
    untracked: usize,
    /// Flush the whole dTLB instead of the overlapping ranges.
    full: bool,
    /// Wait for older overlapping gathers instead of flushing wider.
    wait: bool,
}

impl Ranges {
    pub(crate) fn new(full: bool, wait: bool) -> Result<Self> {
        Ok(Self {
            open: KVec::with_capacity(MAX_OPEN, GFP_KERNEL_ACCOUNT)?,
            untracked: 0,
            full,
            wait,
        })
    }

    fn others_overlapping<'a>(&'a self, g: &'a Open) -> impl Iterator<Item = &'a Open> + 'a {
        self.open
            .iter()
            .filter(move |o| o.id != g.id && o.overlaps(g.start, g.end))
    }
}

impl Tracker for Ranges {
    fn open(&mut self, g: Open) -> Result {
        if self.open.push_within_capacity(g).is_err() {
            self.untracked += 1;
        }
        Ok(())
    }

    fn close(&mut self, g: Open) -> Flush {
        if self.untracked > 0 {
            return Flush::All;
        }
        if self.others_overlapping(&g).next().is_none() {
            return Flush::Cleared;
        }
        if self.full {
            return Flush::All;
        }
        // The overlapping requested ranges and this one: whatever another
        // gather cleared inside this range is flushed here.
        let mut ranges = KVec::new();
        for r in Iterator::chain(core::iter::once(&g), self.others_overlapping(&g)) {
            if ranges.push((r.start, r.end), GFP_NOWAIT).is_err() {
                return Flush::All;
            }
        }
        Flush::Ranges(ranges)
    }

    fn closed(&mut self, g: Open) {
        match self.open.iter().position(|o| o.id == g.id) {
            Some(i) => {
                let _ = self.open.remove(i);
            }
            None => self.untracked = self.untracked.saturating_sub(1),
        }
    }

    fn must_wait(&self, g: &Open) -> bool {
        self.wait && self.others_overlapping(g).any(|o| o.id < g.id)
    }

    fn pending(&self, vpn: Vpn) -> bool {
        self.untracked > 0 || self.open.iter().any(|o| o.overlaps(vpn, vpn + 1))
    }

    fn open_gathers(&self) -> usize {
        self.open.len() + self.untracked
    }

    fn kind(&self) -> u32 {
        match (self.full, self.wait) {
            (_, true) => uapi::TLBRACE_TRACKER_RANGES_WAIT,
            (true, false) => uapi::TLBRACE_TRACKER_RANGES_FULL,
            (false, false) => uapi::TLBRACE_TRACKER_RANGES,
        }
    }
}

/// Creates the tracker named by the uapi value.
pub(crate) fn from_uapi(kind: u32) -> Result<KBox<dyn Tracker>> {
    Ok(match kind {
        uapi::TLBRACE_TRACKER_NAIVE => KBox::new(Naive, GFP_KERNEL_ACCOUNT)? as KBox<dyn Tracker>,
        uapi::TLBRACE_TRACKER_COUNTER => KBox::new(Counter::new(), GFP_KERNEL_ACCOUNT)?,
        uapi::TLBRACE_TRACKER_RANGES => KBox::new(Ranges::new(false, false)?, GFP_KERNEL_ACCOUNT)?,
        uapi::TLBRACE_TRACKER_RANGES_WAIT => {
            KBox::new(Ranges::new(false, true)?, GFP_KERNEL_ACCOUNT)?
        }
        uapi::TLBRACE_TRACKER_RANGES_FULL => {
            KBox::new(Ranges::new(true, false)?, GFP_KERNEL_ACCOUNT)?
        }
        _ => return Err(EINVAL),
    })
}

#[kernel::macros::kunit_tests(tlbrace_tracker)]
mod tests {
    use super::*;

    fn g(id: GatherId, start: Vpn, end: Vpn) -> Open {
        Open { id, start, end }
    }

    fn ranges(f: &Flush) -> KVec<(Vpn, Vpn)> {
        match f {
            Flush::Ranges(r) => {
                let mut v = KVec::new();
                for x in r.iter() {
                    v.push(*x, GFP_KERNEL).unwrap();
                }
                v
            }
            _ => KVec::new(),
        }
    }

    /// Opens `a` then `b`, closes `b` first (seed 003's order).
    fn b_closes_first(t: &mut dyn Tracker, a: Open, b: Open) -> Flush {
        t.open(a).unwrap();
        t.open(b).unwrap();
        let f = t.close(b);
        t.closed(b);
        let _ = t.close(a);
        t.closed(a);
        f
    }

    #[test]
    fn naive_never_widens() {
        let f = b_closes_first(&mut Naive, g(1, 1, 3), g(2, 2, 4));
        assert_eq!(f, Flush::Cleared);
        assert!(!Naive.pending(2));
    }

    #[test]
    fn counter_flushes_all_when_nested() -> Result {
        let mut c = Counter::new();
        // Disjoint, but nested: the stock rule flushes everything.
        assert_eq!(b_closes_first(&mut c, g(1, 0, 1), g(2, 10, 11)), Flush::All);
        // Alone: only what it cleared; pending only while open.
        assert!(!c.pending(5));
        c.open(g(3, 0, 1))?;
        assert!(c.pending(5));
        assert_eq!(c.close(g(3, 0, 1)), Flush::Cleared);
        c.closed(g(3, 0, 1));
        assert!(!c.pending(5));
        Ok(())
    }

    #[test]
    fn ranges_disjoint_and_adjacent_stay_narrow() -> Result {
        let mut r = Ranges::new(false, false)?;
        assert_eq!(
            b_closes_first(&mut r, g(1, 0, 4), g(2, 8, 9)),
            Flush::Cleared
        );
        // [0, 4) and [4, 8) touch but do not overlap.
        assert_eq!(
            b_closes_first(&mut r, g(3, 0, 4), g(4, 4, 8)),
            Flush::Cleared
        );
        Ok(())
    }

    #[test]
    fn ranges_overlap_flushes_the_union() -> Result {
        let mut r = Ranges::new(false, false)?;
        let f = b_closes_first(&mut r, g(1, 1, 3), g(2, 2, 4));
        let got = ranges(&f);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(2, 4)) && got.contains(&(1, 3)));
        Ok(())
    }

    #[test]
    fn ranges_contained_identical_single_page() -> Result {
        let mut r = Ranges::new(false, false)?;
        // Contained.
        assert!(matches!(
            b_closes_first(&mut r, g(1, 0, 100), g(2, 10, 20)),
            Flush::Ranges(_)
        ));
        // Identical.
        assert!(matches!(
            b_closes_first(&mut r, g(3, 5, 6), g(4, 5, 6)),
            Flush::Ranges(_)
        ));
        // Single page inside a whole-address-space gather.
        let all = g(5, 0, Vpn::MAX);
        assert!(matches!(
            b_closes_first(&mut r, all, g(6, 7, 8)),
            Flush::Ranges(_)
        ));
        // Full variant: the whole dTLB instead.
        let mut full = Ranges::new(true, false)?;
        assert_eq!(
            b_closes_first(&mut full, g(7, 1, 3), g(8, 2, 4)),
            Flush::All
        );
        Ok(())
    }

    #[test]
    fn ranges_pending_is_per_address() -> Result {
        let mut r = Ranges::new(false, false)?;
        r.open(g(1, 10, 20))?;
        assert!(r.pending(10) && r.pending(19));
        assert!(!r.pending(9) && !r.pending(20));
        r.closed(g(1, 10, 20));
        assert!(!r.pending(15));
        Ok(())
    }

    #[test]
    fn ranges_wait_younger_waits_for_older_only() -> Result {
        let mut r = Ranges::new(false, true)?;
        let (a, b, c) = (g(1, 0, 10), g(2, 5, 15), g(3, 20, 30));
        r.open(a)?;
        r.open(b)?;
        r.open(c)?;
        assert!(!r.must_wait(&a));
        assert!(r.must_wait(&b));
        assert!(!r.must_wait(&c));
        r.closed(a);
        assert!(!r.must_wait(&b));
        Ok(())
    }

    #[test]
    fn many_open_gathers_in_every_close_order() -> Result {
        // 16 gathers, pairwise overlapping neighbours; close them in an
        // interleaved order and check every answer against brute force.
        let mut r = Ranges::new(false, false)?;
        let mut open = KVec::new();
        for i in 0..16u64 {
            let x = g(i, (i * 3) as Vpn, (i * 3 + 5) as Vpn);
            r.open(x)?;
            open.push(x, GFP_KERNEL)?;
        }
        for step in 0..16 {
            let i = (step * 7) % open.len();
            let x = open.remove(i).map_err(|_| EINVAL)?;
            let overlap = open.iter().any(|o| o.overlaps(x.start, x.end));
            let f = r.close(x);
            assert_eq!(overlap, !matches!(f, Flush::Cleared));
            r.closed(x);
        }
        assert!(!r.pending(0));
        Ok(())
    }

    #[test]
    fn ranges_overflow_falls_back_to_all() -> Result {
        // One more gather than the list holds: the last is untracked, so
        // every close flushes the whole dTLB and every address is pending,
        // even for ranges disjoint from all the others, until it closes.
        for wait in [false, true] {
            let mut r = Ranges::new(false, wait)?;
            let n = MAX_OPEN as u64 + 1;
            for i in 0..n {
                r.open(g(i, (i * 10) as Vpn, (i * 10 + 1) as Vpn))?;
            }
            assert_eq!(r.open_gathers(), MAX_OPEN + 1);
            let far = (n * 10 + 100) as Vpn;
            assert!(r.pending(far));
            // A tracked gather, disjoint from every other one.
            let first = g(0, 0, 1);
            assert_eq!(r.close(first), Flush::All);
            r.closed(first);
            assert!(!r.must_wait(&g(1, 10, 11)));
            // The untracked one closes: its own close is wide too, and
            // then the tracker is precise again.
            let last = g(n - 1, ((n - 1) * 10) as Vpn, ((n - 1) * 10 + 1) as Vpn);
            assert_eq!(r.close(last), Flush::All);
            r.closed(last);
            assert_eq!(r.open_gathers(), MAX_OPEN - 1);
            assert!(!r.pending(far));
            assert_eq!(r.close(g(1, 10, 11)), Flush::Cleared);
        }
        Ok(())
    }

    #[test]
    fn counter_counts_what_is_open() -> Result {
        // The mirror of mm->tlb_flush_pending: +1 at open, -1 only at
        // closed (after the flush), whatever the ranges.
        let mut c = Counter::new();
        let (a, b) = (g(1, 0, 1), g(2, 5, 6));
        assert_eq!(c.open_gathers(), 0);
        c.open(a)?;
        c.open(b)?;
        assert_eq!(c.open_gathers(), 2);
        assert_eq!(c.close(b), Flush::All);
        assert_eq!(c.open_gathers(), 2);
        c.closed(b);
        assert_eq!(c.open_gathers(), 1);
        c.closed(a);
        assert_eq!(c.open_gathers(), 0);
        assert_eq!(Naive.open_gathers(), 0);
        Ok(())
    }
}
