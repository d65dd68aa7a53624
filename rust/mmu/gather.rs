// SPDX-License-Identifier: GPL-2.0

//! Gathers of the `batched` contract: `invalidate_range_start` opens one,
//! clearing the dPT entries of the range and recording which it cleared;
//! `invalidate_range_end` closes it, flushing from the dTLB what the
//! [`Tracker`](crate::tracker::Tracker) decides.  Between the two, the dTLB
//! still maps what the dPT no longer has: that deferral is the batching.
//!
//! Both run under the MMU lock (nothing sleeps but the `ranges-wait` close,
//! which waits on `Device::idle`, releasing the lock).

use kernel::{
    current,
    prelude::*,
    sync::CondVarTimeoutResult,
    task::Pid,
    time::{msecs_to_jiffies, Instant, Monotonic},
};

use crate::{
    device::Device,
    inject::{Point, Site},
    mmu::Mmu,
    mmu_notifier::RangeKey,
    stats::Counter,
    trace::{self, CloseDecision},
    tracker::{Flush, Open},
    translation::Vpn,
};

/// Gathers open at once per device; more are invalidated eagerly instead.
pub(crate) const MAX_GATHERS: usize = 64;
/// How long a `ranges-wait` close waits for an older overlapping gather.
const WAIT_MS: u32 = 1000;

/// An open gather.
pub(crate) struct Gather {
    /// The invalidation it belongs to: its close is found by this, never by
    /// its bounds (two threads may invalidate identical ranges at once).
    key: RangeKey,
    open: Open,
    /// The task that opened it: a close in that task, nested in it, must
    /// not wait for it.
    task: Pid,
    /// The dPT entries it cleared, or `None` if recording them failed (then
    /// its whole requested range is flushed).
    cleared: Option<KVec<Vpn>>,
}

impl Gather {
    /// Whether this gather cleared `vpn` from the dPT: it is in its cleared
    /// set, or in its requested range if the set could not be recorded
    /// (for [`Mmu::check_invariant`]).
    #[cfg(CONFIG_KUNIT)]
    pub(super) fn cleared_page(&self, vpn: Vpn) -> bool {
        match &self.cleared {
            Some(cleared) => cleared.binary_search(&vpn).is_ok(),
            None => (self.open.start..self.open.end).contains(&vpn),
        }
    }
}

impl Device {
    /// `invalidate_range_start` under `batched`; returns how many
    /// translations it dropped right away (only when it cannot defer).
    pub(crate) fn gather_open(&self, mmu: &mut Mmu, key: RangeKey, start: Vpn, end: Vpn) -> usize {
        mmu.inval_seq += 1;
        if mmu.gathers.len() == mmu.gathers.capacity() {
            // No room to defer: behave like `sync` for this one.
            return mmu.invalidate(start, end, &self.stats);
        }
        mmu.next_gather += 1;
        let open = Open {
            id: mmu.next_gather,
            start,
            end,
        };
        let t0 = Instant::<Monotonic>::now();
        // Cannot fail: the trackers' own lists have room for MAX_GATHERS.
        let _ = mmu.tracker.open(open);
        self.stats
            .add(Counter::TrackerNs, t0.elapsed().as_nanos() as u64);
        let mut cleared = Some(KVec::new());
        let n = mmu.dpt.invalidate_each(start, end, |vpn| {
            if let Some(c) = cleared.as_mut() {
                if c.push(vpn, GFP_NOWAIT).is_err() {
                    cleared = None;
                }
            }
        });
        self.stats.add(Counter::Invalidated, n as u64);
        trace::gather_open(self.id, &open, n);
        let g = Gather {
            key,
            open,
            task: current!().pid(),
            cleared,
        };
        // Within capacity (checked above): no allocation under the lock.
        let _ = mmu.gathers.push_within_capacity(g);
        0
    }

    /// `invalidate_range_end` under `batched`; `can_sleep` tells whether a
    /// `ranges-wait` close may wait.
    pub(crate) fn gather_close<'a>(
        &'a self,
        mut mmu: kernel::sync::lock::Guard<'a, Mmu, kernel::sync::lock::spinlock::SpinLockBackend>,
        key: RangeKey,
        start: Vpn,
        end: Vpn,
        can_sleep: bool,
    ) -> kernel::sync::lock::Guard<'a, Mmu, kernel::sync::lock::spinlock::SpinLockBackend> {
        let Some(i) = mmu.gathers.iter().position(|g| g.key == key) else {
            // Opened without room to defer (or before a reconfiguration).
            return mmu;
        };
        let open = mmu.gathers[i].open;

        // PeterZ's rule, restricted to overlap: wait for older overlapping
        // gathers to close.  A timeout (or a context that may not sleep)
        // falls back to flushing everything, which is always correct.  So
        // does an older overlapping gather of this very task: this close is
        // nested in it (a THP split inside a zap), which closes only after
        // this returns, so waiting for it would always time out.
        let mut force_all = false;
        let must_wait = mmu.tracker.must_wait(&open);
        if must_wait {
            let me = current!().pid();
            force_all = mmu.gathers.iter().any(|o| {
                o.task == me
                    && o.open.id < open.id
                    && o.open.start < open.end
                    && open.start < o.open.end
            });
        }
        // Whether this close slept for older gathers (the trace's `waited`).
        let mut slept = false;
        if must_wait && !force_all {
            self.stats.inc(Counter::GatherWaits);
            let mut left = msecs_to_jiffies(WAIT_MS);
            while mmu.tracker.must_wait(&open) {
                if !can_sleep || left == 0 {
                    force_all = true;
                    break;
                }
                slept = true;
                match self.idle.wait_interruptible_timeout(&mut mmu, left) {
                    CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                    _ => left = 0,
                }
            }
            if force_all {
                self.stats.inc(Counter::WaitTimeouts);
            }
        }
        // The point between the decision to close and the flush: what the
        // dTLB still maps there is the window a late flush leaves open.
        if self.inject.armed(Point::GatherClose) {
            drop(mmu);
            self.inject.pass(self, &Site::gather(open, can_sleep));
            mmu = self.mmu.lock();
        }
        // The index may have moved while waiting.
        let Some(i) = mmu.gathers.iter().position(|g| g.open.id == open.id) else {
            return mmu;
        };
        let Ok(g) = mmu.gathers.remove(i) else {
            return mmu;
        };

        // Tracker-independent view, for the comparison with stock.
        let nested = !mmu.gathers.is_empty();
        let overlapping = mmu
            .gathers
            .iter()
            .any(|o| o.open.start < end && start < o.open.end);
        self.stats.inc(Counter::Gathers);
        self.stats.add(Counter::ClosesNested, u64::from(nested));
        self.stats
            .add(Counter::ClosesOverlapping, u64::from(overlapping));

        let t0 = Instant::<Monotonic>::now();
        let flush = if force_all {
            Flush::All
        } else {
            mmu.tracker.close(open)
        };
        self.stats
            .add(Counter::TrackerNs, t0.elapsed().as_nanos() as u64);
        let decision = match (&flush, force_all) {
            (_, true) => CloseDecision::ForcedAll,
            (Flush::Cleared, _) => CloseDecision::Cleared,
            (Flush::Ranges(_), _) => CloseDecision::Ranges,
            (Flush::All, _) => CloseDecision::All,
        };
        let mut n = 0;
        match &g.cleared {
            // Sorted: the dPT is walked in address order.
            Some(cleared) => n += mmu.dtlb.invalidate_pages(cleared),
            None => n += mmu.dtlb.invalidate(start, end),
        }
        match flush {
            Flush::Cleared => {}
            Flush::Ranges(ranges) => {
                for (s, e) in ranges {
                    n += mmu.dtlb.invalidate(s, e);
                }
            }
            Flush::All => {
                self.stats.inc(Counter::GatherFull);
                self.stats.inc(Counter::FullFlushes);
                n += mmu.dtlb.flush();
            }
        }
        self.stats.add(Counter::GatherFlushed, n as u64);
        trace::gather_close(self.id, &open, decision, slept, n);
        // The tracker forgets the gather only after its flush (the stock
        // dec_tlb_flush_pending() comes after the flush).
        mmu.tracker.closed(open);
        mmu.inval_seq += 1;
        mmu
    }
}

#[kernel::macros::kunit_tests(tlbrace_gather)]
mod tests {
    use super::*;
    use crate::{contract::Contract, dtlb::Geometry, tracker, uapi};
    use kernel::sync::Arc;

    fn batched(kind: u32) -> Result<Arc<Device>> {
        let dev = Arc::pin_init(Device::new()?, GFP_KERNEL)?;
        dev.configure(
            Contract::Batched,
            Geometry::DEFAULT,
            tracker::from_uapi(kind)?,
        )?;
        Ok(dev)
    }

    fn stats(dev: &Device) -> uapi::tlbrace_stats {
        let mut s = uapi::tlbrace_stats::default();
        dev.stats.read(&mut s, false);
        s
    }

    #[test]
    fn no_room_invalidates_eagerly_and_closes_nothing() -> Result {
        for kind in [
            uapi::TLBRACE_TRACKER_NAIVE,
            uapi::TLBRACE_TRACKER_COUNTER,
            uapi::TLBRACE_TRACKER_RANGES,
            uapi::TLBRACE_TRACKER_RANGES_WAIT,
        ] {
            let dev = batched(kind)?;
            let mut mmu = dev.mmu.lock();
            for i in 0..MAX_GATHERS {
                dev.gather_open(&mut mmu, RangeKey::from_number(2 * i), 2 * i, 2 * i + 1);
            }
            assert_eq!(mmu.gathers.len(), MAX_GATHERS);
            // One more: not deferred, not known to the tracker, but it
            // counts as an invalidation (a racing fault retries).
            let (far, open, seq) = (4 * MAX_GATHERS, mmu.tracker.open_gathers(), mmu.inval_seq);
            dev.gather_open(&mut mmu, RangeKey::from_number(far), far, far + 1);
            assert_eq!(mmu.gathers.len(), MAX_GATHERS);
            assert_eq!(mmu.tracker.open_gathers(), open);
            assert!(mmu.inval_seq > seq);
            // Its close finds no gather of its own and closes no other one.
            mmu = dev.gather_close(mmu, RangeKey::from_number(far), far, far + 1, true);
            assert_eq!(mmu.gathers.len(), MAX_GATHERS);
            for i in 0..MAX_GATHERS {
                mmu = dev.gather_close(mmu, RangeKey::from_number(2 * i), 2 * i, 2 * i + 1, true);
            }
            assert!(mmu.gathers.is_empty());
            assert_eq!(mmu.tracker.open_gathers(), 0);
            drop(mmu);
            assert_eq!(stats(&dev).gathers, MAX_GATHERS as u64);
        }
        Ok(())
    }

    #[test]
    fn non_blockable_close_flushes_all_without_waiting() -> Result {
        let dev = batched(uapi::TLBRACE_TRACKER_RANGES_WAIT)?;
        let mut mmu = dev.mmu.lock();
        // A is older and overlaps B: a blockable close of B would wait.
        dev.gather_open(&mut mmu, RangeKey::from_number(0), 0, 10);
        // A is another task's: B's close is not nested in it.
        mmu.gathers[0].task += 1;
        dev.gather_open(&mut mmu, RangeKey::from_number(5), 5, 15);
        let t0 = Instant::<Monotonic>::now();
        mmu = dev.gather_close(mmu, RangeKey::from_number(5), 5, 15, false);
        let took = t0.elapsed().as_millis();
        // A is still open; B is gone.
        assert_eq!(mmu.gathers.len(), 1);
        assert_eq!(mmu.tracker.open_gathers(), 1);
        drop(mmu);
        // Far below the wait bound: it did not wait at all.
        assert!(took < i64::from(WAIT_MS) / 10);
        let s = stats(&dev);
        assert_eq!(s.gather_waits, 1);
        assert_eq!(s.wait_timeouts, 1);
        assert_eq!(s.gather_full, 1);
        Ok(())
    }

    /// A blockable close nested in an older overlapping gather of the same
    /// task (a THP split inside a zap) cannot wait for it: it flushes
    /// everything at once instead of waiting out the bound.
    #[test]
    fn nested_close_in_own_gather_does_not_wait() -> Result {
        let dev = batched(uapi::TLBRACE_TRACKER_RANGES_WAIT)?;
        let mut mmu = dev.mmu.lock();
        dev.gather_open(&mut mmu, RangeKey::from_number(0), 0, 10);
        dev.gather_open(&mut mmu, RangeKey::from_number(5), 5, 15);
        let t0 = Instant::<Monotonic>::now();
        mmu = dev.gather_close(mmu, RangeKey::from_number(5), 5, 15, true);
        let took = t0.elapsed().as_millis();
        assert_eq!(mmu.gathers.len(), 1);
        drop(mmu);
        assert!(took < i64::from(WAIT_MS) / 10);
        let s = stats(&dev);
        assert_eq!(s.gather_waits, 0);
        assert_eq!(s.gather_full, 1);
        Ok(())
    }
}
