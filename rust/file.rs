// SPDX-License-Identifier: GPL-2.0

//! One open file of `/dev/tlbrace`: a device attached to the opener's mm,
//! and the ioctl handlers (one small function per command).

use core::mem::size_of;

use kernel::{
    current,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::MmWithUser,
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::{aref::ARef, Arc},
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice, UserSliceWriter},
};

use crate::{
    contract::Contract,
    debugfs::StatsFile,
    debugfs_file,
    device::Device,
    dtlb::{Geometry, Replacement},
    engine::{Batch, BatchResult, Op},
    file_cred,
    mmu_notifier::{Callbacks, Registration},
    requester::Requester,
    tracker,
    uapi::{self, IoctlArg},
    worker::Job,
};

/// Entries one SNAPSHOT may return.
const MAX_SNAPSHOT_ENTRIES: u32 = 1 << 16;

/// The state behind one open file descriptor.
///
/// Fields drop in order: both notifier registrations are gone (and their
/// callbacks finished) before the device itself is dropped.
#[pin_data]
pub(crate) struct TlbraceFile {
    /// The device as a shadow-page-table notifier of the opener's mm.
    #[pin]
    range: Registration<Arc<Device>>,
    /// The device as a secondary-TLB notifier of the same mm.
    #[pin]
    tlbs: Registration<Arc<Device>>,
    /// `/sys/kernel/debug/tlbrace/<tgid>-<n>/stats`.
    _stats_file: debugfs_file::File<StatsFile>,
    dev: Arc<Device>,
    /// The opener had `CAP_SYS_ADMIN`: snapshots show page frame numbers,
    /// as `/proc/pid/pagemap` does (0 otherwise).
    show_pfn: bool,
}

#[vtable]
impl MiscDevice for TlbraceFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let task = current!();
        // Kernel threads have no address space to mirror.
        let mm = task.mm().ok_or(EINVAL)?;
        let dev = Arc::pin_init(Device::new()?, GFP_KERNEL_ACCOUNT)?;
        let stats_file = crate::debugfs::stats_file(task.tgid(), dev.clone(), ARef::from(&**mm))?;
        KBox::try_pin_init(
            try_pin_init!(TlbraceFile {
                range <- Registration::new(mm, Callbacks::Range, Ok::<_, Error>(dev.clone())),
                tlbs <- Registration::new(mm, Callbacks::SecondaryTlbs, Ok::<_, Error>(dev.clone())),
                _stats_file: stats_file,
                show_pfn: file_cred::opener_may_see_pfns(file),
                dev,
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn release(me: Pin<KBox<Self>>, _file: &File) {
        // Nothing may stay parked or armed, and a job still queued or running
        // must not outlive the file.
        let _ = me.dev.inject.disarm(uapi::TLBRACE_ALL_ARMS);
        me.dev.cancel_job();
        // After the disarm: no gather of the mm stays parked at the hook.
        #[cfg(CONFIG_MMU_GATHER_POLICY)]
        crate::cpu_path::detach(&me.dev);
    }

    fn ioctl(me: Pin<&TlbraceFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        // Each handler accesses the size of its struct: `_IOC_SIZE(cmd)`,
        // since only the exact command numbers match.
        let user = UserPtr::from_addr(arg);
        match cmd {
            uapi::TLBRACE_IOC_VERSION => version(user),
            uapi::TLBRACE_IOC_CONFIG => me.config(user),
            uapi::TLBRACE_IOC_READ => me.access(user, AccessKind::Read),
            uapi::TLBRACE_IOC_WRITE => me.access(user, AccessKind::Write),
            uapi::TLBRACE_IOC_CAS => me.access(user, AccessKind::Cas),
            uapi::TLBRACE_IOC_PREFETCH => me.prefetch(user),
            uapi::TLBRACE_IOC_FLUSH => me.flush(user),
            uapi::TLBRACE_IOC_SNAPSHOT => me.snapshot(user),
            uapi::TLBRACE_IOC_STATS => me.stats(user, false),
            uapi::TLBRACE_IOC_RESET_STATS => me.stats(user, true),
            uapi::TLBRACE_IOC_WAIT => me.wait(user),
            uapi::TLBRACE_IOC_INJECT_ARM => me.inject_arm(user),
            uapi::TLBRACE_IOC_INJECT_DISARM => me.inject_disarm(user),
            uapi::TLBRACE_IOC_INJECT_RELEASE => me.inject_release(user),
            uapi::TLBRACE_IOC_INJECT_STATUS => me.inject_status(user),
            uapi::TLBRACE_IOC_CPU => me.cpu(user),
            _ => return Err(ENOTTY),
        }?;
        Ok(0)
    }
}

/// Reads an ioctl argument, checks its declared size and that it can be
/// written back, and returns it with the writer for the write-back.
///
/// Every command writes its struct back, so the check comes first: the bytes
/// just read are written to the same place, which leaves the struct as the
/// caller wrote it and makes a read-only argument fail with `EFAULT` before
/// the command had any effect (a job collected, counters zeroed).  Another
/// thread changing the struct meanwhile loses its change, as it would to
/// the final write-back.
fn read_arg<T: IoctlArg>(user: UserPtr) -> Result<(T, UserSliceWriter)> {
    let (mut reader, mut probe) = UserSlice::new(user, size_of::<T>()).reader_writer();
    let arg: T = reader.read()?;
    if arg.declared_size() as usize != size_of::<T>() {
        return Err(EINVAL);
    }
    probe.write(&arg)?;
    Ok((arg, UserSlice::new(user, size_of::<T>()).writer()))
}

/// Fails with `EINVAL` unless `flags` only has bits of `allowed`.
fn check_flags(flags: u32, allowed: u32) -> Result {
    if flags & !allowed != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// Checks a page-aligned, non-empty, non-wrapping range of at most `max`
/// bytes; returns it as virtual page numbers.
fn page_range(addr: u64, len: u64, max: u64) -> Result<(usize, usize)> {
    let mask = PAGE_SIZE as u64 - 1;
    if addr & mask != 0 || len & mask != 0 || len == 0 || len > max {
        return Err(EINVAL);
    }
    let end = addr.checked_add(len).ok_or(EINVAL)?;
    Ok(((addr >> PAGE_SHIFT) as usize, (end >> PAGE_SHIFT) as usize))
}

fn version(user: UserPtr) -> Result {
    let (mut v, mut writer) = read_arg::<uapi::tlbrace_version>(user)?;
    if v.reserved != 0 {
        return Err(EINVAL);
    }
    v.abi_version = uapi::TLBRACE_ABI_VERSION;
    v.struct_size = size_of::<uapi::tlbrace_version>() as u32;
    writer.write(&v)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AccessKind {
    Read,
    Write,
    Cas,
}

/// Checks an access request and turns it into a batch.
fn access_batch(a: &uapi::tlbrace_access, kind: AccessKind) -> Result<Batch> {
    let count = u64::from(a.count);
    let stride = u64::from(a.stride);
    if a.addr % 8 != 0
        || count == 0
        || count > u64::from(uapi::TLBRACE_MAX_ACCESS_COUNT)
        || stride % 8 != 0
        || (count > 1 && stride == 0)
        || (kind == AccessKind::Cas && count != 1)
    {
        return Err(EINVAL);
    }
    // The last word must not wrap around the address space.
    (count - 1)
        .checked_mul(stride)
        .and_then(|o| o.checked_add(a.addr))
        .ok_or(EINVAL)?;
    let op = match kind {
        AccessKind::Read => Op::Read,
        AccessKind::Write => Op::Write(a.value),
        AccessKind::Cas => Op::Cas {
            expected: a.expected,
            new: a.value,
        },
    };
    Ok(Batch {
        addr: a.addr,
        count,
        stride,
        op,
    })
}

/// Copies a batch's results into the access struct returned to user space.
fn fill_access_result(a: &mut uapi::tlbrace_access, kind: AccessKind, r: &BatchResult) {
    match kind {
        AccessKind::Read => a.value = r.value,
        AccessKind::Cas => a.expected = r.value,
        AccessKind::Write => {}
    }
    a.outcome = r.outcome;
    a.hits = r.hits;
    a.faults = r.faults;
    a.stale = r.stale;
}

impl TlbraceFile {
    fn device(&self) -> &Device {
        &self.dev
    }

    /// Runs `f` with the caller's mm, which must be the device's: a device
    /// is used only by the address space it mirrors.
    fn with_own_mm<R>(&self, f: impl FnOnce(&MmWithUser) -> Result<R>) -> Result<R> {
        let task = current!();
        match task.mm() {
            Some(mm) if mm.as_raw() == self.range.mm().as_raw() => f(mm),
            _ => Err(EPERM),
        }
    }

    fn config(&self, user: UserPtr) -> Result {
        let (c, mut writer) = read_arg::<uapi::tlbrace_config>(user)?;
        check_flags(c.flags, 0)?;
        if c.reserved != 0 {
            return Err(EINVAL);
        }
        let contract = Contract::from_uapi(c.contract)?;
        let tracker = tracker::from_uapi(c.tracker)?;
        let sets = c.sets as usize;
        let ways = c.ways as usize;
        if !sets.is_power_of_two()
            || sets > uapi::TLBRACE_MAX_SETS as usize
            || ways == 0
            || ways > uapi::TLBRACE_MAX_WAYS as usize
        {
            return Err(EINVAL);
        }
        let replacement = match c.replacement {
            uapi::TLBRACE_REPL_LRU => Replacement::Lru,
            uapi::TLBRACE_REPL_FIFO => Replacement::Fifo,
            _ => return Err(EINVAL),
        };
        self.with_own_mm(|_| {
            let geo = Geometry {
                sets,
                ways,
                replacement,
            };
            self.device().configure(contract, geo, tracker)
        })?;
        writer.write(&c)
    }

    fn access(&self, user: UserPtr, kind: AccessKind) -> Result {
        let (mut a, mut writer) = read_arg::<uapi::tlbrace_access>(user)?;
        check_flags(a.flags, uapi::TLBRACE_ACCESS_ASYNC)?;
        let batch = access_batch(&a, kind)?;
        if a.flags & uapi::TLBRACE_ACCESS_ASYNC != 0 {
            return self.with_own_mm(|_| {
                let mm = ARef::from(self.range.mm());
                self.dev.submit(Job { mm, batch })
            });
        }
        let r = self.with_own_mm(|mm| self.device().access_batch(mm, &batch, Requester::Task))?;
        fill_access_result(&mut a, kind, &r);
        writer.write(&a)
    }

    fn wait(&self, user: UserPtr) -> Result {
        let (mut w, mut writer) = read_arg::<uapi::tlbrace_wait>(user)?;
        if w.timeout_ms > uapi::TLBRACE_MAX_WAIT_MS || w.reserved != 0 {
            return Err(EINVAL);
        }
        let (batch, r) = self.with_own_mm(|_| self.device().wait_job(w.timeout_ms))?;
        let kind = match batch.op {
            Op::Read => AccessKind::Read,
            Op::Write(_) => AccessKind::Write,
            Op::Cas { .. } => AccessKind::Cas,
        };
        w.result = uapi::tlbrace_access {
            size: size_of::<uapi::tlbrace_access>() as u32,
            flags: uapi::TLBRACE_ACCESS_ASYNC,
            addr: batch.addr,
            count: batch.count as u32,
            stride: batch.stride as u32,
            ..Default::default()
        };
        // Both outputs are written whatever the job's fate.
        w.error = match r {
            Ok(r) => {
                fill_access_result(&mut w.result, kind, &r);
                0
            }
            Err(e) => e.to_errno(),
        };
        writer.write(&w)
    }

    fn prefetch(&self, user: UserPtr) -> Result {
        let (mut r, mut writer) = read_arg::<uapi::tlbrace_range>(user)?;
        check_flags(r.flags, uapi::TLBRACE_RANGE_WRITE)?;
        let (start, end) = page_range(r.addr, r.len, u64::from(uapi::TLBRACE_MAX_RANGE_LEN))?;
        let write = r.flags & uapi::TLBRACE_RANGE_WRITE != 0;
        r.filled = self.with_own_mm(|mm| {
            self.device()
                .prefetch(mm, start, end, write, Requester::Task)
        })?;
        writer.write(&r)
    }

    fn flush(&self, user: UserPtr) -> Result {
        let (mut f, mut writer) = read_arg::<uapi::tlbrace_flush>(user)?;
        check_flags(f.flags, uapi::TLBRACE_FLUSH_DPT)?;
        let dpt = f.flags & uapi::TLBRACE_FLUSH_DPT != 0;
        f.flushed = self.with_own_mm(|_| Ok(self.device().flush(dpt) as u64))?;
        writer.write(&f)
    }

    fn snapshot(&self, user: UserPtr) -> Result {
        let (mut s, mut writer) = read_arg::<uapi::tlbrace_snapshot>(user)?;
        check_flags(s.flags, 0)?;
        if s.max_entries > MAX_SNAPSHOT_ENTRIES {
            return Err(EINVAL);
        }
        let (start, end) = page_range(s.addr, s.len, u64::MAX)?;
        // Up to 2 MiB: vmalloc when the page allocator has no such block.
        let mut out = KVVec::with_capacity(s.max_entries as usize, GFP_KERNEL)?;
        self.with_own_mm(|mm| self.device().snapshot(mm, start, end, &mut out))?;
        if !self.show_pfn {
            for e in out.iter_mut() {
                e.pfn = 0;
            }
        }
        let bytes = out.len() * size_of::<uapi::tlbrace_snapshot_entry>();
        let entries = UserPtr::from_addr(s.entries as usize);
        UserSlice::new(entries, bytes)
            .writer()
            .write_slice(AsBytes::as_bytes(out.as_slice()))?;
        s.nr_entries = out.len() as u32;
        writer.write(&s)
    }

    fn inject_arm(&self, user: UserPtr) -> Result {
        let (a, mut writer) = read_arg::<uapi::tlbrace_inject>(user)?;
        let batched = self.device().config().0 == Contract::Batched;
        self.with_own_mm(|mm| self.device().inject.arm(&a, mm, batched))?;
        writer.write(&a)
    }

    fn inject_disarm(&self, user: UserPtr) -> Result {
        let (a, mut writer) = read_arg::<uapi::tlbrace_inject>(user)?;
        check_flags(a.flags, 0)?;
        self.with_own_mm(|_| self.device().inject.disarm(a.id))?;
        writer.write(&a)
    }

    fn inject_release(&self, user: UserPtr) -> Result {
        let (mut r, mut writer) = read_arg::<uapi::tlbrace_release>(user)?;
        if r.reserved != 0 {
            return Err(EINVAL);
        }
        r.released = self.with_own_mm(|_| self.device().inject.release(r.id))?;
        writer.write(&r)
    }

    fn inject_status(&self, user: UserPtr) -> Result {
        let (mut s, mut writer) = read_arg::<uapi::tlbrace_inject_status>(user)?;
        check_flags(s.flags, 0)?;
        self.with_own_mm(|_| {
            self.device().inject.status(&mut s.arms);
            Ok(())
        })?;
        writer.write(&s)
    }

    /// The CPU path's policy for the device's mm (`crate::cpu_path`).
    fn cpu(&self, user: UserPtr) -> Result {
        let (mut c, mut writer) = read_arg::<uapi::tlbrace_cpu>(user)?;
        check_flags(
            c.flags,
            uapi::TLBRACE_CPU_SET | uapi::TLBRACE_CPU_RESET_STATS,
        )?;
        if c.reserved != 0 {
            return Err(EINVAL);
        }
        self.with_own_mm(|mm| self.cpu_path(mm, &mut c))?;
        writer.write(&c)
    }

    #[cfg(CONFIG_MMU_GATHER_POLICY)]
    fn cpu_path(&self, mm: &MmWithUser, c: &mut uapi::tlbrace_cpu) -> Result {
        use crate::cpu_path;
        if c.flags & uapi::TLBRACE_CPU_SET != 0 {
            cpu_path::set(&self.dev, mm, c.policy)?;
        }
        cpu_path::read(&self.dev, c, c.flags & uapi::TLBRACE_CPU_RESET_STATS != 0);
        Ok(())
    }

    #[cfg(not(CONFIG_MMU_GATHER_POLICY))]
    fn cpu_path(&self, _mm: &MmWithUser, _c: &mut uapi::tlbrace_cpu) -> Result {
        Err(EOPNOTSUPP)
    }

    fn stats(&self, user: UserPtr, reset: bool) -> Result {
        let (mut s, mut writer) = read_arg::<uapi::tlbrace_stats>(user)?;
        check_flags(s.flags, 0)?;
        if s.reserved != 0 {
            return Err(EINVAL);
        }
        self.with_own_mm(|_| {
            self.device().stats.read(&mut s, reset);
            Ok(())
        })?;
        writer.write(&s)
    }
}
