// SPDX-License-Identifier: GPL-2.0

//! Pages of a user address space, referenced by the device.
//!
//! A device fault looks up the page that the CPU page tables map at an
//! address with `get_user_pages_remote()` and keeps the reference (`FOLL_GET`,
//! not a pin: the device models a secondary MMU that relies on mmu_notifier
//! invalidations rather than pinning, like KVM or an SVA device).  Holding the
//! reference for every cached translation means that even a deliberately
//! broken invalidation contract never makes the kernel touch freed memory.
//!
//! The device accesses memory in aligned 64-bit words with atomic
//! instructions, as a device doing PCIe atomics would; the CPU side is user
//! space, so concurrent access is well defined.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use core::ptr::NonNull;

use kernel::{
    bindings,
    mm::{virt::vm_flags_t, MmWithUser},
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
};

/// A reference to a page that was mapped in a user address space.
///
/// # Invariants
///
/// `page` points to a `struct page` on which this object owns one reference
/// taken by GUP; it is dropped with `release_pages()`.
pub struct UserPage {
    page: NonNull<bindings::page>,
}

// SAFETY: A page reference may be dropped from any thread, and the accessors
// only do atomic accesses to the page.
unsafe impl Send for UserPage {}
// SAFETY: As above: `&UserPage` allows only atomic accesses.
unsafe impl Sync for UserPage {}

/// The vma flags of a userfaultfd-registered range (`__VM_UFFD_FLAGS`): a
/// fault there may wait for the monitor (`userfaultfd_armed()`).
const UFFD_ARMED: vm_flags_t =
    1 << bindings::VMA_UFFD_MISSING_BIT | 1 << bindings::VMA_UFFD_WP_BIT | UFFD_MINOR | UFFD_RWP;
#[cfg(CONFIG_HAVE_ARCH_USERFAULTFD_MINOR)]
const UFFD_MINOR: vm_flags_t = 1 << bindings::VMA_UFFD_MINOR_BIT;
#[cfg(not(CONFIG_HAVE_ARCH_USERFAULTFD_MINOR))]
const UFFD_MINOR: vm_flags_t = 0;
#[cfg(CONFIG_USERFAULTFD_RWP)]
const UFFD_RWP: vm_flags_t = 1 << bindings::VMA_UFFD_RWP_BIT;
#[cfg(not(CONFIG_USERFAULTFD_RWP))]
const UFFD_RWP: vm_flags_t = 0;

/// `mmap_read_lock_killable()`, a static inline that 7.3 has no Rust helper
/// for, made of the same calls: `down_read_killable()` between the mmap_lock
/// tracepoints (their out-of-line halves, which do nothing while the
/// tracepoints are off).  `EINTR` if a fatal signal came first; on success
/// the caller holds the lock and must release it with `mmap_read_unlock()`.
fn mmap_read_lock_killable(mm: &MmWithUser) -> Result {
    let mm = mm.as_raw();
    // SAFETY: `mm` is a live mm (`MmWithUser`); the hook only records it.
    #[cfg(CONFIG_TRACING)]
    unsafe {
        bindings::__mmap_lock_do_trace_start_locking(mm, false)
    };
    // SAFETY: `mm` is a live mm (`MmWithUser`), so its fields can be
    // addressed.
    let lock = unsafe { &raw mut (*mm).__bindgen_anon_1.mmap_lock };
    // SAFETY: `lock` is the `mmap_lock` of a live mm, an initialised rwsem.
    let ret = unsafe { bindings::down_read_killable(lock) };
    // SAFETY: As above.
    #[cfg(CONFIG_TRACING)]
    unsafe {
        bindings::__mmap_lock_do_trace_acquire_returned(mm, false, ret == 0)
    };
    match ret {
        0 => Ok(()),
        _ => Err(EINTR),
    }
}

impl UserPage {
    /// Faults in the page that `mm` maps at `addr` and takes a reference on
    /// it, for writing if `write` (which breaks COW as a device write would),
    /// on behalf of the current task, which must be one of `mm`'s.
    ///
    /// Waits where a CPU access of the task would: for the mmap read lock,
    /// killably (`EINTR` on a fatal signal); for I/O; and on a
    /// userfaultfd-registered range for the monitor, with the lock dropped
    /// (`FOLL_UNLOCKABLE`) and interruptibly: any signal ends that wait with
    /// `EINTR` (`FOLL_INTERRUPTIBLE`), as it ends a long access.
    ///
    /// The caller must not hold the mmap lock of `mm`, nor be in a notifier
    /// callback of `mm`.  May sleep.
    pub fn get(mm: &MmWithUser, addr: usize, write: bool) -> Result<Self> {
        let flags = bindings::FOLL_INTERRUPTIBLE | if write { bindings::FOLL_WRITE } else { 0 };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        let mut locked: kernel::ffi::c_int = 1;
        mmap_read_lock_killable(mm)?;
        // SAFETY: The mmap read lock is held and `locked` says so; GUP drops
        // it only after clearing `locked`.  `page` is valid for one entry.
        let ret = unsafe {
            bindings::get_user_pages_remote(mm.as_raw(), addr, 1, flags, &mut page, &mut locked)
        };
        if locked != 0 {
            // SAFETY: GUP returned with the lock still held (`locked`).
            unsafe { bindings::mmap_read_unlock(mm.as_raw()) };
        }
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        // INVARIANT: On success GUP took one reference on `page`.
        match NonNull::new(page) {
            Some(page) if ret == 1 => Ok(Self { page }),
            _ => Err(EFAULT),
        }
    }

    /// Like [`UserPage::get`], for a kernel thread (the device worker):
    /// never waits for user space, since nothing could interrupt the wait
    /// and closing the file waits for the thread.
    ///
    /// On a userfaultfd-registered range a fault that cannot complete at
    /// once (it would need the monitor) fails with `EFAULT`, and the monitor
    /// is not told (`FOLL_NOWAIT`: `handle_userfault()` returns
    /// `VM_FAULT_RETRY` without queueing a message).  Elsewhere the fault
    /// waits for I/O as any kernel thread's GUP does, with the mmap read
    /// lock held throughout: no `UFFDIO_REGISTER` (it takes the lock for
    /// writing) can arm the range in the middle.  May sleep.
    pub fn get_unattended(mm: &MmWithUser, addr: usize, write: bool) -> Result<Self> {
        let mut flags = if write { bindings::FOLL_WRITE } else { 0 };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        let lock = mm.mmap_read_lock();
        if lock
            .vma_lookup(addr)
            .is_some_and(|vma| vma.flags() & UFFD_ARMED != 0)
        {
            flags |= bindings::FOLL_NOWAIT;
        }
        // SAFETY: `lock` holds the mmap read lock; with a null `locked` GUP
        // never drops it.  `page` is valid for one entry.
        let ret = unsafe {
            bindings::get_user_pages_remote(
                mm.as_raw(),
                addr,
                1,
                flags,
                &mut page,
                core::ptr::null_mut(),
            )
        };
        drop(lock);
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        // INVARIANT: On success GUP took one reference on `page`.  0 pages:
        // the fault would have waited (`FOLL_NOWAIT`).
        match NonNull::new(page) {
            Some(page) if ret == 1 => Ok(Self { page }),
            _ => Err(EFAULT),
        }
    }

    /// Looks up, without faulting and without sleeping, the page that `mm`
    /// maps at `addr` with write permission if `write`: `Ok(Some(page))`,
    /// `Ok(None)` if nothing is mapped there with that permission (not
    /// present, no vma, read-only for a write), `Err(EBUSY)` if it cannot
    /// tell (the mmap lock is held for writing).
    ///
    /// Never faults a page in, so never changes a page-table entry, never
    /// breaks COW and never waits for a userfaultfd monitor: it reports the
    /// CPU page table as it is.  If `mm` is the current task's, the lockless
    /// GUP-fast walk is tried first; otherwise, or if it finds nothing, GUP
    /// runs with `FOLL_NOFAULT` under the mmap read lock, taken with a
    /// trylock.  The only trace is in the page flags any GUP sets: the page
    /// is marked referenced (GUP-fast) or accessed (GUP), and GUP marks it
    /// dirty for a write lookup of a clean writable entry.  Takes a page
    /// reference for the result, like [`UserPage::get`].  May be called
    /// where `get` may.
    pub fn lookup(mm: &MmWithUser, addr: usize, write: bool) -> Result<Option<Self>> {
        let flags = if write { bindings::FOLL_WRITE } else { 0 };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        let current = kernel::current!().mm().map(|m| m.as_raw());
        if current == Some(mm.as_raw()) {
            // SAFETY: GUP-fast walks `current->mm`, which is `mm` (checked
            // above), with interrupts disabled and no lock; it never faults
            // or sleeps.  `page` is valid for one entry.
            let n = unsafe { bindings::get_user_pages_fast_only(addr, 1, flags, &mut page) };
            // INVARIANT: On success GUP-fast took one reference on `page`.
            if let (1, Some(page)) = (n, NonNull::new(page)) {
                return Ok(Some(Self { page }));
            }
        }
        // SAFETY: `mm` has `mm_users > 0` (invariant of `MmWithUser`).
        if !unsafe { bindings::mmap_read_trylock(mm.as_raw()) } {
            return Err(EBUSY);
        }
        // SAFETY: The mmap read lock is held; with a null `locked` GUP never
        // drops it, and `FOLL_NOFAULT` makes it fail with `-EFAULT` instead of
        // faulting.  `page` is valid for one entry.
        let ret = unsafe {
            bindings::get_user_pages_remote(
                mm.as_raw(),
                addr,
                1,
                flags | bindings::FOLL_NOFAULT,
                &mut page,
                core::ptr::null_mut(),
            )
        };
        // SAFETY: Taken by the trylock above.
        unsafe { bindings::mmap_read_unlock(mm.as_raw()) };
        // INVARIANT: On success GUP took one reference on `page`.
        match (ret, NonNull::new(page)) {
            (1, Some(page)) => Ok(Some(Self { page })),
            // No vma, or the entry would have to be faulted in.
            (0, _) => Ok(None),
            (r, _) if r == EFAULT.to_errno() as kernel::ffi::c_long => Ok(None),
            (r, _) if r < 0 => Err(Error::from_errno(r as i32)),
            _ => Err(EFAULT),
        }
    }

    /// Runs `f` on the kernel address of the page.
    fn with_mapped<R>(&self, f: impl FnOnce(*mut u8) -> R) -> R {
        // SAFETY: The page is referenced (type invariant), so it stays
        // allocated while mapped.
        let addr = unsafe { bindings::kmap_local_page(self.page.as_ptr()) }.cast::<u8>();
        let r = f(addr);
        // SAFETY: `addr` was returned by `kmap_local_page` above, and no
        // other local mapping was made since.
        unsafe { bindings::kunmap_local(addr.cast()) };
        r
    }

    /// Runs `f` on the word at `offset`.
    fn word<R>(&self, offset: WordOffset, f: impl FnOnce(&Atomic<u64>) -> R) -> R {
        self.with_mapped(|base| {
            // SAFETY: `offset.0 + 8 <= PAGE_SIZE` (invariant of `WordOffset`):
            // the result stays inside the mapped page.
            let ptr = unsafe { base.add(offset.0) }.cast::<u64>();
            // Every kernel access to user pages through this type is atomic
            // and user space's are a CPU's: no data race in the LKMM sense.
            // SAFETY: `ptr` is an aligned word (`offset.0 % 8 == 0`, page
            // aligned) of the mapped page, valid while mapped, outlasting `f`.
            let word = unsafe { Atomic::from_ptr(ptr) };
            f(word)
        })
    }

    /// Reads the word at `offset`.
    pub fn load(&self, offset: WordOffset) -> u64 {
        self.word(offset, |w| w.load(Relaxed))
    }

    /// Writes the word at `offset`.
    pub fn store(&self, offset: WordOffset, value: u64) {
        self.word(offset, |w| w.store(value, Relaxed))
    }

    /// Compare-and-swap of the word at `offset`; returns the old value.
    pub fn compare_exchange(&self, offset: WordOffset, old: u64, new: u64) -> u64 {
        self.word(offset, |w| w.cmpxchg(old, new, Full).unwrap_or_else(|v| v))
    }

    /// The page frame number, the page's identity for snapshots and tests
    /// (compare with `/proc/self/pagemap`).
    ///
    /// x86 only: 7.3 offers modules no portable way to it (`page_to_pfn()`
    /// and `virt_to_phys()` are macros or inlines without a Rust helper;
    /// `slow_virt_to_phys()` is x86's).  Elsewhere 0, the value SNAPSHOT
    /// shows when PFNs are hidden.
    #[cfg(CONFIG_X86)]
    pub fn pfn(&self) -> u64 {
        self.with_mapped(|base| {
            // SAFETY: `base` is a kernel virtual address mapping the page
            // (`kmap_local_page()`: the direct map, or with HIGHMEM a
            // fixmap slot); `slow_virt_to_phys()` walks the kernel page
            // tables for either.
            let phys = unsafe { bindings::slow_virt_to_phys(base.cast()) };
            phys >> bindings::PAGE_SHIFT
        })
    }

    /// See above: no portable way to the PFN.
    #[cfg(not(CONFIG_X86))]
    pub fn pfn(&self) -> u64 {
        0
    }
}

/// The offset of an aligned 64-bit word in a page.
///
/// # Invariants
///
/// The offset is a multiple of 8 below `PAGE_SIZE`, so the whole word is
/// inside the page.
#[derive(Clone, Copy)]
pub struct WordOffset(usize);

impl WordOffset {
    /// The word at user address `addr`; `None` unless `addr` is 8-byte
    /// aligned.
    pub fn of(addr: usize) -> Option<Self> {
        // INVARIANT: `PAGE_SIZE` is a multiple of 8, so an aligned offset
        // below it leaves room for the word.
        (addr % 8 == 0).then_some(Self(addr & (PAGE_SIZE - 1)))
    }
}

impl UserPage {
    /// A fresh kernel page, owned as a GUP reference would be: for unit
    /// tests of what holds translations (KUnit runs without a user mm).
    #[cfg(CONFIG_KUNIT = "y")]
    pub fn new_kernel_page() -> Result<Self> {
        let page = core::mem::ManuallyDrop::new(kernel::page::Page::alloc_page(GFP_KERNEL)?);
        // INVARIANT: `alloc_page()` returned the page with one reference,
        // which `Page` would have dropped with `__free_pages()`; it is handed
        // over, and `release_pages()` drops it the same way.
        Ok(Self {
            page: NonNull::new(page.as_ptr()).ok_or(ENOMEM)?,
        })
    }
}

impl PartialEq for UserPage {
    /// Whether both refer to the same page.
    fn eq(&self, other: &Self) -> bool {
        self.page == other.page
    }
}

impl Drop for UserPage {
    fn drop(&mut self) {
        let mut page = self.page.as_ptr();
        // SAFETY: We own one reference on `page` (type invariant), which
        // `release_pages` drops; the array of one entry is valid for the call.
        unsafe {
            bindings::release_pages(bindings::release_pages_arg { pages: &mut page }, 1);
        }
    }
}
