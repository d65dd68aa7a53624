// SPDX-License-Identifier: GPL-2.0
/*
 * The edges of the batched contract's gathers and trackers, each made to
 * happen with injection points and judged by what the device reads:
 *
 *  - more gathers open than the device can defer (64): the next one is
 *    invalidated eagerly, and the device never reads the zapped page's old
 *    contents after its madvise returned;
 *  - ranges-wait's bounded wait: B's madvise returns after the wait bound
 *    (measured here) while older overlapping A is still open, and the
 *    device does not read the page A cleared and B skipped;
 *  - a non-blockable close (the OOM reaper's path, provoked with
 *    process_mrelease() on a dying process): it does not wait, and flushes
 *    what the open gather it could not wait for cleared;
 *  - CONFIG fails with EBUSY while a gather is open, and works after;
 *  - the counter tracker's mirror of mm->tlb_flush_pending equals the real
 *    counter at the same instants (debugfs reads both at once);
 *  - a device fault on a page with a pending flush flushes that page: the
 *    device stops using the old translation before the gather closes;
 *  - a close nested in the same thread's open gather (a THP split inside a
 *    zap) does not wait for that gather, which closes only after it.
 */
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tlbrace_scenarios.h"
#include "kselftest_harness.h"

/* MAX_GATHERS of rust/gather.rs: gathers the device defers at once. */
#define MAX_GATHERS	64
/* WAIT_MS of rust/gather.rs: how long a ranges-wait close waits. */
#define GATHER_WAIT_MS		1000

static int config(int fd, __u32 tracker)
{
	return tlbrace_config_tracker(fd, TLBRACE_CONTRACT_BATCHED, tracker, 64, 4,
				      TLBRACE_REPL_LRU);
}

/* Parks, at arm id, the passes of point whose range overlaps [p, p + len). */
static int park_range(int fd, __u32 id, __u32 point, volatile void *p, size_t len,
		      __u32 count)
{
	struct tlbrace_inject a = {
		.id = id, .point = point, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)p, .end = (uintptr_t)p + len, .events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR),
		.count = count, .timeout_ms = TLBRACE_PARK_MAX_MS,
		.release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	return inj_arm(fd, &a);
}

/* Fills page i of buf with base + i and caches it in the device. */
static int mirror_pages(int fd, char *buf, int first, int n, __u64 base)
{
	__u64 v = 0;

	for (int i = first; i < first + n; i++) {
		*(volatile __u64 *)(buf + i * PAGE) = base + i;
		if (dev_read(fd, buf + i * PAGE, &v, NULL) || v != base + i)
			return -1;
	}
	return 0;
}

/*
 * A zap that waits for *go.  Threads are created before anything is parked:
 * a parked zap holds the mmap lock for reading, and creating a thread maps
 * its stack, which takes it for writing.
 */
struct zapper {
	char *p;
	size_t len;
	volatile int *go;
	volatile int done;
};

static void *gated_zap(void *arg)
{
	struct zapper *z = arg;

	while (!*z->go)
		usleep(50);
	madvise(z->p, z->len, MADV_DONTNEED);
	z->done = 1;
	return NULL;
}

static int start_zapper(pthread_t *t, struct zapper *z, char *p, size_t len, volatile int *go)
{
	*z = (struct zapper){ .p = p, .len = len, .go = go };
	return pthread_create(t, NULL, gated_zap, z);
}

/* ---- more than MAX_GATHERS open gathers --------------------------------- */

/*
 * read_past_park() (tlbrace_scenarios.h) as this file uses it: the value
 * read in *v, and 0 or the negative errno of the job or of a failed ioctl.
 */
static int read_value_past_park(int fd, volatile void *p, __u64 *v)
{
	struct park_read r;
	int err = read_past_park(fd, p, &r);

	if (err)
		return -err;
	*v = r.value;
	return -r.err;
}

FIXTURE(overflow)
{
	int fd;
};

FIXTURE_VARIANT(overflow)
{
	__u32 tracker;
};

FIXTURE_VARIANT_ADD(overflow, naive) { .tracker = TLBRACE_TRACKER_NAIVE };
FIXTURE_VARIANT_ADD(overflow, counter) { .tracker = TLBRACE_TRACKER_COUNTER };
FIXTURE_VARIANT_ADD(overflow, ranges) { .tracker = TLBRACE_TRACKER_RANGES };
FIXTURE_VARIANT_ADD(overflow, ranges_wait) { .tracker = TLBRACE_TRACKER_RANGES_WAIT };
FIXTURE_VARIANT_ADD(overflow, ranges_full) { .tracker = TLBRACE_TRACKER_RANGES_FULL };

FIXTURE_SETUP(overflow)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, config(self->fd, variant->tracker));
}

FIXTURE_TEARDOWN(overflow)
{
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	close(self->fd);
}

/*
 * MAX_GATHERS threads each zap one page and are parked before their gather
 * closes; one more zap finds no room to defer and must invalidate eagerly:
 * once its madvise returned, the device must not read the old contents.
 * Every thread exists before the first park: a parked zap holds the mmap
 * lock for reading, so no stack may be mapped meanwhile.
 */
TEST_F_TIMEOUT(overflow, more_than_64_open_gathers, 120)
{
	const int n = MAX_GATHERS;
	char *buf = mmap(NULL, (n + 1) * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile __u64 *last = (volatile __u64 *)(buf + n * PAGE);
	struct zapper z[MAX_GATHERS];
	pthread_t t[MAX_GATHERS];
	pthread_attr_t attr;
	volatile int go = 0;
	int err, still_open = 0;
	__u64 v = 0;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, mirror_pages(self->fd, buf, 0, n + 1, 0x100));
	ASSERT_EQ(0, park_range(self->fd, 0, TLBRACE_POINT_RANGE_END_ENTER, buf, n * PAGE, 0));
	ASSERT_EQ(0, pthread_attr_init(&attr));
	ASSERT_EQ(0, pthread_attr_setstacksize(&attr, 64 << 10));
	for (int i = 0; i < n; i++) {
		z[i] = (struct zapper){ .p = buf + i * PAGE, .len = PAGE, .go = &go };
		ASSERT_EQ(0, pthread_create(&t[i], &attr, gated_zap, &z[i]));
	}
	go = 1;
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, n, 60000));

	/* Gather n + 1: no room to defer. */
	ASSERT_EQ(0, madvise((void *)last, PAGE, MADV_DONTNEED));
	for (int i = 0; i < n; i++)
		still_open += !z[i].done;
	/*
	 * The device reads it.  A correct one misses, faults and waits for the
	 * open gathers; woken at each of their closes, its fault may use up its
	 * retries (MAX_FAULT_RETRIES, rust/engine.rs) and fail with EAGAIN,
	 * having read nothing: then it reads again once they all closed.  Only
	 * a dTLB hit on the old page answers at once, with the old contents.
	 */
	err = read_value_past_park(self->fd, last, &v);
	inj_release(self->fd, 0);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	ASSERT_EQ(0, inj_disarm(self->fd, TLBRACE_ALL_ARMS));

	/* All MAX_GATHERS were open while the last zap returned. */
	ASSERT_EQ(n, still_open);
	ASSERT_TRUE(err == 0 || err == -EAGAIN) TH_LOG("device read: %s", strerror(-err));
	if (err == -EAGAIN) {
		printf("# the first device read gave up waiting (EAGAIN); read again\n");
		ASSERT_EQ(0, dev_read(self->fd, last, &v, NULL));
	}
	ASSERT_EQ(0, v) TH_LOG("device read %#llx at the zapped page, the old contents", v);
	ASSERT_EQ(0, *last);
	/* And the deferred gathers flushed what they cleared. */
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(0, dev_read(self->fd, buf + i * PAGE, &v, NULL));
		ASSERT_EQ(0, v) TH_LOG("page %d: device read %#llx", i, v);
	}
	munmap(buf, (n + 1) * PAGE);
}

/* ---- the other edges: one device, configured per test ------------------- */

FIXTURE(edge)
{
	int fd;
	char *buf;
};

#define EDGE_PAGES	4

FIXTURE_SETUP(edge)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	self->buf = mmap(NULL, EDGE_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(edge)
{
	/* Nothing may park the unmap. */
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	munmap(self->buf, EDGE_PAGES * PAGE);
	close(self->fd);
}

/*
 * ranges-wait: A (pages 1-2) is parked before it closes, far longer than the
 * wait bound; B (pages 2-3) overlaps it and must wait, then give up after
 * GATHER_WAIT_MS and flush everything.  B's madvise returns after about GATHER_WAIT_MS with
 * A still open, and the device does not read page 2 (cleared by A, skipped
 * by B) from the old page.
 */
TEST_F_TIMEOUT(edge, ranges_wait_timeout, 60)
{
	struct zap a = { .p = self->buf + PAGE, .len = 2 * PAGE };
	volatile __u64 *page2 = (volatile __u64 *)(self->buf + 2 * PAGE);
	double t0, ms;
	pthread_t ta;
	int a_open, err;
	__u64 v = 0, v3 = 0;

	ASSERT_EQ(0, config(self->fd, TLBRACE_TRACKER_RANGES_WAIT));
	ASSERT_EQ(0, mirror_pages(self->fd, self->buf, 1, 3, 0xd0));
	/* Only A's range_end: the filter is page 1, which B does not touch. */
	ASSERT_EQ(0, park_range(self->fd, 0, TLBRACE_POINT_RANGE_END_ENTER, self->buf + PAGE,
				PAGE, 1));
	ASSERT_EQ(0, pthread_create(&ta, NULL, zap_range, &a));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));

	t0 = now_us();
	ASSERT_EQ(0, madvise(self->buf + 2 * PAGE, 2 * PAGE, MADV_DONTNEED));
	ms = (now_us() - t0) / 1000;
	a_open = !a.done;
	err = read_value_past_park(self->fd, page2, &v);
	inj_release(self->fd, 0);
	pthread_join(ta, NULL);
	printf("# B's madvise returned after %.1f ms (wait bound %d ms)\n", ms, GATHER_WAIT_MS);

	ASSERT_TRUE(a_open) TH_LOG("A closed before B returned: nothing was waited for");
	ASSERT_GE(ms, GATHER_WAIT_MS - 20);
	/* Far from A's park (10 s): B gave up at the bound. */
	ASSERT_LT(ms, GATHER_WAIT_MS + 1500);
	ASSERT_EQ(0, err);
	ASSERT_EQ(0, v) TH_LOG("device read %#llx at page 2 after B returned", v);
	ASSERT_EQ(0, dev_read(self->fd, self->buf + 3 * PAGE, &v3, NULL));
	ASSERT_EQ(0, v3);
}

/*
 * A nested invalidation inside the caller's own open gather: MADV_DONTNEED of
 * one page of a THP the device maps splits the huge PMD inside the zap, and
 * the split's invalidation overlaps the zap's, opened by the same thread.
 * ranges-wait must not wait for a gather that can only close after it
 * returns (it used to wait out GATHER_WAIT_MS every time), and the device
 * must not read the zapped page's old contents afterwards.
 */
TEST_F_TIMEOUT(edge, nested_close_does_not_wait_for_own_gather, 60)
{
	const size_t hp = 2UL << 20;
	char *raw = mmap(NULL, 2 * hp, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *thp = (char *)(((uintptr_t)raw + hp - 1) & ~(hp - 1));
	double t0, ms;
	__u64 v = 1;

	ASSERT_NE(MAP_FAILED, raw);
	ASSERT_EQ(0, madvise(thp, hp, MADV_HUGEPAGE));
	memset(thp, 0x5a, hp);
	ASSERT_EQ(1, cpu_thp(thp)) TH_LOG("no THP at the aligned 2 MiB: nothing to split");
	ASSERT_EQ(0, config(self->fd, TLBRACE_TRACKER_RANGES_WAIT));
	ASSERT_EQ(0, dev_prefetch(self->fd, thp, hp, 0));

	t0 = now_us();
	ASSERT_EQ(0, madvise(thp + 5 * PAGE, PAGE, MADV_DONTNEED));
	ms = (now_us() - t0) / 1000;
	printf("# MADV_DONTNEED of one page of a device-mapped THP: %.1f ms\n", ms);
	ASSERT_LT(ms, GATHER_WAIT_MS / 2);
	/* The huge PMD was split: one 4 KiB page is gone, the rest stays. */
	ASSERT_EQ(0, cpu_pfn(thp + 5 * PAGE));
	ASSERT_NE(0, cpu_pfn(thp + 4 * PAGE));
	ASSERT_EQ(0, dev_read(self->fd, thp + 5 * PAGE, &v, NULL));
	ASSERT_EQ(0, v) TH_LOG("device read %#llx from the zapped page", v);
	munmap(raw, 2 * hp);
}

/*
 * A gather is open (parked before its close): reconfiguring would hand it to
 * a new tracker that never saw it open, so CONFIG must fail with EBUSY, leave
 * the gather to close normally, and succeed afterwards.
 */
TEST_F(edge, config_ebusy_while_gather_open)
{
	struct zap a = { .p = self->buf, .len = PAGE };
	pthread_t ta;
	int busy_same, busy_sync, a_open;
	__u64 v = 0;

	ASSERT_EQ(0, config(self->fd, TLBRACE_TRACKER_COUNTER));
	ASSERT_EQ(0, mirror_pages(self->fd, self->buf, 0, 1, 0x70));
	ASSERT_EQ(0, park_range(self->fd, 0, TLBRACE_POINT_RANGE_END_ENTER, self->buf, PAGE, 1));
	ASSERT_EQ(0, pthread_create(&ta, NULL, zap_range, &a));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));

	busy_same = config(self->fd, TLBRACE_TRACKER_RANGES);
	busy_sync = tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, 4, TLBRACE_REPL_LRU);
	a_open = !a.done;
	inj_release(self->fd, 0);
	pthread_join(ta, NULL);

	ASSERT_TRUE(a_open);
	ASSERT_EQ(EBUSY, busy_same);
	ASSERT_EQ(EBUSY, busy_sync);
	/* The gather closed under the tracker it opened with. */
	ASSERT_EQ(0, dev_read(self->fd, self->buf, &v, NULL));
	ASSERT_EQ(0, v);
	/* Nothing open any more: CONFIG works, and the new tracker too. */
	ASSERT_EQ(0, config(self->fd, TLBRACE_TRACKER_RANGES));
	ASSERT_EQ(0, mirror_pages(self->fd, self->buf, 0, 1, 0x80));
	ASSERT_EQ(0, madvise(self->buf, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, dev_read(self->fd, self->buf, &v, NULL));
	ASSERT_EQ(0, v);
}

/* ---- the stock counter's mirror against the real one -------------------- */

/* The device's debugfs stats file, found before anything is parked. */
static int stats_path(char *path, size_t len)
{
	char pattern[96];
	glob_t g;
	int ret = -1;

	snprintf(pattern, sizeof(pattern), "/sys/kernel/debug/tlbrace/%d-*/stats", getpid());
	if (glob(pattern, 0, NULL, &g))
		return -1;
	if (g.gl_pathc == 1 && strlen(g.gl_pathv[0]) < len) {
		strcpy(path, g.gl_pathv[0]);
		ret = 0;
	}
	globfree(&g);
	return ret;
}

/*
 * Reads both gauges from one read of the stats file (the module reads them
 * together under its MMU lock).  No allocation: it runs while zaps are
 * parked holding the mmap lock.
 */
static int pending_gauges(const char *path, long *mirror, long *kernel)
{
	char buf[4096], *m, *k;
	int fd = open(path, O_RDONLY), n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	m = strstr(buf, "tracker_open_gathers: ");
	k = strstr(buf, "kernel_tlb_flush_pending: ");
	if (!m || !k)
		return -1;
	*mirror = strtol(m + strlen("tracker_open_gathers: "), NULL, 10);
	*kernel = strtol(k + strlen("kernel_tlb_flush_pending: "), NULL, 10);
	return 0;
}

#define EXPECT_GAUGES(path, m, k) do {						\
	long __m = -1, __k = -1;						\
										\
	ASSERT_EQ(0, pending_gauges(path, &__m, &__k));				\
	ASSERT_EQ(m, __m) TH_LOG("%s: mirror %ld, kernel %ld", #m, __m, __k);	\
	ASSERT_EQ(k, __k) TH_LOG("%s: mirror %ld, kernel %ld", #k, __m, __k);	\
} while (0)

/*
 * counter: the mirror and mm->tlb_flush_pending, read at the same instants:
 * 0/0 idle, 1/1 with gather A parked before its close, 2/2 with B parked
 * too, 1/1 and 0/0 as they close.  And the two places where they differ by
 * design, which show the kernel value is read live and not derived: parked
 * at range_start before the device opened its gather, or at range_end after
 * it closed it, the CPU batch (tlb_gather_mmu() .. tlb_finish_mmu()) is open
 * and the device's is not: kernel 1, mirror 0.
 */
TEST_F(edge, stock_mirror_equals_kernel_counter)
{
	volatile int go_a = 0, go_b = 0, go_c = 0;
	struct zapper a, b, c;
	char path[256];
	pthread_t ta, tb, tc;

	ASSERT_EQ(0, config(self->fd, TLBRACE_TRACKER_COUNTER));
	ASSERT_EQ(0, mirror_pages(self->fd, self->buf, 0, EDGE_PAGES, 0x90));
	ASSERT_EQ(0, stats_path(path, sizeof(path)));
	ASSERT_EQ(0, start_zapper(&ta, &a, self->buf, PAGE, &go_a));
	ASSERT_EQ(0, start_zapper(&tb, &b, self->buf + 2 * PAGE, PAGE, &go_b));
	ASSERT_EQ(0, start_zapper(&tc, &c, self->buf + 3 * PAGE, PAGE, &go_c));
	EXPECT_GAUGES(path, 0, 0);

	ASSERT_EQ(0, park_range(self->fd, 0, TLBRACE_POINT_RANGE_END_ENTER, a.p, PAGE, 1));
	ASSERT_EQ(0, park_range(self->fd, 1, TLBRACE_POINT_RANGE_END_ENTER, b.p, PAGE, 1));
	go_a = 1;
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	EXPECT_GAUGES(path, 1, 1);
	go_b = 1;
	ASSERT_EQ(0, inj_wait_parked(self->fd, 1, 1, 5000));
	EXPECT_GAUGES(path, 2, 2);
	ASSERT_EQ(0, inj_release(self->fd, 1));
	ASSERT_EQ(0, pthread_join(tb, NULL));
	EXPECT_GAUGES(path, 1, 1);
	ASSERT_EQ(0, inj_release(self->fd, 0));
	ASSERT_EQ(0, pthread_join(ta, NULL));
	EXPECT_GAUGES(path, 0, 0);

	/* Before the device's gather opens, and after it closed. */
	ASSERT_EQ(0, park_range(self->fd, 2, TLBRACE_POINT_RANGE_START_ENTER, c.p, PAGE, 1));
	ASSERT_EQ(0, park_range(self->fd, 3, TLBRACE_POINT_RANGE_END_EXIT, c.p, PAGE, 1));
	go_c = 1;
	ASSERT_EQ(0, inj_wait_parked(self->fd, 2, 1, 5000));
	EXPECT_GAUGES(path, 0, 1);
	ASSERT_EQ(0, inj_release(self->fd, 2));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 3, 1, 5000));
	EXPECT_GAUGES(path, 0, 1);
	ASSERT_EQ(0, inj_release(self->fd, 3));
	ASSERT_EQ(0, pthread_join(tc, NULL));
	EXPECT_GAUGES(path, 0, 0);
}

/* ---- the fault path's pending-flush check ------------------------------- */

struct dev_writer {
	int fd;
	volatile __u64 *p;
	__u64 value;
	volatile int go;
	int err;
};

static void *device_write(void *arg)
{
	struct dev_writer *w = arg;

	while (!w->go)
		usleep(50);
	w->err = dev_write(w->fd, w->p, w->value, NULL);
	return NULL;
}

FIXTURE(pending)
{
	int fd;
	char *buf;
};

FIXTURE_VARIANT(pending)
{
	__u32 tracker;
	/* The tracker answers "a flush is pending" for the zapped page. */
	bool flushes;
};

/* naive answers "nothing pending", ever: the control. */
FIXTURE_VARIANT_ADD(pending, naive) { .tracker = TLBRACE_TRACKER_NAIVE, .flushes = false };
FIXTURE_VARIANT_ADD(pending, counter) { .tracker = TLBRACE_TRACKER_COUNTER, .flushes = true };
FIXTURE_VARIANT_ADD(pending, ranges) { .tracker = TLBRACE_TRACKER_RANGES, .flushes = true };
FIXTURE_VARIANT_ADD(pending, ranges_wait)
{
	.tracker = TLBRACE_TRACKER_RANGES_WAIT, .flushes = true
};
FIXTURE_VARIANT_ADD(pending, ranges_full)
{
	.tracker = TLBRACE_TRACKER_RANGES_FULL, .flushes = true
};

FIXTURE_SETUP(pending)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, config(self->fd, variant->tracker));
	self->buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(pending)
{
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	munmap(self->buf, PAGE);
	close(self->fd);
}

/*
 * Seed 000 on the device: gather A zapped page X and is parked before its
 * close, so the dTLB still maps X's old page (the batching: the device reads
 * the old contents, and may until A closes).  Then a device write faults on
 * X (the translation is read-only).  The fault asks the tracker whether a
 * flush is pending for X and, if so, flushes X before it waits for A: from
 * then on the device must not read X's old contents, although A is still
 * open.  naive never answers yes, and the device keeps reading them.
 */
TEST_F_TIMEOUT(pending, fault_flushes_pending_page, 60)
{
	volatile __u64 *x = (volatile __u64 *)self->buf;
	struct zap a = { .p = self->buf, .len = PAGE };
	struct dev_writer w = { .fd = self->fd, .p = x, .value = 0x22 };
	struct tlbrace_stats st0, st;
	__u64 before = 0, after = 0;
	__u32 out;
	pthread_t ta, tw;
	int err, blocked = 0;

	*x = 0x11;
	ASSERT_EQ(0, dev_read(self->fd, x, &before, NULL));
	ASSERT_EQ(0, pthread_create(&tw, NULL, device_write, &w));
	ASSERT_EQ(0, park_range(self->fd, 0, TLBRACE_POINT_RANGE_END_ENTER, self->buf, PAGE, 1));
	ASSERT_EQ(0, pthread_create(&ta, NULL, zap_range, &a));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));

	/* The window batching defers: a dTLB hit on the old page. */
	ASSERT_EQ(0, dev_read(self->fd, x, &before, &out));
	ASSERT_EQ(0x11, before);
	ASSERT_TRUE(out & TLBRACE_OUT_HIT);

	/* The device write faults, and waits for A (fault_retries grows). */
	ASSERT_EQ(0, dev_stats(self->fd, &st0));
	w.go = 1;
	for (int i = 0; i < 50000 && !blocked; i++) {
		ASSERT_EQ(0, dev_stats(self->fd, &st));
		blocked = st.fault_retries > st0.fault_retries;
		usleep(100);
	}
	/* A read of X now: it may wait for A, it must not use the old page. */
	err = blocked ? read_value_past_park(self->fd, x, &after) : -1;
	inj_release(self->fd, 0);
	pthread_join(ta, NULL);
	pthread_join(tw, NULL);

	ASSERT_TRUE(blocked) TH_LOG("the device write did not wait for the open gather");
	ASSERT_EQ(0, err);
	ASSERT_EQ(0, w.err);
	if (variant->flushes) {
		ASSERT_NE(0x11, after) TH_LOG("device read X's old contents after a fault on X");
	} else {
		ASSERT_EQ(0x11, after) TH_LOG("naive: expected the old contents, read %#llx", after);
	}
	/* Either way, after A closed: the device's write, on the new page. */
	ASSERT_EQ(0x22, *x);
}

/* ---- a non-blockable close: process_mrelease() on a dying process -------- */

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_process_mrelease
#define __NR_process_mrelease 448
#endif

/* Shared between the test and its dying child. */
struct reap {
	/* The child's stale-read probe: written by the kernel only on success. */
	struct tlbrace_access probe;
	double probe_fired_us;
	volatile int ready;
};

#define DELAY_US	100000
/* Delay arms: the probe waits PROBE_DELAYS x 100 ms, A ZAP_DELAYS x 100 ms. */
#define PROBE_DELAYS	3
#define ZAP_DELAYS	5

static int arm_delays(int fd, __u32 first, int n, __u32 point, void *p)
{
	for (int i = 0; i < n; i++) {
		struct tlbrace_inject d = {
			.id = first + i, .point = point, .action = TLBRACE_ACTION_DELAY,
			.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE, .count = 1,
			.delay_us = DELAY_US,
		};

		if (inj_arm(fd, &d))
			return -1;
	}
	return 0;
}

static int wait_fired(int fd, __u32 id)
{
	struct tlbrace_inject_status s;

	for (int i = 0; i < 100000; i++) {
		if (inj_status(fd, &s))
			return -1;
		if (s.arms[id].fired)
			return 0;
		usleep(100);
	}
	return -1;
}

struct probe_arg {
	int fd;
	struct reap *r;
};

static void *probe_read(void *arg)
{
	struct probe_arg *pa = arg;

	ioctl(pa->fd, TLBRACE_IOC_READ, &pa->r->probe);
	return NULL;
}

/*
 * The child: ranges-wait; page 1 of 4 mirrored.  Its probe thread starts a
 * device read of page 1, which hits in the dTLB and is delayed (sleeping,
 * uninterruptibly) just before it uses the hit; then thread A zaps page 1
 * and is delayed before its gather closes.  The child tells the test, which
 * kills it and reaps it with process_mrelease(): the reaper zaps every vma
 * with non-blockable notifier calls while the delayed threads keep the mm.
 * Its gather over page 1's vma overlaps older A, may not wait, and must flush
 * everything, page 1 included (A cleared it, so the reaper's own gather did
 * not).  The probe then looks up the dTLB again: a hit is a read of the
 * reaped page after the reaper's invalidation ended, and its result lands in
 * shared memory; a miss faults in a dying process and fails.
 */
static void reap_child(struct reap *r, int to_parent)
{
	char *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = tlbrace_open();
	struct probe_arg pa = { .fd = fd, .r = r };
	struct zap a;
	pthread_t tp, ta;

	if (fd < 0 || buf == MAP_FAILED || config(fd, TLBRACE_TRACKER_RANGES_WAIT) ||
	    mirror_pages(fd, buf, 0, 4, 0xe0))
		_exit(1);
	a = (struct zap){ .p = buf + PAGE, .len = PAGE };
	r->probe = (struct tlbrace_access){
		.size = sizeof(r->probe), .addr = (uintptr_t)(buf + PAGE), .count = 1,
		.value = 0xdead,
	};
	if (arm_delays(fd, 0, PROBE_DELAYS, TLBRACE_POINT_ACCESS_HIT, buf + PAGE) ||
	    arm_delays(fd, PROBE_DELAYS, ZAP_DELAYS, TLBRACE_POINT_RANGE_END_ENTER, buf + PAGE))
		_exit(1);
	if (pthread_create(&tp, NULL, probe_read, &pa) || wait_fired(fd, 0))
		_exit(1);
	r->probe_fired_us = now_us();
	if (pthread_create(&ta, NULL, zap_range, &a) || wait_fired(fd, PROBE_DELAYS))
		_exit(1);
	r->ready = 1;
	if (write(to_parent, "r", 1) != 1)
		_exit(1);
	pause();
	_exit(0);
}

/* Prints two lines of process pid's device's debugfs stats. */
static void print_counters(pid_t pid, const char *a, const char *b)
{
	char pattern[96], buf[4096], *l;
	glob_t g;
	int fd, n;

	snprintf(pattern, sizeof(pattern), "/sys/kernel/debug/tlbrace/%d-*/stats", pid);
	if (glob(pattern, 0, NULL, &g))
		return;
	fd = g.gl_pathc == 1 ? open(g.gl_pathv[0], O_RDONLY) : -1;
	globfree(&g);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, a, strlen(a)) || !strncmp(l, b, strlen(b)))
			printf("# child's device: %s\n", l);
}

TEST_F_TIMEOUT(edge, nonblocking_close_process_mrelease, 60)
{
	struct reap *r = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			      -1, 0);
	struct pollfd pfd;
	int pipefd[2], pidfd, status, alive;
	double t0, reaped_us, ms;
	long ret;
	pid_t pid;
	char c;

	ASSERT_NE(MAP_FAILED, r);
	memset(r, 0, sizeof(*r));
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		reap_child(r, pipefd[1]);
	}
	close(pipefd[1]);
	pidfd = syscall(__NR_pidfd_open, pid, 0);
	ASSERT_GE(pidfd, 0);
	pfd = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 20000));
	ASSERT_EQ(1, read(pipefd[0], &c, 1)) TH_LOG("the child failed to set up");

	t0 = now_us();
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ret = syscall(__NR_process_mrelease, pidfd, 0);
	reaped_us = now_us();
	ms = (reaped_us - t0) / 1000;
	/* Its delayed zap (A) keeps it from exiting: A is still open. */
	alive = waitpid(pid, &status, WNOHANG) == 0;
	/* To explain a result only: the dying child's counters. */
	print_counters(pid, "gather_waits: ", "wait_timeouts: ");
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	printf("# process_mrelease: %ld after %.1f ms, %.1f ms into the probe's %d ms delay\n",
	       ret, ms, (reaped_us - r->probe_fired_us) / 1000, PROBE_DELAYS * DELAY_US / 1000);

	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(0, ret) TH_LOG("process_mrelease: %s", strerror(errno));
	ASSERT_TRUE(alive) TH_LOG("the child exited before the reap returned");
	/* It did not wait for A (which closes after ZAP_DELAYS x 100 ms). */
	ASSERT_LT(ms, 200);
	/* The probe's delay ended after the reap: its lookup came after. */
	ASSERT_LT(reaped_us - r->probe_fired_us, PROBE_DELAYS * DELAY_US - 50000);
	/* The probe read nothing: no dTLB hit on the reaped page. */
	ASSERT_EQ(0xdead, r->probe.value)
		TH_LOG("device read %#llx (outcome %#x) from the reaped page",
		       r->probe.value, r->probe.outcome);
	close(pidfd);
	close(pipefd[0]);
	munmap(r, PAGE);
}

TEST_HARNESS_MAIN
