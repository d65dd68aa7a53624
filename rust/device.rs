// SPDX-License-Identifier: GPL-2.0

//! The fake device: its MMU state (dPT, dTLB, staleness truth) and its
//! reaction to mmu_notifier callbacks under the selected contract.
//!
//! Lock order (outermost first):
//!  1. mmap lock of the mm (device faults only, never held with 2.)
//!  2. the PT lock and other mm locks the core holds around callbacks
//!  3. `Device::mmu` (a spinlock: `arch_invalidate_secondary_tlbs` runs under
//!     the PT lock and must not sleep)
//!  4. `Stats::ring`

use kernel::{
    mm::Mm,
    new_condvar, new_spinlock, new_work,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVar, SpinLock,
    },
    workqueue::Work,
};

use crate::{
    contract::{Contract, Hook},
    dpt::Dpt,
    dtlb::{Dtlb, Geometry},
    inject::{Injector, Point, Site},
    mm_ext,
    mmu::Mmu,
    mmu_notifier::{Event, MmuNotifier, Range},
    stats::{Counter, Stats},
    trace::{self, Callback},
    tracker::{self, Tracker},
    translation::{Translation, Vpn},
    uapi,
    worker::Worker,
};

/// Converts a byte range to a range of virtual page numbers, rounding out.
pub(crate) fn vpn_range(start: usize, end: usize) -> (Vpn, Vpn) {
    use kernel::page::{PAGE_SHIFT, PAGE_SIZE};
    (start >> PAGE_SHIFT, end.div_ceil(PAGE_SIZE))
}

/// Numbers the devices, for debugfs and the trace events.
static NEXT_ID: Atomic<u32> = Atomic::new(0);

/// One device, attached to the mm of the process that opened it.
#[pin_data]
pub(crate) struct Device {
    /// Its number: the `<n>` of its debugfs directory `<tgid>-<n>`, the
    /// `dev=` of its trace events.
    pub(crate) id: u32,
    #[pin]
    pub(crate) mmu: SpinLock<Mmu>,
    /// Signalled when an invalidation ends, and on release.
    #[pin]
    pub(crate) idle: CondVar,
    #[pin]
    pub(crate) stats: Stats,
    /// Injection points.
    #[pin]
    pub(crate) inject: Injector,
    /// The asynchronous engine, and its work item.
    #[pin]
    pub(crate) worker: Worker,
    #[pin]
    pub(crate) work: Work<Device>,
}

impl Device {
    /// A device with the default contract (`sync`) and geometry.
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let dtlb = Dtlb::new(Geometry::DEFAULT)?;
        let tracker = tracker::from_uapi(uapi::TLBRACE_TRACKER_NAIVE)?;
        let mmu = Mmu::new(dtlb, tracker)?;
        Ok(try_pin_init!(Self {
            id: NEXT_ID.fetch_add(1, Relaxed),
            mmu <- new_spinlock!(mmu),
            idle <- new_condvar!(),
            stats <- Stats::new(),
            inject <- Injector::new(),
            worker <- Worker::new(),
            work <- new_work!("tlbrace::Device::work"),
        }? Error))
    }

    /// The current contract, dTLB geometry and tracker.
    pub(crate) fn config(&self) -> (Contract, Geometry, u32) {
        let mmu = self.mmu.lock();
        (mmu.contract(), mmu.dtlb().geometry(), mmu.tracker().kind())
    }

    /// The tracker's open gathers and the real `mm->tlb_flush_pending` of
    /// `mm`, read together under the MMU lock (gathers open and close under
    /// it, so the first cannot change between the two reads).
    pub(crate) fn pending_now(&self, mm: &Mm) -> (usize, i32) {
        let mmu = self.mmu.lock();
        (mmu.tracker().open_gathers(), mm_ext::tlb_flush_pending(mm))
    }

    /// Applies a new contract and geometry; drops every translation.
    pub(crate) fn configure(
        &self,
        contract: Contract,
        geo: Geometry,
        tracker: KBox<dyn Tracker>,
    ) -> Result {
        let mut dtlb = Dtlb::new(geo)?;
        let mut tracker = tracker;
        let mut dpt = Dpt::new();
        let mut mmu = self.mmu.lock();
        mmu.reconfigure(contract, &mut dtlb, &mut dpt, &mut tracker, &self.stats)?;
        drop(mmu);
        // The old ones, freed unlocked (see `Mmu::reconfigure`).
        drop((dtlb, dpt, tracker));
        Ok(())
    }

    /// Drops every dTLB entry, and every dPT entry too if `dpt`; returns how
    /// many.
    pub(crate) fn flush(&self, dpt: bool) -> usize {
        let mut mmu = self.mmu.lock();
        let (n, old) = if dpt {
            mmu.flush_all(&self.stats)
        } else {
            (mmu.flush(&self.stats), Dpt::new())
        };
        drop(mmu);
        n + old.len()
    }
}

// The device registers twice (see `mmu_notifier::Callbacks`), each registration
// holding a reference to it.
#[vtable]
impl MmuNotifier for Arc<Device> {
    fn invalidate_range_start(&self, range: &Range<'_>) {
        self.stats.inc(Counter::RangeStart);
        self.inject.pass(self, &site(Point::RangeStartEnter, range));
        let (start, end) = vpn_range(range.start(), range.end());
        let mut mmu = self.mmu.lock();
        mmu.truth.begin(start, end, range.event());
        let mut dropped = 0;
        if mmu.contract().invalidates_at(Hook::RangeStart) {
            dropped = mmu.invalidate(start, end, &self.stats);
        } else if mmu.contract() == Contract::Batched {
            dropped = self.gather_open(&mut mmu, range.key(), start, end);
        }
        // Under the lock: ordered with the device's accesses in the trace.
        trace::notifier(
            self.id,
            Callback::RangeStart,
            range.start(),
            range.end(),
            Some(range.event()),
            dropped,
        );
        drop(mmu);
        self.inject.pass(self, &site(Point::RangeStartExit, range));
    }

    fn invalidate_range_end(&self, range: &Range<'_>) {
        self.stats.inc(Counter::RangeEnd);
        self.inject.pass(self, &site(Point::RangeEndEnter, range));
        let (start, end) = vpn_range(range.start(), range.end());
        let mut mmu = self.mmu.lock();
        // What the real kernel saw: nested batches of this mm, and whether an
        // overlapping invalidation was open too (the stock rule's precision).
        if mm_ext::tlb_flush_pending(range.mm()) > 1 {
            self.stats.inc(Counter::KernelNested);
            if mmu.truth.open_overlapping(start, end) > 1 {
                self.stats.inc(Counter::KernelNestedOverlapping);
            }
        }
        let mut dropped = 0;
        if mmu.contract().invalidates_at(Hook::RangeEnd) {
            dropped = mmu.invalidate(start, end, &self.stats);
        } else if mmu.contract() == Contract::Batched {
            mmu = self.gather_close(mmu, range.key(), start, end, range.blockable());
        }
        mmu.truth.end(start, end, range.event());
        trace::notifier(
            self.id,
            Callback::RangeEnd,
            range.start(),
            range.end(),
            Some(range.event()),
            dropped,
        );
        drop(mmu);
        // Faults wait for the invalidations covering their page, `ranges-wait`
        // closes for older overlapping gathers: any end may free either.
        self.idle.notify_all();
        self.inject.pass(self, &site(Point::RangeEndExit, range));
    }

    fn arch_invalidate_secondary_tlbs(&self, start: usize, end: usize) {
        self.stats.inc(Counter::SecondaryTlbs);
        // Under the page-table lock: delays spin, parks are refused.
        let at = Site {
            point: Point::SecondaryTlbs,
            start,
            end,
            event: None,
            can_sleep: false,
        };
        self.inject.pass(self, &at);
        let full = start == 0 && end == usize::MAX;
        if full {
            self.stats.inc(Counter::SecondaryFull);
        }
        let (vstart, vend) = vpn_range(start, end);
        let mut mmu = self.mmu.lock();
        let mut dropped = 0;
        if mmu.contract().invalidates_at(Hook::SecondaryTlbs) {
            dropped = if full {
                mmu.flush(&self.stats)
            } else {
                mmu.invalidate_dtlb(vstart, vend, &self.stats)
            };
        }
        mmu.cpu_flush(vstart, vend);
        trace::notifier(self.id, Callback::SecondaryTlbs, start, end, None, dropped);
        drop(mmu);
    }

    fn release(&self) {
        self.stats.inc(Counter::Release);
        let mut mmu = self.mmu.lock();
        let (n, dpt) = mmu.release(&self.stats);
        trace::notifier(
            self.id,
            Callback::Release,
            0,
            usize::MAX,
            Some(Event::Release),
            n + dpt.len(),
        );
        drop(mmu);
        // The dPT's pages are freed outside the spinlock.
        drop(dpt);
        self.idle.notify_all();
    }

    fn clear_flush_young(&self, start: usize, end: usize) -> bool {
        self.age(start, end, true)
    }

    fn clear_young(&self, start: usize, end: usize) -> bool {
        self.age(start, end, true)
    }

    fn test_young(&self, address: usize) -> bool {
        self.age(address, address + 1, false)
    }
}

/// The injection site of a range callback.
fn site(point: Point, range: &Range<'_>) -> Site {
    Site {
        point,
        start: range.start(),
        end: range.end(),
        event: Some(range.event()),
        can_sleep: range.blockable(),
    }
}

impl Device {
    /// Reports (and clears, if `clear`) the accessed bits of `[start, end)`.
    fn age(&self, start: usize, end: usize, clear: bool) -> bool {
        self.stats.inc(Counter::Young);
        let (start, end) = vpn_range(start, end);
        let mut young = false;
        let mut mmu = self.mmu.lock();
        let mut f = |_: Vpn, t: &mut Translation| {
            young |= t.accessed;
            if clear {
                t.accessed = false;
            }
        };
        mmu.for_each_cached(start, end, &mut f);
        young
    }
}
