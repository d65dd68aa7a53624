// SPDX-License-Identifier: GPL-2.0
/*
 * Coherence suite: the device mirrors this process through its dTLB while
 * the CPU side changes the address space.  Every case runs under each
 * correct contract (sync, sva), asserting the device never used a stale
 * translation and saw what the CPU sees, and under "none", the negative
 * control, asserting that the staleness shows where it must.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/userfaultfd.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

FIXTURE(coh)
{
	int fd;
};

FIXTURE_VARIANT(coh)
{
	__u32 contract;
	__u32 tracker;
	bool coherent;
	bool has_dpt;
};

FIXTURE_VARIANT_ADD(coh, sync)
{
	.contract = TLBRACE_CONTRACT_SYNC, .coherent = true, .has_dpt = true,
};

FIXTURE_VARIANT_ADD(coh, sva)
{
	.contract = TLBRACE_CONTRACT_SVA, .coherent = true, .has_dpt = false,
};

FIXTURE_VARIANT_ADD(coh, none)
{
	.contract = TLBRACE_CONTRACT_NONE, .coherent = false, .has_dpt = true,
};

/* The experiment, outside any race: it must be as coherent as sync. */
FIXTURE_VARIANT_ADD(coh, batched_ranges)
{
	.contract = TLBRACE_CONTRACT_BATCHED, .tracker = TLBRACE_TRACKER_RANGES,
	.coherent = true, .has_dpt = true,
};

FIXTURE_SETUP(coh)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/tlbrace: %s", strerror(errno));
	ASSERT_EQ(0, tlbrace_config_tracker(self->fd, variant->contract, variant->tracker,
					    64, 4, TLBRACE_REPL_LRU));
}

FIXTURE_TEARDOWN(coh)
{
	close(self->fd);
}

/* Correct contracts never use a stale translation; "none" must, if told so. */
#define CHECK_STALE(fd, must_show) do {					\
	__u64 __stale = dev_stale(fd);					\
	if (!variant->coherent && (must_show)) {			\
		ASSERT_GT(__stale, 0);					\
	} else {							\
		ASSERT_EQ(0, __stale);					\
	}								\
} while (0)

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

#define WORD(buf, page, i) (((volatile __u64 *)((char *)(buf) + (page) * PAGE))[i])

TEST_F(coh, anon_read)
{
	const int pages = 16;
	char *buf = map_anon(pages * PAGE);
	__u64 v;
	__u32 out;

	ASSERT_NE(NULL, buf);
	for (int p = 0; p < pages; p++)
		for (int i = 0; i < 4; i++)
			WORD(buf, p, i * 64) = 0xa000 + p * 16 + i;
	for (int p = 0; p < pages; p++)
		for (int i = 0; i < 4; i++) {
			ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, p, i * 64), &v, &out));
			ASSERT_EQ(0xa000 + p * 16 + i, v);
			/* The first word of a page faults, the others hit. */
			ASSERT_EQ(i == 0 ? 0 : TLBRACE_OUT_HIT, out & TLBRACE_OUT_HIT);
		}
	CHECK_STALE(self->fd, false);
	munmap(buf, pages * PAGE);
}

TEST_F(coh, anon_write)
{
	const int pages = 16;
	char *buf = map_anon(pages * PAGE);

	ASSERT_NE(NULL, buf);
	/* Device writes to never-touched memory: the device fault populates it. */
	for (int p = 0; p < pages; p++)
		ASSERT_EQ(0, dev_write(self->fd, &WORD(buf, p, 7), 0xb000 + p, NULL));
	for (int p = 0; p < pages; p++)
		ASSERT_EQ(0xb000 + p, WORD(buf, p, 7));
	CHECK_STALE(self->fd, false);
	munmap(buf, pages * PAGE);
}

TEST_F(coh, shmem_read_write)
{
	const size_t len = 4 * PAGE;
	int mfd = memfd_create("tlbrace", MFD_CLOEXEC);
	char *a, *b;
	__u64 v, file_word;

	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, len));
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	for (int p = 0; p < 4; p++) {
		/* Device writes through view a; the CPU sees it in b and the file. */
		ASSERT_EQ(0, dev_write(self->fd, &WORD(a, p, 3), 0xc000 + p, NULL));
		ASSERT_EQ(0xc000 + p, WORD(b, p, 3));
		ASSERT_EQ(sizeof(file_word), pread(mfd, &file_word, sizeof(file_word), p * PAGE + 24));
		ASSERT_EQ(0xc000 + p, file_word);
		/* The CPU writes through b; the device reads it through a. */
		WORD(b, p, 5) = 0xd000 + p;
		ASSERT_EQ(0, dev_read(self->fd, &WORD(a, p, 5), &v, NULL));
		ASSERT_EQ(0xd000 + p, v);
	}
	CHECK_STALE(self->fd, false);
	munmap(a, len);
	munmap(b, len);
	close(mfd);
}

TEST_F(coh, mprotect_readonly_blocks_device_write)
{
	char *buf = map_anon(PAGE);
	__u64 v;
	__u32 out;
	int err;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, dev_write(self->fd, &WORD(buf, 0, 0), 2, NULL));
	ASSERT_EQ(0, mprotect(buf, PAGE, PROT_READ));
	err = dev_write(self->fd, &WORD(buf, 0, 0), 3, &out);
	if (variant->coherent) {
		ASSERT_EQ(EFAULT, err);
		ASSERT_EQ(2, WORD(buf, 0, 0));
	} else {
		/* Lost protection: the device wrote through a read-only mapping. */
		ASSERT_EQ(0, err);
		ASSERT_TRUE(out & TLBRACE_OUT_STALE);
		ASSERT_EQ(3, WORD(buf, 0, 0));
	}
	ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, 0, 0), &v, NULL));
	CHECK_STALE(self->fd, true);
	munmap(buf, PAGE);
}

TEST_F(coh, munmap_then_device_access_fails)
{
	char *buf = map_anon(2 * PAGE);
	__u64 v = 0;
	__u32 out = 0;
	int err;

	ASSERT_NE(NULL, buf);
	WORD(buf, 1, 1) = 0x5a5a;
	ASSERT_EQ(0, dev_prefetch(self->fd, buf, 2 * PAGE, 1));
	ASSERT_EQ(0, munmap(buf, 2 * PAGE));
	err = dev_read(self->fd, &WORD(buf, 1, 1), &v, &out);
	if (variant->coherent) {
		ASSERT_EQ(EFAULT, err);
	} else {
		/* Use after unmap: the device still reads the old page. */
		ASSERT_EQ(0, err);
		ASSERT_EQ(0x5a5a, v);
		ASSERT_TRUE(out & TLBRACE_OUT_STALE);
	}
	CHECK_STALE(self->fd, true);
}

TEST_F(coh, madv_dontneed_then_device_reads_zero)
{
	const int pages = 8;
	char *buf = map_anon(pages * PAGE);
	__u64 v;
	__u32 out;

	ASSERT_NE(NULL, buf);
	for (int p = 0; p < pages; p++)
		WORD(buf, p, 0) = 0x1234 + p;
	for (int p = 0; p < pages; p++) {
		ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, p, 0), &v, NULL));
		ASSERT_EQ(0x1234 + p, v);
	}
	ASSERT_EQ(0, madvise(buf, pages * PAGE, MADV_DONTNEED));
	for (int p = 0; p < pages; p++) {
		ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, p, 0), &v, &out));
		if (variant->coherent) {
			ASSERT_EQ(0, v);
		} else {
			ASSERT_EQ(0x1234 + p, v);
			ASSERT_TRUE(out & TLBRACE_OUT_STALE);
		}
		ASSERT_EQ(0, WORD(buf, p, 0));
	}
	CHECK_STALE(self->fd, true);
	munmap(buf, pages * PAGE);
}

TEST_F(coh, mremap_moves_the_mirror)
{
	const size_t len = 4 * PAGE;
	char *buf = map_anon(len), *dst = map_anon(len), *moved;
	__u64 v;
	int err;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, dst);
	for (int p = 0; p < 4; p++)
		WORD(buf, p, 2) = 0x7000 + p;
	ASSERT_EQ(0, dev_prefetch(self->fd, buf, len, 0));
	moved = mremap(buf, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);
	for (int p = 0; p < 4; p++) {
		err = dev_read(self->fd, &WORD(buf, p, 2), &v, NULL);
		if (variant->coherent) {
			ASSERT_EQ(EFAULT, err);
		} else {
			ASSERT_EQ(0, err);
			ASSERT_EQ(0x7000 + p, v);
		}
		ASSERT_EQ(0, dev_read(self->fd, &WORD(moved, p, 2), &v, NULL));
		ASSERT_EQ(0x7000 + p, v);
	}
	CHECK_STALE(self->fd, true);
	munmap(moved, len);
}

/*
 * fork() write-protects the parent's anonymous pages for COW.  A device write
 * after fork must break COW for the parent (FOLL_WRITE) and stay invisible to
 * the child; a device that missed the invalidation writes into the page the
 * child shares.
 */
TEST_F(coh, fork_cow_keeps_child_view)
{
	char *buf = map_anon(PAGE);
	int go[2], report[2], status;
	__u64 child_saw = 0;
	pid_t pid;

	ASSERT_NE(NULL, buf);
	WORD(buf, 0, 0) = 0xaaaa;
	ASSERT_EQ(0, dev_prefetch(self->fd, buf, PAGE, 1));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(report));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;
		__u64 seen;

		if (read(go[0], &c, 1) != 1)
			_exit(1);
		seen = WORD(buf, 0, 0);
		_exit(write(report[1], &seen, sizeof(seen)) == sizeof(seen) ? 0 : 1);
	}
	ASSERT_EQ(0, dev_write(self->fd, &WORD(buf, 0, 0), 0xbbbb, NULL));
	ASSERT_EQ(1, write(go[1], "x", 1));
	ASSERT_EQ(sizeof(child_saw), read(report[0], &child_saw, sizeof(child_saw)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(0xbbbb, WORD(buf, 0, 0));
	/* A device that missed the invalidation wrote into the child's page. */
	ASSERT_EQ(variant->coherent ? 0xaaaa : 0xbbbb, child_saw);
	CHECK_STALE(self->fd, true);
	munmap(buf, PAGE);
}

static unsigned long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	unsigned long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

TEST_F(coh, thp_split_by_dontneed)
{
	const size_t huge = 2UL << 20;
	char *raw = map_anon(2 * huge), *buf;
	__u64 v;

	ASSERT_NE(NULL, raw);
	buf = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ASSERT_EQ(0, madvise(buf, huge, MADV_HUGEPAGE));
	for (unsigned long p = 0; p < huge / PAGE; p++)
		WORD(buf, p, 1) = 0xe0000 + p;
	if (anon_huge_kb() < 2048) {
		munmap(raw, 2 * huge);
		SKIP(return, "no THP formed (AnonHugePages %lu kB)", anon_huge_kb());
	}
	for (unsigned long p = 0; p < huge / PAGE; p += 7) {
		ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, p, 1), &v, NULL));
		ASSERT_EQ(0xe0000 + p, v);
	}
	/* Zap one small page in the middle: the huge PMD is split. */
	ASSERT_EQ(0, madvise(buf + 21 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, 21, 1), &v, NULL));
	ASSERT_EQ(variant->coherent ? 0 : 0xe0000 + 21, v);
	for (unsigned long p = 0; p < huge / PAGE; p += 7) {
		if (p == 21)
			continue;
		ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, p, 1), &v, NULL));
		ASSERT_EQ(0xe0000 + p, v);
	}
	CHECK_STALE(self->fd, true);
	munmap(raw, 2 * huge);
}

TEST_F(coh, two_fds_on_one_mm)
{
	char *buf = map_anon(PAGE);
	int fd2 = tlbrace_open();
	__u64 v1, v2;

	ASSERT_NE(NULL, buf);
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(0, tlbrace_config(fd2, variant->contract, 64, 4, TLBRACE_REPL_LRU));
	WORD(buf, 0, 9) = 0x99;
	ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, 0, 9), &v1, NULL));
	ASSERT_EQ(0, dev_read(fd2, &WORD(buf, 0, 9), &v2, NULL));
	ASSERT_EQ(0x99, v1);
	ASSERT_EQ(0x99, v2);
	ASSERT_EQ(0, madvise(buf, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, dev_read(self->fd, &WORD(buf, 0, 9), &v1, NULL));
	ASSERT_EQ(0, dev_read(fd2, &WORD(buf, 0, 9), &v2, NULL));
	ASSERT_EQ(variant->coherent ? 0 : 0x99, v1);
	ASSERT_EQ(variant->coherent ? 0 : 0x99, v2);
	CHECK_STALE(self->fd, true);
	CHECK_STALE(fd2, true);
	close(fd2);
	munmap(buf, PAGE);
}

static __u32 read_outcome(int fd, char *page)
{
	__u64 v;
	__u32 out = 0;

	if (dev_read(fd, page, &v, &out))
		return ~0U;
	return out;
}

TEST_F(coh, dtlb_capacity_and_replacement)
{
	char *buf = map_anon(3 * PAGE);
	char *p0 = buf, *p1 = buf + PAGE, *p2 = buf + 2 * PAGE;
	struct tlbrace_stats st;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 3 * PAGE);

	/* One set of two ways, LRU: p0 was used last, so p2 evicts p1. */
	ASSERT_EQ(0, tlbrace_config_tracker(self->fd, variant->contract, variant->tracker, 1, 2,
					    TLBRACE_REPL_LRU));
	read_outcome(self->fd, p0);
	read_outcome(self->fd, p1);
	ASSERT_TRUE(read_outcome(self->fd, p0) & TLBRACE_OUT_HIT);
	read_outcome(self->fd, p2);
	ASSERT_TRUE(read_outcome(self->fd, p0) & TLBRACE_OUT_HIT);
	ASSERT_FALSE(read_outcome(self->fd, p1) & TLBRACE_OUT_HIT);

	/* FIFO: p0 was filled first, so p2 evicts it despite the recent use. */
	ASSERT_EQ(0, tlbrace_config_tracker(self->fd, variant->contract, variant->tracker, 1, 2,
					    TLBRACE_REPL_FIFO));
	read_outcome(self->fd, p0);
	read_outcome(self->fd, p1);
	ASSERT_TRUE(read_outcome(self->fd, p0) & TLBRACE_OUT_HIT);
	read_outcome(self->fd, p2);
	ASSERT_FALSE(read_outcome(self->fd, p0) & TLBRACE_OUT_HIT);

	ASSERT_EQ(0, dev_stats(self->fd, &st));
	ASSERT_GE(st.evictions, 2);
	/* A miss is served by the dPT when the contract has one. */
	ASSERT_EQ(variant->has_dpt, st.dpt_hits > 0);
	CHECK_STALE(self->fd, false);
	munmap(buf, 3 * PAGE);
}

TEST_F(coh, huge_range_prefetch_and_unmap)
{
	const unsigned long pages = 4096;
	char *buf = map_anon(pages * PAGE);
	struct tlbrace_snapshot_entry *snap = calloc(pages, sizeof(*snap));
	struct tlbrace_snapshot s = {
		.size = sizeof(s), .len = pages * PAGE,
		.entries = (uintptr_t)snap, .max_entries = pages,
	};
	struct tlbrace_stats st;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, snap);
	s.addr = (uintptr_t)buf;
	ASSERT_EQ(0, dev_prefetch(self->fd, buf, pages * PAGE, 0));
	ASSERT_EQ(0, ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s));
	/* The dPT holds every page; without one only the dTLB's 256 remain. */
	ASSERT_EQ(variant->has_dpt ? pages : 64 * 4, s.nr_entries);
	ASSERT_EQ(0, dev_reset_stats(self->fd));
	ASSERT_EQ(0, munmap(buf, pages * PAGE));
	ASSERT_EQ(0, ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s));
	ASSERT_EQ(0, dev_stats(self->fd, &st));
	if (variant->coherent) {
		ASSERT_EQ(0, s.nr_entries);
		ASSERT_GE(st.invalidated, variant->has_dpt ? pages : 64 * 4);
	} else {
		ASSERT_EQ(pages, s.nr_entries);
		for (unsigned long i = 0; i < pages; i++)
			ASSERT_TRUE(snap[i].flags & TLBRACE_SNAP_STALE);
	}
	free(snap);
}

TEST_F(coh, snapshot_matches_cpu_page_table)
{
	char *buf = map_anon(PAGE);
	struct tlbrace_snapshot_entry e;
	__u32 expect = TLBRACE_SNAP_DTLB | (variant->has_dpt ? TLBRACE_SNAP_DPT : 0);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, dev_snapshot_page(self->fd, buf, &e));
	ASSERT_EQ(0, e.flags);
	ASSERT_EQ(0, dev_prefetch(self->fd, buf, PAGE, 1));
	ASSERT_EQ(0, dev_snapshot_page(self->fd, buf, &e));
	ASSERT_EQ((uintptr_t)buf, e.addr);
	ASSERT_EQ(expect | TLBRACE_SNAP_WRITABLE, e.flags & ~TLBRACE_SNAP_ACCESSED);
	ASSERT_NE(0, e.pfn);
	ASSERT_EQ(cpu_pfn(buf), e.pfn);
	ASSERT_EQ(0, dev_write(self->fd, buf, 1, NULL));
	ASSERT_EQ(0, dev_snapshot_page(self->fd, buf, &e));
	ASSERT_TRUE(e.flags & TLBRACE_SNAP_DIRTY);
	ASSERT_TRUE(e.flags & TLBRACE_SNAP_ACCESSED);
	CHECK_STALE(self->fd, false);
	munmap(buf, PAGE);
}

TEST_F(coh, compare_and_swap)
{
	char *buf = map_anon(PAGE);
	__u64 old;

	ASSERT_NE(NULL, buf);
	WORD(buf, 0, 4) = 5;
	ASSERT_EQ(0, dev_cas(self->fd, &WORD(buf, 0, 4), 5, 7, &old));
	ASSERT_EQ(5, old);
	ASSERT_EQ(7, WORD(buf, 0, 4));
	ASSERT_EQ(0, dev_cas(self->fd, &WORD(buf, 0, 4), 5, 9, &old));
	ASSERT_EQ(7, old);
	ASSERT_EQ(7, WORD(buf, 0, 4));
	CHECK_STALE(self->fd, false);
	munmap(buf, PAGE);
}

struct cow_writer {
	volatile __u64 *p;
	__u64 value;
};

static void *cow_write(void *arg)
{
	struct cow_writer *w = arg;

	*w->p = w->value;
	return NULL;
}

/*
 * The oracle judges a translation by what the CPU page table maps, not by
 * which invalidation was open when it was filled.  A CPU write to page 0 of
 * a private file mapping (COW) is held at invalidate_range_end: the new PTE
 * is set and the CPUs flushed the old one.  The device reads page 0 right
 * then (sync and batched wait for the range end): its walk sees the new
 * page, so once the CPU's write landed the device reads it, and no access
 * through that translation is stale (the old oracle marked the whole range
 * at range end: a false positive under sva and none).  Page 1 was cached
 * before its COW: under none the device still reads the page the CPU left,
 * and that access must be flagged stale.
 */
TEST_F(coh, fill_during_cow_sees_new_page)
{
	int mfd = memfd_create("tlbrace-oracle", MFD_CLOEXEC);
	const __u64 old0 = 0xa0, old1 = 0xa1;
	struct tlbrace_inject park = {
		.point = TLBRACE_POINT_RANGE_END_ENTER, .action = TLBRACE_ACTION_PARK,
		.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR), .count = 1, .timeout_ms = 5000,
		.release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	struct tlbrace_snapshot_entry e;
	struct tlbrace_stats st0, st;
	struct tlbrace_wait res;
	struct cow_writer w = { .value = 0xb0 };
	bool done = false;
	pthread_t t;
	char *buf;
	__u32 out;
	__u64 v;

	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, 2 * PAGE));
	ASSERT_EQ(8, pwrite(mfd, &old0, 8, 0));
	ASSERT_EQ(8, pwrite(mfd, &old1, 8, PAGE));
	buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	/* The CPU maps both file pages read-only; the device caches page 1. */
	ASSERT_EQ(old0, WORD(buf, 0, 0));
	ASSERT_EQ(old1, WORD(buf, 1, 0));
	ASSERT_EQ(0, dev_read(self->fd, buf + PAGE, &v, NULL));
	ASSERT_EQ(old1, v);

	park.start = (uintptr_t)buf;
	park.end = park.start + PAGE;
	ASSERT_EQ(0, inj_arm(self->fd, &park));
	w.p = (volatile __u64 *)buf;
	ASSERT_EQ(0, pthread_create(&t, NULL, cow_write, &w));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	/* Until the read is done, or reported waiting for the range end. */
	ASSERT_EQ(0, dev_stats(self->fd, &st0));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, buf, 1, 0));
	for (int i = 0; i < 50000 && !done; i++) {
		done = dev_wait(self->fd, 0, &res) == 0;
		ASSERT_EQ(0, dev_stats(self->fd, &st));
		if (!done && st.fault_retries > st0.fault_retries)
			break;
		usleep(100);
	}
	ASSERT_EQ(0, inj_release(self->fd, 0));
	ASSERT_EQ(0, pthread_join(t, NULL));
	if (!done)
		ASSERT_EQ(0, dev_wait(self->fd, 10000, &res));
	ASSERT_EQ(0, res.error);
	if (variant->contract == TLBRACE_CONTRACT_SVA ||
	    variant->contract == TLBRACE_CONTRACT_NONE) {
		/* Filled inside the window: the copy, before the CPU's write. */
		ASSERT_TRUE(done);
		ASSERT_EQ(old0, res.result.value);
	} else {
		ASSERT_TRUE(res.result.value == old0 || res.result.value == w.value);
	}
	ASSERT_FALSE(res.result.outcome & TLBRACE_OUT_STALE);

	/* The device's page is the CPU's: it reads the CPU's write, same PFN. */
	ASSERT_EQ(w.value, WORD(buf, 0, 0));
	ASSERT_EQ(0, dev_read(self->fd, buf, &v, &out));
	ASSERT_EQ(w.value, v);
	ASSERT_TRUE(out & TLBRACE_OUT_HIT);
	ASSERT_FALSE(out & TLBRACE_OUT_STALE);
	ASSERT_EQ(0, dev_snapshot_page(self->fd, buf, &e));
	ASSERT_EQ(cpu_pfn(buf), e.pfn);
	ASSERT_FALSE(e.flags & TLBRACE_SNAP_STALE);

	/* Page 1: COW after the device cached it. */
	WORD(buf, 1, 0) = 0xb1;
	ASSERT_EQ(0, dev_read(self->fd, buf + PAGE, &v, &out));
	if (variant->coherent) {
		ASSERT_EQ(0xb1, v);
		ASSERT_FALSE(out & TLBRACE_OUT_STALE);
	} else {
		/* The device read the page the CPU no longer maps. */
		ASSERT_EQ(old1, v);
		ASSERT_TRUE(out & TLBRACE_OUT_STALE);
	}
	CHECK_STALE(self->fd, true);
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	munmap(buf, 2 * PAGE);
	close(mfd);
}

struct zero_monitor {
	int uffd;
	volatile int stop;
	int faults;
};

/* Serves missing-page faults with the zero page, and counts them. */
static void *zero_monitor(void *arg)
{
	struct zero_monitor *m = arg;
	struct pollfd pfd = { .fd = m->uffd, .events = POLLIN };
	struct uffdio_zeropage z = { .range = { .len = PAGE } };
	struct uffd_msg msg;

	while (!m->stop) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		if (read(m->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		z.range.start = msg.arg.pagefault.address & ~(PAGE - 1);
		m->faults++;
		ioctl(m->uffd, UFFDIO_ZEROPAGE, &z);
	}
	return NULL;
}

/* A device read in a thread of its own, which may park. */
struct parked_read {
	int fd;
	volatile __u64 *p;
	int err;
	__u64 value;
	__u32 outcome;
};

static void *parked_read(void *arg)
{
	struct parked_read *r = arg;

	r->err = dev_read(r->fd, r->p, &r->value, &r->outcome);
	return NULL;
}

/*
 * The oracle never faults a page in.  A device fault (of a read in the
 * process's thread: the worker's faults do not wait for a userfaultfd
 * monitor) walks a page of a userfaultfd (missing) range and is parked
 * before its fill; the CPU zaps the page.  Under none the fill goes in anyway and is judged with a
 * lookup that cannot fault: the device reads the old data, the access is
 * stale, and the page stays absent with no userfault raised (the old
 * oracle's second walk faulted it in through the monitor).  The correct
 * contracts retry the fault: one userfault, the device reads zero.
 */
TEST_F(coh, oracle_never_faults_a_page_in)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct tlbrace_inject park = {
		.point = TLBRACE_POINT_FAULT_FILL, .action = TLBRACE_ACTION_PARK,
		.count = 1, .timeout_ms = 5000, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	struct zero_monitor m = { .uffd = -1 };
	volatile __u64 *p = map_anon(PAGE);
	struct parked_read r = { .fd = self->fd, .p = p };
	pthread_t t, reader;

	ASSERT_NE(NULL, p);
	*p = 0x77;
	m.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ASSERT_GE(m.uffd, 0);
	ASSERT_EQ(0, ioctl(m.uffd, UFFDIO_API, &api));
	reg.range.start = (uintptr_t)p;
	reg.range.len = PAGE;
	ASSERT_EQ(0, ioctl(m.uffd, UFFDIO_REGISTER, &reg));
	ASSERT_EQ(0, pthread_create(&t, NULL, zero_monitor, &m));

	park.start = (uintptr_t)p;
	park.end = park.start + PAGE;
	ASSERT_EQ(0, inj_arm(self->fd, &park));
	ASSERT_EQ(0, pthread_create(&reader, NULL, parked_read, &r));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	ASSERT_EQ(0, madvise((void *)p, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, inj_release(self->fd, 0));
	ASSERT_EQ(0, pthread_join(reader, NULL));
	m.stop = 1;
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, r.err);
	if (variant->coherent) {
		ASSERT_EQ(0, r.value);
		ASSERT_FALSE(r.outcome & TLBRACE_OUT_STALE);
		ASSERT_EQ(1, m.faults);
		ASSERT_TRUE(pagemap_entry(p) & (1ULL << 63));
	} else {
		ASSERT_EQ(0x77, r.value);
		ASSERT_TRUE(r.outcome & TLBRACE_OUT_STALE);
		ASSERT_EQ(0, m.faults);
		ASSERT_FALSE(pagemap_entry(p) & (1ULL << 63));
	}
	CHECK_STALE(self->fd, true);
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	close(m.uffd);
	munmap((void *)p, PAGE);
}

TEST_F(coh, stale_ring_records_address_and_event)
{
	char *buf = map_anon(PAGE);
	struct tlbrace_stats st;
	__u64 v;

	ASSERT_NE(NULL, buf);
	WORD(buf, 0, 0) = 1;
	ASSERT_EQ(0, dev_read(self->fd, buf + 64, &v, NULL));
	ASSERT_EQ(0, madvise(buf, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, dev_read(self->fd, buf + 64, &v, NULL));
	ASSERT_EQ(0, dev_stats(self->fd, &st));
	if (variant->coherent) {
		ASSERT_EQ(0, st.ring_count);
	} else {
		ASSERT_EQ(1, st.ring_count);
		ASSERT_EQ((uintptr_t)buf + 64, st.ring[0].addr);
		ASSERT_EQ(TLBRACE_EVENT_CLEAR, st.ring[0].event);
		ASSERT_EQ(TLBRACE_STALE_READ, st.ring[0].kind);
	}
	munmap(buf, PAGE);
}

TEST_F(coh, prot_none_blocks_device_read)
{
	char *buf = map_anon(PAGE);
	__u64 v;
	int err;

	ASSERT_NE(NULL, buf);
	WORD(buf, 0, 0) = 0x42;
	ASSERT_EQ(0, dev_read(self->fd, buf, &v, NULL));
	ASSERT_EQ(0, mprotect(buf, PAGE, PROT_NONE));
	err = dev_read(self->fd, buf, &v, NULL);
	if (variant->coherent) {
		ASSERT_EQ(EFAULT, err);
	} else {
		ASSERT_EQ(0, err);
		ASSERT_EQ(0x42, v);
	}
	CHECK_STALE(self->fd, true);
	munmap(buf, PAGE);
}

/* A device write to a private file mapping breaks COW: the file keeps its data. */
TEST_F(coh, file_private_cow)
{
	int mfd = memfd_create("tlbrace-priv", MFD_CLOEXEC);
	__u64 file_word = 0x1111, v;
	char *buf;

	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, PAGE));
	ASSERT_EQ(sizeof(file_word), pwrite(mfd, &file_word, sizeof(file_word), 0));
	buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, dev_read(self->fd, buf, &v, NULL));
	ASSERT_EQ(0x1111, v);
	ASSERT_EQ(0, dev_write(self->fd, buf, 0x2222, NULL));
	ASSERT_EQ(0x2222, WORD(buf, 0, 0));
	ASSERT_EQ(sizeof(file_word), pread(mfd, &file_word, sizeof(file_word), 0));
	ASSERT_EQ(0x1111, file_word);
	CHECK_STALE(self->fd, false);
	munmap(buf, PAGE);
	close(mfd);
}

/*
 * Clearing soft-dirty write-protects the page (MMU_NOTIFY_SOFT_DIRTY); the
 * next device write must fault and so mark the page soft-dirty again.  A
 * device that kept its writable translation writes without a trace: the
 * dirty tracker (CRIU, live migration) loses the write (seeds 000, 004).
 */
TEST_F(coh, soft_dirty_sees_device_write)
{
	char *buf = map_anon(PAGE);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, dev_write(self->fd, buf, 1, NULL));
	ASSERT_EQ(1, soft_dirty(buf));
	ASSERT_EQ(0, clear_soft_dirty());
	ASSERT_EQ(0, soft_dirty(buf));
	ASSERT_EQ(0, dev_write(self->fd, buf, 2, NULL));
	ASSERT_EQ(2, WORD(buf, 0, 0));
	ASSERT_EQ(variant->coherent ? 1 : 0, soft_dirty(buf));
	CHECK_STALE(self->fd, true);
	munmap(buf, PAGE);
}

/* The device worker runs a job while the CPU does other work. */
TEST_F(coh, async_job_runs_while_cpu_works)
{
	const int pages = 16, words = pages * PAGE / 8;
	__u64 *buf = map_anon(pages * PAGE), *other = map_anon(pages * PAGE);
	struct tlbrace_wait w;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, other);
	for (int i = 0; i < words; i++)
		buf[i] = i;
	ASSERT_EQ(ENOENT, dev_wait(self->fd, 0, &w));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, buf, words, 0));
	/* One job at a time, until its result is collected. */
	ASSERT_EQ(EBUSY, dev_submit(self->fd, TLBRACE_IOC_READ, buf, 1, 0));
	for (int i = 0; i < words; i++)
		other[i] = ~i;
	ASSERT_EQ(0, dev_wait(self->fd, 30000, &w));
	ASSERT_EQ(0, w.error);
	ASSERT_EQ(words - 1, w.result.value);
	ASSERT_EQ(words, w.result.hits + w.result.faults);
	ASSERT_EQ(pages, w.result.faults);

	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_WRITE, other, words, 0x77));
	ASSERT_EQ(0, dev_wait(self->fd, 30000, &w));
	ASSERT_EQ(0, w.error);
	for (int i = 0; i < words; i++)
		ASSERT_EQ(0x77, other[i]);
	CHECK_STALE(self->fd, false);
	munmap(buf, pages * PAGE);
	munmap(other, pages * PAGE);
}

/* Jobs go through the same dTLB: the contract decides what they see. */
TEST_F(coh, async_job_after_dontneed)
{
	__u64 *buf = map_anon(PAGE);
	struct tlbrace_wait w;
	__u64 v;

	ASSERT_NE(NULL, buf);
	buf[3] = 0x3333;
	ASSERT_EQ(0, dev_read(self->fd, &buf[3], &v, NULL));
	ASSERT_EQ(0, madvise(buf, PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, &buf[3], 1, 0));
	ASSERT_EQ(0, dev_wait(self->fd, 30000, &w));
	ASSERT_EQ(0, w.error);
	ASSERT_EQ(variant->coherent ? 0 : 0x3333, w.result.value);
	CHECK_STALE(self->fd, true);
	munmap(buf, PAGE);
}

/*
 * The mm the device mirrors exits while another process still holds the fd:
 * the release callback detaches the device, the holder gets -EPERM (not its
 * mm), and the final close unregisters cleanly.
 */
TEST_F(coh, mm_exit_while_fd_held_elsewhere)
{
	int status, report[2];
	pid_t owner, holder = 0;

	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_EQ(0, pipe(report));
	owner = fork();
	ASSERT_GE(owner, 0);
	if (owner == 0) {
		char *buf = map_anon(16 * PAGE);
		int fd = tlbrace_open();
		pid_t h;

		if (!buf || fd < 0 || tlbrace_config(fd, variant->contract, 64, 4, 0) ||
		    dev_prefetch(fd, buf, 16 * PAGE, 1))
			_exit(2);
		h = fork();
		if (h == 0) {
			/* Wait for the owner to exit, then use its device. */
			pid_t parent = getppid();
			__u64 v;
			int err;

			for (int i = 0; i < 5000 && getppid() == parent; i++)
				usleep(1000);
			err = dev_read(fd, buf, &v, NULL);
			close(fd);
			_exit(err == EPERM ? 0 : 3);
		}
		if (write(report[1], &h, sizeof(h)) != sizeof(h))
			_exit(4);
		_exit(0); /* exit with the device attached and the fd open */
	}
	ASSERT_EQ(sizeof(holder), read(report[0], &holder, sizeof(holder)));
	ASSERT_EQ(owner, waitpid(owner, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(holder, waitpid(holder, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

/* A process killed in the middle of a long device access exits cleanly. */
TEST_F(coh, sigkill_during_device_access)
{
	const size_t len = 8UL << 20;
	int status;
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char *buf = map_anon(len);
		int fd = tlbrace_open();
		struct tlbrace_access a = {
			.count = len / 8, .stride = 8,
		};

		if (!buf || fd < 0 || tlbrace_config(fd, variant->contract, 64, 4, 0))
			_exit(2);
		a.addr = (uintptr_t)buf;
		for (;;)
			tlbrace_access(fd, TLBRACE_IOC_WRITE, &a);
	}
	usleep(200 * 1000);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(SIGKILL, WTERMSIG(status));
}

/*
 * A process killed while its device worker runs a long job: closing the
 * file cancels the job and waits for the worker, with no leak and no splat.
 */
TEST_F(coh, sigkill_with_worker_job_running)
{
	const size_t len = 8UL << 20;
	int status, ready[2];
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char *buf = map_anon(len);
		int fd = tlbrace_open();

		if (!buf || fd < 0 || tlbrace_config(fd, variant->contract, 64, 4, 0) ||
		    dev_submit(fd, TLBRACE_IOC_WRITE, buf, len / 8, 1))
			_exit(2);
		if (write(ready[1], "r", 1) != 1)
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

TEST_HARNESS_MAIN
