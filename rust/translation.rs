// SPDX-License-Identifier: GPL-2.0

//! A cached translation of one page, as held by the dPT and the dTLB.

use kernel::sync::Arc;

use crate::{mmu_notifier::Event, user_page::UserPage};

/// Virtual page number: a user address shifted right by `PAGE_SHIFT`.
pub(crate) type Vpn = usize;

/// One page's translation.
#[derive(Clone)]
pub(crate) struct Translation {
    /// The page it maps; the reference keeps the page allocated.
    pub(crate) page: Arc<UserPage>,
    /// Filled by a write fault: device writes may use it.
    pub(crate) writable: bool,
    /// The device wrote through it.
    pub(crate) dirty: bool,
    /// The device used it since the last aging.
    pub(crate) accessed: bool,
    /// Device-wide fill counter at the time of the fill.
    pub(crate) fill_gen: u64,
    /// Set when an invalidation covering the page completed after the fill:
    /// any use from then on is a stale access.  Holds the invalidation's event.
    pub(crate) stale: Option<Event>,
    /// Set when the CPUs flushed the page inside an invalidation still in
    /// progress: a use from then on is an *early* stale access (the CPUs
    /// already stopped using the translation, the invalidation has not yet
    /// completed).
    pub(crate) flushed: Option<Event>,
}

impl Translation {
    /// Whether the translation allows the access.
    pub(crate) fn permits(&self, write: bool) -> bool {
        self.writable || !write
    }
}
