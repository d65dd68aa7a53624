/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The seed races as scenario functions, shared by the race matrix
 * (tlbrace_races.c) and the stochastic comparison (tlbrace_bench.c).  Each
 * returns 1 when the violation happened, 0 when not, <0 when it could not set
 * up.  See Documentation/races/ for the interleavings.
 */
#ifndef TLBRACE_SCENARIOS_H
#define TLBRACE_SCENARIOS_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include <linux/userfaultfd.h>

#include "tlbrace_lib.h"

/* Event numbers of enum mmu_notifier_event (not in the uapi). */
#define EV_CLEAR	1
#define EV_SOFT_DIRTY	4

/* Contract (and, for batched, tracker) variants of the matrix. */
enum {
	SYNC, DEFERRED_END, SVA, NONE,
	B_NAIVE, B_COUNTER, B_RANGES, B_RANGES_WAIT, B_RANGES_FULL, NR_CONTRACTS
};

static const char *const contract_names[] = {
	"sync", "deferred-end", "sva", "none", "batched/naive", "batched/counter",
	"batched/ranges", "batched/ranges-wait", "batched/ranges-full",
};

static const struct {
	__u32 contract, tracker;
} contract_uapi[] = {
	{ TLBRACE_CONTRACT_SYNC, 0 },
	{ TLBRACE_CONTRACT_DEFERRED_END, 0 },
	{ TLBRACE_CONTRACT_SVA, 0 },
	{ TLBRACE_CONTRACT_NONE, 0 },
	{ TLBRACE_CONTRACT_BATCHED, TLBRACE_TRACKER_NAIVE },
	{ TLBRACE_CONTRACT_BATCHED, TLBRACE_TRACKER_COUNTER },
	{ TLBRACE_CONTRACT_BATCHED, TLBRACE_TRACKER_RANGES },
	{ TLBRACE_CONTRACT_BATCHED, TLBRACE_TRACKER_RANGES_WAIT },
	{ TLBRACE_CONTRACT_BATCHED, TLBRACE_TRACKER_RANGES_FULL },
};

/* A scenario returns 1 when the violation happened, 0 when not, <0 on error. */
struct scenario {
	const char *name;
	int (*run)(int fd);
	bool unsafe[NR_CONTRACTS];
};

static inline double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline volatile __u64 *map_page(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline int park_at(int fd, __u32 point, volatile void *p, __u32 events)
{
	/* Matches passes whose range overlaps the page at p. */
	struct tlbrace_inject a = {
		.id = 0, .point = point, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE, .events = events,
		.count = 1, .timeout_ms = 5000, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	return inj_arm(fd, &a);
}

/*
 * The device reads p as a worker job while a task is parked at arm 0.  A
 * correct device may block on the invalidation in progress (a sync fault
 * waits for it): once the job is done, or reported blocked (fault_retries
 * grew), the park is released.  Returns the job's error, the value in *v.
 */
static inline int read_past_park(int fd, volatile void *p, __u64 *v)
{
	struct tlbrace_stats st0, st;
	struct tlbrace_wait res;
	bool done = false;

	dev_stats(fd, &st0);
	if (dev_submit(fd, TLBRACE_IOC_READ, p, 1, 0))
		return -1;
	for (int i = 0; i < 50000 && !done; i++) {
		done = dev_wait(fd, 0, &res) == 0;
		dev_stats(fd, &st);
		if (!done && st.fault_retries > st0.fault_retries)
			break;
		usleep(100);
	}
	inj_release(fd, 0);
	if (!done && dev_wait(fd, 10000, &res))
		return -1;
	*v = res.result.value;
	return res.error;
}

/* ---- 1. COW vs secondary TLB (seed 001) ------------------------------- */

struct writer {
	volatile __u64 *p;
	__u64 value;
	volatile int done;
};

static inline void *cpu_write(void *arg)
{
	struct writer *w = arg;

	*w->p = w->value;
	w->done = 1;
	return NULL;
}

/*
 * The device caches a read-only translation of a private file page.  A CPU
 * thread writes: COW copies the page, switches the PTE, and is parked at
 * invalidate_range_end.  Another CPU thread writes C to the new page.  The
 * device (worker job) reads: a device still on the pre-COW page reads A.
 */
static inline int scenario_cow(int fd)
{
	int mfd = memfd_create("tlbrace-cow", MFD_CLOEXEC), ret = -1;
	__u64 a = 0xa, v;
	struct writer w = { .value = 0xb };
	pthread_t t;

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
	ret = read_past_park(fd, w.p, &v) == 0 && v == a;
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
	__u32 outcome;
};

static inline void *device_read(void *arg)
{
	struct reader *r = arg;

	r->err = dev_read(r->fd, r->p, &r->value, &r->outcome);
	return NULL;
}

/*
 * The device's fault has walked the CPU page table and is parked before it
 * fills its TLB.  The CPU unmaps the page.  A device that fills anyway maps a
 * page that left the CPU page table: use after unmap.
 */
static inline int scenario_unmap_during_fill(int fd)
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

static inline void *uffd_monitor(void *arg)
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
static inline int scenario_uffd_wp(int fd)
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

/*
 * The same with soft-dirty tracking (CRIU, live migration): after
 * clear_refs returned, a device write must make the page soft-dirty again;
 * a device that kept its writable translation leaves no trace.
 */
static inline int scenario_soft_dirty(int fd)
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

/* ---- 2. Concurrent MADV_DONTNEED on overlapping ranges (seeds 001, 003) - */

struct zap {
	volatile char *p;
	size_t len;
	volatile int done;
};

static inline void *zap_range(void *arg)
{
	struct zap *z = arg;

	madvise((void *)z->p, z->len, MADV_DONTNEED);
	z->done = 1;
	return NULL;
}

/*
 * Pages 1..3 of a 4-page buffer are mirrored.  Gather A (pages 1-2) clears
 * the device's entries 1 and 2 and is parked before it closes.  Gather B
 * (pages 2-3) finds entry 2 already cleared, clears only 3, closes, and its
 * madvise returns.  The device reads page 2: a tracker that let B flush only
 * what B cleared still translates it to the old page (seed 003's
 * CPU-0/CPU-1 race).  A waiting tracker makes B wait for A instead.
 */
static inline int scenario_overlapping_dontneed(int fd)
{
	volatile char *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zap a = { .len = 2 * PAGE }, b = { .len = 2 * PAGE };
	struct tlbrace_stats st0, st;
	volatile __u64 *page2;
	pthread_t ta, tb;
	int ret = -1;
	__u64 v;

	if (buf == MAP_FAILED)
		return -1;
	a.p = buf + PAGE;
	b.p = buf + 2 * PAGE;
	page2 = (volatile __u64 *)(buf + 2 * PAGE);
	for (int i = 1; i < 4; i++) {
		*(volatile __u64 *)(buf + i * PAGE) = 0xd0 + i;
		if (dev_read(fd, buf + i * PAGE, &v, NULL))
			goto out;
	}
	if (park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, a.p, 1 << EV_CLEAR) ||
	    pthread_create(&ta, NULL, zap_range, &a))
		goto out;
	/* Only A's own range: the filter covers [page 1, page 2). */
	if (inj_wait_parked(fd, 0, 1, 5000))
		goto join_a;
	dev_stats(fd, &st0);
	if (pthread_create(&tb, NULL, zap_range, &b))
		goto join_a;
	/* Until B returned, or is reported waiting for A (ranges-wait). */
	for (int i = 0; i < 50000 && !b.done; i++) {
		dev_stats(fd, &st);
		if (st.gather_waits > st0.gather_waits)
			break;
		usleep(100);
	}
	if (!b.done)
		inj_release(fd, 0);
	pthread_join(tb, NULL);
	/* B's madvise returned: the device must not see the old page 2. */
	ret = read_past_park(fd, page2, &v) == 0 && v == 0xd2;
join_a:
	inj_release(fd, 0);
	pthread_join(ta, NULL);
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	munmap((void *)buf, 4 * PAGE);
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
static inline int scenario_dirty_window(int fd)
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

/*
 * Stochastic twins of scenarios 1 and 5: the same race left to timing, as
 * hmm-tests' anon_teardown does, and judged by the staleness detector
 * (TLBRACE_OUT_STALE) since no injection point says when the window was.
 */
static inline int stochastic_cow(int fd)
{
	int mfd = memfd_create("tlbrace-cow", MFD_CLOEXEC), hit = 0;
	struct writer w = { .value = 0xb };
	__u64 a = 0xa, v;
	__u32 out;
	pthread_t t;

	if (mfd < 0 || ftruncate(mfd, PAGE) || pwrite(mfd, &a, 8, 0) != 8)
		return -1;
	w.p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	if (w.p == MAP_FAILED || dev_read(fd, w.p, &v, NULL) ||
	    pthread_create(&t, NULL, cpu_write, &w)) {
		hit = -1;
		goto out;
	}
	while (!w.done)
		if (dev_read(fd, w.p, &v, &out) == 0 && (out & TLBRACE_OUT_STALE))
			hit = 1;
	pthread_join(t, NULL);
out:
	if (w.p != MAP_FAILED)
		munmap((void *)w.p, PAGE);
	close(mfd);
	return hit;
}

static inline int stochastic_unmap_during_fill(int fd)
{
	struct reader r = { .fd = fd, .p = map_page() };
	pthread_t t;

	if (!r.p)
		return -1;
	*r.p = 0x55;
	if (pthread_create(&t, NULL, device_read, &r)) {
		munmap((void *)r.p, PAGE);
		return -1;
	}
	munmap((void *)r.p, PAGE);
	pthread_join(t, NULL);
	return r.err == 0 && (r.outcome & TLBRACE_OUT_STALE);
}

#endif /* TLBRACE_SCENARIOS_H */
