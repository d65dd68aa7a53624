// SPDX-License-Identifier: GPL-2.0

//! The device TLB: a set-associative cache of translations.
//!
//! On a hit the device uses the cached translation without looking at any
//! page table; that is what makes a missed invalidation observable.  The set
//! of a page is `vpn % sets`; within a set, the replacement policy picks the
//! victim.  Callers hold the device's MMU lock.

use kernel::{alloc::KVVec, prelude::*};

use crate::translation::{Translation, Vpn};

/// How a full set chooses its victim.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replacement {
    /// Least recently used.
    Lru,
    /// First in, first out.
    Fifo,
}

impl core::fmt::Display for Replacement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Lru => "lru",
            Self::Fifo => "fifo",
        })
    }
}

/// dTLB dimensions and policy.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) sets: usize,
    pub(crate) ways: usize,
    pub(crate) replacement: Replacement,
}

impl Geometry {
    /// 64 sets of 4 ways, LRU: a small IOTLB.
    pub(crate) const DEFAULT: Self = Self {
        sets: 64,
        ways: 4,
        replacement: Replacement::Lru,
    };
}

struct Slot<T> {
    vpn: Vpn,
    stamp: u64,
    t: T,
}

/// What an insertion displaced.
pub(crate) enum Displaced {
    /// A free way was used.
    Nothing,
    /// The page was cached already; its old translation was replaced.
    Replaced,
    /// Another page's translation was evicted.
    Evicted,
}

/// The device TLB, caching a `T` per page (a [`Translation`]; the unit tests
/// use plain numbers).
pub(crate) struct Dtlb<T = Translation> {
    geo: Geometry,
    slots: KVVec<Option<Slot<T>>>,
    clock: u64,
}

impl<T> Dtlb<T> {
    /// An empty dTLB of the given geometry, charged to the caller's memory
    /// cgroup (user space chooses the geometry).
    pub(crate) fn new(geo: Geometry) -> Result<Self> {
        let n = geo.sets.checked_mul(geo.ways).ok_or(EINVAL)?;
        let mut slots = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..n {
            slots.push(None, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(Self {
            geo,
            slots,
            clock: 0,
        })
    }

    /// The geometry.
    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    fn set(&mut self, vpn: Vpn) -> &mut [Option<Slot<T>>] {
        let first = (vpn % self.geo.sets) * self.geo.ways;
        &mut self.slots[first..first + self.geo.ways]
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Looks `vpn` up; a hit refreshes its LRU age.
    pub(crate) fn lookup(&mut self, vpn: Vpn) -> Option<&mut T> {
        let now = self.tick();
        let lru = self.geo.replacement == Replacement::Lru;
        let slot = self.set(vpn).iter_mut().flatten().find(|s| s.vpn == vpn)?;
        if lru {
            slot.stamp = now;
        }
        Some(&mut slot.t)
    }

    /// Looks `vpn` up without touching replacement state.
    pub(crate) fn peek(&self, vpn: Vpn) -> Option<&T> {
        let first = (vpn % self.geo.sets) * self.geo.ways;
        self.slots[first..first + self.geo.ways]
            .iter()
            .flatten()
            .find(|s| s.vpn == vpn)
            .map(|s| &s.t)
    }

    /// Caches `t` for `vpn`.
    pub(crate) fn insert(&mut self, vpn: Vpn, t: T) -> Displaced {
        let stamp = self.tick();
        let set = self.set(vpn);
        let new = Some(Slot { vpn, stamp, t });
        if let Some(s) = set
            .iter_mut()
            .find(|s| matches!(s, Some(s) if s.vpn == vpn))
        {
            *s = new;
            return Displaced::Replaced;
        }
        if let Some(s) = set.iter_mut().find(|s| s.is_none()) {
            *s = new;
            return Displaced::Nothing;
        }
        // Full set: the oldest stamp is the LRU (or FIFO) victim.
        if let Some(victim) = set
            .iter_mut()
            .min_by_key(|s| s.as_ref().map_or(0, |s| s.stamp))
        {
            *victim = new;
        }
        Displaced::Evicted
    }

    /// The cached translations of `[start, end)`, in slot order.
    pub(crate) fn iter_in(&self, start: Vpn, end: Vpn) -> impl Iterator<Item = (Vpn, &T)> {
        self.slots
            .iter()
            .flatten()
            .filter(move |s| (start..end).contains(&s.vpn))
            .map(|s| (s.vpn, &s.t))
    }

    /// Calls `f` on every cached translation of `[start, end)`.
    pub(crate) fn for_each_in(&mut self, start: Vpn, end: Vpn, mut f: impl FnMut(Vpn, &mut T)) {
        for s in self.slots.iter_mut().flatten() {
            if (start..end).contains(&s.vpn) {
                f(s.vpn, &mut s.t);
            }
        }
    }

    /// Drops the translations of `[start, end)`; returns how many.
    pub(crate) fn invalidate(&mut self, start: Vpn, end: Vpn) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if matches!(s, Some(slot) if (start..end).contains(&slot.vpn)) {
                *s = None;
                n += 1;
            }
        }
        n
    }

    /// Drops every translation; returns how many.
    pub(crate) fn flush(&mut self) -> usize {
        self.invalidate(0, Vpn::MAX)
    }

    /// Drops the translations of `pages`, which must be sorted ascending;
    /// returns how many.
    ///
    /// Bounded by the dTLB's size however many pages there are (a gather may
    /// have cleared a whole dPT): probing each page's set costs `ways` per
    /// page, one pass over every slot with a binary search `log2(pages)` per
    /// slot, and the cheaper of the two is done.  At most `sets * ways *
    /// (1 + log2(pages))` comparisons, with the MMU lock held.
    pub(crate) fn invalidate_pages(&mut self, pages: &[Vpn]) -> usize {
        if pages.len().saturating_mul(self.geo.ways) <= self.slots.len() {
            return pages.iter().map(|&vpn| self.invalidate_page(vpn)).sum();
        }
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if matches!(s, Some(slot) if pages.binary_search(&slot.vpn).is_ok()) {
                *s = None;
                n += 1;
            }
        }
        n
    }

    /// Drops the translation of `vpn`, looking at its set only.
    fn invalidate_page(&mut self, vpn: Vpn) -> usize {
        match self
            .set(vpn)
            .iter_mut()
            .find(|s| matches!(s, Some(s) if s.vpn == vpn))
        {
            Some(s) => {
                *s = None;
                1
            }
            None => 0,
        }
    }
}

impl<T> Drop for Dtlb<T> {
    fn drop(&mut self) {
        // The slots may be vmalloc'd (the largest geometry takes about 1 MiB)
        // and `vfree()` may sleep: never drop a dTLB under the MMU spinlock.
        // Said here so that a debug kernel catches it even when the
        // allocation happened to come from kmalloc.
        kernel::task::might_sleep();
    }
}

#[kernel::macros::kunit_tests(tlbrace_dtlb)]
mod tests {
    use super::*;
    use crate::uapi;
    use kernel::time::{Instant, Monotonic};

    fn dtlb(sets: usize, ways: usize, replacement: Replacement) -> Result<Dtlb<u64>> {
        Dtlb::new(Geometry {
            sets,
            ways,
            replacement,
        })
    }

    #[test]
    fn hit_after_insert() -> Result {
        let mut t = dtlb(4, 2, Replacement::Lru)?;
        assert!(t.lookup(7).is_none());
        assert!(matches!(t.insert(7, 70), Displaced::Nothing));
        assert_eq!(t.lookup(7).copied(), Some(70));
        assert!(matches!(t.insert(7, 71), Displaced::Replaced));
        assert_eq!(t.peek(7).copied(), Some(71));
        Ok(())
    }

    #[test]
    fn set_index_is_vpn_mod_sets() -> Result {
        let mut t = dtlb(4, 1, Replacement::Lru)?;
        // 1 and 5 share set 1 of a direct-mapped dTLB; 2 does not.
        t.insert(1, 1);
        t.insert(2, 2);
        assert!(matches!(t.insert(5, 5), Displaced::Evicted));
        assert!(t.peek(1).is_none());
        assert!(t.peek(2).is_some());
        Ok(())
    }

    #[test]
    fn lru_keeps_recently_used() -> Result {
        let mut t = dtlb(1, 2, Replacement::Lru)?;
        t.insert(0, 0);
        t.insert(1, 1);
        t.lookup(0);
        t.insert(2, 2);
        assert!(t.peek(0).is_some());
        assert!(t.peek(1).is_none());
        Ok(())
    }

    #[test]
    fn fifo_evicts_oldest_fill() -> Result {
        let mut t = dtlb(1, 2, Replacement::Fifo)?;
        t.insert(0, 0);
        t.insert(1, 1);
        t.lookup(0);
        t.insert(2, 2);
        assert!(t.peek(0).is_none());
        assert!(t.peek(1).is_some());
        Ok(())
    }

    #[test]
    fn invalidate_is_half_open() -> Result {
        let mut t = dtlb(8, 4, Replacement::Lru)?;
        for vpn in 0..16 {
            t.insert(vpn, vpn as u64);
        }
        assert_eq!(t.invalidate(4, 8), 4);
        assert!(t.peek(3).is_some() && t.peek(8).is_some());
        assert!((4..8).all(|v| t.peek(v).is_none()));
        assert_eq!(t.flush(), 12);
        assert_eq!(t.flush(), 0);
        Ok(())
    }

    #[test]
    fn invalidate_pages_drops_exactly_those() -> Result {
        // Few pages: probed per set.  Many: one pass over the slots.
        let many = [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30];
        for pages in [&[1, 6, 9, 40][..], &many[..]] {
            let mut t = dtlb(8, 2, Replacement::Lru)?;
            for vpn in 0..16 {
                t.insert(vpn, vpn as u64);
            }
            let cached = pages.iter().filter(|&&v| v < 16).count();
            assert_eq!(t.invalidate_pages(pages), cached);
            assert!((0..16).all(|v| t.peek(v).is_some() != pages.contains(&v)));
        }
        Ok(())
    }

    #[test]
    fn invalidate_pages_is_bounded_by_the_dtlb() -> Result {
        // The largest dTLB, full, and a gather that cleared a full dPT:
        // probing every slot once per page (2^16 * 2^14 comparisons) takes
        // tens of seconds under TCG; the bounded walk a few milliseconds.
        let sets = uapi::TLBRACE_MAX_SETS as usize;
        let ways = uapi::TLBRACE_MAX_WAYS as usize;
        let mut t = dtlb(sets, ways, Replacement::Lru)?;
        for vpn in 0..sets * ways {
            t.insert(vpn, 0);
        }
        let mut cleared = KVec::with_capacity(uapi::TLBRACE_DPT_MAX_PAGES as usize, GFP_KERNEL)?;
        for i in 0..uapi::TLBRACE_DPT_MAX_PAGES as usize {
            cleared.push(2 * i, GFP_KERNEL)?;
        }
        let t0 = Instant::<Monotonic>::now();
        let n = t.invalidate_pages(&cleared);
        let took = t0.elapsed().as_millis();
        assert_eq!(n, sets * ways / 2);
        assert!(t.peek(1).is_some() && t.peek(2).is_none());
        pr_info!("invalidate_pages: 2^16 pages, 2^14 slots: {took} ms\n");
        assert!(took < 1000);
        Ok(())
    }
}
