// SPDX-License-Identifier: GPL-2.0

//! A module as the provider of the CPU's nested-flush decision: the Rust side
//! of `<linux/mmu_gather_policy.h>`.
//!
//! `tlb_finish_mmu()` flushes the whole mm when another `mmu_gather` of the
//! same mm is pending.  The kernel series in `kernel/patches/` records the
//! range each gather was asked to cover and lets one registered provider
//! decide instead; with none registered the kernel's own rule applies.
//!
//! The kernel's ops table lives in C (`rust/tlbrace_gather_policy.c`), where
//! the compiler checks it against the kernel's header; its callbacks forward
//! here with the gather as a number ([`GatherKey`]) and the mm.  A
//! [`Policy`] implements the four callbacks as associated functions (the
//! kernel's hook has no private data: there is one provider), and a
//! [`Registration`] of it holds the hook until dropped.
//!
//! Local because the interface exists only in tlbrace's patched kernel.
//! Upstream it would be `kernel::mm::mmu_gather::Policy`, with bindgen
//! instead of the hand-written declarations below.

use core::{
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

use kernel::{bindings, mm::Mm, prelude::*};

/// A gather from open to close: its address, unique while it is open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GatherKey(usize);

impl GatherKey {
    /// A key for tests of code keyed by gathers.
    pub fn from_number(n: usize) -> Self {
        Self(n)
    }
}

/// What `tlb_finish_mmu()` flushes (`enum mmu_gather_flush`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flush {
    /// The kernel's rule: everything if another gather of the mm is
    /// pending, else what this gather cleared.
    Stock,
    /// What this gather cleared, nothing more.
    Gathered,
    /// What it cleared and `[start, end)` (bytes), page-table caches too.
    Range {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// The whole mm.
    All,
}

impl Flush {
    /// The `enum mmu_gather_flush` value (checked by the C side's
    /// `BUILD_BUG_ON`s).
    fn to_c(self) -> u32 {
        match self {
            Self::Stock => 0,
            Self::Gathered => 1,
            Self::Range { .. } => 2,
            Self::All => 3,
        }
    }
}

/// A provider of the nested-flush decision.
///
/// `open` and `closed` may be called in atomic context (an rmap walk under a
/// page-table lock): they must not sleep.  `hold` is called only where the
/// caller may sleep, and must return in bounded time (the caller may hold
/// the mmap lock).  Every `open` is followed by exactly one `closed` of the
/// same gather, also after the registration was dropped.
pub trait Policy: 'static {
    /// Gather `key` of `mm` opened, asked to cover `[start, end)` (bytes;
    /// `[0, usize::MAX)` when its caller did not say).
    fn open(key: GatherKey, mm: &Mm, start: usize, end: usize);
    /// Gather `key` entered `tlb_finish_mmu()`, before the decision.
    fn hold(key: GatherKey, mm: &Mm);
    /// What gather `key` flushes; `nested`: another gather of `mm` is
    /// pending (`mm_tlb_flush_nested()`); `may_sleep`: it may wait here.
    fn decide(key: GatherKey, mm: &Mm, nested: bool, may_sleep: bool) -> Flush;
    /// Gather `key` has flushed and is no longer pending.
    fn closed(key: GatherKey, mm: &Mm);
}

// `rust/tlbrace_gather_policy.h`.
extern "C" {
    fn tlbrace_gather_policy_register(
        open: unsafe extern "C" fn(usize, *mut bindings::mm_struct, usize, usize),
        hold: unsafe extern "C" fn(usize, *mut bindings::mm_struct),
        decide: unsafe extern "C" fn(
            usize,
            *mut bindings::mm_struct,
            bool,
            bool,
            *mut usize,
            *mut usize,
        ) -> u32,
        closed: unsafe extern "C" fn(usize, *mut bindings::mm_struct),
    ) -> i32;
    fn tlbrace_gather_policy_unregister();
}

/// Whether a [`Registration`] exists: the C side keeps one set of callbacks.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// # Safety
///
/// `mm` points at an `mm_struct` that stays allocated during the call: the
/// kernel calls with the mm of a gather it is running.
unsafe extern "C" fn open_cb<T: Policy>(
    key: usize,
    mm: *mut bindings::mm_struct,
    start: usize,
    end: usize,
) {
    // SAFETY: the function's safety requirement.
    let mm = unsafe { Mm::from_raw(mm) };
    T::open(GatherKey(key), mm, start, end);
}

/// # Safety
///
/// As [`open_cb`].
unsafe extern "C" fn hold_cb<T: Policy>(key: usize, mm: *mut bindings::mm_struct) {
    // SAFETY: the function's safety requirement.
    let mm = unsafe { Mm::from_raw(mm) };
    T::hold(GatherKey(key), mm);
}

/// # Safety
///
/// As [`open_cb`]; `start` and `end` are valid for writes (the kernel passes
/// the addresses of its locals).
unsafe extern "C" fn decide_cb<T: Policy>(
    key: usize,
    mm: *mut bindings::mm_struct,
    nested: bool,
    may_sleep: bool,
    start: *mut usize,
    end: *mut usize,
) -> u32 {
    // SAFETY: the function's safety requirement.
    let mm = unsafe { Mm::from_raw(mm) };
    let flush = T::decide(GatherKey(key), mm, nested, may_sleep);
    if let Flush::Range { start: s, end: e } = flush {
        // SAFETY: `start` is valid for writes (the function's requirement).
        unsafe { start.write(s) };
        // SAFETY: `end` is valid for writes (the function's requirement).
        unsafe { end.write(e) };
    }
    flush.to_c()
}

/// # Safety
///
/// As [`open_cb`].
unsafe extern "C" fn closed_cb<T: Policy>(key: usize, mm: *mut bindings::mm_struct) {
    // SAFETY: the function's safety requirement.
    let mm = unsafe { Mm::from_raw(mm) };
    T::closed(GatherKey(key), mm);
}

/// `T` as the kernel's mmu_gather policy provider, until dropped.
///
/// # Invariants
///
/// While it exists, `REGISTERED` is set and the kernel's hook calls `T`.
pub struct Registration<T: Policy> {
    _policy: PhantomData<T>,
}

impl<T: Policy> Registration<T> {
    /// Registers `T`.  `EBUSY` if this module or another provider holds the
    /// hook already.
    pub fn new() -> Result<Self> {
        if REGISTERED.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        // SAFETY: the callbacks have the C prototypes of
        // `tlbrace_gather_policy.h` and each keeps its safety requirement:
        // the kernel calls them with the mm of a running gather and, for
        // `decide`, the addresses of its locals.  `REGISTERED` was clear: no
        // other set of callbacks is in use.
        let ret = unsafe {
            tlbrace_gather_policy_register(
                open_cb::<T>,
                hold_cb::<T>,
                decide_cb::<T>,
                closed_cb::<T>,
            )
        };
        if ret != 0 {
            REGISTERED.store(false, Ordering::Release);
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: registered, with `REGISTERED` set.
        Ok(Self {
            _policy: PhantomData,
        })
    }
}

impl<T: Policy> Drop for Registration<T> {
    /// Gives the decision back to the kernel's rule; returns once no
    /// callback of `T` can run any more (it sleeps while gathers that saw
    /// `T` at open are still open).
    fn drop(&mut self) {
        // SAFETY: registered (the type invariant).
        unsafe { tlbrace_gather_policy_unregister() };
        REGISTERED.store(false, Ordering::Release);
    }
}
