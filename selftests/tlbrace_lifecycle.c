// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle and injection-engine coverage: the mmu_notifier release while
 * the file is held by another process (inherited or passed over SCM_RIGHTS), the aging callback khugepaged
 * reaches (test_young), delays at RANGE_END_EXIT (sleeps) and at
 * SECONDARY_TLBS (spins under the page-table lock), the nth filter,
 * TLBRACE_IOC_WAIT timing out and being interrupted by a signal, how device
 * faults wait (the worker's never for a userfaultfd monitor; the caller's
 * for it interruptibly, for the mmap lock killably), and the bounds of
 * closing and exiting (with a job faulting on such a page, a job running,
 * an ioctl blocked in another thread).
 *
 * Every verdict is taken from what user space sees: an errno, a memory
 * value, whether a memfd can be sealed, whether the CPU maps a THP, wall
 * and CPU time measured around a system call, a thread's state in /proc.
 * Module counters only appear in failure messages, to explain.
 */
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/userfaultfd.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

#define MS		1000000LL /* ns */

/*
 * Timing verdicts compare with half a delay.  Under TCG the guest's clocks
 * and its delay loops disagree (a udelay() of 1 ms has measured 0.72 ms, a
 * 100 ms sleep 99.7 ms), while an undelayed MADV_DONTNEED of one page
 * takes 0.1 to 1 ms: half of a delay of several ms tells them apart.
 */
#define DELAYED(ns, us)	((ns) >= (us) * 1000LL / 2)

static long long clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wall and CPU (this thread's) time of one madvise() call, in ns. */
struct timing {
	long long wall;
	long long cpu;
};

static int timed_madvise(void *p, size_t len, int advice, struct timing *t)
{
	long long w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	int ret = madvise(p, len, advice);

	t->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	t->wall = clock_ns(CLOCK_MONOTONIC) - w0;
	return ret;
}

static volatile __u64 *map_page(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Arm slot id: a delay of us at point, for passes over the page at p. */
static int arm_delay(int fd, __u32 id, __u32 point, volatile void *p, __u32 us, __u32 nth,
		     __u32 count)
{
	struct tlbrace_inject a = {
		.id = id, .point = point, .action = TLBRACE_ACTION_DELAY,
		.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE,
		.nth = nth, .count = count, .delay_us = us,
	};

	/* SECONDARY_TLBS passes have no event to filter on. */
	if (point != TLBRACE_POINT_SECONDARY_TLBS)
		a.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR);
	return inj_arm(fd, &a);
}

static __u64 arm_fired(int fd, __u32 id)
{
	struct tlbrace_inject_status s;

	return inj_status(fd, &s) ? ~0ULL : s.arms[id].fired;
}

FIXTURE(lc)
{
	int fd;
	volatile __u64 *p;
};

FIXTURE_SETUP(lc)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/tlbrace: %s", strerror(errno));
	self->p = map_page();
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(lc)
{
	munmap((void *)self->p, PAGE);
	close(self->fd);
}

/*
 * release: the owner of the mm exits while another process still holds the
 * device's file: its child, which inherited it, or a process that existed
 * before the open and received it over an AF_UNIX socket (SCM_RIGHTS).  The
 * contract is "none", so munmap does not drop the device's translation:
 * only release can.  Whether the device still references the page is
 * visible from user space: sealing a memfd against writes (F_SEAL_WRITE)
 * fails with EBUSY while a page of it has a reference beyond its mappings
 * (memfd_wait_for_pins()).  The holder never reaches memory through the
 * file, before or after the owner's exit.
 */
enum {
	REL_OK, REL_SETUP, REL_NOT_PINNED, REL_NO_STALE_HIT, REL_REPORT,
	REL_SEAL, REL_NOT_EPERM, REL_MEMORY, REL_GATE, REL_PASS, REL_EARLY_EPERM,
};

static const char *const rel_what[] = {
	[REL_SETUP] = "owner set-up failed",
	[REL_NOT_PINNED] = "control: sealing did not fail with EBUSY while the device held it",
	[REL_NO_STALE_HIT] = "control: the device did not read 2 through its kept translation",
	[REL_REPORT] = "owner could not report the holder",
	[REL_SEAL] = "seal failed after the owner exited: release kept the translation",
	[REL_NOT_EPERM] = "an access through the held fd did not fail with EPERM",
	[REL_MEMORY] = "memory changed after release",
	[REL_GATE] = "holder could not wait for the owner's exit",
	[REL_PASS] = "passing the files over SCM_RIGHTS failed",
	[REL_EARLY_EPERM] = "an access through the held fd did not fail with EPERM while the owner lived",
};

static const char *rel_msg(int code)
{
	return code > REL_OK && code <= REL_EARLY_EPERM ? rel_what[code] : "?";
}

/* Sends fds[0..1] and the address addr over the AF_UNIX socket sock. */
static int send_files(int sock, const int fds[2], __u64 addr)
{
	char ctl[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &addr, .iov_len = sizeof(addr) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 2 * sizeof(int));
	return sendmsg(sock, &msg, 0) == sizeof(addr) ? 0 : -1;
}

static int recv_files(int sock, int fds[2], __u64 *addr)
{
	char ctl[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = addr, .iov_len = sizeof(*addr) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c;

	if (recvmsg(sock, &msg, 0) != sizeof(*addr))
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return 0;
}

/*
 * The holder's side: fd is the device's file, mfd the memfd whose page the
 * device mapped at p in the owner; gate is readable once the owner exited.
 */
static int holder_checks(int fd, int mfd, volatile __u64 *p, int gate)
{
	__u64 v = 0;
	char go;

	/* A file of someone else's address space reaches nothing. */
	if (dev_read(fd, p, &v, NULL) != EPERM)
		return REL_EARLY_EPERM;
	if (read(gate, &go, 1) != 1)
		return REL_GATE;
	/* release ran: the device dropped its page reference. */
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE))
		return REL_SEAL;
	/* The held fd reaches no memory any more. */
	if (dev_write(fd, p, 3, NULL) != EPERM ||
	    dev_read(fd, p, &v, NULL) != EPERM ||
	    dev_prefetch(fd, (void *)p, PAGE, 1) != EPERM)
		return REL_NOT_EPERM;
	if (pread(mfd, &v, sizeof(v), 0) != sizeof(v) || v != 2)
		return REL_MEMORY;
	close(fd);
	return REL_OK;
}

FIXTURE(held)
{
	int sock[2];
	int report[2];
	int gate[2];
};

/* How the holder got the file. */
FIXTURE_VARIANT(held)
{
	bool scm_rights;
};

FIXTURE_VARIANT_ADD(held, inherited)
{
	.scm_rights = false,
};

FIXTURE_VARIANT_ADD(held, scm_rights)
{
	.scm_rights = true,
};

FIXTURE_SETUP(held)
{
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, self->sock))
		TH_LOG("socketpair(AF_UNIX): %s (CONFIG_UNIX?)", strerror(errno));
	ASSERT_EQ(0, pipe(self->report));
	ASSERT_EQ(0, pipe(self->gate));
}

FIXTURE_TEARDOWN(held)
{
	for (int i = 0; i < 2; i++) {
		close(self->sock[i]);
		close(self->report[i]);
		close(self->gate[i]);
	}
}

TEST_F(held, release_while_fd_held_elsewhere)
{
	pid_t owner, holder = 0;
	char go = 'g';
	int status;

	if (variant->scm_rights) {
		/* Exists before the open: gets the files only over the socket. */
		holder = fork();
		ASSERT_GE(holder, 0);
		if (holder == 0) {
			int files[2];
			__u64 addr;

			/* The test's ends: EOF and EPIPE if it gives up. */
			close(self->sock[0]);
			close(self->gate[1]);
			if (recv_files(self->sock[1], files, &addr))
				_exit(REL_PASS);
			_exit(holder_checks(files[0], files[1], (volatile __u64 *)(uintptr_t)addr,
					    self->gate[0]));
		}
	}
	owner = fork();
	ASSERT_GE(owner, 0);
	if (owner == 0) {
		int mfd = memfd_create("tlbrace-release", MFD_ALLOW_SEALING);
		volatile __u64 *p;
		__u32 out = 0;
		__u64 v = 0;
		int fd;

		if (mfd < 0 || ftruncate(mfd, PAGE))
			_exit(REL_SETUP);
		p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		fd = tlbrace_open();
		if (p == MAP_FAILED || fd < 0 ||
		    tlbrace_config(fd, TLBRACE_CONTRACT_NONE, 64, 4, TLBRACE_REPL_LRU))
			_exit(REL_SETUP);
		p[0] = 1;
		/* A device write fault: a writable translation referencing the page. */
		if (dev_write(fd, p, 2, NULL) || p[0] != 2 || munmap((void *)p, PAGE))
			_exit(REL_SETUP);
		/* No mapping is left: only the device's reference pins the page. */
		if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE) != -1 || errno != EBUSY)
			_exit(REL_NOT_PINNED);
		if (dev_read(fd, p, &v, &out) || v != 2 || !(out & TLBRACE_OUT_HIT))
			_exit(REL_NO_STALE_HIT);
		if (variant->scm_rights) {
			int files[2] = { fd, mfd };

			if (send_files(self->sock[0], files, (uintptr_t)p))
				_exit(REL_PASS);
		} else {
			holder = fork();
			if (holder == 0) {
				close(self->gate[1]);
				_exit(holder_checks(fd, mfd, p, self->gate[0]));
			}
			if (holder < 0 ||
			    write(self->report[1], &holder, sizeof(holder)) != sizeof(holder))
				_exit(REL_REPORT);
		}
		_exit(REL_OK); /* exit with the device attached and its fd held by holder */
	}
	ASSERT_EQ(owner, waitpid(owner, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(REL_OK, WEXITSTATUS(status))
		TH_LOG("owner: %s", rel_msg(WEXITSTATUS(status)));
	if (!variant->scm_rights)
		ASSERT_EQ(sizeof(holder), read(self->report[0], &holder, sizeof(holder)));
	/* The owner is a zombie: its exit_mm(), hence release, is done. */
	ASSERT_EQ(1, write(self->gate[1], &go, 1));
	ASSERT_EQ(holder, waitpid(holder, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(REL_OK, WEXITSTATUS(status))
		TH_LOG("holder: %s", rel_msg(WEXITSTATUS(status)));
}

/*
 * A delay at RANGE_END_EXIT, in a blockable callback (madvise), sleeps:
 * the madvise takes the delay in wall time but not in CPU time.
 * count = 1: the next madvise is not delayed.
 */
TEST_F(lc, range_end_exit_delay_sleeps)
{
	const __u32 us = 50000;
	struct timing t;

	ASSERT_EQ(0, arm_delay(self->fd, 0, TLBRACE_POINT_RANGE_END_EXIT, self->p, us, 0, 1));
	self->p[0] = 1;
	ASSERT_EQ(0, timed_madvise((void *)self->p, PAGE, MADV_DONTNEED, &t));
	TH_LOG("madvise: wall %lld us, CPU %lld us, fired %llu", t.wall / 1000, t.cpu / 1000,
	       (unsigned long long)arm_fired(self->fd, 0));
	EXPECT_TRUE(DELAYED(t.wall, us));
	/* A sleep, not a spin. */
	EXPECT_FALSE(DELAYED(t.cpu, us));
	self->p[0] = 1;
	ASSERT_EQ(0, timed_madvise((void *)self->p, PAGE, MADV_DONTNEED, &t));
	EXPECT_FALSE(DELAYED(t.wall, us))
		TH_LOG("count 1, yet delayed twice: %lld us", t.wall / 1000);
}

/*
 * arch_invalidate_secondary_tlbs may be called under the page-table lock,
 * so a delay at SECONDARY_TLBS spins: each madvise takes the delay in CPU
 * time, not only in wall time.  Four arms of the longest spin allowed
 * (1 ms) all fire at each pass.  (madvise's flush calls it after dropping
 * the lock, so a sleep there would not even splat: the CPU time is what
 * tells.)  A longer spin or a park are refused.
 */
TEST_F(lc, secondary_tlbs_delay_spins)
{
	const __u32 us = TLBRACE_DELAY_ATOMIC_MAX_US;
	const int rounds = 10, arms = 4;
	struct tlbrace_inject park = {
		.point = TLBRACE_POINT_SECONDARY_TLBS, .action = TLBRACE_ACTION_PARK,
		.release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	long long min_wall = -1, min_cpu = -1;
	struct timing t;

	EXPECT_EQ(EINVAL, arm_delay(self->fd, 0, TLBRACE_POINT_SECONDARY_TLBS, self->p, us + 1,
				    0, 0));
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &park));
	for (int id = 0; id < arms; id++)
		ASSERT_EQ(0, arm_delay(self->fd, id, TLBRACE_POINT_SECONDARY_TLBS, self->p, us, 0,
				       0));
	for (int i = 0; i < rounds; i++) {
		/* A present PTE, so that the zap flushes the TLB. */
		self->p[0] = i;
		ASSERT_EQ(0, timed_madvise((void *)self->p, PAGE, MADV_DONTNEED, &t));
		if (min_wall < 0 || t.wall < min_wall)
			min_wall = t.wall;
		if (min_cpu < 0 || t.cpu < min_cpu)
			min_cpu = t.cpu;
	}
	TH_LOG("%d madvise: min wall %lld us, min CPU %lld us, fired %llu", rounds,
	       min_wall / 1000, min_cpu / 1000, (unsigned long long)arm_fired(self->fd, 0));
	EXPECT_TRUE(DELAYED(min_wall, arms * us));
	/* A spin: a sleeping delay costs no CPU time. */
	EXPECT_TRUE(DELAYED(min_cpu, arms * us));
}

/*
 * In a range callback that may not sleep, a delay spins, cut to
 * TLBRACE_DELAY_ATOMIC_MAX_US.  process_mrelease() reaps a dying process's
 * memory with the OOM reaper's non-blockable invalidations
 * (zap_vma_for_reaping(), MMU_NOTIFY_CLEAR, one per VMA).  The victim is
 * kept from exiting (its mm alive) by sleeping delays in a MADV_DONTNEED of
 * page p (blockable: two arms of 100 ms, an uninterruptible sleep); six
 * arms of 100 ms for 16 other VMAs then fire 96 times in the reaper, each
 * a 1 ms spin: process_mrelease() takes them in CPU time (reaping alone
 * takes about 4 ms under TCG), and far less than 9.6 s.
 */
static char proc_state(pid_t pid)
{
	char path[64], buf[256], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

static int timed_mrelease(int pidfd, struct timing *t)
{
	long long w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	int ret = syscall(SYS_process_mrelease, pidfd, 0);

	t->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	t->wall = clock_ns(CLOCK_MONOTONIC) - w0;
	return ret;
}

TEST(delay_spins_in_nonblockable_range)
{
	const __u32 us = TLBRACE_DELAY_MAX_US, sleeps = 2, spins = 6, vmas = 16;
	int status, ready[2], pidfd, ret, state = 0;
	struct timing t;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		volatile __u64 *p = map_page();
		char *v = mmap(NULL, vmas * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd = tlbrace_open();
		/* The reaper is another process: the spins need ANY_TASK. */
		struct tlbrace_inject a = { .action = TLBRACE_ACTION_DELAY, .delay_us = us,
					    .point = TLBRACE_POINT_RANGE_START_ENTER,
					    .flags = TLBRACE_INJECT_ANY_TASK };

		if (!p || v == MAP_FAILED || fd < 0)
			_exit(2);
		/* One VMA per page: alternate protections so none merge. */
		for (__u32 i = 1; i < vmas; i += 2)
			if (mprotect(v + i * PAGE, PAGE, PROT_READ))
				_exit(2);
		a.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR);
		for (a.id = 0; a.id < sleeps + spins; a.id++) {
			a.start = a.id < sleeps ? (uintptr_t)p : (uintptr_t)v;
			a.end = a.start + (a.id < sleeps ? PAGE : vmas * PAGE);
			if (inj_arm(fd, &a))
				_exit(3);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(4);
		for (;;) {
			p[0] = 1;
			madvise((void *)p, PAGE, MADV_DONTNEED);
		}
	}
	ASSERT_EQ(1, read(ready[0], &c, 1));
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	ASSERT_GE(pidfd, 0);
	/* Wait until the victim sleeps in a delay (bounded: 5 s). */
	for (int i = 0; i < 50000 && state != 'D'; i++) {
		state = proc_state(pid);
		usleep(100);
	}
	ASSERT_EQ('D', state);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ret = timed_mrelease(pidfd, &t);
	TH_LOG("process_mrelease: %d, wall %lld us, CPU %lld us", ret, t.wall / 1000,
	       t.cpu / 1000);
	EXPECT_EQ(0, ret) TH_LOG("%s", strerror(errno));
	/* Spun: the delays cost CPU time ... */
	EXPECT_TRUE(DELAYED(t.cpu, vmas * spins * TLBRACE_DELAY_ATOMIC_MAX_US));
	/* ... cut to TLBRACE_DELAY_ATOMIC_MAX_US each. */
	EXPECT_FALSE(DELAYED(t.wall, vmas * spins * us));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(pidfd);
}

/*
 * WAIT with a job parked at FAULT_FILL: a timeout gives ETIMEDOUT within
 * its bound and leaves the job queued; released, the job completes and is
 * collected with the right value.
 */
static int park_fault(int fd, volatile void *p)
{
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_FAULT_FILL, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE, .count = 1,
		.timeout_ms = TLBRACE_PARK_MAX_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	return inj_arm(fd, &a);
}

TEST_F(lc, wait_times_out_while_job_parked)
{
	const long long timeout_ms = 200;
	struct tlbrace_wait w;
	long long t0, el;

	self->p[0] = 0x1234;
	ASSERT_EQ(0, park_fault(self->fd, self->p));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, self->p, 1, 0));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	t0 = clock_ns(CLOCK_MONOTONIC);
	EXPECT_EQ(ETIMEDOUT, dev_wait(self->fd, timeout_ms, &w));
	el = clock_ns(CLOCK_MONOTONIC) - t0;
	TH_LOG("WAIT(%lld ms) returned after %lld ms", timeout_ms, el / MS);
	/* A jiffy may have begun; the guest's clocks drift a little (above). */
	EXPECT_GE(el, timeout_ms * MS * 9 / 10) TH_LOG("returned after %lld ms", el / MS);
	EXPECT_LT(el, (timeout_ms + 1000) * MS) TH_LOG("returned after %lld ms", el / MS);
	/* Still queued: a poll times out at once, the job is not lost. */
	t0 = clock_ns(CLOCK_MONOTONIC);
	EXPECT_EQ(ETIMEDOUT, dev_wait(self->fd, 0, &w));
	EXPECT_LT(clock_ns(CLOCK_MONOTONIC) - t0, 100 * MS);
	EXPECT_EQ(EBUSY, dev_submit(self->fd, TLBRACE_IOC_READ, self->p, 1, 0));
	ASSERT_EQ(0, inj_release(self->fd, 0));
	ASSERT_EQ(0, dev_wait(self->fd, 5000, &w));
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(0x1234, w.result.value);
	EXPECT_EQ(ENOENT, dev_wait(self->fd, 0, &w));
}

static volatile sig_atomic_t got_alarm;

static void on_alarm(int sig)
{
	got_alarm = 1;
}

/* A signal interrupts a WAIT with EINTR; the job stays and is collected later. */
TEST_F(lc, wait_interrupted_by_signal)
{
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	struct itimerval it = { .it_value = { .tv_usec = 100000 } };
	struct tlbrace_wait w;
	long long t0, el;

	ASSERT_EQ(0, sigemptyset(&sa.sa_mask));
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	self->p[0] = 0x5678;
	ASSERT_EQ(0, park_fault(self->fd, self->p));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, self->p, 1, 0));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	got_alarm = 0;
	t0 = clock_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
	EXPECT_EQ(EINTR, dev_wait(self->fd, 10000, &w));
	el = clock_ns(CLOCK_MONOTONIC) - t0;
	TH_LOG("WAIT(10000 ms) interrupted after %lld ms", el / MS);
	EXPECT_EQ(1, got_alarm);
	/* Interrupted by the 100 ms timer, long before the park's 5 s. */
	EXPECT_GE(el, 90 * MS) TH_LOG("returned after %lld ms", el / MS);
	EXPECT_LT(el, 2000 * MS) TH_LOG("returned after %lld ms", el / MS);
	ASSERT_EQ(0, inj_release(self->fd, 0));
	ASSERT_EQ(0, dev_wait(self->fd, 5000, &w));
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(0x5678, w.result.value);
	signal(SIGALRM, SIG_DFL);
}

/*
 * The nth filter: a 100 ms delay at RANGE_START_ENTER from the 3rd matching
 * pass on.  Each MADV_DONTNEED of the page is one matching pass; which of
 * five calls were delayed shows where the arm fired.
 */
FIXTURE(nth)
{
	int fd;
	volatile __u64 *p;
};

FIXTURE_VARIANT(nth)
{
	__u32 nth;
	__u32 count;
	unsigned int delayed; /* bit i: call i (from 0) is delayed */
};

FIXTURE_VARIANT_ADD(nth, third_once) { .nth = 3, .count = 1, .delayed = 0x04 };
FIXTURE_VARIANT_ADD(nth, third_on) { .nth = 3, .count = 0, .delayed = 0x1c };
FIXTURE_VARIANT_ADD(nth, first_twice) { .nth = 1, .count = 2, .delayed = 0x03 };

FIXTURE_SETUP(nth)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	self->p = map_page();
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(nth)
{
	munmap((void *)self->p, PAGE);
	close(self->fd);
}

TEST_F(nth, delays_exactly_the_chosen_passes)
{
	const __u32 us = 100000;
	unsigned int delayed = 0;
	long long wall[5];
	struct timing t;

	ASSERT_EQ(0, arm_delay(self->fd, 0, TLBRACE_POINT_RANGE_START_ENTER, self->p, us,
			       variant->nth, variant->count));
	for (int i = 0; i < 5; i++) {
		self->p[0] = i;
		ASSERT_EQ(0, timed_madvise((void *)self->p, PAGE, MADV_DONTNEED, &t));
		wall[i] = t.wall / 1000;
		if (DELAYED(t.wall, us))
			delayed |= 1U << i;
	}
	TH_LOG("calls took %lld %lld %lld %lld %lld us; fired %llu", wall[0], wall[1], wall[2],
	       wall[3], wall[4], (unsigned long long)arm_fired(self->fd, 0));
	EXPECT_EQ(variant->delayed, delayed);
}

/*
 * Aging.  In this kernel configuration (no swap, no block device, no
 * idle page tracking, no MGLRU, no DAMON) the only aging callback the core
 * mm calls is test_young, from khugepaged: a PTE whose accessed bit is
 * clear and whose folio is not referenced counts as referenced only if a
 * secondary MMU says so, and khugepaged collapses a range only if one of
 * its pages is referenced.  clear_young and clear_flush_young come from
 * reclaim and page-idle tracking, which cannot reach a mapped anonymous
 * page here.
 *
 * khugepaged also refuses to collapse a page with a reference beyond its
 * mappings, which every page the device translates has.  So the device's
 * translation must be of a page no longer mapped there: under "none" the
 * device keeps its translation of the old page across MADV_DONTNEED, while
 * the CPU maps a new page that only the CPU references.  The verdict is
 * whether the CPU maps a THP at the range afterwards (/proc/kpageflags).
 */
#define KHP "/sys/kernel/mm/transparent_hugepage/khugepaged/"

static long sysfs_read(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static int sysfs_write(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY), n, ok;

	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	ok = write(fd, buf, n) == n;
	close(fd);
	return ok ? 0 : -1;
}

FIXTURE(young)
{
	int fd;
	long scan_sleep, alloc_sleep;
	char *raw;
};

FIXTURE_VARIANT(young)
{
	bool device_young; /* the device used its translation */
};

FIXTURE_VARIANT_ADD(young, device_used_page) { .device_young = true };
FIXTURE_VARIANT_ADD(young, device_idle) { .device_young = false };

FIXTURE_SETUP(young)
{
	self->raw = NULL;
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	self->scan_sleep = sysfs_read(KHP "scan_sleep_millisecs");
	self->alloc_sleep = sysfs_read(KHP "alloc_sleep_millisecs");
	ASSERT_GE(self->scan_sleep, 0) TH_LOG("no khugepaged in this kernel");
	ASSERT_GE(self->alloc_sleep, 0);
	/* Scan every 100 ms instead of every 10 s; restored in teardown. */
	ASSERT_EQ(0, sysfs_write(KHP "scan_sleep_millisecs", 100));
	ASSERT_EQ(0, sysfs_write(KHP "alloc_sleep_millisecs", 100));
}

FIXTURE_TEARDOWN(young)
{
	if (self->scan_sleep >= 0)
		sysfs_write(KHP "scan_sleep_millisecs", self->scan_sleep);
	if (self->alloc_sleep >= 0)
		sysfs_write(KHP "alloc_sleep_millisecs", self->alloc_sleep);
	if (self->raw)
		munmap(self->raw, 4UL << 20);
	close(self->fd);
}

TEST_F(young, khugepaged_asks_test_young)
{
	const size_t hp = 2UL << 20;
	struct tlbrace_snapshot_entry e;
	volatile __u64 *v;
	long scans0, scans = 0;
	cpu_set_t cpu;
	char *buf;
	__u64 x;
	int thp = 0;

	/* MADV_COLD drains only this CPU's LRU batch: stay on one CPU. */
	CPU_ZERO(&cpu);
	CPU_SET(sched_getcpu(), &cpu);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu), &cpu));
	self->raw = mmap(NULL, 2 * hp, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->raw);
	buf = (char *)(((uintptr_t)self->raw + hp - 1) & ~(hp - 1));
	v = (volatile __u64 *)buf;
	/* Small pages until the range is offered to khugepaged. */
	ASSERT_EQ(0, madvise(buf, hp, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_NONE, 64, 4, TLBRACE_REPL_LRU));
	v[0] = 1;
	if (variant->device_young) {
		/* Fault and use: the translation is young. */
		ASSERT_EQ(0, dev_read(self->fd, v, &x, NULL));
		ASSERT_EQ(1, x);
	} else {
		/* Fault only. */
		ASSERT_EQ(0, dev_prefetch(self->fd, buf, PAGE, 0));
	}
	/* "none": the device keeps its translation of the old page. */
	ASSERT_EQ(0, madvise(buf, PAGE, MADV_DONTNEED));
	v[0] = 2;
	ASSERT_EQ(0, dev_snapshot_page(self->fd, buf, &e));
	ASSERT_NE(0, e.flags & TLBRACE_SNAP_DTLB);
	ASSERT_NE(e.pfn, cpu_pfn(buf));
	ASSERT_EQ(variant->device_young, !!(e.flags & TLBRACE_SNAP_ACCESSED));
	/* Clear the PTE's accessed bit and PG_referenced: only test_young is left. */
	ASSERT_EQ(0, madvise(buf, hp, MADV_COLD));
	ASSERT_EQ(0, cpu_thp(buf));
	scans0 = sysfs_read(KHP "full_scans");
	ASSERT_GE(scans0, 0);
	ASSERT_EQ(0, madvise(buf, hp, MADV_HUGEPAGE));
	/*
	 * Two full scans from now include a whole pass over this mm.  The
	 * bound only turns a stuck khugepaged into a failure.
	 */
	for (int i = 0; i < 600 && !thp; i++) {
		usleep(50 * 1000);
		thp = cpu_thp(buf);
		scans = sysfs_read(KHP "full_scans");
		if (scans >= scans0 + 2)
			break;
	}
	if (!thp)
		thp = cpu_thp(buf);
	ASSERT_GE(thp, 0);
	TH_LOG("khugepaged full scans %ld -> %ld, THP %d", scans0, scans, thp);
	EXPECT_EQ(variant->device_young, thp);
	if (!thp)
		EXPECT_GE(scans, scans0 + 2) TH_LOG("khugepaged did not finish two passes");
	EXPECT_EQ(2, v[0]);
}

/*
 * Bounds on blocking: a call that may block runs in a thread (or a child),
 * and the test waits for it with a bound, so that a blocked call fails the
 * test instead of hanging the run.  A call still blocked at the bound is
 * then unblocked by the test (it answers the userfaultfd, or a park times
 * out) before the thread is joined.
 */
struct call {
	int fd;
	volatile __u64 *p;
	int (*op)(struct call *c);
	int err;	/* what the call returned: 0 or an errno */
	__u64 value;	/* READ: the value read; WAIT: the job's value */
	int job_error;	/* WAIT: the job's error */
	long long ns;	/* how long the call took */
	pid_t tid;
	int done;	/* eventfd, written when the call returned */
	pthread_t thread;
};

static void *call_thread(void *arg)
{
	struct call *c = arg;
	long long t0 = clock_ns(CLOCK_MONOTONIC);
	__u64 one = 1;

	__atomic_store_n(&c->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->err = c->op(c);
	c->ns = clock_ns(CLOCK_MONOTONIC) - t0;
	if (write(c->done, &one, sizeof(one)) != sizeof(one))
		c->err = -1;
	return NULL;
}

/* Runs op in a thread; returns the thread's id once it runs, 0 on failure. */
static pid_t call_start(struct call *c, int (*op)(struct call *c))
{
	c->op = op;
	c->tid = 0;
	c->done = eventfd(0, EFD_CLOEXEC);
	if (c->done < 0 || pthread_create(&c->thread, NULL, call_thread, c))
		return 0;
	for (int i = 0; i < 10000; i++) {
		pid_t tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE);

		if (tid)
			return tid;
		usleep(100);
	}
	return 0;
}

/* Whether the call has returned, waiting up to bound_ms for it. */
static bool call_returned(struct call *c, int bound_ms)
{
	struct pollfd pfd = { .fd = c->done, .events = POLLIN };

	return poll(&pfd, 1, bound_ms) == 1;
}

static void call_join(struct call *c)
{
	pthread_join(c->thread, NULL);
	close(c->done);
}

static int op_close(struct call *c)
{
	return close(c->fd) ? errno : 0;
}

static int op_read(struct call *c)
{
	return dev_read(c->fd, c->p, &c->value, NULL);
}

static int op_wait(struct call *c)
{
	struct tlbrace_wait w;
	int err = dev_wait(c->fd, 10000, &w);

	c->job_error = w.error;
	c->value = w.result.value;
	return err;
}

/* State of thread tid of process pid, and its PF_* flags; 0 if it is gone. */
static char thread_state(pid_t pid, pid_t tid, unsigned long *flags)
{
	char path[64], buf[512], state = 0, *p;
	unsigned long f = 0;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* state ppid pgrp session tty_nr tpgid flags */
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &f) != 2)
		return 0;
	if (flags)
		*flags = f;
	return state;
}

/* Waits up to bound_ms for thread tid of pid to be in state want. */
static bool thread_reaches(pid_t pid, pid_t tid, char want, int bound_ms)
{
	long long end = clock_ns(CLOCK_MONOTONIC) + bound_ms * MS;

	do {
		if (thread_state(pid, tid, NULL) == want)
			return true;
		usleep(100);
	} while (clock_ns(CLOCK_MONOTONIC) < end);
	return false;
}

/* How many debugfs directories the devices of process pid have. */
static int debugfs_dirs(pid_t pid)
{
	char pattern[64];
	glob_t g;
	int n;

	snprintf(pattern, sizeof(pattern), "/sys/kernel/debug/tlbrace/%d-*", pid);
	if (glob(pattern, 0, NULL, &g))
		return 0;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

/*
 * userfaultfd: [p, p + len) registered for missing pages, with no monitor
 * reading the descriptor until the test answers.  -1 if unavailable.
 */
static int uffd_missing(volatile void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		return -1;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		close(uffd);
		return -1;
	}
	return uffd;
}

/* The monitor's answer: maps the zero page at p and wakes the faults there. */
static int uffd_zero(int uffd, volatile void *p)
{
	struct uffdio_zeropage z = { .range = { .start = (uintptr_t)p, .len = PAGE } };

	return ioctl(uffd, UFFDIO_ZEROPAGE, &z) ? errno : 0;
}

/* The monitor's answer: maps a page whose first word is value. */
static int uffd_fill(int uffd, volatile void *p, __u64 value)
{
	static __u64 src[PAGE / 8] __attribute__((aligned(PAGE)));
	struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)src, .len = PAGE };

	src[0] = value;
	return ioctl(uffd, UFFDIO_COPY, &c) ? errno : 0;
}

/* Whether the monitor gets a message about a fault at p within bound_ms. */
static bool uffd_fault_at(int uffd, volatile void *p, int bound_ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&pfd, 1, bound_ms) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg))
		return false;
	return msg.event == UFFD_EVENT_PAGEFAULT &&
	       (msg.arg.pagefault.address & ~(PAGE - 1)) == (uintptr_t)p;
}

/*
 * A device fault of the worker on a page of a userfaultfd-registered range
 * that the monitor has not filled: the worker does not wait for the
 * monitor (a kworker cannot be interrupted, and closing the file waits for
 * the worker), the job fails with EFAULT at once, and the monitor is not
 * told.  Once the monitor has filled the page, a job reads it.
 */
TEST(worker_fault_on_uffd_page_fails)
{
	volatile __u64 *p = map_page();
	int fd = tlbrace_open(), uffd, err;
	struct tlbrace_wait w;
	struct uffd_msg msg;
	long long t0, el;

	ASSERT_NE(NULL, p);
	ASSERT_GE(fd, 0);
	uffd = uffd_missing(p, PAGE);
	ASSERT_GE(uffd, 0) TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, dev_submit(fd, TLBRACE_IOC_READ, p, 1, 0));
	t0 = clock_ns(CLOCK_MONOTONIC);
	err = dev_wait(fd, 2000, &w);
	el = clock_ns(CLOCK_MONOTONIC) - t0;
	TH_LOG("WAIT: %s after %lld ms, job error %d", strerror(err), el / MS, w.error);
	EXPECT_EQ(0, err);
	EXPECT_EQ(-EFAULT, w.error);
	EXPECT_EQ(-1, read(uffd, &msg, sizeof(msg))) TH_LOG("the monitor was asked");
	if (err == ETIMEDOUT) {
		/* The worker waits for the monitor: answer it, then collect. */
		EXPECT_EQ(0, uffd_zero(uffd, p));
		EXPECT_EQ(0, dev_wait(fd, 5000, &w));
		close(fd);
		return;
	}
	ASSERT_EQ(0, uffd_fill(uffd, p, 0x4242));
	ASSERT_EQ(0, dev_submit(fd, TLBRACE_IOC_READ, p, 1, 0));
	ASSERT_EQ(0, dev_wait(fd, 5000, &w));
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(0x4242, w.result.value);
	close(uffd);
	close(fd);
}

/*
 * The same job, and the owner closes the file or exits right after
 * queueing it: release returns within 2 s.  Before the worker stopped
 * waiting for monitors, release waited in flush_work() for a kworker
 * waiting for a monitor that nobody runs, in D state for ever, also at
 * exit.  The test holds a copy of the child's userfaultfd (pidfd_getfd) to
 * answer the fault if release blocks, so that a failure is not a hang.
 */
FIXTURE(uffd_job)
{
};

FIXTURE_VARIANT(uffd_job)
{
	bool exit; /* the owner exits instead of closing */
};

FIXTURE_VARIANT_ADD(uffd_job, close) { .exit = false };
FIXTURE_VARIANT_ADD(uffd_job, exit) { .exit = true };

FIXTURE_SETUP(uffd_job)
{
}

FIXTURE_TEARDOWN(uffd_job)
{
}

TEST_F(uffd_job, release_is_bounded)
{
	struct { int uffd; volatile __u64 *p; } info;
	int to_parent[2], to_child[2], pidfd, uffd, status;
	struct pollfd pfd;
	bool released;
	long long t0, el;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		volatile __u64 *p = map_page();
		/* Opened first: exit closes it before the userfaultfd. */
		int fd = tlbrace_open();

		info.p = p;
		info.uffd = uffd_missing(p, PAGE);
		if (!p || fd < 0 || info.uffd < 0 ||
		    dev_submit(fd, TLBRACE_IOC_READ, p, 1, 0) ||
		    write(to_parent[1], &info, sizeof(info)) != sizeof(info) ||
		    read(to_child[0], &c, 1) != 1)
			_exit(1);
		if (variant->exit)
			_exit(0);
		if (close(fd) || write(to_parent[1], "c", 1) != 1)
			_exit(2);
		_exit(read(to_child[0], &c, 1) == 1 ? 0 : 3);
	}
	ASSERT_EQ(sizeof(info), read(to_parent[0], &info, sizeof(info)));
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	ASSERT_GE(pidfd, 0);
	uffd = syscall(SYS_pidfd_getfd, pidfd, info.uffd, 0);
	ASSERT_GE(uffd, 0) TH_LOG("pidfd_getfd: %s", strerror(errno));
	/*
	 * Give the job a chance to reach its fault: a worker that waits for
	 * the monitor shows up as a message on the userfaultfd.
	 */
	if (uffd_fault_at(uffd, info.p, 500))
		TH_LOG("the worker waits for the monitor");
	t0 = clock_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(1, write(to_child[1], "g", 1));
	if (variant->exit) {
		pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		released = poll(&pfd, 1, 2000) == 1;
	} else {
		pfd = (struct pollfd){ .fd = to_parent[0], .events = POLLIN };
		released = poll(&pfd, 1, 2000) == 1 && read(to_parent[0], &c, 1) == 1;
	}
	el = clock_ns(CLOCK_MONOTONIC) - t0;
	TH_LOG("%s: %s after %lld ms (owner state %c)", variant->exit ? "exit" : "close",
	       released ? "done" : "blocked", el / MS, proc_state(pid));
	EXPECT_TRUE(released);
	if (!released)
		EXPECT_EQ(0, uffd_zero(uffd, info.p));
	if (!variant->exit)
		ASSERT_EQ(1, write(to_child[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) TH_LOG("status %x", status);
	close(uffd);
	close(pidfd);
}

/*
 * The owner exits while its job runs: a batch of 2^20 words over an 8 MiB
 * memfd mapping, parked at its first fault for up to 10 s.  The exit takes
 * far less than the park (release disarms and cancels the job), and
 * afterwards nothing is left: the device's debugfs directory is gone, no
 * page of the memfd is referenced or mapped any more (F_SEAL_WRITE
 * succeeds; it fails with EBUSY while one is), and a fresh open works.
 */
TEST(owner_exits_with_job_running)
{
	const size_t len = 8UL << 20;
	int mfd, ready[2], pidfd, status, fd;
	struct pollfd pfd;
	volatile __u64 *q;
	long long t0, el;
	bool exited;
	__u64 v = 0;
	pid_t pid;
	char c;

	mfd = memfd_create("tlbrace-job", MFD_ALLOW_SEALING);
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, len));
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		volatile __u64 *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		struct tlbrace_inject a = {
			.point = TLBRACE_POINT_FAULT_FILL, .action = TLBRACE_ACTION_PARK,
			.count = 1, .timeout_ms = TLBRACE_PARK_MAX_MS,
			.release_on = TLBRACE_RELEASE_BY_IOCTL,
		};
		int dfd = tlbrace_open();

		if (p == MAP_FAILED || dfd < 0)
			_exit(1);
		a.start = (uintptr_t)p;
		a.end = a.start + PAGE;
		if (inj_arm(dfd, &a) || dev_submit(dfd, TLBRACE_IOC_READ, p, 1U << 20, 0) ||
		    inj_wait_parked(dfd, 0, 1, 5000) || write(ready[1], "r", 1) != 1)
			_exit(2);
		_exit(0); /* with the job parked, the file and the mapping held */
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	ASSERT_GE(pidfd, 0);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(1, debugfs_dirs(pid));
	t0 = clock_ns(CLOCK_MONOTONIC);
	pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
	exited = poll(&pfd, 1, 3000) == 1;
	el = clock_ns(CLOCK_MONOTONIC) - t0;
	TH_LOG("owner exited: %s after %lld ms", exited ? "yes" : "no", el / MS);
	EXPECT_TRUE(exited);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) TH_LOG("status %x", status);
	EXPECT_EQ(0, debugfs_dirs(pid));
	EXPECT_EQ(0, fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE)) TH_LOG("seal: %s", strerror(errno));
	fd = tlbrace_open();
	ASSERT_GE(fd, 0);
	q = map_page();
	ASSERT_NE(NULL, q);
	q[0] = 0x77;
	EXPECT_EQ(0, dev_read(fd, q, &v, NULL));
	EXPECT_EQ(0x77, v);
	close(fd);
	close(pidfd);
	close(mfd);
}

/*
 * close() while another thread is inside an ioctl on the same file: a read
 * parked at FAULT_FILL, or a WAIT for a job parked there (the park times
 * out after 1 s).  The ioctl holds the file, so close returns at once, the
 * ioctl ends as it would have (the park at its timeout: 0 and the value),
 * and the file is released when it returns (the debugfs directory goes).
 */
FIXTURE(blocked)
{
	int fd;
	volatile __u64 *p;
};

FIXTURE_VARIANT(blocked)
{
	bool wait; /* the blocked ioctl is a WAIT for a parked job */
};

FIXTURE_VARIANT_ADD(blocked, read_parked) { .wait = false };
FIXTURE_VARIANT_ADD(blocked, wait_for_parked_job) { .wait = true };

FIXTURE_SETUP(blocked)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	self->p = map_page();
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(blocked)
{
	munmap((void *)self->p, PAGE);
}

TEST_F(blocked, close_returns_and_the_ioctl_ends)
{
	const int park_ms = 1000;
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_FAULT_FILL, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)self->p, .end = (uintptr_t)self->p + PAGE, .count = 1,
		.timeout_ms = park_ms, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	struct call blocked = { .fd = self->fd, .p = self->p };
	struct call closer = { .fd = self->fd };
	pid_t tid;

	self->p[0] = 0x99;
	ASSERT_EQ(0, inj_arm(self->fd, &a));
	if (variant->wait) {
		ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, self->p, 1, 0));
		ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
		tid = call_start(&blocked, op_wait);
		ASSERT_NE(0, tid);
		/* Inside WAIT: sleeping on the job. */
		ASSERT_TRUE(thread_reaches(getpid(), tid, 'S', 2000));
	} else {
		ASSERT_NE(0, call_start(&blocked, op_read));
		ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	}
	ASSERT_EQ(1, debugfs_dirs(getpid()));
	ASSERT_NE(0, call_start(&closer, op_close));
	EXPECT_TRUE(call_returned(&closer, 500)) TH_LOG("close blocked");
	call_join(&closer);
	EXPECT_EQ(0, closer.err);
	EXPECT_TRUE(call_returned(&blocked, park_ms + 3000)) TH_LOG("the ioctl did not end");
	call_join(&blocked);
	TH_LOG("close took %lld ms, the blocked ioctl %lld ms", closer.ns / MS, blocked.ns / MS);
	EXPECT_LT(closer.ns, 500 * MS);
	EXPECT_EQ(0, blocked.err) TH_LOG("%s", strerror(blocked.err));
	EXPECT_EQ(0, blocked.job_error);
	EXPECT_EQ(0x99, blocked.value);
	EXPECT_EQ(0, debugfs_dirs(getpid())) TH_LOG("the file was not released");
}

/*
 * A device fault in the caller's thread on a page the monitor has not
 * filled waits for the monitor as a CPU access would: the monitor gets the
 * fault's message, and its answer ends the access with the page's value.
 * The wait is interruptible: a signal (with a handler) ends it with EINTR.
 */
static void on_usr1(int sig)
{
}

TEST(sync_fault_waits_for_monitor)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */
	volatile __u64 *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = tlbrace_open(), uffd;
	struct call filled, signalled;
	bool returned;

	ASSERT_NE(MAP_FAILED, p);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, sigemptyset(&sa.sa_mask));
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	uffd = uffd_missing(p, 2 * PAGE);
	ASSERT_GE(uffd, 0) TH_LOG("userfaultfd: %s", strerror(errno));

	/* Answered by the monitor. */
	filled = (struct call){ .fd = fd, .p = p };
	ASSERT_NE(0, call_start(&filled, op_read));
	ASSERT_TRUE(uffd_fault_at(uffd, p, 2000)) TH_LOG("no message for the device fault");
	ASSERT_EQ(0, uffd_fill(uffd, p, 0x77));
	EXPECT_TRUE(call_returned(&filled, 2000));
	call_join(&filled);
	EXPECT_EQ(0, filled.err);
	EXPECT_EQ(0x77, filled.value);

	/* Interrupted by a signal. */
	signalled = (struct call){ .fd = fd, .p = p + PAGE / 8 };
	ASSERT_NE(0, call_start(&signalled, op_read));
	ASSERT_TRUE(uffd_fault_at(uffd, p + PAGE / 8, 2000));
	ASSERT_EQ(0, pthread_kill(signalled.thread, SIGUSR1));
	returned = call_returned(&signalled, 2000);
	EXPECT_TRUE(returned) TH_LOG("a signal did not end the wait");
	if (!returned)
		EXPECT_EQ(0, uffd_zero(uffd, p + PAGE / 8));
	call_join(&signalled);
	EXPECT_EQ(EINTR, signalled.err) TH_LOG("%s", strerror(signalled.err));
	signal(SIGUSR1, SIG_DFL);
	close(uffd);
	close(fd);
}

/*
 * A device fault in the caller's thread waits for the mmap lock killably.
 * The parent writes 4 to the child's clear_refs, which holds the child's
 * mmap lock for writing across the device's invalidate_range_start, parked
 * there for up to 4 s.  A thread of the child blocks in a device read that
 * faults; the child is killed.  The thread leaves the ioctl and reaches
 * do_exit (PF_EXITING in its /proc flags) while the lock is still held,
 * instead of after the park.  (It then waits for the lock in exit_mm(), as
 * every exiting thread does.)
 */
#define PF_EXITING_FLAG 0x4

struct clear_refs_call {
	pid_t pid;
	int ret;
	bool done;
};

static void *clear_refs_thread(void *arg)
{
	struct clear_refs_call *c = arg;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", c->pid);
	fd = open(path, O_WRONLY);
	c->ret = fd >= 0 && write(fd, "4", 1) == 1 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A thread that reads a present page (so that its code and stack are
 * faulted in: while clear_refs holds the mmap lock, any page fault of the
 * process waits for it), reports its id, waits for the go, then reads p (a
 * device fault).
 */
struct reader {
	int dev, go, report;
	volatile __u64 *p, *warm;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	pid_t tid = syscall(SYS_gettid);
	__u64 v;
	char go;

	if (dev_read(r->dev, r->warm, &v, NULL) == 0 &&
	    write(r->report, &tid, sizeof(tid)) == sizeof(tid) && read(r->go, &go, 1) == 1)
		dev_read(r->dev, r->p, &v, NULL);
	return NULL;
}

/* Where thread tid of pid sleeps (/proc wchan), for failure messages. */
static const char *thread_wchan(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[64];
	int fd, n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

TEST(sync_fault_mmap_lock_killable)
{
	const int park_ms = 4000;
	int report[2], go[2], status;
	struct clear_refs_call cr = {};
	pthread_t writer;
	bool blocked, exiting = false, lock_held = false;
	unsigned long flags = 0;
	char wchan[64];
	long long t0, el = 0;
	pid_t pid, tid;

	ASSERT_EQ(0, pipe(report));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct tlbrace_inject a = {
			.point = TLBRACE_POINT_RANGE_START_ENTER, .action = TLBRACE_ACTION_PARK,
			.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_SOFT_DIRTY), .count = 1,
			.timeout_ms = park_ms, .release_on = TLBRACE_RELEASE_BY_IOCTL,
			/* The clear_refs to park is the parent's. */
			.flags = TLBRACE_INJECT_ANY_TASK,
		};
		struct reader r = {
			.dev = tlbrace_open(), .go = go[0], .report = report[1], .p = map_page(),
			.warm = map_page(),
		};
		char g = 'g';
		pthread_t reader;

		/* "none": the fault does not wait for the open invalidation. */
		if (r.dev < 0 || !r.p || !r.warm ||
		    tlbrace_config(r.dev, TLBRACE_CONTRACT_NONE, 64, 4, TLBRACE_REPL_LRU) ||
		    inj_arm(r.dev, &a))
			_exit(1);
		if (pthread_create(&reader, NULL, reader_thread, &r))
			_exit(2);
		/* The parent's clear_refs is parked, the mmap lock held for writing. */
		if (inj_wait_parked(r.dev, 0, 1, 5000))
			_exit(3);
		if (write(go[1], &g, 1) != 1)
			_exit(4);
		pause();
		_exit(5);
	}
	ASSERT_EQ(sizeof(tid), read(report[0], &tid, sizeof(tid)));
	cr.pid = pid;
	ASSERT_EQ(0, pthread_create(&writer, NULL, clear_refs_thread, &cr));
	/* The reader blocks for the mmap lock (D: killable, or not). */
	blocked = thread_reaches(pid, tid, 'D', 3000);
	EXPECT_TRUE(blocked) TH_LOG("reader state '%c' in %s, clear_refs %s (%d), owner %s",
				    thread_state(pid, tid, NULL),
				    thread_wchan(pid, tid, wchan, sizeof(wchan)),
				    __atomic_load_n(&cr.done, __ATOMIC_ACQUIRE) ? "done" : "parked",
				    cr.ret, waitpid(pid, &status, WNOHANG) ? "gone" : "alive");
	EXPECT_FALSE(__atomic_load_n(&cr.done, __ATOMIC_ACQUIRE));
	t0 = clock_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	while (blocked && !exiting && el < 2000 * MS) {
		char state = thread_state(pid, tid, &flags);

		exiting = !state || (flags & PF_EXITING_FLAG);
		lock_held = !__atomic_load_n(&cr.done, __ATOMIC_ACQUIRE);
		el = clock_ns(CLOCK_MONOTONIC) - t0;
		if (!exiting)
			usleep(100);
	}
	TH_LOG("reader exiting: %s after %lld ms, lock still held: %s", exiting ? "yes" : "no",
	       el / MS, lock_held ? "yes" : "no");
	EXPECT_TRUE(exiting) TH_LOG("killed reader still in %s",
				    thread_wchan(pid, tid, wchan, sizeof(wchan)));
	EXPECT_TRUE(lock_held) TH_LOG("the park ended first: the kill was not what woke it");
	pthread_join(writer, NULL);
	EXPECT_EQ(0, cr.ret);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_HARNESS_MAIN
