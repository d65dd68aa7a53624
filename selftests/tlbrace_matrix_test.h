/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One cell of the race matrix as a kselftest assertion, shared by the
 * device's race suite (tlbrace_races.c) and the CPU path's
 * (tlbrace_cpu.c).  Include after kselftest_harness.h.
 */
#ifndef TLBRACE_MATRIX_TEST_H
#define TLBRACE_MATRIX_TEST_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "tlbrace_matrix.h"

/* Invalid iterations (race window not opened) allowed per cell, in %. */
#define MAX_INVALID_PCT 1
/*
 * Iterations of a cell: TLBRACE_SAFE_ITERS or TLBRACE_UNSAFE_ITERS, a
 * positive integer (default 1000 and 100 when unset).  Anything else gives
 * -1: 0 would pass every safe cell without a single iteration.
 */
static inline int iterations(const char *env, int dflt)
{
	const char *e = getenv(env);
	long n;

	if (!e)
		return dflt;
	for (const char *c = e; *c; c++)
		if (*c < '0' || *c > '9')
			return -1;
	errno = 0;
	n = strtol(e, NULL, 10);
	return *e && !errno && n > 0 && n <= INT_MAX ? n : -1;
}

/*
 * Runs one cell (run_cell() of tlbrace_matrix.h) and asserts it: an error
 * fails the cell at once; invalid iterations are left out of the rate, and
 * more than MAX_INVALID_PCT % of them fail the cell.
 */
static inline void run_matrix(struct __test_metadata *_metadata, int fd, int contract,
		       const struct scenario *s)
{
	bool unsafe;
	const char *env;
	long long valid;
	struct cell c;
	int n;

	ASSERT_NE(NULL, s);
	unsafe = s->unsafe[contract];
	env = unsafe ? "TLBRACE_UNSAFE_ITERS" : "TLBRACE_SAFE_ITERS";
	n = iterations(env, unsafe ? 100 : 1000);
	ASSERT_GT(n, 0) TH_LOG("%s=\"%s\": want a positive integer", env, getenv(env));
	ASSERT_EQ(0, run_cell(fd, s, n, &c))
		TH_LOG("%s/%s: iteration %d: %s", s->name, contract_names[contract], c.error_at,
		       c.error.why);
	for (int i = 0; i < c.invalid && i < INVALID_SHOWN; i++)
		printf("# %s/%s: invalid iteration: %s\n", s->name, contract_names[contract],
		       c.invalid_why[i]);
	valid = n - c.invalid;
	printf("# csv: %s,%s,%s,%d,%d,%d,%d,%.0f,%.0f\n", s->name, contract_names[contract],
	       unsafe ? "unsafe" : "safe", n, c.invalid, c.violations, c.first, c.first_us,
	       c.us_per_iteration);
	/* A failed ASSERT aborts: what was printed must be out first. */
	fflush(stdout);
	ASSERT_TRUE(cell_as_expected(&c, unsafe, MAX_INVALID_PCT))
		TH_LOG("%s: %d violations in %lld valid iterations, %d of %d invalid (at most "
		       "%d %% may be: race window not opened)%s%s", unsafe ? "unsafe" : "safe",
		       c.violations, valid, c.invalid, n, MAX_INVALID_PCT,
		       c.violations && !unsafe ? "; " : "", c.violations && !unsafe ?
		       c.violation.why : "");
}

#endif /* TLBRACE_MATRIX_TEST_H */
