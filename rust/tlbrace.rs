// SPDX-License-Identifier: GPL-2.0

//! tlbrace: a fake device with its own TLB, to make TLB-flush races visible.
//!
//! This file only wires the module together: it registers the `/dev/tlbrace`
//! misc device whose per-open state lives in [`file`].  Each open file is a
//! [`device::Device`] attached to the opener's mm through the
//! [`mmu_notifier`] abstraction; [`engine`] performs device accesses through
//! the [`dtlb`] and [`dpt`], under the selected [`contract`].

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

mod contract;
mod debugfs;
mod debugfs_file;
mod device;
mod dpt;
mod dtlb;
mod engine;
mod file;
mod file_cred;
pub mod flush_work;
mod gather;
mod inject;
pub mod mm_ext;
pub mod mmu_notifier;
mod requester;
mod staleness;
mod stats;
mod tracker;
mod translation;
mod uapi;
pub mod user_page;
mod worker;

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
        try_pin_init!(Self {
            _debugfs: debugfs::Root::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"tlbrace" }),
        })
    }
}
