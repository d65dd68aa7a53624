// SPDX-License-Identifier: GPL-2.0

//! Per-device statistics: callback and engine counters, and the ring of the
//! last stale accesses.  Counters are lock-free; the ring has its own lock,
//! taken inside the MMU lock.

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLock,
    },
};

use crate::{mmu_notifier::Event, uapi};

/// The counters, in the order of `struct tlbrace_stats`.
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum Counter {
    RangeStart,
    RangeEnd,
    SecondaryTlbs,
    SecondaryFull,
    Release,
    Young,
    Faults,
    FaultRetries,
    Hits,
    Misses,
    DptHits,
    Evictions,
    Invalidated,
    FullFlushes,
    StaleReads,
    StaleWrites,
    StaleEarly,
    Gathers,
    GatherFlushed,
    GatherFull,
    ClosesNested,
    ClosesOverlapping,
    GatherWaits,
    WaitTimeouts,
    PendingFlushes,
    TrackerNs,
    KernelNested,
    KernelNestedOverlapping,
    /// Flagged translations compared with the CPU page table (debugfs only).
    OracleChecks,
    /// Stale verdicts the oracle could not prove (debugfs only).
    OracleConservative,
}

const NR_COUNTERS: usize = Counter::OracleConservative as usize + 1;
const RING: usize = uapi::TLBRACE_STALE_RING as usize;

struct Ring {
    events: [uapi::tlbrace_stale_event; RING],
    total: usize,
}

/// The statistics of one device.
#[pin_data]
pub(crate) struct Stats {
    counters: [Atomic<u64>; NR_COUNTERS],
    #[pin]
    ring: SpinLock<Ring>,
}

impl Stats {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            counters: [const { Atomic::new(0) }; NR_COUNTERS],
            ring <- new_spinlock!(Ring {
                events: [uapi::tlbrace_stale_event::default(); RING],
                total: 0,
            }),
        })
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].add(n, Relaxed);
    }

    /// Adds one to a counter.
    pub(crate) fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// The value of a counter.
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Relaxed)
    }

    /// Counts a stale access and records it in the ring.
    pub(crate) fn stale(&self, addr: usize, event: Event, write: bool) {
        self.inc(if write {
            Counter::StaleWrites
        } else {
            Counter::StaleReads
        });
        let mut ring = self.ring.lock();
        let i = ring.total % RING;
        ring.events[i] = uapi::tlbrace_stale_event {
            addr: addr as u64,
            event: event as u32,
            kind: if write {
                uapi::TLBRACE_STALE_WRITE
            } else {
                uapi::TLBRACE_STALE_READ
            },
        };
        ring.total += 1;
    }

    /// Fills `out` (all but `size` and `flags`); zeroes everything if `reset`.
    pub(crate) fn read(&self, out: &mut uapi::tlbrace_stats, reset: bool) {
        let v: [u64; NR_COUNTERS] = core::array::from_fn(|i| {
            if reset {
                self.counters[i].xchg(0, Relaxed)
            } else {
                self.counters[i].load(Relaxed)
            }
        });
        out.cb_range_start = v[Counter::RangeStart as usize];
        out.cb_range_end = v[Counter::RangeEnd as usize];
        out.cb_secondary_tlbs = v[Counter::SecondaryTlbs as usize];
        out.cb_secondary_full = v[Counter::SecondaryFull as usize];
        out.cb_release = v[Counter::Release as usize];
        out.cb_young = v[Counter::Young as usize];
        out.faults = v[Counter::Faults as usize];
        out.fault_retries = v[Counter::FaultRetries as usize];
        out.hits = v[Counter::Hits as usize];
        out.misses = v[Counter::Misses as usize];
        out.dpt_hits = v[Counter::DptHits as usize];
        out.evictions = v[Counter::Evictions as usize];
        out.invalidated = v[Counter::Invalidated as usize];
        out.full_flushes = v[Counter::FullFlushes as usize];
        out.stale_reads = v[Counter::StaleReads as usize];
        out.stale_writes = v[Counter::StaleWrites as usize];
        out.stale_early = v[Counter::StaleEarly as usize];
        out.gathers = v[Counter::Gathers as usize];
        out.gather_flushed = v[Counter::GatherFlushed as usize];
        out.gather_full = v[Counter::GatherFull as usize];
        out.closes_nested = v[Counter::ClosesNested as usize];
        out.closes_overlapping = v[Counter::ClosesOverlapping as usize];
        out.gather_waits = v[Counter::GatherWaits as usize];
        out.wait_timeouts = v[Counter::WaitTimeouts as usize];
        out.pending_flushes = v[Counter::PendingFlushes as usize];
        out.tracker_ns = v[Counter::TrackerNs as usize];
        out.kernel_nested = v[Counter::KernelNested as usize];
        out.kernel_nested_overlapping = v[Counter::KernelNestedOverlapping as usize];

        let mut ring = self.ring.lock();
        let n = ring.total.min(RING);
        // Oldest first; the slots past `n` are zeroed, not left as passed in.
        for (k, slot) in out.ring.iter_mut().enumerate() {
            *slot = if k < n {
                ring.events[(ring.total - n + k) % RING]
            } else {
                uapi::tlbrace_stale_event::default()
            };
        }
        out.ring_count = n as u32;
        if reset {
            ring.total = 0;
        }
    }
}
