// SPDX-License-Identifier: GPL-2.0

//! On whose behalf the device works: the task in a synchronous ioctl, or
//! the device worker running a queued job.  This decides how a device fault
//! may wait, and what stops a long operation.
//!
//! A task's fault waits as the task's own CPU access would (for I/O, for a
//! userfaultfd monitor: [`UserPage::get`]).  The worker is a kworker:
//! nothing can interrupt it, and closing the file waits for it, so its
//! faults never wait for user space ([`UserPage::get_unattended`]) and
//! closing is what stops it.

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::{current, mm::MmWithUser, prelude::*};

use crate::user_page::UserPage;

/// Who a device access or fault is for.
#[derive(Clone, Copy)]
pub(crate) enum Requester<'a> {
    /// The current task, in a synchronous ioctl.
    Task,
    /// The device worker; set `cancelled` stops it.
    Worker { cancelled: &'a AtomicBool },
}

impl Requester<'_> {
    /// The error to stop with, if the requester asks to stop: `EINTR` for
    /// a task with a signal pending, `ECANCELED` for a cancelled job.
    pub(crate) fn stop(self) -> Option<Error> {
        match self {
            Self::Task => current!().signal_pending().then_some(EINTR),
            Self::Worker { cancelled } => cancelled.load(Ordering::Acquire).then_some(ECANCELED),
        }
    }

    /// A device fault at `addr` of `mm`, for writing if `write`, waiting as
    /// the requester may.
    pub(crate) fn fault_in(self, mm: &MmWithUser, addr: usize, write: bool) -> Result<UserPage> {
        match self {
            Self::Task => UserPage::get(mm, addr, write),
            Self::Worker { .. } => UserPage::get_unattended(mm, addr, write),
        }
    }
}
