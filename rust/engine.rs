// SPDX-License-Identifier: GPL-2.0

//! The device engine: memory accesses through the dTLB, and device faults.
//!
//! An access looks up the dTLB; on a hit it uses the cached translation
//! without looking at any page table, and the access itself happens under
//! the MMU lock, so an invalidation either completes before it (and the
//! access misses) or after it.  A miss consults the dPT; a dPT miss is a
//! device fault, which walks the CPU page tables with GUP (mmap read lock,
//! MMU lock not held) and inserts the result only if no invalidation raced
//! with the walk: the `mmu_interval_read_begin/retry` protocol of
//! `lib/test_hmm.c`, with bounded waits and retries.
//!
//! Before a translation the staleness oracle flagged is used, the access
//! compares it with the CPU page table (a lookup that neither faults nor
//! sleeps, MMU lock not held) and records the verdict in it; see
//! `staleness.rs`.  The lookup only observes: it changes nothing the
//! device or the CPU would see.

use kernel::{
    mm::MmWithUser,
    page::PAGE_SHIFT,
    prelude::*,
    sync::{Arc, CondVarTimeoutResult},
    time::msecs_to_jiffies,
};

use crate::{
    device::Device,
    dpt::{self, DptReservation},
    inject::{Point, Site},
    requester::Requester,
    staleness::{judge, Lookup, Truth, Verdict},
    stats::Counter,
    trace,
    translation::{Translation, Vpn},
    uapi,
    user_page::{UserPage, WordOffset},
};

/// Device faults attempted per access before giving up with `EAGAIN`.
const MAX_FAULT_RETRIES: usize = 16;
/// How long a fault waits for the invalidations covering its page, per
/// attempt.
const FAULT_WAIT_MS: u32 = 1000;
/// Oracle checks per access: a CPU flush may flag the translation again
/// between its check and its use; past this the use is judged
/// conservatively.
const MAX_CHECKS: usize = 4;

/// One device memory operation on an aligned 64-bit word.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Read,
    Write(u64),
    Cas { expected: u64, new: u64 },
}

impl Op {
    fn writes(self) -> bool {
        !matches!(self, Op::Read)
    }
}

/// A run of accesses: `count` words from `addr`, `stride` bytes apart.
#[derive(Clone, Copy)]
pub(crate) struct Batch {
    pub(crate) addr: u64,
    pub(crate) count: u64,
    pub(crate) stride: u64,
    pub(crate) op: Op,
}

/// What a batch did.
#[derive(Clone, Copy, Default)]
pub(crate) struct BatchResult {
    /// READ: the last value read; CAS: the old value; WRITE: unchanged.
    pub(crate) value: u64,
    /// `TLBRACE_OUT_*` of the last word.
    pub(crate) outcome: u32,
    pub(crate) hits: u32,
    pub(crate) faults: u32,
    pub(crate) stale: u32,
}

/// The result of one access.
pub(crate) struct Access {
    /// READ: the value read; WRITE: the value written; CAS: the old value.
    pub(crate) value: u64,
    /// `TLBRACE_OUT_*`.
    pub(crate) outcome: u32,
}

impl Device {
    /// Performs `op` at user address `addr` (8-byte aligned, else `EINVAL`)
    /// of `mm`, for `req`.
    pub(crate) fn access(
        &self,
        mm: &MmWithUser,
        addr: usize,
        op: Op,
        req: Requester<'_>,
    ) -> Result<Access> {
        let word = WordOffset::of(addr).ok_or(EINVAL)?;
        let vpn = addr >> PAGE_SHIFT;
        let write = op.writes();
        let mut outcome = 0;
        if self.inject.armed(Point::AccessHit) {
            let hit = matches!(self.mmu.lock().dtlb().peek(vpn), Some(t) if t.permits(write));
            if hit {
                self.inject.pass(self, &Site::page(Point::AccessHit, addr));
            }
        }
        let mut checks = 0;
        for _ in 0..MAX_FAULT_RETRIES + MAX_CHECKS {
            {
                let mut mmu = self.mmu.lock();
                if mmu.released() {
                    return Err(ESRCH);
                }
                if checks < MAX_CHECKS {
                    if let Some(t) = mmu.flagged(vpn) {
                        drop(mmu);
                        checks += 1;
                        self.check(mm, vpn, &t)?;
                        continue;
                    }
                }
                let hit = matches!(mmu.dtlb().peek(vpn), Some(t) if t.permits(write));
                // After a device fault the access uses the entry the fault
                // just filled: it counts as the fault, not as a hit.
                let first = outcome & uapi::TLBRACE_OUT_FAULT == 0;
                if hit && first {
                    self.stats.inc(Counter::Hits);
                    outcome |= uapi::TLBRACE_OUT_HIT;
                } else if !hit {
                    if first {
                        self.stats.inc(Counter::Misses);
                    }
                    // A dTLB miss walks the dPT (shadow page table contracts).
                    let from_dpt = match mmu.dpt().get(vpn) {
                        Some(t) if t.permits(write) => Some(t.clone()),
                        _ => None,
                    };
                    if let Some(t) = from_dpt {
                        self.stats.inc(Counter::DptHits);
                        outcome |= uapi::TLBRACE_OUT_DPT;
                        trace::fill(self.id, vpn, &t, true);
                        mmu.fill_dtlb(vpn, t, &self.stats);
                    }
                }
                let (t, truth) = mmu.lookup(vpn);
                if let Some(t) = t.filter(|t| t.permits(write)) {
                    return Ok(self.use_translation(truth, t, addr, word, op, outcome));
                }
            }
            outcome |= uapi::TLBRACE_OUT_FAULT;
            self.fault(mm, vpn, write, req)?;
        }
        Err(EAGAIN)
    }

    /// The oracle's check of a flagged translation `t` of `vpn`: looks up
    /// what the CPU page table maps now and records the verdict in the
    /// cached copies of `t` (dTLB and dPT, recognised by their fill
    /// generation).  MMU lock not held.
    fn check(&self, mm: &MmWithUser, vpn: Vpn, t: &Translation) -> Result {
        self.stats.inc(Counter::OracleChecks);
        let lookup = match UserPage::lookup(mm, vpn << PAGE_SHIFT, t.writable) {
            Ok(Some(now)) if now == *t.page => Lookup::Same,
            Ok(Some(_)) => Lookup::Other,
            Ok(None) => Lookup::Absent,
            Err(e) if e == EBUSY => Lookup::Unknown,
            Err(e) => return Err(e),
        };
        let verdict = judge(lookup);
        let apply = |c: &mut Translation| {
            if c.fill_gen != t.fill_gen {
                return;
            }
            if let Some(event) = c.flagged.take() {
                match verdict {
                    Verdict::Valid => {}
                    Verdict::Stale => c.stale = Some(event),
                    Verdict::Conservative => {
                        self.stats.inc(Counter::OracleConservative);
                        c.stale = Some(event);
                    }
                }
            }
        };
        self.mmu
            .lock()
            .for_each_cached(vpn, vpn + 1, |_, c| apply(c));
        Ok(())
    }

    /// Performs `op` only if the dTLB holds a usable translation (`ENOENT`
    /// otherwise): what the device does inside a notifier callback, where it
    /// may not fault.
    pub(crate) fn access_hit_only(&self, addr: usize, op: Op) -> Result<Access> {
        let word = WordOffset::of(addr).ok_or(EINVAL)?;
        let mut mmu = self.mmu.lock();
        let (t, truth) = mmu.lookup(addr >> PAGE_SHIFT);
        match t {
            Some(t) if t.permits(op.writes()) => {
                self.stats.inc(Counter::Hits);
                // No page-table lookup here: a flagged translation is judged
                // conservatively (see `use_translation`).
                Ok(self.use_translation(truth, t, addr, word, op, uapi::TLBRACE_OUT_HIT))
            }
            _ => Err(ENOENT),
        }
    }

    /// The access itself, to the word `word` of the page at `addr`, through
    /// translation `t` (MMU lock held).  A use
    /// of a translation the oracle judged stale is a stale access; *early*
    /// (`stale_early`) while an invalidation covering the page is still in
    /// progress, counted and recorded in the ring otherwise.  A translation
    /// still flagged here (no check possible: inside a callback, or flagged
    /// again after `MAX_CHECKS` checks) is judged stale conservatively.
    fn use_translation(
        &self,
        truth: &Truth,
        t: &mut Translation,
        addr: usize,
        word: WordOffset,
        op: Op,
        outcome: u32,
    ) -> Access {
        let value = match op {
            Op::Read => t.page.load(word),
            Op::Write(v) => {
                t.page.store(word, v);
                v
            }
            Op::Cas { expected, new } => t.page.compare_exchange(word, expected, new),
        };
        t.accessed = true;
        t.dirty |= op.writes();
        if let Some(event) = t.flagged.take() {
            self.stats.inc(Counter::OracleConservative);
            t.stale.get_or_insert(event);
        }
        let mut outcome = outcome;
        let mut stale = None;
        if let Some(event) = t.stale {
            outcome |= uapi::TLBRACE_OUT_STALE;
            let vpn = addr >> PAGE_SHIFT;
            let early = truth.open_overlapping(vpn, vpn + 1) > 0;
            if early {
                self.stats.inc(Counter::StaleEarly);
            } else {
                self.stats.stale(addr, event, op.writes());
            }
            stale = Some((event, early));
        }
        trace::access(self.id, addr, op.writes(), value, outcome, stale);
        Access { value, outcome }
    }

    /// Runs a batch for `req`, which may stop it before any word (a signal,
    /// a cancelled job).
    pub(crate) fn access_batch(
        &self,
        mm: &MmWithUser,
        b: &Batch,
        req: Requester<'_>,
    ) -> Result<BatchResult> {
        let mut r = BatchResult::default();
        for i in 0..b.count {
            if let Some(e) = req.stop() {
                return Err(e);
            }
            let a = self.access(mm, (b.addr + i * b.stride) as usize, b.op, req)?;
            r.hits += u32::from(a.outcome & uapi::TLBRACE_OUT_HIT != 0);
            r.faults += u32::from(a.outcome & uapi::TLBRACE_OUT_FAULT != 0);
            r.stale += u32::from(a.outcome & uapi::TLBRACE_OUT_STALE != 0);
            r.outcome = a.outcome;
            if !matches!(b.op, Op::Write(_)) {
                r.value = a.value;
            }
        }
        Ok(r)
    }

    /// Device fault for `req`: walks the CPU page tables for `vpn` and
    /// fills the dPT (if the contract has one) and the dTLB.
    pub(crate) fn fault(
        &self,
        mm: &MmWithUser,
        vpn: Vpn,
        write: bool,
        req: Requester<'_>,
    ) -> Result {
        for _ in 0..MAX_FAULT_RETRIES {
            let (seq, truth_seq, has_dpt) = {
                let mut mmu = self.mmu.lock();
                if mmu.released() {
                    return Err(ESRCH);
                }
                // Seed 000: the fault path asks whether a flush is pending
                // for this address, and flushes it first.
                if mmu.flush_if_pending(vpn) {
                    self.stats.inc(Counter::PendingFlushes);
                }
                // Only invalidations covering this page hold the fault back
                // (an interval notifier per page would not wait for others
                // either); `inval_seq` below still catches any invalidation,
                // of whatever page, that starts during the walk.
                if mmu.contract().faults_wait_for_invalidations()
                    && mmu.truth.open_overlapping(vpn, vpn + 1) > 0
                {
                    self.stats.inc(Counter::FaultRetries);
                    // Every `invalidate_range_end` wakes us: wait until none
                    // of the open ones covers the page, at most this long.
                    // Cancelling a job wakes us too (`Device::cancel_job`).
                    let mut left = msecs_to_jiffies(FAULT_WAIT_MS);
                    while left > 0 && mmu.truth.open_overlapping(vpn, vpn + 1) > 0 {
                        if let Some(e) = req.stop() {
                            return Err(e);
                        }
                        left = match self.idle.wait_interruptible_timeout(&mut mmu, left) {
                            CondVarTimeoutResult::Woken { jiffies } => jiffies,
                            CondVarTimeoutResult::Timeout => 0,
                            CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
                        };
                    }
                    continue;
                }
                let has_dpt = mmu.contract().has_dpt();
                // A full dPT refuses before the walk (and again at the fill).
                if has_dpt && !mmu.dpt().has_room_for(vpn) {
                    return Err(ENOSPC);
                }
                (mmu.inval_seq(), mmu.truth.seq(), has_dpt)
            };

            self.stats.inc(Counter::Faults);
            let page = Arc::new(
                req.fault_in(mm, vpn << PAGE_SHIFT, write)?,
                GFP_KERNEL_ACCOUNT,
            )?;
            // Between the walk and the fill: where a racing invalidation hurts.
            self.inject
                .pass(self, &Site::page(Point::FaultFill, vpn << PAGE_SHIFT));
            let node = if has_dpt {
                Some(DptReservation::new(GFP_KERNEL_ACCOUNT)?)
            } else {
                None
            };

            let mut mmu = self.mmu.lock();
            if mmu.released() {
                return Err(ESRCH);
            }
            if mmu.inval_seq() != seq || mmu.contract().has_dpt() != has_dpt {
                // An invalidation (or a reconfiguration) raced with the walk.
                self.stats.inc(Counter::FaultRetries);
                continue;
            }
            // If the CPUs flushed the page since the walk began (only a
            // contract that ignores invalidations gets here after the flush
            // of a notified change), the walk may have read the old entry (a
            // stale fill) or the new one (it ran after the change, or caused
            // it by breaking COW): the fill is flagged, and checked against
            // the page table before its first use.
            let fill_gen = mmu.next_fill_gen();
            let t = Translation {
                page,
                writable: write,
                dirty: false,
                accessed: false,
                fill_gen,
                flagged: mmu.truth.flushed_since(truth_seq, vpn),
                stale: None,
            };
            if let Some(node) = node {
                mmu.fill_dpt(vpn, t.clone(), node)?;
            }
            trace::fill(self.id, vpn, &t, false);
            mmu.fill_dtlb(vpn, t, &self.stats);
            return Ok(());
        }
        Err(EAGAIN)
    }

    /// Fills the translations of `[start, end)` for `req` (which may stop
    /// it before any page); returns how many pages.
    ///
    /// Fails with `ENOSPC`, having filled nothing, if the pages of the range
    /// not in the dPT yet would take it past [`dpt::MAX_PAGES`].  A fill
    /// racing with it may still take the room: then it fails at that page.
    pub(crate) fn prefetch(
        &self,
        mm: &MmWithUser,
        start: Vpn,
        end: Vpn,
        write: bool,
        req: Requester<'_>,
    ) -> Result<u64> {
        {
            let mmu = self.mmu.lock();
            if mmu.contract().has_dpt() {
                let new = (end - start) - mmu.dpt().count_in(start, end);
                if mmu.dpt().len() + new > dpt::MAX_PAGES {
                    return Err(ENOSPC);
                }
            }
        }
        for vpn in start..end {
            if let Some(e) = req.stop() {
                return Err(e);
            }
            self.fault(mm, vpn, write, req)?;
        }
        Ok((end - start) as u64)
    }

    /// Writes the dTLB and dPT entries of `[start, end)`, merged and in
    /// address order, into `out`, up to its capacity (allocated beforehand:
    /// nothing is allocated under the MMU lock).  Flagged translations are
    /// judged first, so that `TLBRACE_SNAP_STALE` is the oracle's verdict.
    pub(crate) fn snapshot(
        &self,
        mm: &MmWithUser,
        start: Vpn,
        end: Vpn,
        out: &mut KVVec<uapi::tlbrace_snapshot_entry>,
    ) -> Result {
        let mut flagged = KVVec::<Vpn>::with_capacity(out.capacity(), GFP_KERNEL)?;
        {
            let mmu = self.mmu.lock();
            let (dtlb, dpt) = (mmu.dtlb(), mmu.dpt());
            for (vpn, t) in Iterator::chain(dpt.iter_in(start, end), dtlb.iter_in(start, end)) {
                if t.flagged.is_some() {
                    let _ = flagged.push_within_capacity(vpn);
                }
            }
        }
        for &vpn in flagged.iter() {
            let t = self.mmu.lock().flagged(vpn);
            if let Some(t) = t {
                self.check(mm, vpn, &t)?;
            }
        }
        let entry = |vpn: Vpn, t: &Translation, flags: u32| uapi::tlbrace_snapshot_entry {
            addr: (vpn << PAGE_SHIFT) as u64,
            pfn: t.page.pfn(),
            fill_gen: t.fill_gen,
            flags: flags
                | if t.writable {
                    uapi::TLBRACE_SNAP_WRITABLE
                } else {
                    0
                }
                | if t.dirty { uapi::TLBRACE_SNAP_DIRTY } else { 0 }
                | if t.accessed {
                    uapi::TLBRACE_SNAP_ACCESSED
                } else {
                    0
                }
                | if t.stale.is_some() {
                    uapi::TLBRACE_SNAP_STALE
                } else {
                    0
                },
            reserved: 0,
        };
        let mmu = self.mmu.lock();
        let (dtlb, dpt) = (mmu.dtlb(), mmu.dpt());
        // dPT entries, each merged with its dTLB entry (the one the device
        // would use), then dTLB-only entries (`sva`, or dropped from the dPT).
        for (vpn, t) in dpt.iter_in(start, end) {
            let e = match dtlb.peek(vpn) {
                Some(d) => entry(vpn, d, uapi::TLBRACE_SNAP_DPT | uapi::TLBRACE_SNAP_DTLB),
                None => entry(vpn, t, uapi::TLBRACE_SNAP_DPT),
            };
            if out.push_within_capacity(e).is_err() {
                break;
            }
        }
        for (vpn, t) in dtlb.iter_in(start, end) {
            if dpt.get(vpn).is_none() {
                let _ = out.push_within_capacity(entry(vpn, t, uapi::TLBRACE_SNAP_DTLB));
            }
        }
        drop(mmu);
        out.sort_unstable_by_key(|e| e.addr);
        Ok(())
    }
}
