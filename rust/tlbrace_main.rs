// SPDX-License-Identifier: GPL-2.0

//! tlbrace: a fake device with its own TLB, to make TLB-flush races visible.
//!
//! This file only wires the module together: it registers the `/dev/tlbrace`
//! misc device whose per-open state lives in [`file`].  Each open file is a
//! [`device::Device`] attached to the opener's mm through the
//! [`mmu_notifier`] abstraction; [`engine`] performs device accesses through
//! the [`dtlb`] and [`dpt`], under the selected [`contract`].

// Every `unsafe` block holds one unsafe operation, so that its `SAFETY`
// comment argues for exactly that one.
#![deny(clippy::multiple_unsafe_ops_per_block)]

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

mod contract;
#[cfg(CONFIG_MMU_GATHER_POLICY)]
mod cpu_path;
mod debugfs;
mod device;
mod dpt;
mod dtlb;
mod engine;
mod file;
mod hold_budget;
mod inject;
pub mod kernel_ext;
mod mmu;
mod requester;
mod staleness;
mod stats;
mod trace;
mod tracker;
mod translation;
mod uapi;
mod worker;

// Driver code names these as it would name `kernel::…`.
#[cfg(CONFIG_MMU_GATHER_POLICY)]
use kernel_ext::mmu_gather_policy;
use kernel_ext::{debugfs_file, file_cred, flush_work, mm_ext, mmu_notifier, task_ext, user_page};

module! {
    type: TlbraceModule,
    name: "tlbrace",
    authors: ["The tlbrace developers"],
    description: "Fake device with its own TLB, for TLB-flush races",
    license: "GPL",
}

#[pin_data]
struct TlbraceModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<file::TlbraceFile>,
    // Dropped after the misc device: no file can be open any more.
    _debugfs: debugfs::Root,
}

impl kernel::InPlaceModule for TlbraceModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("ABI version {}\n", uapi::TLBRACE_ABI_VERSION);
        // Before the misc device: parks need it as soon as a file is open.
        hold_budget::init();
        #[cfg(CONFIG_MMU_GATHER_POLICY)]
        cpu_path::init();
        try_pin_init!(Self {
            _debugfs: debugfs::Root::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"tlbrace" }),
        })
    }
}
