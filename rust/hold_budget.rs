// SPDX-License-Identifier: GPL-2.0

//! The hold budget: how long parks and delays may hold one task.
//!
//! A park or a delay holds the task that passes the point, often with the
//! caller's locks held (the mmap lock for write in `fork()` and `mprotect()`,
//! `i_mmap_rwsem` or a folio lock in truncation and reclaim), and one mm
//! operation may pass a point many times: `fork()` invalidates once per vma
//! it copies.  A bound per park does not bound the operation.
//!
//! So each task has a budget of [`BUDGET`]: a hold is cut to what is left and
//! consumes the time it lasted; time the task spends unheld refills it, one
//! for one, up to [`BUDGET`].  Over any stretch of time a task is held at most
//! [`BUDGET`] plus the time it was not held in that stretch, so one operation
//! is held at most [`BUDGET`] plus the time it takes by itself: a `fork()`
//! that copies 64 vmas in 20 ms is held at most 5.02 s, not 64 parks.  The
//! end of an operation (its return to user space) cannot be observed from a
//! callback; a refill by unheld time needs no such boundary.
//!
//! Tasks are known by pid in one table of [`TASKS`] entries for the whole
//! module: a budget per device would multiply with the devices opened on one
//! mm.  An entry whose budget is full again is free; when no entry is free a
//! new task is not held, so no hold ever goes unaccounted.  A reused pid
//! inherits what is left of a dead task's budget: it can only be held less.
//!
//! Lock order: [`HOLDS`] is taken with no other lock held and nothing is
//! called under it.

use kernel::{
    current, global_lock,
    prelude::*,
    task::Pid,
    time::{Delta, Instant, Monotonic},
};

use crate::uapi;

/// The most a task may be held before it has run as long unheld.
pub(crate) const BUDGET: Delta = Delta::from_millis(uapi::TLBRACE_PARK_BUDGET_MS as i64);
/// Tasks whose budget can be short at once.
const TASKS: usize = 128;

/// The budget of one task.
#[derive(Clone, Copy)]
struct Entry {
    pid: Pid,
    /// What was left when its last hold ended (while `holding`: when it
    /// began, less the grant); negative if a hold overran its grant.
    left: Delta,
    /// When its last hold ended (or began, while `holding`).
    since: Instant<Monotonic>,
    holding: bool,
}

impl Entry {
    /// The budget left at `now`.
    fn level(&self, now: Instant<Monotonic>) -> Delta {
        if self.holding {
            return self.left;
        }
        BUDGET.min(self.left + (now - self.since))
    }

    /// Whether the entry carries no information any more (a full budget).
    fn is_free(&self, now: Instant<Monotonic>) -> bool {
        !self.holding && self.level(now) >= BUDGET
    }
}

global_lock! {
    // SAFETY: `init()` initialises it, from the module's `init`, before the
    // misc device is registered: no hold can be asked for before.
    unsafe(uninit) static HOLDS: SpinLock<[Option<Entry>; TASKS]> = [None; TASKS];
}

/// Initialises the table; the module's `init` calls it once, first.
pub(crate) fn init() {
    use core::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::AcqRel) {
        // SAFETY: Called at most once (the flag above), before any other use
        // of `HOLDS` (see its definition).
        unsafe { HOLDS.init() };
    }
}

/// A hold of the current task, of at most [`Hold::limit`].  Dropping it
/// charges the time since [`begin`] to the task's budget.
///
/// # Invariants
///
/// `HOLDS[slot]` is the entry of `pid`, marked `holding`, until the drop.
pub(crate) struct Hold {
    slot: usize,
    pid: Pid,
    granted: Delta,
    start: Instant<Monotonic>,
}

/// Starts a hold of the current task for up to `want`; `None` if its budget
/// is spent (or the table is full of other tasks' short budgets).
pub(crate) fn begin(want: Delta) -> Option<Hold> {
    let pid = current!().pid();
    let now = Instant::<Monotonic>::now();
    let mut table = HOLDS.lock();
    let mine = |e: &Option<Entry>| e.is_some_and(|e| e.pid == pid);
    let free = |e: &Option<Entry>| e.is_none_or(|e| e.is_free(now));
    let slot = table
        .iter()
        .position(mine)
        .or_else(|| table.iter().position(free))?;
    let mut e = table[slot].filter(|e| e.pid == pid).unwrap_or(Entry {
        pid,
        left: BUDGET,
        since: now,
        holding: false,
    });
    let level = e.level(now);
    // A task is held once at a time; `holding` here would be a nested hold.
    if e.holding || level <= Delta::ZERO {
        return None;
    }
    let granted = level.min(want);
    e.left = level - granted;
    e.since = now;
    e.holding = true;
    table[slot] = Some(e);
    // INVARIANT: The entry of `pid` at `slot` is marked `holding`; entries
    // that are `holding` are neither free nor anyone else's.
    Some(Hold {
        slot,
        pid,
        granted,
        start: now,
    })
}

impl Hold {
    /// How long the hold may last.
    pub(crate) fn limit(&self) -> Delta {
        self.granted
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let now = Instant::<Monotonic>::now();
        let mut table = HOLDS.lock();
        // By the type invariant the entry is there; check rather than trust.
        if let Some(e) = table[self.slot].as_mut().filter(|e| e.pid == self.pid) {
            // Charge what the hold really lasted (a wake-up may overrun).
            e.left += self.granted - (now - self.start);
            e.since = now;
            e.holding = false;
        }
    }
}
