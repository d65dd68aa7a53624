// SPDX-License-Identifier: GPL-2.0

//! debugfs directories and read-only files whose open pins the module.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h)
//!
//! Why this is local rather than `kernel::debugfs`: the 7.3 abstraction
//! builds its `file_operations` with a NULL `owner`, so opening one of its
//! files does not pin the module.  After `rmmod`, closing a file that was
//! held open runs `full_proxy_release()` on the unloaded module's operations
//! (`BUG: unable to handle page fault`, `RIP: full_proxy_release`).  Here the
//! operations carry `THIS_MODULE`: the debugfs core takes a module reference
//! for every open file (`fops_get()` in `full_proxy_open_regular()`), so
//! `rmmod` fails while one is open.  Files are created with the full proxy
//! (`debugfs_create_file_full()`), which refuses reads after removal, so the
//! data may go once the file is removed.

use core::{ffi::c_void, fmt, marker::PhantomData, ptr};

use kernel::{bindings, debugfs::Writer, prelude::*, seq_file::SeqFile, sync::Arc, ModuleMetadata};

/// A debugfs directory, removed with everything below it when dropped.
///
/// # Invariants
///
/// `dentry` is null, or was returned by `debugfs_create_dir()` and is
/// removed only by [`Drop`]; every [`File`] and [`Dir`] created below it
/// holds an [`Arc`] of it, so it is removed after them.
pub(crate) struct Dir {
    dentry: *mut bindings::dentry,
    _parent: Option<Arc<Dir>>,
}

// SAFETY: The dentry pointer is only passed to debugfs functions, which may be
// called from any thread.
unsafe impl Send for Dir {}
// SAFETY: `Dir` has no interior mutability; see `Send`.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates `name` under `parent` (under the debugfs root if `None`).  If
    /// debugfs is unavailable or `parent` failed, the directory is empty and
    /// nothing is created below it.
    pub(crate) fn new(name: &CStr, parent: Option<Arc<Dir>>) -> Result<Arc<Self>> {
        let dentry = match &parent {
            Some(p) if p.dentry.is_null() => ptr::null_mut(),
            _ => {
                let parent_dentry = parent.as_ref().map_or(ptr::null_mut(), |p| p.dentry);
                // SAFETY: `name` is NUL-terminated and outlives the call;
                // `parent_dentry` is null (the root) or a live directory by the
                // type invariant of the parent, which `parent` keeps alive.
                let d = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent_dentry) };
                if kernel::error::from_err_ptr(d).is_ok() {
                    d
                } else {
                    ptr::null_mut()
                }
            }
        };
        Ok(Arc::new(
            Self {
                dentry,
                _parent: parent,
            },
            GFP_KERNEL,
        )?)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `dentry` is null (a no-op) or ours and
        // not removed yet; everything below it was removed already.
        unsafe { bindings::debugfs_remove(self.dentry) };
    }
}

/// A read-only (0400) debugfs file showing what `T` writes.
///
/// # Invariants
///
/// `dentry` is null or was created by `debugfs_create_file_full()` with
/// [`OpsOf::OPS`] and a pointer to `*data` as private data, and is removed by
/// [`Drop`] before `_data` is freed.
pub(crate) struct File<T: Writer + Send + Sync + 'static> {
    dentry: *mut bindings::dentry,
    /// Read by the file's `show` through the inode's private data.
    _data: KBox<T>,
    _parent: Arc<Dir>,
}

// SAFETY: `T` is `Send`; the dentry pointer is only passed to debugfs.
unsafe impl<T: Writer + Send + Sync + 'static> Send for File<T> {}
// SAFETY: `T` is `Sync`; the file has no interior mutability of its own.
unsafe impl<T: Writer + Send + Sync + 'static> Sync for File<T> {}

impl<T: Writer + Send + Sync + 'static> File<T> {
    /// Creates `name` in `parent`, showing `data`.
    pub(crate) fn new(parent: &Arc<Dir>, name: &CStr, data: T) -> Result<Self> {
        let data = KBox::new(data, GFP_KERNEL)?;
        let dentry = if parent.dentry.is_null() {
            ptr::null_mut()
        } else {
            let private = ptr::from_ref::<T>(&data).cast_mut().cast::<c_void>();
            // `OPS` reads `private` as a `T` only while the file exists: the
            // full proxy refuses reads after removal and waits for those in
            // flight, and `Drop` removes the file before `data` is freed.
            // SAFETY: `name` is NUL-terminated; `parent.dentry` is a live
            // directory (invariant of `Dir`, kept alive by `_parent`); see above.
            let d = unsafe {
                bindings::debugfs_create_file_full(
                    name.as_char_ptr(),
                    0o400,
                    parent.dentry,
                    private,
                    ptr::null(),
                    &OpsOf::<T>::OPS,
                )
            };
            if kernel::error::from_err_ptr(d).is_ok() {
                d
            } else {
                ptr::null_mut()
            }
        };
        Ok(Self {
            dentry,
            _data: data,
            _parent: parent.clone(),
        })
    }
}

impl<T: Writer + Send + Sync + 'static> Drop for File<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `dentry` is null (a no-op) or ours and
        // not removed yet.  `debugfs_remove()` waits for the reads in flight,
        // so `_data` is unused once it returns; it is freed after this.
        unsafe { bindings::debugfs_remove(self.dentry) };
    }
}

/// The `file_operations` of a [`File<T>`].
struct OpsOf<T>(PhantomData<T>);

impl<T: Writer + Sync> OpsOf<T> {
    const OPS: bindings::file_operations = bindings::file_operations {
        owner: <crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr(),
        open: Some(open::<T>),
        read: Some(bindings::seq_read),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        ..pin_init::zeroed()
    };
}

/// `open` of a [`File<T>`]: a single-record seq file over the inode's `T`.
///
/// # Safety
///
/// Called by the VFS through [`OpsOf::OPS`]: `inode` and `file` are valid and
/// the inode's private data points to the live `T` of a [`File<T>`].
unsafe extern "C" fn open<T: Writer + Sync>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> kernel::ffi::c_int {
    // SAFETY: `inode` is valid by the function's safety requirement.
    let data = unsafe { (*inode).i_private };
    // SAFETY: `file` is valid; `show::<T>` is called with `data` as the
    // seq_file's private data, a `T` by this function's requirement.
    unsafe { bindings::single_open(file, Some(show::<T>), data) }
}

/// `show` of a [`File<T>`].
///
/// # Safety
///
/// `seq` is a live seq_file opened by [`open::<T>`], whose private data points
/// to a `T` that the debugfs full proxy keeps alive for this call.
unsafe extern "C" fn show<T: Writer + Sync>(
    seq: *mut bindings::seq_file,
    _v: *mut c_void,
) -> kernel::ffi::c_int {
    // SAFETY: `seq` is live by the safety requirement.
    let private = unsafe { (*seq).private };
    // SAFETY: `private` points to a live `T` (safety requirement); only
    // shared references to it exist.
    let data = unsafe { &*private.cast::<T>() };
    // SAFETY: `seq` is a live seq_file for the duration of this call.
    let seq = unsafe { SeqFile::from_raw(seq) };
    seq.call_printf(format_args!("{}", Shown(data)));
    0
}

/// Shows a [`Writer`] through `core::fmt::Display`.
struct Shown<'a, T>(&'a T);

impl<T: Writer> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f)
    }
}
