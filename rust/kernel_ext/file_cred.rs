// SPDX-License-Identifier: GPL-2.0

//! What the opener of a file may see, judged from the credentials it was
//! opened with (not the caller's at each ioctl), as `/proc/pid/pagemap` does
//! for page frame numbers.
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h)
//!
//! Local because the 7.3 `kernel` crate has no capability checks.

use kernel::{bindings, fs::File};

/// Whether `file` was opened with `CAP_SYS_ADMIN` in the initial user
/// namespace: the rule under which pagemap shows page frame numbers.
pub(crate) fn opener_may_see_pfns(file: &File) -> bool {
    let init_user_ns = &raw mut bindings::init_user_ns;
    // SAFETY: `file` is a live `struct file` (the reference keeps it so);
    // `init_user_ns` is a static object that lives forever, and
    // `file_ns_capable()` only reads it and the file's credentials.
    unsafe {
        bindings::file_ns_capable(file.as_ptr(), init_user_ns, bindings::CAP_SYS_ADMIN as i32)
    }
}
