// SPDX-License-Identifier: GPL-2.0

//! Trace events defined by a module's own C file, called from its Rust code.
//!
//! `kernel::tracepoint::declare_trace!` finds a tracepoint's static key and
//! its `rust_do_trace_*()` entry point in `kernel::bindings`, which bindgen
//! generates from in-tree headers only: the events a module defines itself
//! (`TRACE_EVENT()` in one of its C files, compiled with
//! `CREATE_RUST_TRACE_POINTS`) are not there.  [`declare_module_trace!`]
//! declares both itself and otherwise does what `declare_trace!` does: a
//! disabled event costs a static key test and no call into C (one patched
//! branch with `CONFIG_JUMP_LABEL`, a `static_key_count()` call without).
//!
//! The functions it makes are safe to call: every argument is a [`Scalar`],
//! for which any value is valid, and the events only copy them into the ring
//! buffer.  What Rust cannot check is that the declaration matches the C
//! `TP_PROTO()`; the invocation promises it, in an `unsafe { }` with a
//! `// SAFETY:` comment.
//!
//! Upstream: `declare_trace!` taking the path of the bindings that hold the
//! events (a module's own bindgen output), with this scalar-only safe form.

/// Types a trace event declared by [`declare_module_trace!`] may take: C
/// scalars, any value of which is a valid argument.
pub(crate) trait Scalar: Copy + private::Sealed {}

mod private {
    /// Keeps [`super::Scalar`] to the types this file implements it for.
    pub(crate) trait Sealed {}
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl private::Sealed for $t {}
        impl Scalar for $t {}
    )*};
}
scalar!(u8, u16, u32, u64, i8, i16, i32, i64, usize, isize, bool);

/// Compiles only for a [`Scalar`] `T`: the argument check of
/// [`declare_module_trace!`].
#[doc(hidden)]
#[inline(always)]
pub(crate) const fn assert_scalar<T: Scalar>() {}

/// Declares safe Rust functions for trace events a C file of this module
/// defines with `CREATE_TRACE_POINTS` and `CREATE_RUST_TRACE_POINTS`: per
/// event `name(args)`, which records it if it is enabled, and
/// `name_enabled()`, for arguments worth computing only then.
///
/// ```ignore
/// declare_module_trace! {
///     // SAFETY: my_events.h declares `my_event` with `TP_PROTO(u32 a, u64 b)`.
///     unsafe {
///         pub(crate) fn my_event(a: u32, b: u64);
///     }
/// }
/// ```
macro_rules! declare_module_trace {
    (unsafe {$(
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?);
    )*}) => {$(
        ::kernel::macros::paste! {
            #[cfg(CONFIG_TRACEPOINTS)]
            // `struct tracepoint` holds a bindgen array type rustc calls not
            // FFI-safe; Rust only ever takes the static's address.  `mut`, as
            // in bindgen's output: C writes to it (the key's count, the
            // probes), so Rust may not assume it immutable.
            #[allow(improper_ctypes)]
            extern "C" {
                static mut [<__tracepoint_ $name>]: ::kernel::bindings::tracepoint;
                fn [<rust_do_trace_ $name>]($($arg: $ty),*);
            }

            /// Whether the event is enabled (a static key test).
            #[inline(always)]
            #[allow(dead_code)]
            $vis fn [<$name _enabled>]() -> bool {
                #[cfg(CONFIG_TRACEPOINTS)]
                {
                    // SAFETY: `__tracepoint_<name>` is the `struct
                    // tracepoint` the module's C file defines for this event
                    // (the invocation's promise), so its `key` is a real
                    // static key.  The macro only takes its address
                    // (`addr_of!`, no reference to the `static mut`) and
                    // reads the key the way C does, atomically.
                    unsafe {
                        ::kernel::jump_label::static_branch_unlikely!(
                            [<__tracepoint_ $name>],
                            ::kernel::bindings::tracepoint,
                            key
                        )
                    }
                }
                #[cfg(not(CONFIG_TRACEPOINTS))]
                false
            }

            $(#[$attr])*
            #[inline(always)]
            $vis fn $name($($arg: $ty),*) {
                $( const { $crate::kernel_ext::tracepoint::assert_scalar::<$ty>() }; )*
                #[cfg(CONFIG_TRACEPOINTS)]
                if [<$name _enabled>]() {
                    // SAFETY: the C function takes exactly these scalar
                    // arguments (the invocation's promise), any value of
                    // which is valid; it only records them.
                    unsafe { [<rust_do_trace_ $name>]($($arg),*) };
                }
                #[cfg(not(CONFIG_TRACEPOINTS))]
                {
                    $( let _ = $arg; )*
                }
            }
        }
    )*};
}
pub(crate) use declare_module_trace;
