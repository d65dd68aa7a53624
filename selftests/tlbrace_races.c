// SPDX-License-Identifier: GPL-2.0
/*
 * The seed races as reproducers: each scenario makes one interleaving of the
 * CPU and the device happen on demand, with injection points instead of
 * sleeps, and reports a verdict.  The matrix (scenario x contract) has an
 * expected verdict per cell: unsafe cells must reproduce in >= 99% of the
 * iterations, safe ones never.  See Documentation/races/.
 *
 * Each cell prints "# csv: scenario,contract,expect,iterations,hits,
 * first_hit_iteration,first_hit_us,us_per_iteration".
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/userfaultfd.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

/* Event numbers of enum mmu_notifier_event (not in the uapi). */
#define EV_CLEAR	1
#define EV_SOFT_DIRTY	4

enum { SYNC, DEFERRED_END, SVA, NONE, NR_CONTRACTS };

static const char *const contract_names[] = { "sync", "deferred-end", "sva", "none" };

/* A scenario returns 1 when the violation happened, 0 when not, <0 on error. */
struct scenario {
	const char *name;
	int (*run)(int fd);
	bool unsafe[NR_CONTRACTS];
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static volatile __u64 *map_page(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int park_at(int fd, __u32 point, volatile void *p, __u32 events)
{
	struct tlbrace_inject a = {
		.id = 0, .point = point, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE, .events = events,
		.count = 1, .timeout_ms = 5000, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	return inj_arm(fd, &a);
}

/* ---- 1. COW vs secondary TLB (seed 001) ------------------------------- */

struct writer {
	volatile __u64 *p;
	__u64 value;
};

static void *cpu_write(void *arg)
{
	struct writer *w = arg;

	*w->p = w->value;
	return NULL;
}

/*
 * The device caches a read-only translation of a private file page.  A CPU
 * thread writes: COW copies the page, switches the PTE, and is parked at
 * invalidate_range_end.  Another CPU thread writes C to the new page.  The
 * device (worker job) reads: a device still on the pre-COW page reads A.
 */
static int scenario_cow(int fd)
{
	int mfd = memfd_create("tlbrace-cow", MFD_CLOEXEC), ret = -1;
	__u64 a = 0xa, v;
	struct writer w = { .value = 0xb };
	struct tlbrace_stats st0, st;
	struct tlbrace_wait res;
	pthread_t t;
	bool done = false;

	if (mfd < 0 || ftruncate(mfd, PAGE) || pwrite(mfd, &a, 8, 0) != 8)
		return -1;
	w.p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	if (w.p == MAP_FAILED || dev_read(fd, w.p, &v, NULL) || v != a ||
	    park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, w.p, 1 << EV_CLEAR))
		goto out;
	if (pthread_create(&t, NULL, cpu_write, &w))
		goto out;
	if (inj_wait_parked(fd, 0, 1, 5000))
		goto join;
	*w.p = 0xc;
	dev_stats(fd, &st0);
	if (dev_submit(fd, TLBRACE_IOC_READ, w.p, 1, 0))
		goto join;
	/* Until the job is done, or blocked waiting for the invalidation. */
	for (int i = 0; i < 50000 && !done; i++) {
		done = dev_wait(fd, 0, &res) == 0;
		dev_stats(fd, &st);
		if (!done && st.fault_retries > st0.fault_retries)
			break;
		usleep(100);
	}
	inj_release(fd, 0);
	if (!done && dev_wait(fd, 10000, &res))
		goto join;
	ret = res.error == 0 && res.result.value == a;
join:
	inj_release(fd, 0);
	pthread_join(t, NULL);
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	if (w.p != MAP_FAILED)
		munmap((void *)w.p, PAGE);
	close(mfd);
	return ret;
}

/* ---- 5. Free before flush (seed 002) ----------------------------------- */

struct reader {
	int fd;
	volatile __u64 *p;
	int err;
	__u64 value;
};

static void *device_read(void *arg)
{
	struct reader *r = arg;

	r->err = dev_read(r->fd, r->p, &r->value, NULL);
	return NULL;
}

/*
 * The device's fault has walked the CPU page table and is parked before it
 * fills its TLB.  The CPU unmaps the page.  A device that fills anyway maps a
 * page that left the CPU page table: use after unmap.
 */
static int scenario_unmap_during_fill(int fd)
{
	struct reader r = { .fd = fd, .p = map_page() };
	pthread_t t;
	int ret = -1;

	if (!r.p)
		return -1;
	*r.p = 0x55;
	if (park_at(fd, TLBRACE_POINT_FAULT_FILL, r.p, 0) ||
	    pthread_create(&t, NULL, device_read, &r))
		goto out;
	if (inj_wait_parked(fd, 0, 1, 5000) == 0 && munmap((void *)r.p, PAGE) == 0)
		ret = 0;
	inj_release(fd, 0);
	pthread_join(t, NULL);
	if (ret == 0)
		ret = r.err == 0 && r.value == 0x55;
	else
		munmap((void *)r.p, PAGE);
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	return ret;
}

/* ---- 3. Write-protect vs device write (seed 000) ----------------------- */

struct monitor {
	int uffd, stop;
	volatile __u64 *p;
	bool trapped;
};

static void *uffd_monitor(void *arg)
{
	struct monitor *m = arg;
	struct pollfd pfd[2] = { { .fd = m->uffd, .events = POLLIN }, { .fd = m->stop, .events = POLLIN } };
	struct uffd_msg msg;

	while (poll(pfd, 2, 10000) > 0) {
		if (pfd[1].revents)
			break;
		if (read(m->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT &&
		    (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			struct uffdio_writeprotect wp = {
				.range = { .start = (uintptr_t)m->p, .len = PAGE },
				.mode = 0,
			};

			m->trapped = true;
			ioctl(m->uffd, UFFDIO_WRITEPROTECT, &wp);
		}
	}
	return NULL;
}

/*
 * userfaultfd write-protects a page the device holds a writable translation
 * of.  After UFFDIO_WRITEPROTECT returned, the device writes: the write must
 * trap to the monitor (which then unprotects the page); a device that kept
 * its translation writes silently: lost protection.
 */
static int scenario_uffd_wp(int fd)
{
	struct monitor m = { .p = map_page() };
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int stop[2] = { -1, -1 }, ret = -1;
	pthread_t t;

	m.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (!m.p || m.uffd < 0 || ioctl(m.uffd, UFFDIO_API, &api) || pipe(stop))
		goto out;
	m.stop = stop[0];
	*m.p = 1;
	reg.range.start = wp.range.start = (uintptr_t)m.p;
	reg.range.len = wp.range.len = PAGE;
	if (ioctl(m.uffd, UFFDIO_REGISTER, &reg) || dev_write(fd, m.p, 2, NULL) ||
	    ioctl(m.uffd, UFFDIO_WRITEPROTECT, &wp))
		goto out;
	if (pthread_create(&t, NULL, uffd_monitor, &m))
		goto out;
	ret = dev_write(fd, m.p, 3, NULL) == 0 && *m.p == 3 ? !m.trapped : -1;
	if (write(stop[1], "x", 1) != 1)
		ret = -1;
	pthread_join(t, NULL);
out:
	if (m.uffd >= 0)
		close(m.uffd);
	close(stop[0]);
	close(stop[1]);
	if (m.p)
		munmap((void *)m.p, PAGE);
	return ret;
}

static int clear_soft_dirty(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, "4", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

static int soft_dirty(volatile void *p)
{
	__u64 ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return -1;
	if (pread(fd, &ent, sizeof(ent), ((uintptr_t)p / PAGE) * 8) != sizeof(ent))
		ent = 0;
	close(fd);
	return !!(ent & (1ULL << 55));
}

/*
 * The same with soft-dirty tracking (CRIU, live migration): after
 * clear_refs returned, a device write must make the page soft-dirty again;
 * a device that kept its writable translation leaves no trace.
 */
static int scenario_soft_dirty(int fd)
{
	volatile __u64 *p = map_page();
	int ret = -1;

	if (!p)
		return -1;
	*p = 1;
	if (dev_write(fd, p, 2, NULL) == 0 && clear_soft_dirty() == 0 &&
	    soft_dirty(p) == 0 && dev_write(fd, p, 3, NULL) == 0 && *p == 3)
		ret = soft_dirty(p) == 0;
	munmap((void *)p, PAGE);
	return ret;
}

/* ---- 4. Dirty tracking vs asynchronous flush (seed 004) ---------------- */

/*
 * clear_refs clears soft-dirty and write-protects the PTEs between
 * invalidate_range_start and _end, and flushes the TLBs only after _end.  The
 * device writes at invalidate_range_end (an injected access, through its
 * dTLB only): a device whose translation survived to that point writes with
 * no trace, and the harvest after clear_refs finds the page clean although
 * its contents changed: lost dirty.  If the device had no translation there,
 * it writes after clear_refs returned, through a fault.
 */
static int scenario_dirty_window(int fd)
{
	volatile __u64 *p = map_page();
	struct tlbrace_inject a = {
		.id = 0, .point = TLBRACE_POINT_RANGE_END_ENTER, .action = TLBRACE_ACTION_ACCESS,
		.events = 1 << EV_SOFT_DIRTY, .count = 1,
		.access_op = TLBRACE_INJ_WRITE, .access_value = 3,
	};
	struct tlbrace_inject_status st;
	int ret = -1;

	if (!p)
		return -1;
	*p = 1;
	a.start = a.access_addr = (uintptr_t)p;
	a.end = a.start + PAGE;
	if (dev_write(fd, p, 2, NULL) || inj_arm(fd, &a) || clear_soft_dirty() ||
	    inj_status(fd, &st) || st.arms[0].fired != 1)
		goto out;
	if (st.arms[0].access_error && dev_write(fd, p, 3, NULL))
		goto out;
	ret = *p == 3 ? soft_dirty(p) == 0 : -1;
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	munmap((void *)p, PAGE);
	return ret;
}

/* ---- the matrix -------------------------------------------------------- */

static const struct scenario cow = {
	"cow_stale_read", scenario_cow, { false, true, false, true },
};
static const struct scenario unmap_fill = {
	"unmap_during_fill", scenario_unmap_during_fill, { false, false, false, true },
};
static const struct scenario uffd_wp = {
	"uffd_wp_lost_protection", scenario_uffd_wp, { false, false, false, true },
};
static const struct scenario sd = {
	"soft_dirty_lost", scenario_soft_dirty, { false, false, false, true },
};
static const struct scenario dirty_window = {
	"dirty_window_lost_dirty", scenario_dirty_window, { false, true, true, true },
};

FIXTURE(race)
{
	int fd;
};

FIXTURE_VARIANT(race)
{
	int contract;
	__u32 uapi;
};

FIXTURE_VARIANT_ADD(race, sync) { .contract = SYNC, .uapi = TLBRACE_CONTRACT_SYNC };
FIXTURE_VARIANT_ADD(race, deferred_end)
{
	.contract = DEFERRED_END, .uapi = TLBRACE_CONTRACT_DEFERRED_END
};
FIXTURE_VARIANT_ADD(race, sva) { .contract = SVA, .uapi = TLBRACE_CONTRACT_SVA };
FIXTURE_VARIANT_ADD(race, none) { .contract = NONE, .uapi = TLBRACE_CONTRACT_NONE };

FIXTURE_SETUP(race)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, tlbrace_config(self->fd, variant->uapi, 64, 4, TLBRACE_REPL_LRU));
}

FIXTURE_TEARDOWN(race)
{
	close(self->fd);
}

static int iterations(bool unsafe)
{
	const char *e = getenv(unsafe ? "TLBRACE_UNSAFE_ITERS" : "TLBRACE_SAFE_ITERS");

	return e ? atoi(e) : unsafe ? 100 : 1000;
}

#define RUN_MATRIX(s) do {							\
	bool unsafe = (s).unsafe[variant->contract];				\
	int n = iterations(unsafe), hits = 0, first = -1;			\
	double t0 = now_us(), first_us = -1;					\
										\
	for (int i = 0; i < n; i++) {						\
		int r;								\
										\
		/* A fresh device each time: "none" keeps stale entries. */	\
		ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));		\
		r = (s).run(self->fd);						\
										\
		ASSERT_GE(r, 0) TH_LOG("%s: iteration %d failed to set up", (s).name, i); \
		if (r && first < 0) {						\
			first = i;						\
			first_us = now_us() - t0;				\
		}								\
		hits += r;							\
	}									\
	printf("# csv: %s,%s,%s,%d,%d,%d,%.0f,%.0f\n", (s).name,		\
	       contract_names[variant->contract], unsafe ? "unsafe" : "safe",	\
	       n, hits, first, first_us, (now_us() - t0) / n);			\
	if (unsafe) {								\
		ASSERT_GE(hits * 100, n * 99);					\
	} else {								\
		ASSERT_EQ(0, hits);						\
	}									\
} while (0)

TEST_F(race, cow_stale_read)
{
	RUN_MATRIX(cow);
}

TEST_F(race, unmap_during_fill)
{
	RUN_MATRIX(unmap_fill);
}

TEST_F(race, uffd_wp_lost_protection)
{
	RUN_MATRIX(uffd_wp);
}

TEST_F(race, soft_dirty_lost)
{
	RUN_MATRIX(sd);
}

TEST_F(race, dirty_window_lost_dirty)
{
	RUN_MATRIX(dirty_window);
}

/* ---- bounded and safe --------------------------------------------------- */

struct zapper {
	volatile __u64 *p;
};

static void *cpu_dontneed(void *arg)
{
	struct zapper *z = arg;

	madvise((void *)z->p, PAGE, MADV_DONTNEED);
	return NULL;
}

/* A park nobody releases ends by its timeout. */
TEST_F(race, park_times_out)
{
	struct zapper z = { .p = map_page() };
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_RANGE_START_ENTER, .action = TLBRACE_ACTION_PARK,
		.count = 1, .timeout_ms = 50, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	struct tlbrace_inject_status st;
	pthread_t t;

	ASSERT_NE(NULL, z.p);
	*z.p = 1;
	a.start = (uintptr_t)z.p;
	a.end = a.start + PAGE;
	ASSERT_EQ(0, inj_arm(self->fd, &a));
	ASSERT_EQ(0, pthread_create(&t, NULL, cpu_dontneed, &z));
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, inj_status(self->fd, &st));
	ASSERT_EQ(1, st.arms[0].fired);
	ASSERT_EQ(1, st.arms[0].timeouts);
	ASSERT_EQ(0, st.arms[0].parked);
	munmap((void *)z.p, PAGE);
}

/* A rendezvous: arm 1 parks until arm 0 fires. */
TEST_F(race, rendezvous_releases_park)
{
	struct zapper z = { .p = map_page() };
	struct tlbrace_inject park = {
		.id = 1, .point = TLBRACE_POINT_RANGE_START_EXIT, .action = TLBRACE_ACTION_PARK,
		.count = 1, .timeout_ms = 5000, .release_on = 0,
	};
	struct tlbrace_inject trigger = {
		.id = 0, .point = TLBRACE_POINT_ACCESS_HIT, .action = TLBRACE_ACTION_DELAY,
		.delay_us = 1, .count = 1,
	};
	struct tlbrace_inject_status st;
	volatile __u64 *other = map_page();
	pthread_t t;
	__u64 v;

	ASSERT_NE(NULL, z.p);
	ASSERT_NE(NULL, other);
	*z.p = 1;
	*other = 2;
	ASSERT_EQ(0, dev_read(self->fd, other, &v, NULL));
	park.start = (uintptr_t)z.p;
	park.end = park.start + PAGE;
	ASSERT_EQ(0, inj_arm(self->fd, &park));
	ASSERT_EQ(0, inj_arm(self->fd, &trigger));
	ASSERT_EQ(0, pthread_create(&t, NULL, cpu_dontneed, &z));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 1, 1, 5000));
	/* A device hit elsewhere passes ACCESS_HIT: arm 0 fires, arm 1 goes on. */
	ASSERT_EQ(0, dev_read(self->fd, other, &v, NULL));
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, inj_status(self->fd, &st));
	ASSERT_EQ(1, st.arms[0].fired);
	ASSERT_EQ(1, st.arms[1].fired);
	ASSERT_EQ(0, st.arms[1].timeouts);
	munmap((void *)z.p, PAGE);
	munmap((void *)other, PAGE);
}

/* SIGKILL of a process with a task parked in a notifier callback. */
TEST_F(race, sigkill_while_parked)
{
	int status, ready[2];
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd = tlbrace_open();
		struct zapper z = { .p = map_page() };
		pthread_t t;

		if (fd < 0 || !z.p || tlbrace_config(fd, variant->uapi, 64, 4, 0))
			_exit(2);
		*z.p = 1;
		if (park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, z.p, 0) ||
		    pthread_create(&t, NULL, cpu_dontneed, &z) ||
		    inj_wait_parked(fd, 0, 1, 5000) || write(ready[1], "p", 1) != 1)
			_exit(3);
		pause();
		_exit(4);
	}
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(SIGKILL, WTERMSIG(status));
}

/* Closing the file releases a parked task at once. */
TEST_F(race, close_releases_park)
{
	struct zapper z = { .p = map_page() };
	int fd = tlbrace_open();
	double t0;
	pthread_t t;

	ASSERT_GE(fd, 0);
	ASSERT_NE(NULL, z.p);
	*z.p = 1;
	ASSERT_EQ(0, park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, z.p, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, cpu_dontneed, &z));
	ASSERT_EQ(0, inj_wait_parked(fd, 0, 1, 5000));
	t0 = now_us();
	close(fd);
	ASSERT_EQ(0, pthread_join(t, NULL));
	/* Well before the 5 s park timeout. */
	ASSERT_LT(now_us() - t0, 2e6);
	munmap((void *)z.p, PAGE);
}

TEST_HARNESS_MAIN
