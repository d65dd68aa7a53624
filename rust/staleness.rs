// SPDX-License-Identifier: GPL-2.0

//! The staleness oracle: which cached translations the CPUs could no longer
//! use, kept independently of the device's contract.
//!
//! A translation of page `v` (the page and permission a device walk read from
//! the CPU page table) is *stale* once the CPUs flushed their TLBs for `v`
//! after that page-table entry stopped mapping the same page with at least
//! the translation's permission: from then on no CPU can make that access,
//! so a device that does is incoherent.  Two inputs decide it:
//!
//! - *when* the CPUs flushed: `arch_invalidate_secondary_tlbs`, which the
//!   core calls next to every CPU TLB flush of the mm, whether or not an
//!   `invalidate_range_start/end` pair announced the change.  Each such
//!   flush [`flags`](Truth::cpu_flush) the translations it covers, and a
//!   fill whose walk began before a flush covering it is flagged on
//!   insertion ([`Truth::flushed_since`]);
//! - *whether* the entry changed: before a flagged translation is used, the
//!   device compares it with what the CPU page table maps now, with a lookup
//!   that neither faults nor sleeps ([`judge`]).
//!
//! The notifier stream (`invalidate_range_start/end`) only names the event
//! reported with a stale access and says which accesses are *early* (made
//! while the invalidation is still in progress); it no longer marks anything.
//! Callers hold the device's MMU lock.

use crate::{mmu_notifier::Event, translation::Vpn};

/// Invalidations tracked at once; more (many threads invalidating one mm
/// concurrently) are still counted.
const MAX_OPEN: usize = 64;
/// Recently ended invalidations kept to name the event of a later flush
/// (`clear_refs`, `mprotect`, `munmap` and `MADV_DONTNEED` flush the CPU
/// TLBs after `invalidate_range_end`).
const ENDED: usize = 16;
/// Recent CPU flushes kept to flag fills whose walk raced with them.
const RECENT: usize = 32;

#[derive(Clone, Copy)]
struct Open {
    start: Vpn,
    end: Vpn,
    event: Event,
}

impl Open {
    fn overlaps(&self, start: Vpn, end: Vpn) -> bool {
        self.start < end && start < self.end
    }
}

/// A CPU TLB flush of `[start, end)`.
#[derive(Clone, Copy)]
pub(crate) struct Flush {
    seq: u64,
    pub(crate) start: Vpn,
    pub(crate) end: Vpn,
    /// The event of the invalidation the flush belongs to: an overlapping
    /// one in progress, else the latest overlapping one that ended, else
    /// `Clear` (a flush no notification announced).
    pub(crate) event: Event,
}

/// Invalidations in progress, recently ended ones and the recent flushes.
pub(crate) struct Truth {
    open: [Option<Open>; MAX_OPEN],
    untracked: usize,
    ended: [Option<Open>; ENDED],
    ended_total: usize,
    seq: u64,
    recent: [Option<Flush>; RECENT],
}

impl Truth {
    pub(crate) const fn new() -> Self {
        Self {
            open: [None; MAX_OPEN],
            untracked: 0,
            ended: [None; ENDED],
            ended_total: 0,
            seq: 0,
            recent: [None; RECENT],
        }
    }

    /// Number of invalidations in progress overlapping `[start, end)`.
    pub(crate) fn open_overlapping(&self, start: Vpn, end: Vpn) -> usize {
        let tracked = self
            .open
            .iter()
            .flatten()
            .filter(|o| o.overlaps(start, end))
            .count();
        tracked + self.untracked
    }

    /// The flush sequence, to be compared by [`Truth::flushed_since`].
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// `invalidate_range_start` of `[start, end)`.
    pub(crate) fn begin(&mut self, start: Vpn, end: Vpn, event: Event) {
        match self.open.iter_mut().find(|o| o.is_none()) {
            Some(slot) => *slot = Some(Open { start, end, event }),
            None => self.untracked += 1,
        }
    }

    /// `invalidate_range_end` of `[start, end)`.  Marks nothing: the CPUs
    /// may flush later (`clear_refs_write()` calls `flush_tlb_mm()` after
    /// it), or not at all if nothing changed.
    pub(crate) fn end(&mut self, start: Vpn, end: Vpn, event: Event) {
        let done = Open { start, end, event };
        let slot = self
            .open
            .iter_mut()
            .find(|o| matches!(o, Some(o) if o.start == start && o.end == end && o.event == event));
        match slot {
            Some(slot) => *slot = None,
            None => self.untracked = self.untracked.saturating_sub(1),
        }
        self.ended[self.ended_total % ENDED] = Some(done);
        self.ended_total += 1;
    }

    /// The event to report for a flush of `[start, end)`.
    fn event_of(&self, start: Vpn, end: Vpn) -> Event {
        if let Some(o) = self.open.iter().flatten().find(|o| o.overlaps(start, end)) {
            return o.event;
        }
        // Latest first.
        (0..ENDED.min(self.ended_total))
            .filter_map(|k| self.ended[(self.ended_total - 1 - k) % ENDED])
            .find(|o| o.overlaps(start, end))
            .map_or(Event::Clear, |o| o.event)
    }

    /// A CPU TLB flush of `[start, end)` (`arch_invalidate_secondary_tlbs`):
    /// returns the flush, whose range the caller flags.
    pub(crate) fn cpu_flush(&mut self, start: Vpn, end: Vpn) -> Flush {
        self.seq += 1;
        let f = Flush {
            seq: self.seq,
            start,
            end,
            event: self.event_of(start, end),
        };
        self.recent[(self.seq as usize) % RECENT] = Some(f);
        f
    }

    /// Whether a CPU flush covering `vpn` happened after flush sequence
    /// `since`; returns its event.  If the ring no longer reaches back that
    /// far, says so with `Clear`: a flag only asks for a check, it is no
    /// verdict, so assuming one costs a lookup, not a false positive.
    pub(crate) fn flushed_since(&self, since: u64, vpn: Vpn) -> Option<Event> {
        if self.seq == since {
            return None;
        }
        if self.seq - since > RECENT as u64 {
            return Some(Event::Clear);
        }
        self.recent
            .iter()
            .flatten()
            .find(|f| f.seq > since && (f.start..f.end).contains(&vpn))
            .map(|f| f.event)
    }
}

/// What the CPU page table maps now at a flagged translation's address, for
/// the translation's permission (a lookup that neither faults nor sleeps).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lookup {
    /// The same page, with the permission.
    Same,
    /// Another page.
    Other,
    /// Nothing with that permission (unmapped, not present, read-only for a
    /// writable translation).
    Absent,
    /// The lookup could not tell (the mmap lock is held for writing).
    Unknown,
}

/// The oracle's verdict on a flagged translation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// The CPUs may still make the access: the flag is cleared.
    Valid,
    /// The CPUs flushed after the entry changed: every use is stale.
    Stale,
    /// Could not tell; treated as stale and counted as a conservative verdict.
    Conservative,
}

/// Judges a flagged translation from the lookup.  The flush happened before
/// the lookup, so a translation the CPU page table still maps is one the
/// CPUs may still use.  One it no longer maps was flushed by the CPUs, by
/// the flush that flagged it or a later one, except if the entry changed
/// after that flush and the CPUs' flush for this change is still to come:
/// then the verdict is early (conservative).
pub(crate) fn judge(lookup: Lookup) -> Verdict {
    match lookup {
        Lookup::Same => Verdict::Valid,
        Lookup::Other | Lookup::Absent => Verdict::Stale,
        Lookup::Unknown => Verdict::Conservative,
    }
}

#[kernel::macros::kunit_tests(tlbrace_staleness)]
mod tests {
    use super::*;

    #[test]
    fn every_cpu_flush_flags_its_range() {
        let mut t = Truth::new();
        let seq = t.seq();
        // No notification at all: the flush still counts (a forgotten
        // invalidate_range_start/end cannot hide a CPU flush).
        let f = t.cpu_flush(10, 20);
        assert_eq!((f.start, f.end, f.event), (10, 20, Event::Clear));
        assert_eq!(t.flushed_since(seq, 9), None);
        assert_eq!(t.flushed_since(seq, 10), Some(Event::Clear));
        assert_eq!(t.flushed_since(seq, 19), Some(Event::Clear));
        assert_eq!(t.flushed_since(seq, 20), None);
        assert_eq!(t.flushed_since(t.seq(), 15), None);
    }

    #[test]
    fn range_end_flags_nothing() {
        let mut t = Truth::new();
        let seq = t.seq();
        t.begin(10, 20, Event::Clear);
        assert_eq!(t.open_overlapping(0, Vpn::MAX), 1);
        t.end(10, 20, Event::Clear);
        assert_eq!(t.open_overlapping(0, Vpn::MAX), 0);
        // The old oracle marked the whole range here, before the CPUs
        // flushed, and with it fills that had already seen the new entry.
        assert_eq!(t.seq(), seq);
        assert_eq!(t.flushed_since(seq, 15), None);
    }

    #[test]
    fn flush_names_the_invalidation() {
        let mut t = Truth::new();
        t.begin(10, 20, Event::Unmap);
        t.begin(30, 40, Event::ProtectionVma);
        assert_eq!(t.open_overlapping(15, 35), 2);
        assert_eq!(t.open_overlapping(20, 30), 0);
        // Inside an invalidation in progress (COW: ptep_clear_flush).
        assert_eq!(t.cpu_flush(12, 13).event, Event::Unmap);
        // After it ended (clear_refs: flush_tlb_mm after range_end).
        t.end(30, 40, Event::ProtectionVma);
        t.begin(0, 5, Event::SoftDirty);
        t.end(0, 5, Event::SoftDirty);
        assert_eq!(t.cpu_flush(31, 32).event, Event::ProtectionVma);
        assert_eq!(t.cpu_flush(0, 1).event, Event::SoftDirty);
        assert_eq!(t.cpu_flush(50, 60).event, Event::Clear);
    }

    #[test]
    fn fill_racing_with_a_flush_is_flagged() {
        let mut t = Truth::new();
        t.begin(0, 100, Event::Clear);
        // A walk starts, a flush of another page and one of its page follow.
        let walk = t.seq();
        t.cpu_flush(50, 51);
        assert_eq!(t.flushed_since(walk, 7), None);
        t.cpu_flush(7, 8);
        assert_eq!(t.flushed_since(walk, 7), Some(Event::Clear));
    }

    #[test]
    fn past_the_ring_a_fill_is_flagged_not_judged() {
        let mut t = Truth::new();
        let seq = t.seq();
        for i in 0..(RECENT + 1) {
            t.cpu_flush(i, i + 1);
        }
        // Page 1000 was never flushed, but the ring no longer tells: the
        // fill is checked against the page table before use.
        assert_eq!(t.flushed_since(seq, 1000), Some(Event::Clear));
    }

    #[test]
    fn unpaired_end_does_not_underflow() {
        let mut t = Truth::new();
        t.end(0, 1, Event::Clear);
        assert_eq!(t.open_overlapping(0, Vpn::MAX), 0);
    }

    #[test]
    fn verdicts() {
        // A fill that saw the new entry during an open invalidation (sva,
        // none): the page table maps its page, the flush after it is no
        // reason to call it stale.
        assert_eq!(judge(Lookup::Same), Verdict::Valid);
        // A fill that saw the old entry (COW, zap, write-protect).
        assert_eq!(judge(Lookup::Other), Verdict::Stale);
        assert_eq!(judge(Lookup::Absent), Verdict::Stale);
        assert_eq!(judge(Lookup::Unknown), Verdict::Conservative);
    }
}
