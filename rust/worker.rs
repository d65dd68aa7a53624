// SPDX-License-Identifier: GPL-2.0

//! The device worker: runs a queued access job on the unbound system
//! workqueue (a job may run for long; it must not hold up per-CPU work)
//! while the process does other work, as a real device executes its command
//! queue concurrently with the CPU.
//!
//! One job at a time: queued by `TLBRACE_IOC_READ/WRITE/CAS` with
//! `TLBRACE_ACCESS_ASYNC`, collected by `TLBRACE_IOC_WAIT`.  The job holds
//! the mm with `mmgrab()` and takes `mmget_not_zero()` only while it runs, so
//! a queued job never keeps an exiting process's memory alive.  Closing the
//! file cancels the job and flushes the work item, which is bounded: the job
//! checks for cancellation before every word and in every wait of a fault,
//! and its faults never wait for user space (see `requester.rs`).
//!
//! Lock order: `Worker::job` is never held while the device's MMU lock is
//! taken (the job runs with the slot unlocked).

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::{
    impl_has_work,
    mm::Mm,
    new_condvar, new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, CondVar, CondVarTimeoutResult, Mutex},
    time::msecs_to_jiffies,
    workqueue::{self, WorkItem},
};

use crate::{
    device::Device,
    engine::{Batch, BatchResult},
    flush_work::flush_work,
    requester::Requester,
};

/// A queued access job.
pub(crate) struct Job {
    pub(crate) mm: ARef<Mm>,
    pub(crate) batch: Batch,
}

enum State {
    Idle,
    Queued(Job),
    Running,
    Done(Batch, Result<BatchResult>),
}

/// The worker's state, embedded in the device.
#[pin_data]
pub(crate) struct Worker {
    #[pin]
    job: Mutex<State>,
    #[pin]
    finished: CondVar,
    /// The file is closing: the job stops at its next check.  Set under the
    /// device's MMU lock, so that a fault waiting on `Device::idle` either
    /// sees it or is woken after it.
    cancelled: AtomicBool,
}

impl_has_work! {
    impl HasWork<Device> for Device { self.work }
}

impl Worker {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            job <- new_mutex!(State::Idle),
            finished <- new_condvar!(),
            cancelled: AtomicBool::new(false),
        })
    }
}

impl Device {
    /// Queues `job` on the device worker; `EBUSY` if one is pending or its
    /// result was not collected yet.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) -> Result {
        {
            let mut state = self.worker.job.lock();
            if !matches!(*state, State::Idle) {
                return Err(EBUSY);
            }
            *state = State::Queued(job);
        }
        // The slot was idle, so the work item is not queued: this succeeds.
        let _ = workqueue::system_unbound().enqueue(self.clone());
        Ok(())
    }

    /// Waits up to `timeout_ms` for the job and collects its result.
    pub(crate) fn wait_job(&self, timeout_ms: u32) -> Result<(Batch, Result<BatchResult>)> {
        let mut state = self.worker.job.lock();
        let mut left = msecs_to_jiffies(timeout_ms);
        loop {
            match core::mem::replace(&mut *state, State::Idle) {
                State::Idle => return Err(ENOENT),
                State::Done(b, r) => return Ok((b, r)),
                other => *state = other,
            }
            if left == 0 {
                return Err(ETIMEDOUT);
            }
            match self
                .worker
                .finished
                .wait_interruptible_timeout(&mut state, left)
            {
                CondVarTimeoutResult::Timeout => left = 0,
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            }
        }
    }

    /// Stops the job for good (a queued one ends at once, a running one at
    /// its next check) and waits until the work item has finished, so that
    /// no work of this device runs once its file is gone.  Only for
    /// `release`: no job can be submitted afterwards.
    pub(crate) fn cancel_job(&self) {
        {
            let _mmu = self.mmu.lock();
            self.worker.cancelled.store(true, Ordering::Release);
        }
        self.idle.notify_all();
        flush_work(&self.work);
    }

    fn run_job(&self, job: Job) -> Result<BatchResult> {
        let req = Requester::Worker {
            cancelled: &self.worker.cancelled,
        };
        if let Some(e) = req.stop() {
            return Err(e);
        }
        // The process may have exited since the job was queued.
        let mm = job.mm.mmget_not_zero().ok_or(ESRCH)?;
        self.access_batch(&mm, &job.batch, req)
    }
}

impl WorkItem for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        let job = {
            let mut state = this.worker.job.lock();
            match core::mem::replace(&mut *state, State::Running) {
                State::Queued(job) => job,
                other => {
                    // Only `submit` queues the work, with a job.
                    *state = other;
                    return;
                }
            }
        };
        let batch = job.batch;
        let result = this.run_job(job);
        *this.worker.job.lock() = State::Done(batch, result);
        this.worker.finished.notify_all();
    }
}
