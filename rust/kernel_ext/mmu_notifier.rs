// SPDX-License-Identifier: GPL-2.0

//! MMU notifiers: callbacks that keep a secondary MMU coherent with a process.
//!
//! A secondary MMU (an IOMMU, a GPU, KVM, the fake device of this module) caches
//! translations of a process's address space.  The core mm tells it, through an
//! [`MmuNotifier`] registered on that address space, whenever translations
//! change: before (`invalidate_range_start`) and after (`invalidate_range_end`)
//! it changes a range of page-table entries, next to every CPU TLB flush of the
//! mm (`arch_invalidate_secondary_tlbs`), when it ages pages, and when the
//! address space goes away (`release`).
//!
//! No abstraction of this exists upstream (7.3); this one follows the shape of
//! `rust/kernel/mm.rs` and is meant to be upstreamable.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)
//!
//! # Examples
//!
//! ```ignore
//! struct Counter(AtomicU64);
//!
//! impl MmuNotifier for Counter {
//!     fn invalidate_range_start(&self, _range: &Range<'_>) -> Result {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//!
//! // `mm` is an `&MmWithUser`, e.g. from `current`'s mm while opening a file.
//! let reg = KBox::pin_init(
//!     Registration::new(mm, Callbacks::Range, Counter(AtomicU64::new(0))),
//!     GFP_KERNEL,
//! )?;
//! // `data` may be any `PinInit`, e.g. a struct holding a lock.
//! // Callbacks run until `reg` is dropped, which unregisters and waits for
//! // callbacks in flight.
//! ```

use core::{marker::PhantomPinned, ptr};

use kernel::{
    bindings,
    error::to_result,
    mm::{Mm, MmWithUser},
    prelude::*,
    sync::aref::ARef,
    types::Opaque,
};

/// Why the core mm invalidates a range (`enum mmu_notifier_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Event {
    /// The range is unmapped (munmap, mremap, page reclaim).
    Unmap = bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP,
    /// Pages in the range are cleared, e.g. MADV_DONTNEED, COW, THP split.
    Clear = bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR,
    /// The protection of the whole vma changes (mprotect).
    ProtectionVma = bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA,
    /// The protection of pages changes (write-protect for writeback, uffd-wp).
    ProtectionPage = bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE,
    /// Soft-dirty bits are cleared (`/proc/pid/clear_refs`).
    SoftDirty = bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY,
    /// The address space is being torn down.
    Release = bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE,
    /// Pages are migrated.
    Migrate = bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE,
    /// Pages are made exclusive to a device.
    Exclusive = bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE,
}

impl Event {
    fn from_raw(raw: bindings::mmu_notifier_event) -> Self {
        match raw {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Self::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Self::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Self::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Self::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Self::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Self::Migrate,
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Self::Exclusive,
            // `Clear` is the generic event; treat anything newer like it.
            _ => Self::Clear,
        }
    }
}

/// Identifies one invalidation while it is in progress: the address of its
/// `struct mmu_notifier_range`, which the core passes both to
/// `invalidate_range_start` and to the matching `invalidate_range_end`.
/// Invalidations in progress at the same time have different keys (the same
/// range, event and bounds do not make two invalidations one); a key may come
/// back once its invalidation ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RangeKey(usize);

impl RangeKey {
    /// A key made from a number, for tests of code that matches keys.
    pub const fn from_number(n: usize) -> Self {
        Self(n)
    }
}

/// The range of an invalidation (`struct mmu_notifier_range`), borrowed for
/// the duration of a callback.
///
/// # Invariants
///
/// `self.0` points to a valid `struct mmu_notifier_range` for `'a`.
pub struct Range<'a>(&'a bindings::mmu_notifier_range);

impl Range<'_> {
    /// First address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.0.start
    }

    /// One past the last address of the range.
    #[inline]
    pub fn end(&self) -> usize {
        self.0.end
    }

    /// The key of this invalidation, the same at its start and its end.
    #[inline]
    pub fn key(&self) -> RangeKey {
        RangeKey(core::ptr::from_ref(self.0) as usize)
    }

    /// Why the range is invalidated.
    #[inline]
    pub fn event(&self) -> Event {
        Event::from_raw(self.0.event)
    }

    /// The address space being invalidated.
    #[inline]
    pub fn mm(&self) -> &Mm {
        // SAFETY: The range's `mm` is the notifier's mm, kept alive (its
        // `mm_count`) by the registration for the duration of the callback.
        unsafe { Mm::from_raw(self.0.mm) }
    }

    /// Whether the callback may sleep.  When false (e.g. the OOM reaper),
    /// `invalidate_range_start` must not sleep and may fail with `EAGAIN`.
    #[inline]
    pub fn blockable(&self) -> bool {
        self.0.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }
}

/// The callbacks of a secondary MMU.  Every method has a default that does
/// nothing, as in C where the operation may be left `NULL`.
///
/// Callbacks run concurrently with each other, on any CPU, under SRCU.  None
/// of them may take the mmap lock or call GUP for this mm.
pub trait MmuNotifier: Send + Sync + Sized + 'static {
    /// The translations in `range` are about to change.  Runs before the CPU
    /// page tables are modified; may sleep only if [`Range::blockable`].
    /// Returning an error is only allowed for a non-blockable range, with
    /// `EAGAIN`; it makes the caller back off.
    fn invalidate_range_start(&self, _range: &Range<'_>) -> Result {
        Ok(())
    }

    /// The CPU page tables of `range` have been changed.  The CPU TLBs are
    /// *not* necessarily flushed yet: zap, munmap and mprotect flush in
    /// `tlb_finish_mmu()` after the range ends, `clear_refs` with
    /// `flush_tlb_mm()` after it; COW (`wp_page_copy()`, through
    /// `ptep_clear_flush()`) flushes before it.
    /// Paired with one successful `invalidate_range_start`.
    fn invalidate_range_end(&self, _range: &Range<'_>) {}

    /// The CPU TLBs of `[start, end)` are being flushed.  Called with the
    /// page-table lock held (may not sleep); `end` may be `usize::MAX` for a
    /// full flush.  The hook of devices that share the CPU page tables (SVA);
    /// only called on a [`Callbacks::SecondaryTlbs`] registration.
    fn arch_invalidate_secondary_tlbs(&self, _start: usize, _end: usize) {}

    /// The address space is going away (exit, or unregistration).  After this
    /// the other callbacks are not called again, and the device must stop
    /// using any translation of the mm.  May sleep.
    fn release(&self) {}

    /// Test and clear the accessed bit of `[start, end)`, with a TLB flush.
    fn clear_flush_young(&self, _start: usize, _end: usize) -> bool {
        false
    }

    /// Test and clear the accessed bit of `[start, end)`.
    fn clear_young(&self, _start: usize, _end: usize) -> bool {
        false
    }

    /// Test the accessed bit of `address`.
    fn test_young(&self, _address: usize) -> bool {
        false
    }
}

/// Which callbacks of an [`MmuNotifier`] a [`Registration`] receives.
///
/// The core mm refuses (with a warning) a subscription that has both
/// `arch_invalidate_secondary_tlbs` and `invalidate_range_start/end`: a
/// secondary MMU either shares the CPU page tables or shadows them.  A user
/// that wants to observe both registers twice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Callbacks {
    /// `invalidate_range_start/end`, the aging callbacks and `release`: a
    /// shadow page table.
    Range,
    /// `arch_invalidate_secondary_tlbs` and `release`: a device that walks
    /// the CPU page tables and caches their entries (SVA).
    SecondaryTlbs,
}

/// A registered [`MmuNotifier`]: callbacks run from creation until drop.
///
/// # Invariants
///
/// `notifier` is registered with `mm` (`mmu_notifier_register` succeeded) and
/// its `ops` are one of the tables of `Registration::<T>`; it stays registered until `drop`,
/// which unregisters it and waits for callbacks in flight.  `mm` is the mm it
/// is registered on.
#[pin_data(PinnedDrop)]
pub struct Registration<T: MmuNotifier> {
    #[pin]
    notifier: Opaque<bindings::mmu_notifier>,
    mm: ARef<Mm>,
    #[pin]
    data: T,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The registration only gives out `&T`, and `T: Send + Sync`; the C
// `struct mmu_notifier` is only touched by the mm core under its own locking.
unsafe impl<T: MmuNotifier> Send for Registration<T> {}
// SAFETY: As above: shared access only reaches `&T` and immutable fields.
unsafe impl<T: MmuNotifier> Sync for Registration<T> {}

impl<T: MmuNotifier> Registration<T> {
    const RANGE_OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Some(Self::release_c),
        clear_flush_young: Some(Self::clear_flush_young_c),
        clear_young: Some(Self::clear_young_c),
        test_young: Some(Self::test_young_c),
        invalidate_range_start: Some(Self::invalidate_range_start_c),
        invalidate_range_end: Some(Self::invalidate_range_end_c),
        arch_invalidate_secondary_tlbs: None,
        alloc_notifier: None,
        free_notifier: None,
    };

    const SECONDARY_TLBS_OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Some(Self::release_c),
        clear_flush_young: None,
        clear_young: None,
        test_young: None,
        invalidate_range_start: None,
        invalidate_range_end: None,
        arch_invalidate_secondary_tlbs: Some(Self::arch_invalidate_secondary_tlbs_c),
        alloc_notifier: None,
        free_notifier: None,
    };

    /// Initialises `data` and registers it as a notifier of `mm` for the
    /// group of callbacks `callbacks`.
    ///
    /// Takes the mmap lock for writing: the caller must not hold it.
    pub fn new<'a>(
        mm: &'a MmWithUser,
        callbacks: Callbacks,
        data: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(Self {
            mm: ARef::from(&**mm),
            data <- data,
            _pin: PhantomPinned,
            // INVARIANT: Callbacks may run as soon as registration succeeds:
            // `data` is initialised before `notifier` (field order above) and
            // the struct is pinned, so `container_of` reaches a valid `Self`.
            //
            // SAFETY: `ptr` is valid for writes of a `struct mmu_notifier`, for
            // which zero is valid; the ops tables are `'static` (promoted);
            // `mm_users > 0` (`MmWithUser`), as `mmu_notifier_register` needs.
            notifier <- Opaque::try_ffi_init(|ptr: *mut bindings::mmu_notifier| unsafe {
                ptr::write_bytes(ptr, 0, 1);
                (*ptr).ops = match callbacks {
                    Callbacks::Range => &Self::RANGE_OPS,
                    Callbacks::SecondaryTlbs => &Self::SECONDARY_TLBS_OPS,
                };
                to_result(bindings::mmu_notifier_register(ptr, mm.as_raw()))
            }),
        })
    }

    /// The callbacks' data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The mm this notifier is registered on.
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// Recovers the callbacks' data from the C notifier.
    ///
    /// # Safety
    ///
    /// `subscription` must be the `notifier` field of a live `Registration<T>`.
    unsafe fn data_of<'a>(subscription: *mut bindings::mmu_notifier) -> &'a T {
        let field = subscription.cast::<Opaque<bindings::mmu_notifier>>();
        // SAFETY: `Opaque` is `repr(transparent)`, so `field` points to the
        // `notifier` field of a `Registration<T>` per the safety requirement.
        let reg = unsafe { kernel::container_of!(field, Self, notifier) };
        // SAFETY: The registration is live (the mm core only calls a notifier
        // between register and the end of unregister) and only shared
        // references to it exist while callbacks run.
        unsafe { &(*reg).data }
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn invalidate_range_start_c(
        subscription: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) -> kernel::ffi::c_int {
        // SAFETY: The mm core passes the notifier registered with our ops,
        // which only `new` does, on a `Registration<T>`.
        let data = unsafe { Self::data_of(subscription) };
        // SAFETY: `range` is valid for the duration of the callback.
        let range = Range(unsafe { &*range });
        match data.invalidate_range_start(&range) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn invalidate_range_end_c(
        subscription: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) {
        // SAFETY: As in `invalidate_range_start_c`.
        let data = unsafe { Self::data_of(subscription) };
        // SAFETY: `range` is valid for the duration of the callback.
        data.invalidate_range_end(&Range(unsafe { &*range }));
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn arch_invalidate_secondary_tlbs_c(
        subscription: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        start: kernel::ffi::c_ulong,
        end: kernel::ffi::c_ulong,
    ) {
        // SAFETY: As in `invalidate_range_start_c`.
        let data = unsafe { Self::data_of(subscription) };
        data.arch_invalidate_secondary_tlbs(start, end);
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn release_c(
        subscription: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
    ) {
        // SAFETY: As in `invalidate_range_start_c`.
        unsafe { Self::data_of(subscription) }.release();
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn clear_flush_young_c(
        subscription: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        start: kernel::ffi::c_ulong,
        end: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: As in `invalidate_range_start_c`.
        unsafe { Self::data_of(subscription) }.clear_flush_young(start, end)
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn clear_young_c(
        subscription: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        start: kernel::ffi::c_ulong,
        end: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: As in `invalidate_range_start_c`.
        unsafe { Self::data_of(subscription) }.clear_young(start, end)
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn test_young_c(
        subscription: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        address: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: As in `invalidate_range_start_c`.
        unsafe { Self::data_of(subscription) }.test_young(address)
    }
}

#[pinned_drop]
impl<T: MmuNotifier> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // `mmu_notifier_unregister` calls `release` unless exit already did,
        // waits (synchronize_srcu) until no callback runs, so `data` may be
        // dropped right after, and drops the `mm_count` registration took.
        //
        // SAFETY: By the type invariant the notifier is registered on `mm`,
        // whose `mm_count` the registration holds (the struct is alive).
        unsafe { bindings::mmu_notifier_unregister(self.notifier.get(), self.mm.as_raw()) };
    }
}
