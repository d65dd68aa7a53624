// SPDX-License-Identifier: GPL-2.0
/*
 * The seed races as reproducers: each scenario makes one interleaving of the
 * CPU and the device happen on demand, with injection points instead of
 * sleeps, and reports a verdict.  The matrix (scenario x contract) has an
 * expected verdict per cell: unsafe cells must reproduce in >= 99% of the
 * valid iterations, safe ones never.  See Documentation/races/.
 *
 * Each iteration is a violation, correct, invalid (the race window was not
 * opened: left out of the rate, at most 1 % per cell) or an error (fails the
 * cell); see struct verdict.  Each cell prints "# csv: scenario,contract,
 * expect,iterations,invalid,hits,first_hit_iteration,first_hit_us,
 * us_per_iteration"; the rate is hits / (iterations - invalid).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "tlbrace_matrix.h"
#include "kselftest_harness.h"
#include "tlbrace_matrix_test.h"

FIXTURE(race)
{
	int fd;
};

FIXTURE_VARIANT(race)
{
	int contract;
};

FIXTURE_VARIANT_ADD(race, sync) { .contract = SYNC };
FIXTURE_VARIANT_ADD(race, deferred_end) { .contract = DEFERRED_END };
FIXTURE_VARIANT_ADD(race, sva) { .contract = SVA };
FIXTURE_VARIANT_ADD(race, none) { .contract = NONE };
FIXTURE_VARIANT_ADD(race, batched_naive) { .contract = B_NAIVE };
FIXTURE_VARIANT_ADD(race, batched_counter) { .contract = B_COUNTER };
FIXTURE_VARIANT_ADD(race, batched_ranges) { .contract = B_RANGES };
FIXTURE_VARIANT_ADD(race, batched_ranges_wait) { .contract = B_RANGES_WAIT };
FIXTURE_VARIANT_ADD(race, batched_ranges_full) { .contract = B_RANGES_FULL };

FIXTURE_SETUP(race)
{
	ASSERT_EQ(0, break_cow());
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, configure_variant(self->fd, variant->contract));
}

FIXTURE_TEARDOWN(race)
{
	close(self->fd);
}

/* A cell runs up to 10 000 iterations of a few ms each under TCG. */
#define MATRIX_TIMEOUT_S 900
#define RUN_MATRIX(name) \
	run_matrix(_metadata, self->fd, variant->contract, scenario_by_name(#name))

TEST_F_TIMEOUT(race, cow_stale_read, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(cow_stale_read);
}

TEST_F_TIMEOUT(race, overlapping_dontneed, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(overlapping_dontneed);
}

TEST_F_TIMEOUT(race, identical_dontneed, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(identical_dontneed);
}

TEST_F_TIMEOUT(race, unmap_during_fill, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(unmap_during_fill);
}

TEST_F_TIMEOUT(race, uffd_wp_lost_protection, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(uffd_wp_lost_protection);
}

TEST_F_TIMEOUT(race, soft_dirty_lost, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(soft_dirty_lost);
}

TEST_F_TIMEOUT(race, dirty_window_lost_dirty, MATRIX_TIMEOUT_S)
{
	RUN_MATRIX(dirty_window_lost_dirty);
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

/*
 * A device fault waits only for the invalidations covering its page.  A zap
 * of page 0 is parked after invalidate_range_start, before its PTE changes:
 * the device reads page 1 at once, while it is still parked; its read of
 * page 0 (a worker job) may wait for the zap, which is released meanwhile.
 * Once the zap returned, the device must read the new, zeroed page 0: a
 * fault that did not wait would have filled the old one (only "none" may).
 */
TEST_F(race, fault_waits_only_for_its_page)
{
	volatile __u64 *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zapper z = { .p = buf };
	struct tlbrace_inject_status st;
	struct park_read r;
	pthread_t t;
	__u64 v;

	ASSERT_NE(MAP_FAILED, buf);
	buf[0] = 1;
	buf[PAGE / 8] = 2;
	ASSERT_EQ(0, park_at(self->fd, TLBRACE_POINT_RANGE_START_EXIT, buf, TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR)));
	ASSERT_EQ(0, pthread_create(&t, NULL, cpu_dontneed, &z));
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	ASSERT_EQ(0, dev_read(self->fd, &buf[PAGE / 8], &v, NULL));
	ASSERT_EQ(2, v);
	ASSERT_EQ(0, inj_status(self->fd, &st));
	ASSERT_EQ(1, st.arms[0].parked);
	ASSERT_EQ(0, read_past_park(self->fd, buf, &r));
	ASSERT_EQ(0, r.err);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, dev_read(self->fd, buf, &v, NULL));
	ASSERT_EQ(variant->contract == NONE ? 1 : 0, v);
	inj_disarm(self->fd, TLBRACE_ALL_ARMS);
	munmap((void *)buf, 2 * PAGE);
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

		if (fd < 0 || !z.p || configure_variant(fd, variant->contract))
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

/* ---- injection holds the owner's tasks, and not for long ---------------- */

static double ms_since(double t0_us)
{
	return (now_us() - t0_us) / 1000;
}

#define HOLD_PARK_MS	1000

/*
 * Another process truncates a shared file the owner maps: the zap of the
 * owner's mapping (unmap_mapping_range()) invalidates the owner's mm in the
 * truncating task, with i_mmap_rwsem held.  A park armed with no filter must
 * hold it only with TLBRACE_INJECT_ANY_TASK; the owner's own munmap parks
 * either way.  Gives the truncation's and the munmap's time, in ms.
 */
static void truncate_under_park(struct __test_metadata *_metadata, __u32 flags,
				double *trunc_ms, double *unmap_ms)
{
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_RANGE_START_ENTER, .action = TLBRACE_ACTION_PARK,
		.timeout_ms = HOLD_PARK_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
		.flags = flags,
	};
	int fd = tlbrace_open(), mfd = memfd_create("tlbrace-trunc", MFD_CLOEXEC);
	volatile double *took = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	volatile __u64 *shared, *mine = map_page();
	int go[2], status;
	double t0;
	pid_t pid;

	ASSERT_GE(fd, 0);
	ASSERT_GE(mfd, 0);
	ASSERT_NE(MAP_FAILED, took);
	ASSERT_NE(NULL, mine);
	ASSERT_EQ(0, ftruncate(mfd, PAGE));
	shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, shared);
	/* Mapped in the owner's page table: the truncation has a PTE to zap. */
	*shared = 1;
	*mine = 1;
	*took = -1;
	ASSERT_EQ(0, pipe(go));
	/* Forked before arming: fork() invalidates the owner's mm too. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		t0 = now_us();
		if (ftruncate(mfd, 0))
			_exit(3);
		*took = ms_since(t0);
		_exit(0);
	}
	ASSERT_EQ(0, inj_arm(fd, &a));
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	*trunc_ms = *took;
	t0 = now_us();
	ASSERT_EQ(0, munmap((void *)mine, PAGE));
	*unmap_ms = ms_since(t0);
	ASSERT_EQ(0, inj_disarm(fd, TLBRACE_ALL_ARMS));
	munmap((void *)shared, PAGE);
	munmap((void *)took, PAGE);
	close(go[0]);
	close(go[1]);
	close(mfd);
	close(fd);
}

TEST(park_holds_only_the_owners_tasks)
{
	double trunc_ms, unmap_ms;

	truncate_under_park(_metadata, 0, &trunc_ms, &unmap_ms);
	TH_LOG("no flag: truncation by another process %.0f ms, owner's munmap %.0f ms "
	       "(park %d ms)", trunc_ms, unmap_ms, HOLD_PARK_MS);
	EXPECT_LT(trunc_ms, HOLD_PARK_MS / 2) TH_LOG("another process was parked");
	EXPECT_GE(unmap_ms, HOLD_PARK_MS * 0.9) TH_LOG("the owner was not parked");

	truncate_under_park(_metadata, TLBRACE_INJECT_ANY_TASK, &trunc_ms, &unmap_ms);
	TH_LOG("ANY_TASK: truncation by another process %.0f ms, owner's munmap %.0f ms",
	       trunc_ms, unmap_ms);
	EXPECT_GE(trunc_ms, HOLD_PARK_MS * 0.9) TH_LOG("ANY_TASK did not park the other process");
	EXPECT_GE(unmap_ms, HOLD_PARK_MS * 0.9) TH_LOG("the owner was not parked");
}

#define FORK_VMAS	64
#define FORK_PARK_MS	200

/*
 * fork() copies the owner's vmas with the mmap lock held for write, one
 * invalidation per vma with pages to copy-on-write.  Under a park with no
 * filter and no count, 64 such vmas would hold it 64 x 200 ms; the hold
 * budget cuts that to TLBRACE_PARK_BUDGET_MS plus fork()'s own time.
 */
TEST(fork_is_held_at_most_the_budget)
{
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_RANGE_START_ENTER, .action = TLBRACE_ACTION_PARK,
		.timeout_ms = FORK_PARK_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	/* One page in two: PROT_NONE gaps keep the vmas from merging. */
	char *base = mmap(NULL, 2 * FORK_VMAS * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	int fd = tlbrace_open(), status;
	double t0, ms;
	pid_t pid;

	ASSERT_GE(fd, 0);
	ASSERT_NE(MAP_FAILED, base);
	for (int i = 0; i < FORK_VMAS; i++) {
		char *p = base + 2 * i * PAGE;

		ASSERT_EQ(p, mmap(p, PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
		/* A page, hence an anon_vma: fork() must copy this vma. */
		*p = 1;
	}
	ASSERT_EQ(0, inj_arm(fd, &a));
	t0 = now_us();
	pid = fork();
	if (pid == 0)
		_exit(0);
	ms = ms_since(t0);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(0, inj_disarm(fd, TLBRACE_ALL_ARMS));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	TH_LOG("fork() of %d vmas under %d ms parks: %.0f ms (budget %d ms)", FORK_VMAS,
	       FORK_PARK_MS, ms, TLBRACE_PARK_BUDGET_MS);
	/* Parked, many times ... */
	EXPECT_GE(ms, 5 * FORK_PARK_MS);
	/* ... but not past the budget (fork() alone takes a few ms). */
	EXPECT_LT(ms, TLBRACE_PARK_BUDGET_MS + 1000);
	munmap(base, 2 * FORK_VMAS * PAGE);
	close(fd);
}

/*
 * GATHER_CLOSE, under batched: between a gather's close and its flush, the
 * dTLB still maps the page the CPU zapped.  A MADV_DONTNEED of p is parked
 * there; a device read of p (a worker job) hits the old contents at once
 * (a fault would wait for the zap to end).  Once the zap returned, the
 * device reads the new, zeroed page.  Other contracts have no gathers.
 */
TEST(gather_close_holds_the_flush_window)
{
	struct tlbrace_inject a = {
		.point = TLBRACE_POINT_GATHER_CLOSE, .action = TLBRACE_ACTION_PARK,
		.count = 1, .timeout_ms = 5000, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	struct zapper z = { .p = map_page() };
	int fd = tlbrace_open(), err;
	struct tlbrace_wait w;
	pthread_t t;
	__u64 v;

	ASSERT_GE(fd, 0);
	ASSERT_NE(NULL, z.p);
	*z.p = 0x77;
	a.start = (uintptr_t)z.p;
	a.end = a.start + PAGE;
	EXPECT_EQ(EOPNOTSUPP, inj_arm(fd, &a));
	ASSERT_EQ(0, tlbrace_config(fd, TLBRACE_CONTRACT_BATCHED, 64, 4, TLBRACE_REPL_LRU));
	a.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR);
	EXPECT_EQ(EINVAL, inj_arm(fd, &a)) TH_LOG("a gather's close has no event");
	a.events = 0;
	ASSERT_EQ(0, dev_read(fd, z.p, &v, NULL));
	ASSERT_EQ(0x77, v);
	ASSERT_EQ(0, inj_arm(fd, &a));
	ASSERT_EQ(0, pthread_create(&t, NULL, cpu_dontneed, &z));
	ASSERT_EQ(0, inj_wait_parked(fd, 0, 1, 5000));
	ASSERT_EQ(0, dev_submit(fd, TLBRACE_IOC_READ, z.p, 1, 0));
	err = dev_wait(fd, 1000, &w);
	inj_release(fd, 0);
	ASSERT_EQ(0, pthread_join(t, NULL));
	if (err == ETIMEDOUT)
		ASSERT_EQ(0, dev_wait(fd, 10000, &w));
	ASSERT_EQ(0, err) TH_LOG("the read waited for the zap: no dTLB entry left at the point");
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(0x77, w.result.value) TH_LOG("the device read %#llx in the window",
					       (unsigned long long)w.result.value);
	EXPECT_TRUE(w.result.outcome & TLBRACE_OUT_HIT);
	ASSERT_EQ(0, dev_read(fd, z.p, &v, NULL));
	EXPECT_EQ(0, v) TH_LOG("the flush after the point did not happen");
	munmap((void *)z.p, PAGE);
	close(fd);
}

TEST_HARNESS_MAIN
