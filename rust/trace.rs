// SPDX-License-Identifier: GPL-2.0

//! The module's trace events (`tlbrace_events.h`, system `tlbrace`): what the
//! device did, in order, in the kernel's trace ring buffer next to the
//! kernel's own events (`tlb:tlb_flush`, `sched:*`), for `trace-cmd`, `perf`
//! and `tlbrace trace`.  Documentation/tool.rst lists them.
//!
//! Each device is named by its id, the `<n>` of its debugfs directory
//! `<tgid>-<n>`.  Addresses are user virtual addresses in bytes.  A disabled
//! event costs a static key test (`kernel_ext::tracepoint`).

use kernel::page::PAGE_SHIFT;

use crate::{
    kernel_ext::tracepoint::declare_module_trace,
    mmu_notifier::Event,
    tracker::Open,
    translation::{Translation, Vpn},
    uapi,
};

declare_module_trace! {
    // SAFETY: `tlbrace_events.h` declares each of these events with exactly
    // these arguments in this order, as the C types of the same width and
    // signedness (`u32` as `u32`, `u64` as `u64`).
    unsafe {
        fn tlbrace_fill(dev: u32, addr: u64, pfn: u64, flags: u32);
        fn tlbrace_access(dev: u32, addr: u64, write: u32, value: u64, outcome: u32);
        fn tlbrace_stale(dev: u32, addr: u64, write: u32, event: u32, early: u32);
        fn tlbrace_notifier(dev: u32, cb: u32, start: u64, end: u64, event: u32, dropped: u32);
        fn tlbrace_gather_open(dev: u32, id: u64, start: u64, end: u64, cleared: u32);
        fn tlbrace_gather_close(
            dev: u32,
            id: u64,
            start: u64,
            end: u64,
            decision: u32,
            waited: u32,
            flushed: u32,
        );
        fn tlbrace_inject(dev: u32, arm: u32, point: u32, what: u32, start: u64);
    }
}

/// The mmu_notifier callback of a [`notifier`] event.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Callback {
    RangeStart = uapi::TLBRACE_CB_RANGE_START,
    RangeEnd = uapi::TLBRACE_CB_RANGE_END,
    SecondaryTlbs = uapi::TLBRACE_CB_SECONDARY_TLBS,
    Release = uapi::TLBRACE_CB_RELEASE,
}

/// What a gather's close flushed beyond the entries it cleared.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum CloseDecision {
    Cleared = uapi::TLBRACE_CLOSE_CLEARED,
    Ranges = uapi::TLBRACE_CLOSE_RANGES,
    All = uapi::TLBRACE_CLOSE_ALL,
    ForcedAll = uapi::TLBRACE_CLOSE_FORCED_ALL,
}

/// What an injection point did to the task passing it.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Injected {
    Fire = uapi::TLBRACE_TRACE_INJ_FIRE,
    Parked = uapi::TLBRACE_TRACE_INJ_PARKED,
    Released = uapi::TLBRACE_TRACE_INJ_RELEASED,
    Timeout = uapi::TLBRACE_TRACE_INJ_TIMEOUT,
    Signal = uapi::TLBRACE_TRACE_INJ_SIGNAL,
    Refused = uapi::TLBRACE_TRACE_INJ_REFUSED,
}

fn addr(vpn: Vpn) -> u64 {
    (vpn << PAGE_SHIFT) as u64
}

/// The dTLB of device `dev` got the translation `t` of `vpn`.
pub(crate) fn fill(dev: u32, vpn: Vpn, t: &Translation, from_dpt: bool) {
    // The PFN is looked up only for an enabled event.
    if tlbrace_fill_enabled() {
        let flags = if t.writable {
            uapi::TLBRACE_FILL_WRITABLE
        } else {
            0
        } | if from_dpt {
            uapi::TLBRACE_FILL_FROM_DPT
        } else {
            0
        };
        tlbrace_fill(dev, addr(vpn), t.page.pfn(), flags);
    }
}

/// Device `dev` accessed the word at `addr` (`TLBRACE_OUT_*` in `outcome`).
/// A stale access (`stale`: the invalidation that should have removed the
/// translation, and whether it is still in progress) is also a
/// `tlbrace_stale` event.
pub(crate) fn access(
    dev: u32,
    addr: usize,
    write: bool,
    value: u64,
    outcome: u32,
    stale: Option<(Event, bool)>,
) {
    tlbrace_access(dev, addr as u64, u32::from(write), value, outcome);
    if let Some((event, early)) = stale {
        tlbrace_stale(
            dev,
            addr as u64,
            u32::from(write),
            event as u32,
            u32::from(early),
        );
    }
}

/// Device `dev` handled callback `cb` for `[start, end)` (bytes), dropping
/// `dropped` translations right there.
pub(crate) fn notifier(
    dev: u32,
    cb: Callback,
    start: usize,
    end: usize,
    event: Option<Event>,
    dropped: usize,
) {
    let event = event.map_or(uapi::TLBRACE_EVENT_NONE, |e| e as u32);
    tlbrace_notifier(
        dev,
        cb as u32,
        start as u64,
        end as u64,
        event,
        dropped as u32,
    );
}

/// Gather `g` of device `dev` opened, clearing `cleared` dPT entries.
pub(crate) fn gather_open(dev: u32, g: &Open, cleared: usize) {
    tlbrace_gather_open(dev, g.id, addr(g.start), addr(g.end), cleared as u32);
}

/// Gather `g` of device `dev` closed: what it flushed, whether it waited
/// for older gathers first, how many dTLB entries went.
pub(crate) fn gather_close(
    dev: u32,
    g: &Open,
    decision: CloseDecision,
    waited: bool,
    flushed: usize,
) {
    tlbrace_gather_close(
        dev,
        g.id,
        addr(g.start),
        addr(g.end),
        decision as u32,
        u32::from(waited),
        flushed as u32,
    );
}

/// Arm `arm` of device `dev` did `what` at injection point `point`, passed
/// for the range from `start`.
pub(crate) fn inject(dev: u32, arm: usize, point: u32, what: Injected, start: usize) {
    tlbrace_inject(dev, arm as u32, point, what as u32, start as u64);
}
