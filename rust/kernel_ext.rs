// SPDX-License-Identifier: GPL-2.0

//! What the 7.3 `kernel` crate lacks and this module needs.

pub(crate) mod debugfs_file;
pub(crate) mod file_cred;
pub mod flush_work;
pub mod mm_ext;
pub mod mmu_notifier;
pub(crate) mod transmute;
pub mod user_page;
