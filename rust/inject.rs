// SPDX-License-Identifier: GPL-2.0

//! Injection points: named places in the notifier callbacks and device paths
//! where an armed action runs, so that a race is *made* to happen instead of
//! hoped for.
//!
//! An arm (one of [`NR_ARMS`] slots per device) names a point, filters
//! (address range, notifier event, from the nth match on, at most `count`
//! times) and an action: a bounded delay, a park until released (by ioctl or
//! by another arm firing: a rendezvous) or a timeout, or a device access run
//! right there.  Parks only happen where the context may sleep; everything
//! is disarmed, and every park released, when the file closes.
//!
//! A callback point runs in whichever task changes the mm: its owner, but
//! also another process truncating a file the owner maps, or kswapd,
//! kcompactd and khugepaged, with the caller's locks held.  There an arm
//! fires only in a task of the attached mm, or with
//! `TLBRACE_INJECT_ANY_TASK` in any user task; never in a kernel thread,
//! which cannot be interrupted and which others wait for.  Device-path
//! points run in the device's own contexts (the ioctl caller, its worker).
//! Every park and delay is cut to the task's [`hold_budget`].
//!
//! Lock order: `Injector::arms` is taken without the device's MMU lock held,
//! and no action runs with it held except the park's own wait.  The hold
//! budget's lock is never taken with `arms` held.

use kernel::{
    current,
    mm::Mm,
    new_condvar, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        CondVar, CondVarTimeoutResult, SpinLock,
    },
    time::{
        delay::{fsleep, udelay},
        msecs_to_jiffies, Delta,
    },
};

use crate::{
    device::Device,
    engine::Op,
    hold_budget::{self, Hold},
    mmu_notifier::Event,
    task_ext,
    trace::{self, Injected},
    tracker::Open,
    uapi,
};

/// Arm slots per device.
pub(crate) const NR_ARMS: usize = uapi::TLBRACE_NR_ARMS as usize;

/// A named place where an armed action can run.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Point {
    RangeStartEnter = uapi::TLBRACE_POINT_RANGE_START_ENTER,
    RangeStartExit = uapi::TLBRACE_POINT_RANGE_START_EXIT,
    RangeEndEnter = uapi::TLBRACE_POINT_RANGE_END_ENTER,
    RangeEndExit = uapi::TLBRACE_POINT_RANGE_END_EXIT,
    SecondaryTlbs = uapi::TLBRACE_POINT_SECONDARY_TLBS,
    FaultFill = uapi::TLBRACE_POINT_FAULT_FILL,
    AccessHit = uapi::TLBRACE_POINT_ACCESS_HIT,
    GatherClose = uapi::TLBRACE_POINT_GATHER_CLOSE,
    CpuFinish = uapi::TLBRACE_POINT_CPU_FINISH,
}

impl Point {
    fn from_uapi(v: u32) -> Result<Self> {
        Ok(match v {
            uapi::TLBRACE_POINT_RANGE_START_ENTER => Self::RangeStartEnter,
            uapi::TLBRACE_POINT_RANGE_START_EXIT => Self::RangeStartExit,
            uapi::TLBRACE_POINT_RANGE_END_ENTER => Self::RangeEndEnter,
            uapi::TLBRACE_POINT_RANGE_END_EXIT => Self::RangeEndExit,
            uapi::TLBRACE_POINT_SECONDARY_TLBS => Self::SecondaryTlbs,
            uapi::TLBRACE_POINT_FAULT_FILL => Self::FaultFill,
            uapi::TLBRACE_POINT_ACCESS_HIT => Self::AccessHit,
            uapi::TLBRACE_POINT_GATHER_CLOSE => Self::GatherClose,
            uapi::TLBRACE_POINT_CPU_FINISH => Self::CpuFinish,
            _ => return Err(EINVAL),
        })
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Whether the point is in a notifier callback, run by whichever task
    /// changes the mm (not on a device path).
    fn in_callback(self) -> bool {
        !matches!(self, Self::FaultFill | Self::AccessHit)
    }
}

/// Who passes a callback point, as the task filter sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Passer {
    /// A user task of the attached mm.
    Owner,
    /// A user task of another mm (or of none any more: an exiting task).
    OtherTask,
    /// A kernel thread, even one that borrows the attached mm.
    KernelThread,
}

impl Passer {
    /// The current task, against the attached mm whose address is `owner`.
    fn current(owner: usize) -> Self {
        if task_ext::current_is_kthread() {
            return Self::KernelThread;
        }
        match current!().mm() {
            Some(mm) if mm.as_raw() as usize == owner => Self::Owner,
            _ => Self::OtherTask,
        }
    }
}

/// Where and how a point is passed.
pub(crate) struct Site {
    pub(crate) point: Point,
    /// The byte range the pass concerns (one page on device paths).
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The notifier event, for callback points.
    pub(crate) event: Option<Event>,
    /// Whether the context may sleep (parks are skipped where it may not).
    pub(crate) can_sleep: bool,
}

impl Site {
    /// The close of a gather of the `batched` contract (it has no event).
    pub(crate) fn gather(g: Open, can_sleep: bool) -> Self {
        use kernel::page::PAGE_SHIFT;
        Self {
            point: Point::GatherClose,
            start: g.start << PAGE_SHIFT,
            end: g.end << PAGE_SHIFT,
            event: None,
            can_sleep,
        }
    }

    /// A CPU mmu_gather of the attached mm, asked to cover `[start, end)`
    /// (bytes), entering `tlb_finish_mmu()`; the kernel calls it only where
    /// it may sleep.
    pub(crate) fn cpu_finish(start: usize, end: usize) -> Self {
        Self {
            point: Point::CpuFinish,
            start,
            end,
            event: None,
            can_sleep: true,
        }
    }

    /// A pass on a device path, about the page at `addr`; may sleep.
    pub(crate) fn page(point: Point, addr: usize) -> Self {
        let start = addr & !(kernel::page::PAGE_SIZE - 1);
        Self {
            point,
            start,
            end: start + kernel::page::PAGE_SIZE,
            event: None,
            can_sleep: true,
        }
    }
}

#[derive(Clone, Copy)]
enum Action {
    Delay(u32),
    Park {
        timeout_ms: u32,
        release_on: Option<usize>,
    },
    Access {
        op: Op,
        addr: usize,
    },
}

/// # Invariants
///
/// `owner` is the address of the mm the device is attached to (the arm ioctl
/// only runs in its tasks), kept alive by the device's notifier registrations;
/// it is only compared, never dereferenced.
#[derive(Clone, Copy)]
struct Arm {
    point: Point,
    start: usize,
    end: usize,
    events: u32,
    nth: u64,
    count: u64,
    any_task: bool,
    owner: usize,
    action: Action,
    status: uapi::tlbrace_arm_status,
}

impl Arm {
    fn matches(&self, site: &Site, passer: Option<Passer>) -> bool {
        let task_ok = match passer {
            // A device path: the device's own contexts.
            None => true,
            Some(Passer::Owner) => true,
            Some(Passer::OtherTask) => self.any_task,
            Some(Passer::KernelThread) => false,
        };
        let any_range = self.start == 0 && self.end == 0;
        let in_range = any_range || (site.start < self.end && self.start < site.end);
        let event_ok = match site.event {
            Some(e) => self.events == 0 || self.events & (1 << e as u32) != 0,
            None => self.events == 0,
        };
        self.point == site.point && in_range && event_ok && task_ok
    }
}

struct Arms {
    slots: [Option<Arm>; NR_ARMS],
    /// Bumped to release the tasks parked at a slot.
    release_gen: [u64; NR_ARMS],
}

/// The injection state of one device.
#[pin_data]
pub(crate) struct Injector {
    /// One bit per [`Point`] with an arm: the fast path of every pass.
    armed: Atomic<u32>,
    #[pin]
    arms: SpinLock<Arms>,
    #[pin]
    released: CondVar,
}

impl Injector {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            armed: Atomic::new(0),
            arms <- new_spinlock!(Arms { slots: [None; NR_ARMS], release_gen: [0; NR_ARMS] }),
            released <- new_condvar!(),
        })
    }

    /// Whether any arm names `point` (cheap; for paths that must do extra
    /// work to offer a point).
    pub(crate) fn armed(&self, point: Point) -> bool {
        self.armed.load(Relaxed) & point.bit() != 0
    }

    fn update_mask(&self, arms: &Arms) {
        let mask = arms
            .slots
            .iter()
            .flatten()
            .fold(0, |m, a| m | a.point.bit());
        self.armed.store(mask, Relaxed);
    }

    /// Arms slot `id` from the uapi description, for a device attached to
    /// `owner` whose contract is `batched` or not.
    pub(crate) fn arm(&self, a: &uapi::tlbrace_inject, owner: &Mm, batched: bool) -> Result {
        let id = a.id as usize;
        let point = Point::from_uapi(a.point)?;
        if id >= NR_ARMS
            || a.flags & !uapi::TLBRACE_INJECT_ANY_TASK != 0
            || a.start > a.end
            || a.nth > 1 << 30
            // Only device paths have no event; a gather's close neither,
            // nor a CPU gather's finish.
            || (matches!(point, Point::GatherClose | Point::CpuFinish) && a.events != 0)
        {
            return Err(EINVAL);
        }
        if point == Point::GatherClose && !batched {
            return Err(EOPNOTSUPP);
        }
        let action = match a.action {
            uapi::TLBRACE_ACTION_DELAY => {
                let max = if point == Point::SecondaryTlbs {
                    uapi::TLBRACE_DELAY_ATOMIC_MAX_US
                } else {
                    uapi::TLBRACE_DELAY_MAX_US
                };
                if a.delay_us == 0 || a.delay_us > max {
                    return Err(EINVAL);
                }
                Action::Delay(a.delay_us)
            }
            uapi::TLBRACE_ACTION_PARK => {
                // The secondary-TLB hook runs under the page-table lock.
                if point == Point::SecondaryTlbs || a.timeout_ms > uapi::TLBRACE_PARK_MAX_MS {
                    return Err(EINVAL);
                }
                let release_on = match a.release_on {
                    uapi::TLBRACE_RELEASE_BY_IOCTL => None,
                    other if (other as usize) < NR_ARMS && other as usize != id => {
                        Some(other as usize)
                    }
                    _ => return Err(EINVAL),
                };
                let timeout_ms = match a.timeout_ms {
                    0 => uapi::TLBRACE_PARK_DEFAULT_MS,
                    t => t,
                };
                Action::Park {
                    timeout_ms,
                    release_on,
                }
            }
            uapi::TLBRACE_ACTION_ACCESS => {
                let op = match a.access_op {
                    uapi::TLBRACE_INJ_READ => Op::Read,
                    uapi::TLBRACE_INJ_WRITE => Op::Write(a.access_value),
                    _ => return Err(EINVAL),
                };
                if a.access_addr % 8 != 0 {
                    return Err(EINVAL);
                }
                Action::Access {
                    op,
                    addr: a.access_addr as usize,
                }
            }
            _ => return Err(EINVAL),
        };
        let arm = Arm {
            point,
            start: a.start as usize,
            end: a.end as usize,
            events: a.events,
            nth: u64::from(a.nth.max(1)),
            count: u64::from(a.count),
            any_task: a.flags & uapi::TLBRACE_INJECT_ANY_TASK != 0,
            // INVARIANT: The caller passes the attached mm.
            owner: owner.as_raw() as usize,
            action,
            status: uapi::tlbrace_arm_status {
                armed: 1,
                ..Default::default()
            },
        };
        let mut arms = self.arms.lock();
        // Re-arming a slot releases whoever was parked at it.
        arms.release_gen[id] += 1;
        arms.slots[id] = Some(arm);
        self.update_mask(&arms);
        drop(arms);
        self.released.notify_all();
        Ok(())
    }

    /// Disarms slot `id` (or all) and releases its parked tasks.
    pub(crate) fn disarm(&self, id: u32) -> Result {
        let mut arms = self.arms.lock();
        for i in slot_ids(id)? {
            arms.slots[i] = None;
            arms.release_gen[i] += 1;
        }
        self.update_mask(&arms);
        drop(arms);
        self.released.notify_all();
        Ok(())
    }

    /// Releases the tasks parked at slot `id` (or all); returns how many.
    pub(crate) fn release(&self, id: u32) -> Result<u32> {
        let mut arms = self.arms.lock();
        let mut n = 0;
        for i in slot_ids(id)? {
            arms.release_gen[i] += 1;
            n += arms.slots[i].map_or(0, |a| a.status.parked);
        }
        drop(arms);
        self.released.notify_all();
        Ok(n)
    }

    /// The state of every slot.
    pub(crate) fn status(&self, out: &mut [uapi::tlbrace_arm_status; NR_ARMS]) {
        let arms = self.arms.lock();
        for (o, a) in out.iter_mut().zip(arms.slots.iter()) {
            *o = a.map(|a| a.status).unwrap_or_default();
        }
    }

    /// Passes a point: runs the actions of the arms that fire here.
    pub(crate) fn pass(&self, dev: &Device, site: &Site) {
        if !self.armed(site.point) {
            return;
        }
        let mut fire = [None; NR_ARMS];
        {
            let mut arms = self.arms.lock();
            let mut rendezvous = false;
            // Every arm of a device has the same owner.
            let passer = site
                .point
                .in_callback()
                .then(|| arms.slots.iter().flatten().next().map(|a| a.owner))
                .flatten()
                .map(Passer::current);
            for (i, slot) in arms.slots.iter_mut().enumerate() {
                let Some(arm) = slot.as_mut().filter(|a| a.matches(site, passer)) else {
                    continue;
                };
                arm.status.matched += 1;
                let exhausted = arm.count != 0 && arm.status.fired >= arm.count;
                if arm.status.matched < arm.nth || exhausted {
                    continue;
                }
                arm.status.fired += 1;
                fire[i] = Some(arm.action);
                rendezvous = true;
            }
            if rendezvous {
                // Arms parked until one of these fired may go on.
                for i in 0..NR_ARMS {
                    let waits_on = |j: usize| matches!(arms.slots[i], Some(Arm { action: Action::Park { release_on: Some(r), .. }, .. }) if r == j);
                    if (0..NR_ARMS).any(|j| fire[j].is_some() && waits_on(j)) {
                        arms.release_gen[i] += 1;
                    }
                }
                drop(arms);
                self.released.notify_all();
            }
        }
        for (id, action) in fire.iter().enumerate() {
            if action.is_some() {
                self.trace(dev, id, site, Injected::Fire);
            }
            match *action {
                Some(Action::Delay(us)) => self.delay(dev, id, us, site),
                Some(Action::Park { timeout_ms, .. }) => self.park(dev, id, timeout_ms, site),
                Some(Action::Access { op, addr }) => {
                    let r = dev.access_hit_only(addr, op);
                    let mut arms = self.arms.lock();
                    if let Some(arm) = arms.slots[id].as_mut() {
                        match r {
                            Ok(a) => {
                                arm.status.access_error = 0;
                                arm.status.access_outcome = a.outcome;
                                arm.status.access_value = a.value;
                            }
                            Err(e) => arm.status.access_error = e.to_errno(),
                        }
                    }
                }
                None => {}
            }
        }
    }

    /// The trace event of arm `id` doing `what` at `site`.
    fn trace(&self, dev: &Device, id: usize, site: &Site, what: Injected) {
        trace::inject(dev.id, id, site.point as u32, what, site.start);
    }

    /// Counts a park or delay of slot `id` that did not happen.
    fn refuse(&self, dev: &Device, id: usize, site: &Site) {
        self.trace(dev, id, site, Injected::Refused);
        if let Some(arm) = self.arms.lock().slots[id].as_mut() {
            arm.status.refused += 1;
        }
    }

    /// A hold of the current task of up to `want`, cut to its budget; a
    /// refusal of slot `id` if the budget is spent.
    fn hold(&self, dev: &Device, id: usize, site: &Site, want: Delta) -> Option<Hold> {
        let hold = hold_budget::begin(want);
        if hold.is_none() {
            self.refuse(dev, id, site);
        }
        hold
    }

    /// Waits `us` microseconds, within the task's budget: sleeps if the
    /// context may, else spins for at most `TLBRACE_DELAY_ATOMIC_MAX_US`
    /// (`udelay()` takes at most `MAX_UDELAY_MS`, and a callback that may not
    /// sleep must not stall long).
    fn delay(&self, dev: &Device, id: usize, us: u32, site: &Site) {
        let can_sleep = site.can_sleep;
        let us = if can_sleep {
            us
        } else {
            us.min(uapi::TLBRACE_DELAY_ATOMIC_MAX_US)
        };
        let Some(hold) = self.hold(dev, id, site, Delta::from_micros(i64::from(us))) else {
            return;
        };
        if can_sleep {
            fsleep(hold.limit());
        } else {
            udelay(hold.limit());
        }
    }

    fn park(&self, dev: &Device, id: usize, timeout_ms: u32, site: &Site) {
        if !site.can_sleep {
            self.refuse(dev, id, site);
            return;
        }
        // Asked for before `arms` is locked (lock order).
        let Some(hold) = self.hold(dev, id, site, Delta::from_millis(i64::from(timeout_ms))) else {
            return;
        };
        let mut arms = self.arms.lock();
        let Some(arm) = arms.slots[id].as_mut() else {
            return;
        };
        arm.status.parked += 1;
        self.trace(dev, id, site, Injected::Parked);
        let gen = arms.release_gen[id];
        // A park cut by the budget ends as by its timeout.
        let mut left = msecs_to_jiffies(hold.limit().as_millis_ceil() as u32);
        let mut timed_out = false;
        let mut ended = Injected::Released;
        while arms.release_gen[id] == gen {
            match self.released.wait_interruptible_timeout(&mut arms, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Timeout => {
                    timed_out = true;
                    ended = Injected::Timeout;
                    break;
                }
                // A signal (SIGKILL of the parked task) ends the park.
                CondVarTimeoutResult::Signal { .. } => {
                    ended = Injected::Signal;
                    break;
                }
            }
        }
        self.trace(dev, id, site, ended);
        // The slot may have been re-armed meanwhile: do not underflow.
        if let Some(arm) = arms.slots[id].as_mut() {
            arm.status.parked = arm.status.parked.saturating_sub(1);
            arm.status.timeouts += u64::from(timed_out);
        }
        // The hold is charged after `arms` is unlocked (lock order).
        drop(arms);
        drop(hold);
    }
}

fn slot_ids(id: u32) -> Result<core::ops::Range<usize>> {
    match id {
        uapi::TLBRACE_ALL_ARMS => Ok(0..NR_ARMS),
        i if (i as usize) < NR_ARMS => Ok(i as usize..i as usize + 1),
        _ => Err(EINVAL),
    }
}
