// SPDX-License-Identifier: GPL-2.0

//! debugfs: `/sys/kernel/debug/tlbrace/<tgid>-<n>/stats` for every open
//! device, the same counters as `TLBRACE_IOC_STATS`, readable from outside
//! the process.
//!
//! The root directory is reachable from `open()` (which has no module state)
//! through a global lock.  The files are `debugfs_file`'s, whose open pins
//! the module (see there why not `kernel::debugfs`'s).

use kernel::{
    debugfs::Writer,
    mm::Mm,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
};

use crate::{
    debugfs_file::{Dir, File},
    device::Device,
    stats::Counter,
    uapi,
};

kernel::sync::global_lock! {
    // SAFETY: Initialised by `Root::new`, called once from the module
    // initialiser before the misc device (the only user) is registered.
    unsafe(uninit) static ROOT: Mutex<Option<Arc<Dir>>> = None;
}

/// Owns the root directory: it is removed when this is dropped at module
/// exit and the last device's directory is gone.
pub(crate) struct Root;

impl Root {
    /// Creates `/sys/kernel/debug/tlbrace/`.  Call once, from module init.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Called once, from the module initialiser, before any use.
        unsafe { ROOT.init() };
        *ROOT.lock() = Some(Dir::new(c"tlbrace", None)?);
        Ok(Root)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        *ROOT.lock() = None;
    }
}

/// Creates `<tgid>-<id>/stats` for a new device of process `tgid`, mirroring
/// `mm`.
pub(crate) fn stats_file(tgid: i32, dev: Arc<Device>, mm: ARef<Mm>) -> Result<File<StatsFile>> {
    let name = CString::try_from_fmt(fmt!("{tgid}-{}", dev.id))?;
    let root = ROOT.lock().clone().ok_or(ENODEV)?;
    let dir = Dir::new(&name, Some(root))?;
    File::new(&dir, c"stats", StatsFile { dev, mm })
}

/// The contents of a device's `stats` file: the device, and the mm it
/// mirrors (grabbed, so that its `tlb_flush_pending` stays readable).
pub(crate) struct StatsFile {
    pub(crate) dev: Arc<Device>,
    pub(crate) mm: ARef<Mm>,
}

impl Writer for StatsFile {
    fn write(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let mut s = uapi::tlbrace_stats::default();
        self.dev.stats.read(&mut s, false);
        let (contract, geo, tracker) = self.dev.config();
        writeln!(f, "contract: {contract}")?;
        writeln!(f, "tracker: {tracker}")?;
        writeln!(
            f,
            "dtlb: {} sets x {} ways, {}",
            geo.sets, geo.ways, geo.replacement
        )?;
        // Gauges, read at the same instant: the tracker's open gathers and
        // the real stock counter of the mm.
        let (open, kernel) = self.dev.pending_now(&self.mm);
        writeln!(f, "tracker_open_gathers: {open}")?;
        writeln!(f, "kernel_tlb_flush_pending: {kernel}")?;
        let counters = [
            ("cb_range_start", s.cb_range_start),
            ("cb_range_end", s.cb_range_end),
            ("cb_secondary_tlbs", s.cb_secondary_tlbs),
            ("cb_secondary_full", s.cb_secondary_full),
            ("cb_release", s.cb_release),
            ("cb_young", s.cb_young),
            ("faults", s.faults),
            ("fault_retries", s.fault_retries),
            ("hits", s.hits),
            ("misses", s.misses),
            ("dpt_hits", s.dpt_hits),
            ("evictions", s.evictions),
            ("invalidated", s.invalidated),
            ("full_flushes", s.full_flushes),
            ("stale_reads", s.stale_reads),
            ("stale_writes", s.stale_writes),
            ("stale_early", s.stale_early),
            ("gathers", s.gathers),
            ("gather_flushed", s.gather_flushed),
            ("gather_full", s.gather_full),
            ("closes_nested", s.closes_nested),
            ("closes_overlapping", s.closes_overlapping),
            ("gather_waits", s.gather_waits),
            ("wait_timeouts", s.wait_timeouts),
            ("pending_flushes", s.pending_flushes),
            ("tracker_ns", s.tracker_ns),
            ("kernel_nested", s.kernel_nested),
            ("kernel_nested_overlapping", s.kernel_nested_overlapping),
            ("oracle_checks", self.dev.stats.get(Counter::OracleChecks)),
            (
                "oracle_conservative",
                self.dev.stats.get(Counter::OracleConservative),
            ),
        ];
        for (name, v) in counters {
            writeln!(f, "{name}: {v}")?;
        }
        for e in &s.ring[..s.ring_count as usize] {
            let kind = if e.kind == uapi::TLBRACE_STALE_WRITE {
                "write"
            } else {
                "read"
            };
            writeln!(f, "stale {kind} at {:#x}, missed event {}", e.addr, e.event)?;
        }
        Ok(())
    }
}
