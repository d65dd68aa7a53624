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
    /// Set when the CPUs flushed the page since the fill (a flush covering
    /// it, or one that raced with the fill's walk): the translation must be
    /// compared with the CPU page table before its next use.  Holds the event
    /// of the flush.
    pub(crate) flagged: Option<Event>,
    /// The oracle's verdict on a flagged translation: the CPUs flushed after
    /// its page-table entry changed, so every use from now on is a stale
    /// access.  Holds the event.
    pub(crate) stale: Option<Event>,
}

impl Translation {
    /// Whether the translation allows the access.
    pub(crate) fn permits(&self, write: bool) -> bool {
        self.writable || !write
    }
}
