// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle and injection-engine coverage: the mmu_notifier release while
 * the file is held by another process (inherited or passed over SCM_RIGHTS), the aging callback khugepaged
 * reaches (test_young), delays at RANGE_END_EXIT (sleeps) and at
 * SECONDARY_TLBS (spins under the page-table lock), the nth filter, and
 * TLBRACE_IOC_WAIT timing out and being interrupted by a signal.
 *
 * Every verdict is taken from what user space sees: an errno, a memory
 * value, whether a memfd can be sealed, whether the CPU maps a THP, wall
 * and CPU time measured around a system call.  Module counters only appear
 * in failure messages, to explain.
 */
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

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
#define KPF_THP 22

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

/* Whether the CPU maps p through a transparent huge page. */
static int cpu_thp(const void *p)
{
	__u64 pfn = cpu_pfn(p), flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);
	int ok;

	if (fd < 0 || !pfn)
		return -1;
	ok = pread(fd, &flags, sizeof(flags), pfn * 8) == sizeof(flags);
	close(fd);
	return ok ? !!(flags & (1ULL << KPF_THP)) : -1;
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

TEST_HARNESS_MAIN
