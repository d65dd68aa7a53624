// SPDX-License-Identifier: GPL-2.0
/*
 * tlbrace_bench - the cost of a secondary MMU on CPU address-space changes,
 * and of the device engine's paths.  Not a test: it prints ratios of variants
 * measured in the same run (absolute times under QEMU TCG are noise).
 *
 * CPU side, per attached device ("none attached", test_hmm's dmirror, and a
 * tlbrace device under each contract):
 *   dontneed  the device mirrors N pages (untimed), then the CPU timed does
 *             madvise(MADV_DONTNEED) + touch of every page;
 *   remap     the device mirrors N pages (untimed), then the CPU timed does
 *             munmap + mmap + touch.
 * Device side (sync contract): ns per word for dTLB hits, dTLB misses served
 * by the dPT, and device faults.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#include "tlbrace_scenarios.h"

#define PAGES	64
#define ROUNDS	5

enum attach { NOTHING, DMIRROR, TLBRACE };

struct variant {
	const char *name;
	enum attach attach;
	__u32 contract;
};

static const struct variant variants[] = {
	{ "none attached", NOTHING, 0 },
	{ "test_hmm dmirror", DMIRROR, 0 },
	{ "tlbrace sync", TLBRACE, TLBRACE_CONTRACT_SYNC },
	{ "tlbrace deferred-end", TLBRACE, TLBRACE_CONTRACT_DEFERRED_END },
	{ "tlbrace sva", TLBRACE, TLBRACE_CONTRACT_SVA },
	{ "tlbrace none", TLBRACE, TLBRACE_CONTRACT_NONE },
};
#define NR_VARIANTS (sizeof(variants) / sizeof(variants[0]))

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void touch(char *buf)
{
	for (int p = 0; p < PAGES; p++)
		buf[p * PAGE] = 1;
}

/* The device fills its translations of buf (not timed). */
static void mirror(const struct variant *v, int fd, char *buf, void *scratch)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)buf, .ptr = (uintptr_t)scratch, .npages = PAGES,
	};

	if (v->attach == DMIRROR && ioctl(fd, HMM_DMIRROR_READ, &cmd))
		die("HMM_DMIRROR_READ");
	if (v->attach == TLBRACE && dev_prefetch(fd, buf, PAGES * PAGE, 0))
		die("TLBRACE_IOC_PREFETCH");
}

static int attach(const struct variant *v)
{
	int fd = -1;

	if (v->attach == DMIRROR) {
		fd = open("/dev/hmm_dmirror0", O_RDWR);
		if (fd < 0)
			die("/dev/hmm_dmirror0");
	} else if (v->attach == TLBRACE) {
		fd = tlbrace_open();
		if (fd < 0 || tlbrace_config(fd, v->contract, 64, 4, TLBRACE_REPL_LRU))
			die("/dev/tlbrace");
	}
	return fd;
}

/* ns per iteration of the timed CPU operation. */
static double cpu_op(const struct variant *v, int iters, int remap)
{
	void *scratch = malloc(PAGES * PAGE);
	int fd = attach(v);
	char *buf = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t = 0, t0;

	if (buf == MAP_FAILED || !scratch)
		die("mmap");
	touch(buf);
	for (int i = 0; i < iters; i++) {
		mirror(v, fd, buf, scratch);
		t0 = now_ns();
		if (remap) {
			munmap(buf, PAGES * PAGE);
			buf = mmap(buf, PAGES * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (buf == MAP_FAILED)
				die("mmap");
		} else {
			madvise(buf, PAGES * PAGE, MADV_DONTNEED);
		}
		touch(buf);
		t += now_ns() - t0;
	}
	munmap(buf, PAGES * PAGE);
	if (fd >= 0)
		close(fd);
	free(scratch);
	return t / iters;
}

/* ns per word of a device READ over words_pages pages, after prep. */
static double engine(int fd, char *buf, int pages, int flush_dpt)
{
	struct tlbrace_access a = {
		.addr = (uintptr_t)buf, .count = pages, .stride = PAGE,
	};
	double t = 0, t0;

	for (int r = 0; r < ROUNDS; r++) {
		if (flush_dpt >= 0 && dev_flush(fd, flush_dpt ? TLBRACE_FLUSH_DPT : 0))
			die("flush");
		t0 = now_ns();
		if (tlbrace_access(fd, TLBRACE_IOC_READ, &a))
			die("read");
		t += now_ns() - t0;
	}
	return t / ROUNDS / pages;
}

/*
 * Hits (violations) per second of a scenario function run back to back for
 * `secs`; an invalid iteration (window not opened) counts as a try without
 * a hit.
 */
static double rate(int fd, struct verdict (*run)(int), double secs, int *iters, int *hits)
{
	double t0 = now_us(), t;

	*iters = *hits = 0;
	do {
		struct verdict r;

		if (dev_flush(fd, TLBRACE_FLUSH_DPT))
			die("flush");
		r = run(fd);
		if (r.kind == V_ERROR) {
			fprintf(stderr, "scenario: %s\n", r.why);
			exit(1);
		}
		*hits += r.kind == V_VIOLATION;
		(*iters)++;
		t = now_us() - t0;
	} while (t < secs * 1e6);
	return *hits / (t / 1e6);
}

static void stochastic_vs_deterministic(double secs)
{
	static const struct {
		const char *name;
		int contract;
		struct verdict (*deterministic)(int);
		struct verdict (*stochastic)(int);
	} races[] = {
		{ "cow_stale_read", DEFERRED_END, scenario_cow, stochastic_cow },
		{ "cow_stale_read", NONE, scenario_cow, stochastic_cow },
		{ "unmap_during_fill", NONE, scenario_unmap_during_fill,
		  stochastic_unmap_during_fill },
	};
	static const __u32 uapi[] = {
		TLBRACE_CONTRACT_SYNC, TLBRACE_CONTRACT_DEFERRED_END,
		TLBRACE_CONTRACT_SVA, TLBRACE_CONTRACT_NONE,
	};

	printf("\n# races: injected (deterministic) vs left to timing (stochastic), %.0f s each\n",
	       secs);
	printf("%-20s %-13s %9s %9s %9s %9s %9s %9s\n", "scenario", "contract", "det.iter",
	       "det.hits", "det.hit/s", "sto.iter", "sto.hits", "sto.hit/s");
	for (unsigned int i = 0; i < sizeof(races) / sizeof(races[0]); i++) {
		int fd = tlbrace_open(), di, dh, si, sh;
		double d, st;

		if (fd < 0 || tlbrace_config(fd, uapi[races[i].contract], 64, 4, 0))
			die("race setup");
		d = rate(fd, races[i].deterministic, secs, &di, &dh);
		st = rate(fd, races[i].stochastic, secs, &si, &sh);
		printf("%-20s %-13s %9d %9d %9.1f %9d %9d %9.1f\n", races[i].name,
		       contract_names[races[i].contract], di, dh, d, si, sh, st);
		close(fd);
	}
}

/* ---- pending-flush trackers ------------------------------------------- */

#define TR_PAGES	8
#define TR_ITERS	150

struct tr_thread {
	int fd;
	char *range;
	pthread_t t;
};

static void *tr_worker(void *arg)
{
	struct tr_thread *w = arg;
	struct tlbrace_access a = {
		.size = sizeof(a), .addr = (uintptr_t)w->range, .count = TR_PAGES, .stride = PAGE,
	};

	for (int i = 0; i < TR_ITERS; i++) {
		for (int p = 0; p < TR_PAGES; p++)
			w->range[p * PAGE] = i;
		/* The device mirrors the range, then the CPU zaps it. */
		ioctl(w->fd, TLBRACE_IOC_READ, &a);
		madvise(w->range, TR_PAGES * PAGE, MADV_DONTNEED);
	}
	return NULL;
}

static const char *const workloads[] = { "disjoint", "overlapping", "mixed" };
static const struct {
	const char *name;
	__u32 id;
} trackers[] = {
	{ "naive", TLBRACE_TRACKER_NAIVE },
	{ "counter", TLBRACE_TRACKER_COUNTER },
	{ "ranges", TLBRACE_TRACKER_RANGES },
	{ "ranges-wait", TLBRACE_TRACKER_RANGES_WAIT },
	{ "ranges-full", TLBRACE_TRACKER_RANGES_FULL },
};

/*
 * T threads zap TR_PAGES-page ranges: their own (disjoint), all the same
 * one (overlapping), or pairs sharing one (mixed), with one device on the
 * mm mirroring each range before the zap.
 */
static void tracker_run(int threads, int workload, int tracker, int round)
{
	char *buf = mmap(NULL, 8 * TR_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = tlbrace_open();
	struct tr_thread w[8];
	struct tlbrace_stats st;
	double t0, secs;

	if (buf == MAP_FAILED || fd < 0 ||
	    tlbrace_config_tracker(fd, TLBRACE_CONTRACT_BATCHED, trackers[tracker].id, 64, 4, 0))
		die("tracker setup");
	t0 = now_ns();
	for (int i = 0; i < threads; i++) {
		int slot = workload == 0 ? i : workload == 1 ? 0 : i / 2;

		w[i].fd = fd;
		w[i].range = buf + slot * TR_PAGES * PAGE;
		if (pthread_create(&w[i].t, NULL, tr_worker, &w[i]))
			die("pthread_create");
	}
	for (int i = 0; i < threads; i++)
		pthread_join(w[i].t, NULL);
	secs = (now_ns() - t0) / 1e9;
	if (dev_stats(fd, &st))
		die("stats");
	printf("# trackers-csv: %d,%d,%s,%s,%llu,%.1f,%llu,%.3f,%llu,%.0f,%.0f,%llu,%.3f\n",
	       round, threads, workloads[workload], trackers[tracker].name, st.gathers,
	       st.gathers ? 1000.0 * st.gather_full / st.gathers : 0, st.gather_flushed,
	       st.closes_nested ? 1.0 * (st.closes_nested - st.closes_overlapping) / st.closes_nested : 0,
	       st.stale_reads + st.stale_writes,
	       st.gathers ? 1.0 * st.tracker_ns / st.gathers : 0,
	       threads * TR_ITERS / secs, st.kernel_nested,
	       st.kernel_nested ?
	       1.0 * (st.kernel_nested - st.kernel_nested_overlapping) / st.kernel_nested : 0);
	close(fd);
	munmap(buf, 8 * TR_PAGES * PAGE);
}

static void tracker_bench(int max_threads, int rounds)
{
	printf("\n# pending-flush trackers (batched contract), %d-page ranges, %d zaps per thread\n",
	       TR_PAGES, TR_ITERS);
	/* Rounds interleave every configuration, so drift hits all alike. */
	for (int r = 0; r < rounds; r++)
		for (int t = 1; t <= max_threads; t *= 2)
			for (int wl = 0; wl < 3; wl++)
				for (unsigned int k = 0; k < sizeof(trackers) / sizeof(trackers[0]); k++)
					if (t > 1 || wl == 0)
						tracker_run(t, wl, k, r);
}

static void cpu_and_engine(int iters)
{
	double dn[NR_VARIANTS], rm[NR_VARIANTS];

	/* Interleave rounds so drift in the VM hits every variant alike. */
	memset(dn, 0, sizeof(dn));
	memset(rm, 0, sizeof(rm));
	for (int r = 0; r < ROUNDS; r++)
		for (unsigned int i = 0; i < NR_VARIANTS; i++) {
			dn[i] += cpu_op(&variants[i], iters, 0) / ROUNDS;
			rm[i] += cpu_op(&variants[i], iters / 2, 1) / ROUNDS;
		}

	printf("# CPU operations on %d pages, %d iterations x %d rounds, ns per iteration\n",
	       PAGES, iters, ROUNDS);
	printf("%-22s %12s %8s %8s %12s %8s %8s\n", "attached", "dontneed", "/none", "/hmm",
	       "remap", "/none", "/hmm");
	for (unsigned int i = 0; i < NR_VARIANTS; i++)
		printf("%-22s %12.0f %8.2f %8.2f %12.0f %8.2f %8.2f\n", variants[i].name,
		       dn[i], dn[i] / dn[0], dn[i] / dn[1], rm[i], rm[i] / rm[0], rm[i] / rm[1]);

	{
		/* 64 pages fit the default 64x4 dTLB; 1024 pages do not. */
		int fd = tlbrace_open(), big = 1024;
		char *buf = mmap(NULL, big * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double hit, dpt, fault;

		if (fd < 0 || buf == MAP_FAILED)
			die("engine setup");
		memset(buf, 1, big * PAGE);
		dev_prefetch(fd, buf, big * PAGE, 0);
		engine(fd, buf, 64, -1);
		hit = engine(fd, buf, 64, -1);
		dpt = engine(fd, buf, big, 0);
		fault = engine(fd, buf, big, 1);
		printf("\n# device engine (sync contract), ns per word, one word per page\n");
		printf("%-22s %12s %8s\n", "path", "ns/word", "/hit");
		printf("%-22s %12.0f %8.2f\n", "dTLB hit", hit, 1.0);
		printf("%-22s %12.0f %8.2f\n", "dTLB miss, dPT hit", dpt, dpt / hit);
		printf("%-22s %12.0f %8.2f\n", "device fault (GUP)", fault, fault / hit);
		close(fd);
	}
}

/*
 * tlbrace_bench [iterations [race_seconds [tracker_rounds [only]]]]
 * only: "trackers" runs just the tracker benchmark, "trackers1" just its
 * one-thread part (the counter vs ranges throughput comparison).
 */
int main(int argc, char **argv)
{
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	const char *only = argc > 4 ? argv[4] : "all";

	if (strncmp(only, "trackers", 8)) {
		cpu_and_engine(argc > 1 ? atoi(argv[1]) : 400);
		stochastic_vs_deterministic(argc > 2 ? atof(argv[2]) : 5);
	}
	tracker_bench(strcmp(only, "trackers1") ? 4 : 1, rounds);
	return 0;
}
