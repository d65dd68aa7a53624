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
//! The KUnit suite `tlbrace_mmu_notifier` at the end of this file is the
//! example, compiled and run: a notifier that counts its callbacks
//! (implementing only `invalidate_range_start`, `invalidate_range_end` and
//! `release`, so the others stay `NULL`), registered with
//! [`Registration::new`] on an mm, seeing the `munmap` of a page.  (Doctests
//! of an out-of-tree module are never built: the kernel turns only the
//! `kernel` crate's into KUnit tests.)

use core::marker::{PhantomData, PhantomPinned};

use kernel::{
    bindings,
    error::{to_result, VTABLE_DEFAULT_ERROR},
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
/// `self.0` is a valid `struct mmu_notifier_range` whose `mm` is kept alive
/// (its `mm_count`) for `'a`.
pub struct Range<'a>(&'a bindings::mmu_notifier_range);

impl<'a> Range<'a> {
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
        // SAFETY: The range's `mm` is alive for `'a` (type invariant).
        unsafe { Mm::from_raw(self.0.mm) }
    }

    /// Whether the callback may sleep.  When false (e.g. the OOM reaper),
    /// the callbacks must not sleep, and
    /// [`MmuNotifier::try_invalidate_range_start`] may refuse the range.
    #[inline]
    pub fn blockable(&self) -> bool {
        self.0.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }

    /// A refusal of this range, for
    /// [`MmuNotifier::try_invalidate_range_start`] to return; `None` if the
    /// range is blockable (the caller can wait, so the notifier must).
    #[inline]
    pub fn refuse(&self) -> Option<Refusal<'a>> {
        // INVARIANT: Made only for a range that is not blockable.
        (!self.blockable()).then_some(Refusal(PhantomData))
    }
}

/// A refusal of a non-blockable invalidation: the core's `-EAGAIN`, the one
/// error it accepts from `invalidate_range_start`, see
/// [`MmuNotifier::try_invalidate_range_start`].
///
/// Only [`Range::refuse`] makes one, for that range and only if it is not
/// blockable; the lifetime ties it to the callback's range (it is invariant,
/// so a refusal kept from another callback does not type-check).
///
/// # Invariants
///
/// Made for a range that is not blockable.
pub struct Refusal<'a>(PhantomData<fn(&'a ()) -> &'a ()>);

/// The callbacks of a secondary MMU.
///
/// Each callback is optional: the `#[vtable]` leaves the entries of the
/// callbacks a type does not implement `NULL` in the C ops table, as in C,
/// so the core skips them (a `NULL` aging callback reports "not young").
///
/// Callbacks run concurrently with each other, on any CPU, under SRCU.  None
/// of them may take the mmap lock or call GUP for this mm.
///
/// # Start errors
///
/// The core accepts an error from `invalidate_range_start` only for a range
/// that is not blockable, only `-EAGAIN`, and only from a notifier without
/// `invalidate_range_end`; anything else is a `WARN_ON` in
/// `mn_hlist_invalidate_range_start()` (the core then calls the end of every
/// notifier that has one, including the one that failed: it cannot tell).
/// Here no error can reach that `WARN_ON`:
///
/// - [`MmuNotifier::invalidate_range_start`] cannot fail;
/// - [`MmuNotifier::try_invalidate_range_start`] may fail only with a
///   [`Refusal`], which only a non-blockable [`Range`] gives out and which
///   becomes `-EAGAIN`; a type that implements it may implement neither of
///   the other two range callbacks (checked at compile time).
#[vtable]
pub trait MmuNotifier: Send + Sync + Sized + 'static {
    /// The translations in `range` are about to change.  Runs before the CPU
    /// page tables are modified; may sleep only if [`Range::blockable`].
    fn invalidate_range_start(&self, _range: &Range<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// As [`MmuNotifier::invalidate_range_start`], but may refuse a range
    /// that is not blockable (e.g. from the OOM reaper) when it cannot
    /// invalidate without sleeping: the caller backs off and tries again
    /// later.  Gets no `invalidate_range_end`: a type that implements this
    /// implements neither `invalidate_range_start` nor `invalidate_range_end`
    /// (a compile-time error otherwise).
    fn try_invalidate_range_start<'a>(&self, _range: &Range<'a>) -> Result<(), Refusal<'a>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The CPU page tables of `range` have been changed.  The CPU TLBs are
    /// *not* necessarily flushed yet: zap, munmap and mprotect flush in
    /// `tlb_finish_mmu()` after the range ends, `clear_refs` with
    /// `flush_tlb_mm()` after it; COW (`wp_page_copy()`, through
    /// `ptep_clear_flush()`) flushes before it.
    ///
    /// Usually paired with one `invalidate_range_start` of the same range
    /// (the same [`Range::key`]), but an invalidation in progress when the
    /// notifier is removed (see [`MmuNotifier::release`]) ends without it.
    fn invalidate_range_end(&self, _range: &Range<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The CPU TLBs of `[start, end)` are being flushed.  Called with the
    /// page-table lock held (may not sleep); `end` may be `usize::MAX` for a
    /// full flush.  The hook of devices that share the CPU page tables (SVA);
    /// only called on a [`Callbacks::SecondaryTlbs`] registration.
    fn arch_invalidate_secondary_tlbs(&self, _start: usize, _end: usize) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The address space is going away: called by `exit_mmap()` before the
    /// pages of the mm are freed, or on unregistration (dropping the
    /// [`Registration`]) if exit has not called it.  From now on the device
    /// must not establish translations of the mm, and must drop those it
    /// has.  May sleep.
    ///
    /// It is not the last callback.  The notifier leaves the mm's list only
    /// after `release` returns, so other callbacks may run concurrently with
    /// it and after it (an invalidation that started earlier on another CPU,
    /// or rmap walks such as truncation, which do not need the exiting
    /// task): only the end of the [`Registration`] waits for them.  An
    /// invalidation whose `invalidate_range_start` ran before the removal
    /// may never get its `invalidate_range_end`.  If exit and unregistration
    /// race, `release` may even run twice, concurrently.
    fn release(&self) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Test and clear the accessed bit of `[start, end)`, with a TLB flush.
    fn clear_flush_young(&self, _start: usize, _end: usize) -> bool {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Test and clear the accessed bit of `[start, end)`.
    fn clear_young(&self, _start: usize, _end: usize) -> bool {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Test the accessed bit of `address`.
    fn test_young(&self, _address: usize) -> bool {
        build_error!(VTABLE_DEFAULT_ERROR)
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
    /// The `invalidate_range_start` entry: at most one of the two start
    /// callbacks, and none next to an end if it may refuse (see "Start errors"
    /// on [`MmuNotifier`]).
    const RANGE_START: Option<
        unsafe extern "C" fn(
            *mut bindings::mmu_notifier,
            *const bindings::mmu_notifier_range,
        ) -> kernel::ffi::c_int,
    > = {
        assert!(
            !(T::HAS_TRY_INVALIDATE_RANGE_START
                && (T::HAS_INVALIDATE_RANGE_START || T::HAS_INVALIDATE_RANGE_END)),
            "an MmuNotifier that may refuse a start has no other range callback"
        );
        if T::HAS_TRY_INVALIDATE_RANGE_START {
            Some(Self::try_invalidate_range_start_c)
        } else if T::HAS_INVALIDATE_RANGE_START {
            Some(Self::invalidate_range_start_c)
        } else {
            None
        }
    };

    /// The `release` entry, of both groups of callbacks.
    const RELEASE: Option<
        unsafe extern "C" fn(*mut bindings::mmu_notifier, *mut bindings::mm_struct),
    > = if T::HAS_RELEASE {
        Some(Self::release_c)
    } else {
        None
    };

    /// The ops of a [`Callbacks::Range`] registration: `NULL` where `T` has
    /// no callback.
    const RANGE_OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Self::RELEASE,
        clear_flush_young: if T::HAS_CLEAR_FLUSH_YOUNG {
            Some(Self::clear_flush_young_c)
        } else {
            None
        },
        clear_young: if T::HAS_CLEAR_YOUNG {
            Some(Self::clear_young_c)
        } else {
            None
        },
        test_young: if T::HAS_TEST_YOUNG {
            Some(Self::test_young_c)
        } else {
            None
        },
        invalidate_range_start: Self::RANGE_START,
        invalidate_range_end: if T::HAS_INVALIDATE_RANGE_END {
            Some(Self::invalidate_range_end_c)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// The ops of a [`Callbacks::SecondaryTlbs`] registration.
    const SECONDARY_TLBS_OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Self::RELEASE,
        arch_invalidate_secondary_tlbs: if T::HAS_ARCH_INVALIDATE_SECONDARY_TLBS {
            Some(Self::arch_invalidate_secondary_tlbs_c)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// The ops table of a registration for `callbacks`.
    const fn ops(callbacks: Callbacks) -> &'static bindings::mmu_notifier_ops {
        match callbacks {
            Callbacks::Range => &Self::RANGE_OPS,
            Callbacks::SecondaryTlbs => &Self::SECONDARY_TLBS_OPS,
        }
    }

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
            notifier <- Opaque::try_ffi_init(move |ptr: *mut bindings::mmu_notifier| {
                let notifier = bindings::mmu_notifier {
                    ops: Self::ops(callbacks),
                    ..pin_init::zeroed()
                };
                // SAFETY: `try_ffi_init` passes a pointer valid for writes.
                unsafe { ptr.write(notifier) };
                // SAFETY: `ptr` is an initialised `struct mmu_notifier` that
                // stays pinned (in `Self`) until `drop` unregisters it; its
                // ops table is `'static`; `mm_users > 0` (`MmWithUser`), as
                // `mmu_notifier_register` needs.
                to_result(unsafe { bindings::mmu_notifier_register(ptr, mm.as_raw()) })
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
        // INVARIANT: The range's `mm` is the notifier's, whose `mm_count`
        // the registration holds, and the `Range` does not outlive the call.
        // SAFETY: The core passes a `range` valid for the duration of the
        // callback.
        data.invalidate_range_start(&Range(unsafe { &*range }));
        0
    }

    /// C trampoline of the `mmu_notifier_ops` entry.
    ///
    /// # Safety
    ///
    /// `subscription` is the notifier of a live `Registration<T>` and the
    /// other pointers are valid for the call, as the mm core guarantees.
    unsafe extern "C" fn try_invalidate_range_start_c(
        subscription: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) -> kernel::ffi::c_int {
        // SAFETY: As in `invalidate_range_start_c`.
        let data = unsafe { Self::data_of(subscription) };
        // INVARIANT: As in `invalidate_range_start_c`.
        // SAFETY: As in `invalidate_range_start_c`.
        let range = Range(unsafe { &*range });
        refusal_to_errno(data.try_invalidate_range_start(&range))
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
        // INVARIANT: As in `invalidate_range_start_c`.
        // SAFETY: As in `invalidate_range_start_c`.
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
        let data = unsafe { Self::data_of(subscription) };
        data.release();
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
        let data = unsafe { Self::data_of(subscription) };
        data.clear_flush_young(start, end)
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
        let data = unsafe { Self::data_of(subscription) };
        data.clear_young(start, end)
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
        let data = unsafe { Self::data_of(subscription) };
        data.test_young(address)
    }
}

/// The return value of `invalidate_range_start` for the result of
/// [`MmuNotifier::try_invalidate_range_start`]: `-EAGAIN` for a refusal, the
/// only error the core accepts (and only for a non-blockable range, the only
/// range a [`Refusal`] is made for).
fn refusal_to_errno(result: Result<(), Refusal<'_>>) -> kernel::ffi::c_int {
    match result {
        Ok(()) => 0,
        Err(Refusal(_)) => EAGAIN.to_errno(),
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

#[kernel::macros::kunit_tests(tlbrace_mmu_notifier)]
mod tests {
    use super::*;
    use core::ptr;
    use kernel::{
        page::PAGE_SIZE,
        sync::{
            atomic::{Atomic, Relaxed},
            Arc,
        },
    };

    // `include/uapi/asm-generic/mman-common.h`, not in the bindings.
    const PROT_READ: usize = 0x1;
    const PROT_WRITE: usize = 0x2;
    const MAP_PRIVATE: usize = 0x02;
    const MAP_ANONYMOUS: usize = 0x20;

    /// What a [`Counter`] saw: the invalidations of the page at `page` (an
    /// unmap, blockable, ended with the key it started with), the releases.
    struct Counts {
        page: Atomic<usize>,
        key: Atomic<usize>,
        starts: Atomic<u32>,
        ends: Atomic<u32>,
        releases: Atomic<u32>,
    }

    /// Counts into [`Counts`], which outlive the registration.
    struct Counter(Arc<Counts>);

    impl Counter {
        fn covers_page(&self, range: &Range<'_>) -> bool {
            let page = self.0.page.load(Relaxed);
            page != 0
                && range.start() <= page
                && page + PAGE_SIZE <= range.end()
                && range.event() == Event::Unmap
                && range.blockable()
        }
    }

    #[vtable]
    impl MmuNotifier for Counter {
        fn invalidate_range_start(&self, range: &Range<'_>) {
            if self.covers_page(range) {
                self.0.key.store(range.key().0, Relaxed);
                self.0.starts.add(1, Relaxed);
            }
        }

        fn invalidate_range_end(&self, range: &Range<'_>) {
            if self.covers_page(range) && self.0.key.load(Relaxed) == range.key().0 {
                self.0.ends.add(1, Relaxed);
            }
        }

        fn release(&self) {
            self.0.releases.add(1, Relaxed);
        }
    }

    /// Refuses every non-blockable range.
    struct Refuser;

    #[vtable]
    impl MmuNotifier for Refuser {
        fn try_invalidate_range_start<'a>(&self, range: &Range<'a>) -> Result<(), Refusal<'a>> {
            range.refuse().map_or(Ok(()), Err)
        }
    }

    /// Gives the KUnit thread an mm, kept until the thread exits.
    fn attach_mm() -> Result {
        // SAFETY: No precondition; attaches a new mm unless the thread has one.
        to_result(unsafe { bindings::kunit_attach_mm() })
    }

    /// Maps an anonymous private page in the current mm.
    fn map_page() -> Result<usize> {
        // SAFETY: The current thread has an mm (`attach_mm`); a NULL file
        // with `MAP_ANONYMOUS` maps anonymous memory anywhere.
        let addr = unsafe {
            bindings::vm_mmap(
                ptr::null_mut(),
                0,
                PAGE_SIZE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                0,
            )
        };
        // An error is returned as a negative errno.
        if addr > usize::MAX - 4096 {
            return Err(Error::from_errno(addr as i32));
        }
        Ok(addr)
    }

    /// Unmaps the page `map_page` returned.
    fn unmap_page(addr: usize) -> Result {
        // SAFETY: Unmapping a user range of the current mm has no
        // precondition; nothing in the kernel points into it.
        to_result(unsafe { bindings::vm_munmap(addr, PAGE_SIZE) })
    }

    #[test]
    fn sees_an_unmap() -> Result {
        attach_mm()?;
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let counts = Arc::new(
            Counts {
                page: Atomic::new(0),
                key: Atomic::new(0),
                starts: Atomic::new(0),
                ends: Atomic::new(0),
                releases: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let counter = Counter(counts.clone());
        let reg = KBox::pin_init(
            Registration::new(mm, Callbacks::Range, Ok(counter)),
            GFP_KERNEL,
        )?;
        let addr = map_page()?;
        counts.page.store(addr, Relaxed);
        unmap_page(addr)?;
        assert_eq!(counts.starts.load(Relaxed), 1);
        assert_eq!(counts.ends.load(Relaxed), 1);
        assert_eq!(counts.releases.load(Relaxed), 0);
        // Unregistering calls `release`, as exit has not.
        drop(reg);
        assert_eq!(counts.releases.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn unimplemented_callbacks_are_null() {
        let ops = Registration::<Counter>::ops(Callbacks::Range);
        assert!(ops.invalidate_range_start.is_some());
        assert!(ops.invalidate_range_end.is_some());
        assert!(ops.release.is_some());
        assert!(ops.clear_flush_young.is_none());
        assert!(ops.clear_young.is_none());
        assert!(ops.test_young.is_none());
        assert!(ops.arch_invalidate_secondary_tlbs.is_none());
        let ops = Registration::<Counter>::ops(Callbacks::SecondaryTlbs);
        assert!(ops.release.is_some());
        assert!(ops.invalidate_range_start.is_none());
        assert!(ops.invalidate_range_end.is_none());
        assert!(ops.arch_invalidate_secondary_tlbs.is_none());
        // A notifier that may refuse has a start and no end.
        let ops = Registration::<Refuser>::ops(Callbacks::Range);
        assert!(ops.invalidate_range_start.is_some());
        assert!(ops.invalidate_range_end.is_none());
        assert!(ops.release.is_none());
    }

    #[test]
    fn only_a_nonblockable_range_is_refused() -> Result {
        attach_mm()?;
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        // INVARIANT: `raw.mm` is the current mm, alive while the test runs.
        let mut raw = bindings::mmu_notifier_range {
            mm: mm.as_raw(),
            flags: bindings::MMU_NOTIFIER_RANGE_BLOCKABLE,
            ..Default::default()
        };
        assert!(Refuser.try_invalidate_range_start(&Range(&raw)).is_ok());
        raw.flags = 0;
        let range = Range(&raw);
        let refused = Refuser.try_invalidate_range_start(&range);
        assert!(refused.is_err());
        assert_eq!(refusal_to_errno(refused), EAGAIN.to_errno());
        assert_eq!(refusal_to_errno(Ok(())), 0);
        Ok(())
    }
}
