/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The race matrix: each seed scenario with its expected verdict under every
 * contract (and tracker), and one cell run as a loop of iterations.  Shared
 * by the race suite (tlbrace_races.c), which asserts each cell, and the
 * command-line tool (tools/tlbrace.c), which shows them.
 */
#ifndef TLBRACE_MATRIX_H
#define TLBRACE_MATRIX_H

#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "tlbrace_cpu_scenarios.h"

/*
 * Expected verdicts, per variant: sync, deferred-end, sva, none, then the
 * batched contract with the naive, counter, ranges, ranges-wait and
 * ranges-full trackers; a CPU scenario's by the CPU path's policy.
 * true = unsafe (must reproduce).
 */
#define U true
#define S false
static const struct scenario matrix[] = {
	{ "cow_stale_read", scenario_cow, { S, U, S, U, U, U, U, U, U },
	  "COW vs secondary TLB: the device reads the pre-COW page (seed 001)" },
	{ "overlapping_dontneed", scenario_overlapping_dontneed, { S, S, S, U, U, S, S, S, S },
	  "overlapping MADV_DONTNEED: the device reads a zapped page after B returned (seeds 001, 003)" },
	{ "identical_dontneed", scenario_identical_dontneed, { S, S, S, U, U, S, S, S, S },
	  "identical MADV_DONTNEED ranges: two gathers, not one (seed 003)" },
	{ "unmap_during_fill", scenario_unmap_during_fill, { S, S, S, U, S, S, S, S, S },
	  "free before flush: the device fills a page munmap took away (seed 002)" },
	{ "uffd_wp_lost_protection", scenario_uffd_wp, { S, S, S, U, S, S, S, S, S },
	  "uffd-wp vs device write: a write-protected page written silently (seed 000)" },
	{ "soft_dirty_lost", scenario_soft_dirty, { S, S, S, U, S, S, S, S, S },
	  "soft-dirty vs device write: a write after clear_refs leaves no trace (seed 000)" },
	{ "dirty_window_lost_dirty", scenario_dirty_window, { S, U, U, U, U, U, U, U, U },
	  "dirty tracking vs late flush: a write inside clear_refs is lost (seed 004)" },
	{ "cpu_overlapping_dontneed", scenario_cpu_overlapping_dontneed,
	  { [CPU_STOCK] = S, [CPU_NAIVE] = U, [CPU_RANGES] = S, [CPU_RANGES_WAIT] = S },
	  "overlapping MADV_DONTNEED on the CPUs: a thread reads a zapped page after B "
	  "returned, its write is lost (seed 003)" },
};
#undef U
#undef S
#define NR_SCENARIOS (sizeof(matrix) / sizeof(matrix[0]))

static inline const struct scenario *scenario_by_name(const char *name)
{
	for (unsigned int i = 0; i < NR_SCENARIOS; i++)
		if (!strcmp(matrix[i].name, name))
			return &matrix[i];
	return NULL;
}

/* Variant index of a contract name ("sync", "batched/ranges", ...), or -1. */
static inline int contract_by_name(const char *name)
{
	for (int i = 0; i < NR_VARIANTS; i++)
		if (!strcmp(contract_names[i], name))
			return i;
	return -1;
}

/*
 * Configures fd's device for variant v (an index of contract_names), and
 * for a CPU variant the CPU path's policy of this process.
 */
static inline int configure_variant(int fd, int v)
{
	struct tlbrace_config c = {
		.size = sizeof(c), .contract = contract_uapi[v].contract,
		.tracker = contract_uapi[v].tracker, .sets = 64, .ways = 4,
	};
	int err = tlbrace_err(ioctl(fd, TLBRACE_IOC_CONFIG, &c));

	if (!err && v >= NR_CONTRACTS)
		err = cpu_policy(fd, cpu_policy_uapi[v - NR_CONTRACTS]);
	return err;
}

/*
 * Breaks copy-on-write of this process's private pages up front.  After a
 * fork (the kselftest harness forks each test) they are shared with the
 * parent, and the first write to one inside a race window is a CLEAR
 * invalidation of its own: a tracker that flushes everything when gathers
 * nest (batched/counter) then flushes the very entry the window is about,
 * and the iteration shows no violation for a reason that is not the
 * contract's.  mlock populates every writable private mapping with write
 * faults; nothing stays locked.  Returns 0 or an errno.
 */
static inline int break_cow(void)
{
	if (mlockall(MCL_CURRENT))
		return errno;
	return munlockall() ? errno : 0;
}

/* Reasons of invalid iterations kept per cell (all are counted). */
#define INVALID_SHOWN 3

/* What one cell's iterations showed. */
struct cell {
	int iterations, invalid, violations, correct;
	int first;		/* iteration of the first violation, -1 if none */
	double first_us;	/* time to it */
	double us_per_iteration;
	struct verdict error;	/* V_ERROR: the iteration that stopped the cell */
	int error_at;		/* its iteration, -1 if none */
	struct verdict violation, correct_one;	/* the last of each, as evidence */
	char invalid_why[INVALID_SHOWN][sizeof(((struct verdict *)0)->why)];
};

/*
 * Runs n iterations of s on fd (configured for the variant), each on a
 * fresh device page table, and counts them.  An error stops the cell:
 * returns -1 with c->error set; 0 otherwise.
 */
static inline int run_cell(int fd, const struct scenario *s, int n, struct cell *c)
{
	double t0 = now_us();

	memset(c, 0, sizeof(*c));
	c->first = c->error_at = -1;
	c->first_us = -1;
	for (int i = 0; i < n; i++) {
		struct verdict v;
		int err = dev_flush(fd, TLBRACE_FLUSH_DPT);
		static const char *const kinds[] = { "VIOLATION", "correct", "invalid", "ERROR" };

		/* A fresh device each time: "none" keeps stale entries. */
		mark("iteration %d: %s", i, s->name);
		v = err ? verdict_why(V_ERROR, "FLUSH: %s", strerror(err)) : s->run(fd);
		mark("verdict: %s%s%s", kinds[v.kind], *v.why ? ": " : "", v.why);
		c->iterations++;
		switch (v.kind) {
		case V_ERROR:
			c->error = v;
			c->error_at = i;
			c->us_per_iteration = (now_us() - t0) / c->iterations;
			return -1;
		case V_INVALID:
			if (c->invalid < INVALID_SHOWN)
				memcpy(c->invalid_why[c->invalid], v.why, sizeof(v.why));
			c->invalid++;
			break;
		case V_VIOLATION:
			if (c->first < 0) {
				c->first = i;
				c->first_us = now_us() - t0;
			}
			c->violations++;
			c->violation = v;
			break;
		case V_CORRECT:
			c->correct++;
			c->correct_one = v;
			break;
		}
	}
	c->us_per_iteration = (now_us() - t0) / c->iterations;
	return 0;
}

/*
 * Whether a cell shows what the matrix expects: an unsafe one reproduces in
 * at least 99 % of its valid iterations, a safe one never; and at most
 * max_invalid_pct % of the iterations were invalid.
 */
static inline bool cell_as_expected(const struct cell *c, bool unsafe, int max_invalid_pct)
{
	long long valid = c->iterations - c->invalid;

	if (c->invalid * 100LL > (long long)c->iterations * max_invalid_pct)
		return false;
	return unsafe ? valid > 0 && c->violations * 100LL >= valid * 99 : c->violations == 0;
}

#endif /* TLBRACE_MATRIX_H */
