/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The CPU path's races: seed 003 on the CPUs' own TLBs, with the module
 * deciding tlb_finish_mmu()'s flush for this process (TLBRACE_IOC_CPU, the
 * kernel series in kernel/patches).  The verdict comes from user memory
 * alone: the value a thread on the other CPU read after B's madvise()
 * returned, and whether its write survived.  Shared by the CPU suite
 * (tlbrace_cpu.c) and the command-line tool.
 */
#ifndef TLBRACE_CPU_SCENARIOS_H
#define TLBRACE_CPU_SCENARIOS_H

#include <sched.h>
#include <sys/resource.h>

#include "tlbrace_scenarios.h"

/* Pins the calling thread to cpu; 0 or an errno. */
static inline int pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
}

/*
 * A thread on CPU 1 that keeps one page in its TLB: it reads the page once,
 * then spins in user space and reads or writes the page when told.  It runs
 * SCHED_FIFO: preempted by a kernel thread, CPU 1 would keep the mm loaded
 * lazily, x86 would skip its flush IPIs and flush everything when the
 * toucher comes back (the stale entry gone whatever the policy did; 13 of
 * 300 naive iterations before).  So that it cannot starve CPU 1, it drops
 * to SCHED_OTHER after TOUCH_SPIN_MS without a command.  Even so a stopper
 * or RT throttling preempts it now and then (1 in 1000): its context
 * switch count (getrusage) tells, and such an iteration proves nothing.
 */
#define TOUCH_SPIN_MS 2000

struct toucher {
	volatile __u64 *page;
	volatile int cmd;	/* TOUCH_* from the test, 0 once done */
	volatile int ready;
	volatile __u64 value;	/* what a read saw */
	int err;		/* pinning or SCHED_FIFO failed */
	/* Its context switches when it filled its TLB, and when it read. */
	volatile long switches_filled, switches_read;
};

static inline long thread_switches(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

enum { TOUCH_NONE, TOUCH_READ, TOUCH_WRITE, TOUCH_EXIT };
#define TOUCH_WRITE_VALUE 0x77

static inline void *toucher_run(void *arg)
{
	struct toucher *t = arg;

	struct sched_param rt = { .sched_priority = 1 }, other = { 0 };
	bool fifo = true;
	double last;

	t->err = pin_to(1);
	if (!t->err && sched_setscheduler(0, SCHED_FIFO, &rt))
		t->err = errno;
	t->value = *t->page;
	t->switches_filled = thread_switches();
	t->ready = 1;
	last = now_us();
	for (;;) {
		int cmd = t->cmd;

		if (cmd == TOUCH_READ) {
			t->switches_read = thread_switches();
			t->value = *t->page;
		}
		else if (cmd == TOUCH_WRITE)
			*t->page = TOUCH_WRITE_VALUE;
		else if (cmd == TOUCH_EXIT)
			return NULL;
		if (cmd != TOUCH_NONE) {
			t->cmd = TOUCH_NONE;
			last = now_us();
		} else if (fifo && now_us() - last > TOUCH_SPIN_MS * 1000.0) {
			sched_setscheduler(0, SCHED_OTHER, &other);
			fifo = false;
		}
	}
}

/* Has the toucher do cmd; 0, or ETIMEDOUT after bound_ms. */
static inline int touch(struct toucher *t, int cmd, int bound_ms)
{
	t->cmd = cmd;
	for (double t0 = now_us(); t->cmd != TOUCH_NONE;)
		if (now_us() - t0 > bound_ms * 1000.0)
			return ETIMEDOUT;
	return 0;
}

/*
 * A zap_range() whose thread stays until told to go: a thread's exit
 * MADV_DONTNEEDs its unused stack (glibc), a flush of its own that must not
 * land between B's return and CPU 1's read.
 */
struct lingering_zap {
	struct zap z;
	volatile int go;
};

static inline void *zap_and_linger(void *arg)
{
	struct lingering_zap *l = arg;

	zap_range(&l->z);
	while (!l->go)
		usleep(100);
	return NULL;
}

/*
 * Seed 003 on the CPUs.  Pages 1..3 of a 4-page buffer hold 0xc1..0xc3; a
 * thread on CPU 1 has read page 2.  On CPU 0, gather A (MADV_DONTNEED of
 * pages 1-2) clears both PTEs and is held in tlb_finish_mmu(), before its
 * flush.  Gather B (pages 2-3) finds page 2's PTE already clear, clears
 * page 3, flushes, and its madvise returns.  Then CPU 1 reads page 2 and
 * writes TOUCH_WRITE_VALUE to it; A is let go; CPU 0 reads page 2.
 *
 * If B flushed only what it cleared (cpu/naive), CPU 1 still translates
 * page 2 to the old page: it reads 0xc2 after B returned, and its write
 * goes to the old page, which A frees: CPU 0 reads 0 (a lost write).  The
 * kernel's rule flushes everything (another gather is pending); ranges
 * widens B's flush to A's overlapping range; ranges-wait makes B wait for
 * A.  Correct: CPU 1 reads 0 and CPU 0 then reads its write.
 */
static inline struct verdict scenario_cpu_overlapping_dontneed(int fd)
{
	volatile char *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct lingering_zap a = { .z = { .who = "A", .len = 2 * PAGE } };
	struct lingering_zap b = { .z = { .who = "B", .len = 2 * PAGE } };
	struct toucher t = { 0 };
	struct tlbrace_cpu c0, c;
	struct tlbrace_inject arm = {
		.id = 0, .point = TLBRACE_POINT_CPU_FINISH, .action = TLBRACE_ACTION_PARK,
		.count = 1, .timeout_ms = PARK_TIMEOUT_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};
	bool parked = false, toucher_up = false;
	__u64 seen = 0, after = 0;
	pthread_t ta, tb, tt;
	struct verdict ret;
	cpu_set_t cpus;
	int err = 0;

	if (buf == MAP_FAILED)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	/* This thread runs on CPU 0 for the iteration only. */
	sched_getaffinity(0, sizeof(cpus), &cpus);
	madvise((void *)buf, 4 * PAGE, MADV_NOHUGEPAGE);
	for (int i = 1; i < 4; i++)
		*(volatile __u64 *)(buf + i * PAGE) = 0xc0 + i;
	err = pin_to(0);
	if (err) {
		ret = verdict_why(V_ERROR, "pin to CPU 0: %s (needs 2 CPUs)", strerror(err));
		goto out;
	}
	t.page = (volatile __u64 *)(buf + 2 * PAGE);
	if (pthread_create(&tt, NULL, toucher_run, &t)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	toucher_up = true;
	for (double t0 = now_us(); !t.ready && now_us() - t0 < WAIT_MS * 1000.0;)
		usleep(100);
	if (!t.ready || t.err || t.value != 0xc2) {
		ret = verdict_why(V_ERROR, "toucher on CPU 1, SCHED_FIFO: %s, read %#llx, want 0xc2",
				  t.ready ? strerror(t.err) : "not up", (unsigned long long)t.value);
		goto out;
	}
	a.z.p = buf + PAGE;
	b.z.p = buf + 2 * PAGE;
	/* Only A: the filter is page 1, which B's range does not cover. */
	arm.start = (uintptr_t)a.z.p;
	arm.end = arm.start + PAGE;
	err = inj_arm(fd, &arm);
	if (err) {
		ret = verdict_why(V_ERROR, "INJECT_ARM cpu_finish: %s", strerror(err));
		goto out;
	}
	if (pthread_create(&ta, NULL, zap_and_linger, &a)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	parked = inj_wait_parked(fd, 0, 1, WAIT_MS) == 0;
	if (!parked)
		goto join_a;
	err = cpu_ioctl(fd, false, 0, 0, &c0);
	if (err || pthread_create(&tb, NULL, zap_and_linger, &b)) {
		err = err ? err : EAGAIN;
		goto join_a;
	}
	/* Until B returned, or is reported waiting for A (ranges-wait). */
	for (double t0 = now_us(); !b.z.done && now_us() - t0 < PARK_TIMEOUT_MS * 500.0;) {
		err = cpu_ioctl(fd, false, 0, 0, &c);
		if (err || c.waits > c0.waits)
			break;
		usleep(100);
	}
	if (!b.z.done)
		inj_release(fd, 0);
	/* B's madvise returns: a wait for A is bounded by the kernel side. */
	for (double t0 = now_us(); !err && !b.z.done; usleep(100))
		if (now_us() - t0 > 2 * WAIT_MS * 1000.0)
			err = ETIMEDOUT;
	/* B's madvise returned: CPU 1 must not see the old page 2. */
	if (!err) {
		mark("CPU 1 reads page 2, then writes %#x to it", TOUCH_WRITE_VALUE);
		err = touch(&t, TOUCH_READ, WAIT_MS);
		seen = t.value;
		if (!err)
			err = touch(&t, TOUCH_WRITE, WAIT_MS);
		mark("CPU 1 read %#llx (error %d)", (unsigned long long)seen, err);
	}
	b.go = 1;
	pthread_join(tb, NULL);
join_a:
	inj_release(fd, 0);
	a.go = 1;
	pthread_join(ta, NULL);
	/* A has flushed: CPU 0 sees what page 2 holds now. */
	after = *t.page;

	if (parked && err)
		ret = verdict_why(V_ERROR, "CPU ioctl, thread or toucher: %s", strerror(err));
	else if (!park_held(fd, &ret))
		;
	else if (!parked)
		ret = verdict_why(V_INVALID, "gather A not seen held within %d ms", WAIT_MS);
	else if (seen == 0xc2)
		ret = verdict_why(V_VIOLATION, "CPU 1 read 0xc2, the old page 2, after B's "
				  "MADV_DONTNEED returned; its write then %s (page 2 reads %#llx)",
				  after == TOUCH_WRITE_VALUE ? "survived" : "was lost",
				  (unsigned long long)after);
	else if (t.switches_read != t.switches_filled)
		ret = verdict_why(V_INVALID, "CPU 1's toucher was switched out between filling its "
				  "TLB and reading (its TLB may have been flushed on return)");
	else if (seen == 0 && after == TOUCH_WRITE_VALUE)
		ret = verdict_why(V_CORRECT, "CPU 1 read 0 in page 2 and its write stayed");
	else
		ret = verdict_why(V_ERROR, "CPU 1 read %#llx in page 2 (want 0, or 0xc2: stale), "
				  "then page 2 reads %#llx (want %#x)", (unsigned long long)seen,
				  (unsigned long long)after, TOUCH_WRITE_VALUE);
out:
	if (toucher_up) {
		t.cmd = TOUCH_EXIT;
		pthread_join(tt, NULL);
	}
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	munmap((void *)buf, 4 * PAGE);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	return ret;
}

#endif /* TLBRACE_CPU_SCENARIOS_H */
