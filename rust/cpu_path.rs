// SPDX-License-Identifier: GPL-2.0

//! The CPU path: this module decides `tlb_finish_mmu()`'s flush for the
//! mmu_gathers of the mms that opted in (`TLBRACE_IOC_CPU`), through the
//! hook of the kernel series in `kernel/patches/`
//! ([`crate::mmu_gather_policy`]).  Every other mm keeps the kernel's rule.
//!
//! The decision is the device's: the same [`Tracker`]s (`naive`, `ranges`,
//! `ranges-wait`) judge the CPU's gathers by the ranges their callers asked
//! to cover, as they judge the device's `batched` gathers; `stock` leaves it
//! to the kernel's `mm_tlb_flush_nested()` rule (and counts).  A gather the
//! tracker does not know (opened before the opt-in, or past the table's
//! room) makes every decision of that mm the kernel's rule until it is gone:
//! the kernel's count of pending gathers (`mm->tlb_flush_pending`) exceeds
//! the gathers known here.
//!
//! The hook's callbacks run for every gather of every process while one mm
//! is opted in, so it is registered only then.  `open` and `closed` may run
//! in atomic context: the table is a spinlock, nothing allocates under it.
//! `hold` (the [`Point::CpuFinish`] injection point) and the `ranges-wait`
//! wait run only where the caller may sleep, bounded, without the lock.
//!
//! Lock order: [`REG`] (a mutex, opt-in and opt-out only) before [`TABLE`];
//! nothing is called with [`TABLE`] held but the tracker.

use kernel::{
    current, global_lock,
    mm::Mm,
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::Arc,
    task::Pid,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    device::Device,
    inject::{Point, Site},
    mm_ext,
    mmu_gather_policy::{Flush, GatherKey, Policy, Registration},
    tracker::{self, Open, Tracker},
    translation::Vpn,
    uapi,
};

/// mms opted in at once.
const MAX_MMS: usize = uapi::TLBRACE_CPU_MAX_MMS as usize;
/// Open gathers known per mm (the tracker's own list holds 64; past that it
/// widens everything, and past this the kernel's rule decides).
const MAX_OPEN: usize = 128;
/// The longest a `ranges-wait` close waits for older gathers before it
/// flushes the whole mm instead, as the device's does.
const WAIT: Delta = Delta::from_millis(1000);
/// How often a waiting close looks again.
const POLL: Delta = Delta::from_micros(100);

/// A policy of `TLBRACE_IOC_CPU`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stock,
    Naive,
    Ranges,
    RangesWait,
}

impl Kind {
    fn from_uapi(v: u32) -> Result<Option<Self>> {
        Ok(Some(match v {
            uapi::TLBRACE_CPU_OFF => return Ok(None),
            uapi::TLBRACE_CPU_STOCK => Self::Stock,
            uapi::TLBRACE_CPU_NAIVE => Self::Naive,
            uapi::TLBRACE_CPU_RANGES => Self::Ranges,
            uapi::TLBRACE_CPU_RANGES_WAIT => Self::RangesWait,
            _ => return Err(EINVAL),
        }))
    }

    fn to_uapi(self) -> u32 {
        match self {
            Self::Stock => uapi::TLBRACE_CPU_STOCK,
            Self::Naive => uapi::TLBRACE_CPU_NAIVE,
            Self::Ranges => uapi::TLBRACE_CPU_RANGES,
            Self::RangesWait => uapi::TLBRACE_CPU_RANGES_WAIT,
        }
    }

    /// The device's tracker that decides for this policy (`stock`: none).
    fn tracker(self) -> Result<Option<KBox<dyn Tracker>>> {
        let kind = match self {
            Self::Stock => return Ok(None),
            Self::Naive => uapi::TLBRACE_TRACKER_NAIVE,
            Self::Ranges => uapi::TLBRACE_TRACKER_RANGES,
            Self::RangesWait => uapi::TLBRACE_TRACKER_RANGES_WAIT,
        };
        Ok(Some(tracker::from_uapi(kind)?))
    }
}

/// An open gather known to the tracker.
#[derive(Clone, Copy)]
struct Gather {
    key: GatherKey,
    open: Open,
    /// The task that opened it: a close nested in an older gather of its
    /// own task must not wait for it.
    task: Pid,
}

/// The counters of `struct tlbrace_cpu`.
#[derive(Clone, Copy, Default)]
struct Counts {
    gathers: u64,
    nested: u64,
    full: u64,
    ranges: u64,
    waits: u64,
    wait_timeouts: u64,
    untracked: u64,
}

/// One opted-in mm.
struct Attached {
    /// The mm's address.  The device's notifiers keep the mm allocated
    /// while it is attached, so no other mm can have it.
    mm: usize,
    /// The device that opted it in: its injection points, its number.
    dev: Arc<Device>,
    kind: Kind,
    tracker: Option<KBox<dyn Tracker>>,
    open: KVec<Gather>,
    next_id: u64,
    counts: Counts,
}

impl Attached {
    fn find(&self, key: GatherKey) -> Option<usize> {
        self.open.iter().position(|g| g.key == key)
    }
}

type Table = [Option<Attached>; MAX_MMS];

global_lock! {
    // SAFETY: `init()` initialises it, from the module's `init`, before the
    // misc device is registered: no mm can opt in before.
    unsafe(uninit) static TABLE: SpinLock<Table> = [const { None }; MAX_MMS];
}

global_lock! {
    // SAFETY: as `TABLE`.
    unsafe(uninit) static REG: Mutex<Option<Registration<CpuPolicy>>> = None;
}

/// Initialises the table; the module's `init` calls it once.
pub(crate) fn init() {
    // SAFETY: called once, from the module initialiser, before any use.
    unsafe { TABLE.init() };
    // SAFETY: as above.
    unsafe { REG.init() };
}

fn entry<'a>(table: &'a mut Table, mm: &Mm) -> Option<&'a mut Attached> {
    let mm = mm.as_raw() as usize;
    table.iter_mut().flatten().find(|a| a.mm == mm)
}

/// Sets the policy of `dev`'s mm, `mm`: opts it in, changes its policy, or
/// (`TLBRACE_CPU_OFF`) opts it out.  `EBUSY` for a change while gathers of
/// the mm are open or another device opted the mm in.
pub(crate) fn set(dev: &Arc<Device>, mm: &Mm, policy: u32) -> Result {
    let kind = Kind::from_uapi(policy)?;
    let tracker = match kind {
        Some(k) => k.tracker()?,
        None => None,
    };
    let open = KVec::with_capacity(MAX_OPEN, GFP_KERNEL_ACCOUNT)?;
    let mut reg = REG.lock();
    let Some(kind) = kind else {
        drop(reg);
        detach(dev);
        return Ok(());
    };
    let mut table = TABLE.lock();
    if let Some(a) = entry(&mut table, mm) {
        if a.dev.id != dev.id || !a.open.is_empty() {
            return Err(EBUSY);
        }
        a.kind = kind;
        a.tracker = tracker;
        return Ok(());
    }
    let slot = table.iter_mut().find(|s| s.is_none()).ok_or(ENOSPC)?;
    *slot = Some(Attached {
        mm: mm.as_raw() as usize,
        dev: dev.clone(),
        kind,
        tracker,
        open,
        next_id: 0,
        counts: Counts::default(),
    });
    drop(table);
    if reg.is_none() {
        match Registration::new() {
            Ok(r) => *reg = Some(r),
            Err(e) => {
                let gone = TABLE
                    .lock()
                    .iter_mut()
                    .find(|s| s.as_ref().is_some_and(|a| a.dev.id == dev.id))
                    .and_then(Option::take);
                drop(reg);
                drop(gone);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Opts `dev`'s mm out, if it is in; with no mm left the hook goes back to
/// the kernel (which waits for the gathers that saw it).
pub(crate) fn detach(dev: &Device) {
    let mut reg = REG.lock();
    let mut table = TABLE.lock();
    let gone = table
        .iter_mut()
        .find(|s| s.as_ref().is_some_and(|a| a.dev.id == dev.id))
        .and_then(Option::take);
    let empty = table.iter().all(Option::is_none);
    drop(table);
    let reg = if empty { reg.take() } else { None };
    // Outside the spinlock: unregistering sleeps, and the device may go.
    drop(reg);
    drop(gone);
}

/// The policy and counters of `dev`'s mm (`TLBRACE_CPU_OFF` and zeros if it
/// is not opted in); zeroes the counters if `reset`.
pub(crate) fn read(dev: &Device, out: &mut uapi::tlbrace_cpu, reset: bool) {
    let mut table = TABLE.lock();
    let a = table.iter_mut().flatten().find(|a| a.dev.id == dev.id);
    let c = a.as_ref().map_or(Counts::default(), |a| a.counts);
    out.policy = a
        .as_ref()
        .map_or(uapi::TLBRACE_CPU_OFF, |a| a.kind.to_uapi());
    out.gathers = c.gathers;
    out.nested = c.nested;
    out.full = c.full;
    out.ranges = c.ranges;
    out.waits = c.waits;
    out.wait_timeouts = c.wait_timeouts;
    out.untracked = c.untracked;
    if let Some(a) = a.filter(|_| reset) {
        a.counts = Counts::default();
    }
}

fn vpn_range(start: usize, end: usize) -> (Vpn, Vpn) {
    (start >> PAGE_SHIFT, end.div_ceil(PAGE_SIZE))
}

/// `[start, end)` pages as bytes, `None` if it reaches past the address
/// space (the whole-space range of a gather whose caller did not say).
fn byte_range(start: Vpn, end: Vpn) -> Option<(usize, usize)> {
    Some((start.checked_mul(PAGE_SIZE)?, end.checked_mul(PAGE_SIZE)?))
}

/// What the kernel's rule flushes, counted.
fn stock(a: &mut Attached, nested: bool) -> Flush {
    if nested {
        a.counts.full += 1;
    }
    Flush::Stock
}

/// The hook's callbacks.
struct CpuPolicy;

impl Policy for CpuPolicy {
    fn open(key: GatherKey, mm: &Mm, start: usize, end: usize) {
        let mut table = TABLE.lock();
        let Some(a) = entry(&mut table, mm) else {
            return;
        };
        let (start, end) = vpn_range(start, end);
        a.next_id += 1;
        let g = Gather {
            key,
            open: Open {
                id: a.next_id,
                start,
                end,
            },
            task: current!().pid(),
        };
        if a.open.push_within_capacity(g).is_err() {
            a.counts.untracked += 1;
            return;
        }
        if let Some(t) = a.tracker.as_mut() {
            // The trackers' `open` cannot fail (they count what they
            // cannot list).
            let _ = t.open(g.open);
        }
    }

    fn hold(key: GatherKey, mm: &Mm) {
        let site = {
            let mut table = TABLE.lock();
            let Some(a) = entry(&mut table, mm) else {
                return;
            };
            if !a.dev.inject.armed(Point::CpuFinish) {
                return;
            }
            let Some(g) = a.find(key).map(|i| a.open[i]) else {
                return;
            };
            let (start, end) = byte_range(g.open.start, g.open.end).unwrap_or((0, usize::MAX));
            (a.dev.clone(), Site::cpu_finish(start, end))
        };
        // Without the lock: a park sleeps.  The device may be the last
        // reference once the file closed; here it may be dropped.
        site.0.inject.pass(&site.0, &site.1);
    }

    fn decide(key: GatherKey, mm: &Mm, nested: bool, may_sleep: bool) -> Flush {
        let mut table = TABLE.lock();
        let Some(a) = entry(&mut table, mm) else {
            return Flush::Stock;
        };
        a.counts.gathers += 1;
        a.counts.nested += u64::from(nested);
        let i = match a.find(key) {
            Some(i) if a.tracker.is_some() => i,
            _ => return stock(a, nested),
        };
        // A pending gather unknown here (opened before the opt-in, or past
        // the table): only the kernel's rule covers it.
        if usize::try_from(mm_ext::tlb_flush_pending(mm)).unwrap_or(0) > a.open.len() {
            return stock(a, nested);
        }
        let g = a.open[i];
        let mut force_all = false;
        if a.tracker.as_ref().is_some_and(|t| t.must_wait(&g.open)) {
            // An older overlapping gather of this very task encloses this
            // one: it closes only after this returns.
            let own = a.open.iter().any(|o| {
                o.task == g.task
                    && o.open.id < g.open.id
                    && o.open.start < g.open.end
                    && g.open.start < o.open.end
            });
            if own || !may_sleep {
                force_all = true;
            } else {
                a.counts.waits += 1;
                drop(table);
                let (t, waited_out) = wait_for_older(mm, &g);
                table = t;
                if waited_out {
                    force_all = true;
                }
                let Some(b) = entry(&mut table, mm) else {
                    return Flush::Stock;
                };
                if waited_out {
                    b.counts.wait_timeouts += 1;
                }
                return close(b, &g, force_all);
            }
        }
        close(a, &g, force_all)
    }

    fn closed(key: GatherKey, mm: &Mm) {
        let mut table = TABLE.lock();
        let Some(a) = entry(&mut table, mm) else {
            return;
        };
        let Some(i) = a.find(key) else {
            return;
        };
        let Ok(g) = a.open.remove(i) else {
            return;
        };
        if let Some(t) = a.tracker.as_mut() {
            t.closed(g.open);
        }
    }
}

/// Sleeps until no older overlapping gather of `mm` is open, at most
/// [`WAIT`]; returns the table locked again, and whether the wait ran out
/// (or the mm opted out meanwhile).
fn wait_for_older(mm: &Mm, g: &Gather) -> (kernel::sync::GlobalGuard<TABLE>, bool) {
    let t0 = Instant::<Monotonic>::now();
    loop {
        fsleep(POLL);
        let mut table = TABLE.lock();
        let waiting = match entry(&mut table, mm) {
            Some(a) => a.tracker.as_ref().is_some_and(|t| t.must_wait(&g.open)),
            None => return (table, true),
        };
        if !waiting {
            return (table, false);
        }
        if t0.elapsed() >= WAIT {
            return (table, true);
        }
    }
}

/// The tracker's decision for gather `g`, counted.
fn close(a: &mut Attached, g: &Gather, force_all: bool) -> Flush {
    let decision = match a.tracker.as_mut() {
        Some(_) if force_all => tracker::Flush::All,
        Some(t) => t.close(g.open),
        None => return Flush::Stock,
    };
    match decision {
        tracker::Flush::Cleared => Flush::Gathered,
        tracker::Flush::Ranges(r) => {
            let start = r.iter().map(|&(s, _)| s).min().unwrap_or(g.open.start);
            let end = r.iter().map(|&(_, e)| e).max().unwrap_or(g.open.end);
            match byte_range(start, end) {
                Some((start, end)) => {
                    a.counts.ranges += 1;
                    Flush::Range { start, end }
                }
                None => {
                    a.counts.full += 1;
                    Flush::All
                }
            }
        }
        tracker::Flush::All => {
            a.counts.full += 1;
            Flush::All
        }
    }
}
