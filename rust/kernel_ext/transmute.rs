// SPDX-License-Identifier: GPL-2.0

//! [`FromBytes`] and [`AsBytes`] for types whose byte-level properties
//! zerocopy's derives prove at compile time.
//!
//! `UserSliceReader::read` and `UserSliceWriter::write` take the
//! `kernel::transmute` traits, which a driver implements with an
//! `unsafe impl` and a claim ("no padding") that nothing checks.  7.3 also
//! ships zerocopy, whose `#[derive(FromBytes, IntoBytes, Immutable)]` check
//! exactly those properties, but no bridge between the two: upstream would
//! implement the `kernel::transmute` traits for zerocopy's (or have
//! `uaccess` take zerocopy's); [`impl_from_zerocopy!`] does it per type.
//!
//! C header: [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h)

#[allow(unused_imports)] // For the links of the documentation.
use kernel::transmute::{AsBytes, FromBytes};

/// Implements [`FromBytes`] and [`AsBytes`] for each type, which must
/// implement zerocopy's `FromBytes`, `IntoBytes` and `Immutable` (derive
/// them): a type that does not fails to compile.
macro_rules! impl_from_zerocopy {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: `$t: zerocopy::FromBytes` (the bound, which the compiler
        // checks) means that every bit pattern is a valid `$t`, and
        // `Immutable` that it has no interior mutability, as `FromBytes`
        // requires.
        unsafe impl ::kernel::transmute::FromBytes for $t
        where
            $t: ::zerocopy::FromBytes + ::zerocopy::Immutable,
        {
        }
        // SAFETY: `$t: zerocopy::IntoBytes` means that no byte of a `$t`
        // is uninitialised (no padding), and `Immutable` that it has no
        // interior mutability, as `AsBytes` requires.
        unsafe impl ::kernel::transmute::AsBytes for $t
        where
            $t: ::zerocopy::IntoBytes + ::zerocopy::Immutable,
        {
        }
    )*};
}
pub(crate) use impl_from_zerocopy;
