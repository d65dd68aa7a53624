// SPDX-License-Identifier: GPL-2.0

//! The staleness detector: the ground truth of which translations the core
//! mm has invalidated, kept independently of the device's contract.
//!
//! A translation of page `v` becomes stale once the CPU page-table entry it
//! was derived from may have changed and the CPU stopped using it:
//!
//! - when a CPU TLB flush covering `v` (`arch_invalidate_secondary_tlbs`)
//!   happens while an invalidation covering `v` is in progress, or
//! - at the latest when that invalidation ends (`invalidate_range_end`).
//!
//! Each such moment is a *mark*; the device applies it to its cached
//! translations, and any later use of a marked translation is a stale access.
//! A fill whose CPU walk raced with a mark (found with the ring of recent
//! marks) is checked with a second walk and marked on insertion if the CPU
//! maps another page by then.  Callers hold the device's MMU lock.

use crate::{mmu_notifier::Event, translation::Vpn};

/// Invalidations tracked at once; more (many threads invalidating one mm
/// concurrently) are still counted and covered by the mark at their end.
const MAX_OPEN: usize = 64;
/// Recent marks kept to judge fills that raced with them.
const RECENT: usize = 32;

#[derive(Clone, Copy)]
struct Open {
    start: Vpn,
    end: Vpn,
    event: Event,
}

/// A range whose translations became stale.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    seq: u64,
    pub(crate) start: Vpn,
    pub(crate) end: Vpn,
    pub(crate) event: Event,
    /// A CPU flush inside an invalidation in progress (not its end).
    pub(crate) early: bool,
}

/// Invalidations in progress and the recent marks.
pub(crate) struct Truth {
    open: [Option<Open>; MAX_OPEN],
    untracked: usize,
    seq: u64,
    recent: [Option<Mark>; RECENT],
}

impl Truth {
    pub(crate) const fn new() -> Self {
        Self {
            open: [None; MAX_OPEN],
            untracked: 0,
            seq: 0,
            recent: [None; RECENT],
        }
    }

    /// Number of invalidations in progress.
    pub(crate) fn in_progress(&self) -> usize {
        self.open.iter().flatten().count() + self.untracked
    }

    /// Number of invalidations in progress overlapping `[start, end)`.
    pub(crate) fn open_overlapping(&self, start: Vpn, end: Vpn) -> usize {
        let tracked = self
            .open
            .iter()
            .flatten()
            .filter(|o| o.start < end && start < o.end)
            .count();
        tracked + self.untracked
    }

    /// The mark sequence, to be compared by [`Truth::marked_since`].
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

    fn mark(&mut self, start: Vpn, end: Vpn, event: Event, early: bool) -> Mark {
        self.seq += 1;
        let m = Mark {
            seq: self.seq,
            start,
            end,
            event,
            early,
        };
        self.recent[(self.seq as usize) % RECENT] = Some(m);
        m
    }

    /// `invalidate_range_end` of `[start, end)`: returns its mark.
    pub(crate) fn end(&mut self, start: Vpn, end: Vpn, event: Event) -> Mark {
        let slot = self
            .open
            .iter_mut()
            .find(|o| matches!(o, Some(o) if o.start == start && o.end == end && o.event == event));
        match slot {
            Some(slot) => *slot = None,
            None => self.untracked = self.untracked.saturating_sub(1),
        }
        self.mark(start, end, event, false)
    }

    /// A CPU TLB flush of `[start, end)`: marks its intersection with every
    /// invalidation in progress, and calls `f` on each mark.
    pub(crate) fn cpu_flush(&mut self, start: Vpn, end: Vpn, mut f: impl FnMut(&Mark)) {
        for i in 0..MAX_OPEN {
            let Some(o) = self.open[i] else { continue };
            let (s, e) = (start.max(o.start), end.min(o.end));
            if s < e {
                let m = self.mark(s, e, o.event, true);
                f(&m);
            }
        }
    }

    /// Whether `vpn` was marked (`early` marks, or end marks) after mark
    /// sequence `since`; returns the event.  If the ring no longer reaches
    /// back that far, assumes it was (only broken contracts fill across
    /// marks: correct ones retry).
    pub(crate) fn marked_since(&self, since: u64, vpn: Vpn, early: bool) -> Option<Event> {
        if self.seq == since {
            return None;
        }
        if self.seq - since > RECENT as u64 {
            return Some(Event::Clear);
        }
        self.recent
            .iter()
            .flatten()
            .find(|m| m.seq > since && m.early == early && (m.start..m.end).contains(&vpn))
            .map(|m| m.event)
    }
}

#[kernel::macros::kunit_tests(tlbrace_staleness)]
mod tests {
    use super::*;

    impl Truth {
        fn marked_since_end(&self, since: u64, vpn: Vpn) -> Option<Event> {
            self.marked_since(since, vpn, false)
        }
    }

    #[test]
    fn end_marks_the_range() {
        let mut t = Truth::new();
        let seq = t.seq();
        t.begin(10, 20, Event::Clear);
        assert_eq!(t.in_progress(), 1);
        let m = t.end(10, 20, Event::Clear);
        assert_eq!((m.start, m.end), (10, 20));
        assert_eq!(t.in_progress(), 0);
        assert_eq!(t.marked_since_end(seq, 10), Some(Event::Clear));
        assert_eq!(t.marked_since_end(seq, 19), Some(Event::Clear));
        assert_eq!(t.marked_since_end(seq, 20), None);
        assert_eq!(t.marked_since_end(t.seq(), 15), None);
    }

    #[test]
    fn cpu_flush_marks_only_open_intersections() {
        let mut t = Truth::new();
        let seq = t.seq();
        // No invalidation in progress: a flush marks nothing.
        t.cpu_flush(0, 100, |_| panic!("unexpected mark"));
        t.begin(10, 20, Event::Unmap);
        t.begin(30, 40, Event::SoftDirty);
        let mut marks = 0;
        t.cpu_flush(15, 35, |m| {
            marks += 1;
            assert!((m.start, m.end) == (15, 20) || (m.start, m.end) == (30, 35));
        });
        assert_eq!(marks, 2);
        assert_eq!(t.marked_since(seq, 12, true), None);
        assert_eq!(t.marked_since(seq, 16, true), Some(Event::Unmap));
        assert_eq!(t.marked_since(seq, 31, true), Some(Event::SoftDirty));
        assert_eq!(t.marked_since(seq, 36, true), None);
        // Early marks are not end marks.
        assert_eq!(t.marked_since(seq, 16, false), None);
    }

    #[test]
    fn unpaired_end_does_not_underflow() {
        let mut t = Truth::new();
        t.end(0, 1, Event::Clear);
        assert_eq!(t.in_progress(), 0);
    }

    #[test]
    fn old_fills_are_assumed_stale_past_the_ring() {
        let mut t = Truth::new();
        let seq = t.seq();
        for i in 0..(RECENT + 1) {
            t.begin(i, i + 1, Event::Clear);
            t.end(i, i + 1, Event::Clear);
        }
        // Page 1000 was never invalidated, but the ring no longer tells.
        assert_eq!(t.marked_since_end(seq, 1000), Some(Event::Clear));
    }
}
