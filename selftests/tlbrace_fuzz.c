// SPDX-License-Identifier: GPL-2.0
/*
 * The project's own ioctl fuzzer.
 *
 * FUZZ_THREADS threads issue random ioctls on one /dev/tlbrace fd: valid
 * command numbers with plausible, mutated or random struct contents and
 * sizes, malformed and random command numbers, and argument pointers that
 * are NULL, unmapped, read-only, misaligned, straddling into a guard page,
 * kernel, non-canonical or in memory that is being unmapped.  Meanwhile
 * CHURN_THREADS threads mmap, munmap, mprotect and madvise the regions those
 * ioctls use, clear soft-dirty bits, fork (the child tries one ioctl on the
 * inherited fd and exits) and send signals to the ioctl threads.  Injection
 * points are armed by the fuzzed INJECT_ARM calls themselves, with parks and
 * delays of a few ms and small counts.
 *
 * The fuzzer knows the ABI only from include/uapi/linux/tlbrace.h and
 * Documentation/uapi.rst.  Its verdicts, from what user space sees:
 *  - every ioctl returns 0 or -1, with an errno documented for its command
 *    (doc_errnos[] below; success from another mm only for VERSION);
 *  - every ioctl and every churn syscall returns within latency_bound_ms();
 *  - a call rejected with -EINVAL, -ENOTTY, -EPERM or -EBUSY left its struct
 *    as the caller wrote it;
 *  - no thread stays in one call for HANG_FACTOR times the bound (the
 *    watchdog fails the run instead of hanging);
 *  - afterwards the device still configures, reads and writes correctly.
 * Kernel splats (lockdep, KASAN, sleep in atomic, hung tasks) are judged by
 * the host from the kernel log.
 *
 * Environment: TLBRACE_FUZZ_CALLS (ioctls in all, default 50000) and
 * TLBRACE_FUZZ_SEED (the run's seed, printed; default from the clock).  A
 * thread's sequence of calls depends on the seed and its index only, so a
 * failure names the seed, the thread and the call to replay it.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/fiemap.h>
#include <linux/fs.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

#define FUZZ_THREADS	4
#define CHURN_THREADS	2
#define DEFAULT_CALLS	50000

/* The injections and waits the fuzzer itself asks for. */
#define FUZZ_PARK_MAX_MS	5
#define FUZZ_DELAY_MAX_US	2000
#define FUZZ_ARM_COUNT_MAX	4
#define FUZZ_WAIT_MAX_MS	20
/*
 * What one call may legitimately sit behind: every slot armed with the
 * longest park or delay the fuzzer uses, each firing its count; the longest
 * WAIT it asks for; the 1 s a device fault waits for an invalidation of its
 * page, or a ranges-wait close for an older gather (Documentation/device.rst,
 * trackers.rst); and slack for seven threads on two TCG vCPUs with lockdep
 * or KASAN (four times slower), where an access of 2^20 words takes a few
 * hundred ms on its own and a PREFETCH of 360 pages under KASAN 2.7 s.
 */
#define DOC_WAIT_MS	1000
#define SLACK_MS	5000
#define HANG_FACTOR	4
/* Calls slower than this are counted per configuration, to explain. */
#define SLOW_MS		500
/* Generous: the watchdog above, not the harness, is what catches a hang. */
#define FUZZ_TIMEOUT_S	2700

static long long latency_bound_ms(void)
{
	long long per_fire = FUZZ_PARK_MAX_MS > FUZZ_DELAY_MAX_US / 1000 ?
			     FUZZ_PARK_MAX_MS : FUZZ_DELAY_MAX_US / 1000;

	return TLBRACE_NR_ARMS * FUZZ_ARM_COUNT_MAX * per_fire + FUZZ_WAIT_MAX_MS + DOC_WAIT_MS +
	       SLACK_MS;
}

/* 4 MiB, 2 MiB aligned, so that THPs can form and be split. */
#define DATA_PAGES	1024
#define DATA_SIZE	(DATA_PAGES * PAGE)
#define ARG_PAGES	4	/* per ioctl thread, churned too */
#define ENTRIES_CAP	1024	/* snapshot entries per private buffer */
#define ENTRIES_SPAN	(65536 * sizeof(struct tlbrace_snapshot_entry))
#define STRUCT_MAX	1024

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#define KERNEL_ADDR	0xffffffff81000000ULL
#define NONCANONICAL	0x8000000000000000ULL
#define USER_TOP	0x00007ffffffff000ULL

/* The commands as the fuzzer counts them; UNKNOWN: any other number. */
enum { C_VERSION, C_CONFIG, C_READ, C_WRITE, C_CAS, C_PREFETCH, C_FLUSH, C_SNAPSHOT,
	C_STATS, C_RESET_STATS, C_WAIT, C_ARM, C_DISARM, C_RELEASE, C_STATUS, C_UNKNOWN,
	NR_SLOTS };

#define E_(e) (1ULL << (e))
/* Every command: the struct, its size/reserved/flags, an unknown number. */
#define DOC_ALL		(E_(EFAULT) | E_(EINVAL) | E_(ENOTTY))
/* Every command but VERSION: from another mm. */
#define DOC_MM		(DOC_ALL | E_(EPERM))
/* Commands that allocate: CONFIG, the accesses, PREFETCH, SNAPSHOT. */
#define DOC_ALLOC	(DOC_MM | E_(ENOMEM))

/*
 * Documentation/uapi.rst, command by command: the errnos it may return
 * (bit e for errno e < 64; the two larger ones have flags of their own).
 */
static const struct cmd_doc {
	const char *name;
	unsigned long cmd;
	unsigned int size;
	unsigned long long errnos;
	bool etimedout, eopnotsupp;
	int weight;
} docs[NR_SLOTS] = {
	[C_VERSION]	= { "VERSION", TLBRACE_IOC_VERSION, sizeof(struct tlbrace_version),
			    DOC_ALL, .weight = 3 },
	[C_CONFIG]	= { "CONFIG", TLBRACE_IOC_CONFIG, sizeof(struct tlbrace_config),
			    DOC_ALLOC | E_(EBUSY), .weight = 3 },
	[C_READ]	= { "READ", TLBRACE_IOC_READ, sizeof(struct tlbrace_access),
			    DOC_ALLOC | E_(ENOSPC) | E_(EAGAIN) | E_(EINTR) | E_(EBUSY), .weight = 14 },
	[C_WRITE]	= { "WRITE", TLBRACE_IOC_WRITE, sizeof(struct tlbrace_access),
			    DOC_ALLOC | E_(ENOSPC) | E_(EAGAIN) | E_(EINTR) | E_(EBUSY), .weight = 12 },
	[C_CAS]		= { "CAS", TLBRACE_IOC_CAS, sizeof(struct tlbrace_access),
			    DOC_ALLOC | E_(ENOSPC) | E_(EAGAIN) | E_(EINTR) | E_(EBUSY), .weight = 6 },
	[C_PREFETCH]	= { "PREFETCH", TLBRACE_IOC_PREFETCH, sizeof(struct tlbrace_range),
			    DOC_ALLOC | E_(ENOSPC) | E_(EAGAIN) | E_(EINTR), .weight = 10 },
	[C_FLUSH]	= { "FLUSH", TLBRACE_IOC_FLUSH, sizeof(struct tlbrace_flush),
			    DOC_MM, .weight = 4 },
	[C_SNAPSHOT]	= { "SNAPSHOT", TLBRACE_IOC_SNAPSHOT, sizeof(struct tlbrace_snapshot),
			    DOC_ALLOC, .weight = 8 },
	[C_STATS]	= { "STATS", TLBRACE_IOC_STATS, sizeof(struct tlbrace_stats),
			    DOC_MM, .weight = 4 },
	[C_RESET_STATS]	= { "RESET_STATS", TLBRACE_IOC_RESET_STATS, sizeof(struct tlbrace_stats),
			    DOC_MM, .weight = 2 },
	[C_WAIT]	= { "WAIT", TLBRACE_IOC_WAIT, sizeof(struct tlbrace_wait),
			    DOC_MM | E_(ENOENT) | E_(EINTR), .etimedout = true, .weight = 8 },
	[C_ARM]		= { "INJECT_ARM", TLBRACE_IOC_INJECT_ARM, sizeof(struct tlbrace_inject),
			    DOC_MM, .eopnotsupp = true, .weight = 12 },
	[C_DISARM]	= { "INJECT_DISARM", TLBRACE_IOC_INJECT_DISARM,
			    sizeof(struct tlbrace_inject), DOC_MM, .weight = 5 },
	[C_RELEASE]	= { "INJECT_RELEASE", TLBRACE_IOC_INJECT_RELEASE,
			    sizeof(struct tlbrace_release), DOC_MM, .weight = 5 },
	[C_STATUS]	= { "INJECT_STATUS", TLBRACE_IOC_INJECT_STATUS,
			    sizeof(struct tlbrace_inject_status), DOC_MM, .weight = 4 },
	[C_UNKNOWN]	= { "unknown", 0, 256, E_(ENOTTY) },
};

static bool documented(int slot, int err)
{
	const struct cmd_doc *d = &docs[slot];

	if (err == ETIMEDOUT)
		return d->etimedout;
	if (err == EOPNOTSUPP)
		return d->eopnotsupp;
	return err > 0 && err < 64 && (d->errnos & E_(err));
}

/* Numbers the VFS answers before any driver sees them. */
static const unsigned long vfs_cmds[] = {
	FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE, FIFREEZE, FITHAW, FS_IOC_FIEMAP,
	FIGETBSZ, FICLONE, FICLONERANGE, FIDEDUPERANGE, FIONREAD, FS_IOC_GETFLAGS,
	FS_IOC_SETFLAGS, FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR, FS_IOC_GETFSUUID,
	FS_IOC_GETFSSYSFSPATH, FIBMAP,
};

/* Where a call's argument struct lives. */
enum { A_PRIV, A_MISALIGNED, A_STRADDLE, A_READONLY, A_CHURNED, A_NULL, A_PROTNONE,
	A_UNMAPPED, A_KERNEL, A_NONCANONICAL, NR_ARG_KINDS };
static const char *const arg_names[NR_ARG_KINDS] = {
	"private", "misaligned", "straddling", "read-only", "churned", "NULL", "PROT_NONE",
	"unmapped", "kernel", "non-canonical",
};

#define NR_ERRNO 257	/* 0: success, 1..255, 256: a return value other than 0/-1 */

/* One thread's state; ioctl and churn threads alike. */
struct worker {
	int idx;
	__u64 rng;
	char *priv;		/* RW page, then a PROT_NONE page */
	char *args;		/* ARG_PAGES pages of the churned argument region */
	/* ENTRIES_CAP entries, then PROT_NONE up to the largest valid array */
	struct tlbrace_snapshot_entry *entries;
	pthread_t tid;
	_Atomic long long in_call_since;	/* ns; 0 when not in a call */
	const char *in_call;
	_Atomic bool finished;
	long calls;
	unsigned long long hist[NR_SLOTS][NR_ERRNO];
	long long slot_max_ns[NR_SLOTS];
	char slot_max_what[NR_SLOTS][320];
	long long max_ns;
	char max_what[512];
	/* churn threads */
	unsigned long long ops[16];
};

static struct {
	int fd;
	char *data;		/* DATA_SIZE, PROT_NONE guard pages around */
	char *args;		/* FUZZ_THREADS * ARG_PAGES */
	char *readonly;		/* one read-only page */
	char *protnone;		/* one PROT_NONE page */
	char *unmapped;		/* a page-sized hole nobody maps */
	int clear_refs;
	__u64 seed;
	long total_calls;
	long long bound_ns;
	_Atomic long calls_left;
	_Atomic bool stop;	/* a failure: everybody stops */
	_Atomic bool churn_stop;
	_Atomic bool failed;
	char failure[1024];
	/* The last configuration applied, and the slow calls made under each. */
	_Atomic int config;
	_Atomic long slow[5][5];
	pthread_barrier_t start;
	struct worker fuzz[FUZZ_THREADS], churn[CHURN_THREADS];
	/* Writable mappings the device must never write to (all but the data). */
	struct { __u64 lo, hi; } prot[256];
	int nr_prot;
} g;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&g.failed, true))
		goto out;
	va_start(ap, fmt);
	vsnprintf(g.failure, sizeof(g.failure), fmt, ap);
	va_end(ap);
out:
	atomic_store(&g.stop, true);
}

/* xorshift64*: a thread's calls follow from the seed and its index alone. */
static __u64 rnd(struct worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dULL;
}

static __u64 below(struct worker *w, __u64 n)
{
	return n ? rnd(w) % n : 0;
}

static bool chance(struct worker *w, int pct)
{
	return below(w, 100) < (__u64)pct;
}

static __u32 interesting32(struct worker *w)
{
	static const __u32 v[] = { 0, 1, 2, 7, 8, 16, 0xff, 0x100, 0x1000, 0xfffff, 0x100000,
				   0x100001, 0x7fffffff, 0x80000000, 0xffffffff };

	return chance(w, 20) ? (__u32)rnd(w) : v[below(w, sizeof(v) / sizeof(v[0]))];
}

static __u64 data_addr(struct worker *w)
{
	return (uintptr_t)g.data + below(w, DATA_SIZE / 8) * 8;
}

/* An address for an access or a filter: mostly in the data region. */
static __u64 any_addr(struct worker *w)
{
	switch (below(w, 20)) {
	case 0 ... 9:	return data_addr(w);
	case 10:	return data_addr(w) | (1 + below(w, 7));
	case 11:	return (uintptr_t)g.data - PAGE + below(w, 2 * PAGE / 8) * 8;
	case 12:	return (uintptr_t)g.data + DATA_SIZE - PAGE + below(w, 2 * PAGE / 8) * 8;
	case 13:	return below(w, 2) ? 0 : PAGE;
	case 14:	return KERNEL_ADDR + below(w, 512) * 8;
	case 15:	return NONCANONICAL >> below(w, 2);
	case 16:	return USER_TOP + below(w, PAGE / 8) * 8;
	case 17:	return ~0ULL - below(w, 64) * 8;
	case 18:	return (uintptr_t)w->priv + below(w, PAGE / 8) * 8;
	default:	return rnd(w);
	}
}

static __u64 page_addr(struct worker *w)
{
	__u64 a = chance(w, 80) ? data_addr(w) : any_addr(w);

	return chance(w, 95) ? a & ~(PAGE - 1) : a;
}

static __u64 range_len(struct worker *w, bool unbounded)
{
	static const __u64 v[] = { 0, 1, PAGE - 1, PAGE + 1, TLBRACE_MAX_RANGE_LEN,
				   TLBRACE_MAX_RANGE_LEN + PAGE, 1ULL << 46, 1ULL << 47,
				   ~0ULL & ~(PAGE - 1), ~0ULL };

	switch (below(w, 10)) {
	case 0 ... 5:	return (1 + below(w, 16)) * PAGE;
	case 6 ... 7:	return (1 + below(w, DATA_PAGES)) * PAGE;
	default:
		if (unbounded && chance(w, 50))
			return (1ULL << (12 + below(w, 36)));
		return v[below(w, sizeof(v) / sizeof(v[0]))];
	}
}

/*
 * Whether some word addr + i * stride, i < count, may be in memory the
 * device must not write: every writable mapping of ours but the data region.
 */
static bool may_write_ours(__u64 addr, __u64 count, __u64 stride)
{
	for (int r = 0; r < g.nr_prot; r++) {
		unsigned __int128 lo = g.prot[r].lo, hi = g.prot[r].hi, i, a;

		if (!count)
			return false;
		if (addr >= lo)
			i = 0;
		else if (!stride)
			continue;
		else
			i = (lo - addr + stride - 1) / stride;
		a = addr + i * (unsigned __int128)stride;
		if (i < count && a < hi)
			return true;
		/* A word can also straddle into the range from below. */
		if (i > 0 && i - 1 < count && addr + (i - 1) * (unsigned __int128)stride + 8 > lo)
			return true;
	}
	return false;
}

/* Same for a byte range the module writes, like SNAPSHOT's entries. */
static bool may_write_bytes(__u64 lo, unsigned __int128 len, const struct worker *w)
{
	unsigned __int128 hi = lo + len;
	__u64 own = (uintptr_t)w->entries;

	if (lo >= own && hi <= own + ENTRIES_SPAN)
		return false;
	for (int r = 0; r < g.nr_prot; r++)
		if (lo < g.prot[r].hi && hi > g.prot[r].lo)
			return true;
	return false;
}

/* The struct under construction, as every command sees it. */
union arg {
	struct tlbrace_version v;
	struct tlbrace_config c;
	struct tlbrace_access a;
	struct tlbrace_wait wt;
	struct tlbrace_range r;
	struct tlbrace_flush f;
	struct tlbrace_snapshot s;
	struct tlbrace_stats st;
	struct tlbrace_inject i;
	struct tlbrace_release rel;
	struct tlbrace_inject_status is;
	unsigned char b[STRUCT_MAX];
};

static void random_bytes(struct worker *w, void *p, size_t len)
{
	unsigned char *b = p;

	for (size_t k = 0; k < len; k++)
		b[k] = rnd(w);
}

static void gen_access(struct worker *w, struct tlbrace_access *a, int slot)
{
	a->flags = chance(w, 80) ? 0 : chance(w, 75) ? TLBRACE_ACCESS_ASYNC : interesting32(w);
	a->addr = any_addr(w);
	switch (below(w, 10)) {
	case 0 ... 4:	a->count = 1; break;
	case 5 ... 7:	a->count = 2 + below(w, 63); break;
	case 8:		a->count = 65 + below(w, 4032); break;
	default:	a->count = chance(w, 50) ? TLBRACE_MAX_ACCESS_COUNT : interesting32(w);
	}
	if (slot == C_CAS && chance(w, 90))
		a->count = 1;
	if (a->count == 1 && chance(w, 90))
		a->stride = 0;
	else if (chance(w, 80))
		a->stride = 8 * (1 + below(w, 8));
	else
		a->stride = chance(w, 50) ? PAGE * (1 + below(w, 4)) : interesting32(w);
	a->value = rnd(w);
	a->expected = chance(w, 50) ? 0 : rnd(w);
}

static void gen_arm(struct worker *w, struct tlbrace_inject *i)
{
	i->id = chance(w, 95) ? below(w, TLBRACE_NR_ARMS) : interesting32(w);
	i->point = chance(w, 95) ? below(w, TLBRACE_NR_POINTS) : interesting32(w);
	i->action = chance(w, 95) ? below(w, 3) : interesting32(w);
	if (chance(w, 50)) {
		i->start = i->end = 0;
	} else {
		i->start = page_addr(w);
		i->end = chance(w, 90) ? i->start + range_len(w, false) : any_addr(w);
	}
	i->events = chance(w, 50) ? 0 : chance(w, 90) ? below(w, 256) : interesting32(w);
	i->nth = chance(w, 90) ? below(w, 4) : interesting32(w);
	i->count = chance(w, 95) ? 1 + below(w, FUZZ_ARM_COUNT_MAX) : interesting32(w);
	i->delay_us = chance(w, 90) ? 1 + below(w, FUZZ_DELAY_MAX_US) : interesting32(w);
	i->timeout_ms = chance(w, 90) ? 1 + below(w, FUZZ_PARK_MAX_MS) : interesting32(w);
	if (chance(w, 40))
		i->release_on = TLBRACE_RELEASE_BY_IOCTL;
	else
		i->release_on = chance(w, 90) ? below(w, TLBRACE_NR_ARMS) : interesting32(w);
	i->access_op = chance(w, 95) ? below(w, 2) : interesting32(w);
	i->access_addr = any_addr(w);
	i->access_value = rnd(w);
	i->flags = chance(w, 90) ? 0 : chance(w, 50) ? TLBRACE_INJECT_ANY_TASK : interesting32(w);
}

/* A plausible struct for slot: mostly valid, each field sometimes not. */
static void gen_plausible(struct worker *w, int slot, union arg *u)
{
	switch (slot) {
	case C_CONFIG:
		u->c.contract = chance(w, 95) ? below(w, 5) : interesting32(w);
		u->c.sets = chance(w, 90) ? 1U << below(w, 11) : interesting32(w);
		u->c.ways = chance(w, 90) ? 1 + below(w, TLBRACE_MAX_WAYS) : interesting32(w);
		u->c.replacement = chance(w, 95) ? below(w, 2) : interesting32(w);
		u->c.flags = chance(w, 95) ? 0 : interesting32(w);
		u->c.tracker = chance(w, 95) ? below(w, 5) : interesting32(w);
		u->c.reserved = chance(w, 95) ? 0 : interesting32(w);
		break;
	case C_READ: case C_WRITE: case C_CAS:
		gen_access(w, &u->a, slot);
		/* Out fields are not read: leave garbage in them. */
		random_bytes(w, &u->a.outcome, 16);
		break;
	case C_WAIT:
		u->wt.timeout_ms = chance(w, 90) ? below(w, FUZZ_WAIT_MAX_MS + 1) :
				   interesting32(w);
		u->wt.reserved = chance(w, 95) ? 0 : interesting32(w);
		random_bytes(w, &u->wt.error, 4);
		random_bytes(w, &u->wt.result, sizeof(u->wt.result));
		break;
	case C_PREFETCH:
		u->r.flags = chance(w, 95) ? below(w, 2) : interesting32(w);
		u->r.addr = page_addr(w);
		u->r.len = range_len(w, false);
		break;
	case C_FLUSH:
		u->f.flags = chance(w, 95) ? below(w, 2) : interesting32(w);
		break;
	case C_SNAPSHOT:
		u->s.flags = chance(w, 95) ? 0 : interesting32(w);
		u->s.addr = page_addr(w);
		u->s.len = range_len(w, true);
		switch (below(w, 10)) {
		case 0 ... 6:	u->s.entries = (uintptr_t)w->entries; break;
		case 7:		u->s.entries = data_addr(w); break;
		case 8:		u->s.entries = (uintptr_t)g.readonly; break;
		default:	u->s.entries = any_addr(w);
		}
		switch (below(w, 10)) {
		case 0 ... 6:	u->s.max_entries = below(w, ENTRIES_CAP + 1); break;
		case 7:		u->s.max_entries = 65536; break;
		case 8:		u->s.max_entries = 65537; break;
		default:	u->s.max_entries = interesting32(w);
		}
		break;
	case C_STATS: case C_RESET_STATS:
		random_bytes(w, &u->st, sizeof(u->st));
		u->st.flags = chance(w, 95) ? 0 : interesting32(w);
		u->st.reserved = chance(w, 95) ? 0 : interesting32(w);
		break;
	case C_ARM:
		gen_arm(w, &u->i);
		break;
	case C_DISARM:
		/* DISARM reads id only; the rest may hold anything but flags. */
		if (chance(w, 50))
			gen_arm(w, &u->i);
		u->i.id = chance(w, 70) ? below(w, TLBRACE_NR_ARMS) :
			  chance(w, 70) ? TLBRACE_ALL_ARMS : interesting32(w);
		u->i.flags = chance(w, 95) ? 0 : interesting32(w);
		break;
	case C_RELEASE:
		u->rel.id = chance(w, 60) ? below(w, TLBRACE_NR_ARMS) :
			    chance(w, 80) ? TLBRACE_ALL_ARMS : interesting32(w);
		u->rel.reserved = chance(w, 95) ? 0 : interesting32(w);
		random_bytes(w, &u->rel.released, 4);
		break;
	case C_STATUS:
		random_bytes(w, &u->is, sizeof(u->is));
		u->is.flags = chance(w, 95) ? 0 : interesting32(w);
		break;
	default:
		break;
	}
}

/*
 * Keep what the fuzzer asks for within what it can bound and survive, after
 * any generator or mutation: parks, delays and waits of a few ms with small
 * counts, and no device write into our own memory (only the data region,
 * or where there is nothing writable of ours).  Out-of-range values that
 * the module must reject are left alone.
 */
static void sanitize(struct worker *w, int slot, union arg *u)
{
	switch (slot) {
	case C_WRITE: case C_CAS:
		if (may_write_ours(u->a.addr, u->a.count, u->a.stride))
			u->a.addr = data_addr(w) | (u->a.addr & 7);
		if (may_write_ours(u->a.addr, u->a.count, u->a.stride))
			u->a.count = 1;
		break;
	case C_WAIT:
		if (u->wt.timeout_ms <= TLBRACE_MAX_WAIT_MS)
			u->wt.timeout_ms %= FUZZ_WAIT_MAX_MS + 1;
		break;
	case C_SNAPSHOT:
		if (may_write_bytes(u->s.entries, (unsigned __int128)u->s.max_entries *
				    sizeof(struct tlbrace_snapshot_entry), w)) {
			u->s.entries = (uintptr_t)w->entries;
			if (u->s.max_entries > ENTRIES_CAP && u->s.max_entries <= 65536)
				u->s.max_entries = ENTRIES_CAP;
		}
		break;
	case C_ARM: case C_DISARM:
		if (u->i.delay_us && u->i.delay_us <= TLBRACE_DELAY_MAX_US)
			u->i.delay_us = 1 + u->i.delay_us % FUZZ_DELAY_MAX_US;
		/* 0 would be the 1 s default. */
		if (u->i.timeout_ms <= TLBRACE_PARK_MAX_MS)
			u->i.timeout_ms = 1 + u->i.timeout_ms % FUZZ_PARK_MAX_MS;
		/* Unlimited only for the injected access, which does not wait. */
		if (u->i.action != TLBRACE_ACTION_ACCESS || u->i.count > 64)
			u->i.count = 1 + u->i.count % FUZZ_ARM_COUNT_MAX;
		if (u->i.access_op != TLBRACE_INJ_READ && may_write_ours(u->i.access_addr, 1, 0))
			u->i.access_addr = data_addr(w) | (u->i.access_addr & 7);
		break;
	default:
		break;
	}
}

static bool vfs_cmd(unsigned long cmd)
{
	for (size_t k = 0; k < sizeof(vfs_cmds) / sizeof(vfs_cmds[0]); k++)
		if ((unsigned int)cmd == (unsigned int)vfs_cmds[k])
			return true;
	return false;
}

static int known_slot(unsigned long cmd)
{
	for (int s = 0; s < C_UNKNOWN; s++)
		if ((unsigned int)cmd == (unsigned int)docs[s].cmd)
			return s;
	return C_UNKNOWN;
}

/* A known number with another direction, size or magic; or any number. */
static unsigned long bad_cmd(struct worker *w)
{
	for (;;) {
		unsigned long cmd;
		int s = below(w, C_UNKNOWN);
		unsigned int size = docs[s].size;

		switch (below(w, 5)) {
		case 0:	cmd = _IOC(below(w, 3), TLBRACE_IOC_MAGIC, s, size); break;
		case 1:	cmd = _IOC(_IOC_READ | _IOC_WRITE, TLBRACE_IOC_MAGIC, s,
				   chance(w, 50) ? size + 8 : below(w, 1U << _IOC_SIZEBITS)); break;
		case 2:	cmd = _IOC(_IOC_READ | _IOC_WRITE, below(w, 256), s, size); break;
		case 3:	cmd = _IOC(below(w, 4), TLBRACE_IOC_MAGIC, below(w, 256),
				   below(w, 1U << _IOC_SIZEBITS)); break;
		default: cmd = (unsigned int)rnd(w);
		}
		if (known_slot(cmd) == C_UNKNOWN && !vfs_cmd(cmd))
			return cmd;
	}
}

static int pick_slot(struct worker *w)
{
	int total = 0, r;

	for (int s = 0; s < C_UNKNOWN; s++)
		total += docs[s].weight;
	r = below(w, total);
	for (int s = 0; s < C_UNKNOWN; s++) {
		r -= docs[s].weight;
		if (r < 0)
			return s;
	}
	return C_VERSION;
}

/* One generated call: command, struct bytes and where they go. */
struct call {
	int slot;
	unsigned long cmd;
	union arg u;
	size_t len;		/* bytes of u that are the struct */
	int kind;
	void *ptr;
};

static void gen_call(struct worker *w, struct call *c)
{
	static const int size_deltas[] = { -8, -4, 4, 8 };
	int r = below(w, 100);

	memset(&c->u, 0, sizeof(c->u));
	if (r < 92) {
		c->slot = pick_slot(w);
		c->cmd = docs[c->slot].cmd;
	} else {
		c->slot = C_UNKNOWN;
		c->cmd = bad_cmd(w);
	}
	c->len = docs[c->slot].size;
	r = below(w, 100);
	if (c->slot == C_UNKNOWN || r < 10) {
		random_bytes(w, &c->u, c->len);
	} else {
		gen_plausible(w, c->slot, &c->u);
		/* Now and then one field, or one bit, not as it should be. */
		if (r < 25) {
			size_t off = 4 + below(w, (c->len - 4) / 4) * 4;
			__u32 v = interesting32(w);

			memcpy(c->u.b + off, &v, 4);
		} else if (r < 35) {
			size_t bit = 32 + below(w, (c->len - 4) * 8);

			c->u.b[bit / 8] ^= 1 << (bit % 8);
		}
	}
	if (chance(w, 88))
		c->u.v.size = c->len;
	else if (chance(w, 70))
		c->u.v.size = c->len + size_deltas[below(w, 4)];
	else
		c->u.v.size = interesting32(w);
	if (c->slot != C_UNKNOWN)
		sanitize(w, c->slot, &c->u);

	switch (below(w, 100)) {
	case 0 ... 54:	c->kind = A_PRIV; break;
	case 55 ... 62:	c->kind = A_MISALIGNED; break;
	case 63 ... 67:	c->kind = A_STRADDLE; break;
	case 68 ... 72:	c->kind = A_READONLY; break;
	case 73 ... 81:	c->kind = A_CHURNED; break;
	case 82 ... 85:	c->kind = A_NULL; break;
	case 86 ... 89:	c->kind = A_PROTNONE; break;
	case 90 ... 93:	c->kind = A_UNMAPPED; break;
	case 94 ... 96:	c->kind = A_KERNEL; break;
	default:	c->kind = A_NONCANONICAL;
	}
}

/*
 * Put the struct where c->kind says.  In the churned region the copy goes
 * through process_vm_writev(), which fails instead of faulting when a churn
 * thread has just unmapped or protected the page; then the struct goes to
 * the private page instead, so that the module never reads a struct there
 * that this thread did not just write (or zeroes, after a churn).
 */
static void place_call(struct worker *w, struct call *c)
{
	switch (c->kind) {
	case A_MISALIGNED:
		c->ptr = w->priv + 1 + below(w, 7);
		memcpy(c->ptr, &c->u, c->len);
		return;
	case A_STRADDLE:
		c->ptr = w->priv + PAGE - 1 - below(w, c->len - 1);
		memcpy(c->ptr, &c->u, w->priv + PAGE - (char *)c->ptr);
		return;
	case A_READONLY:	c->ptr = g.readonly; return;
	case A_NULL:		c->ptr = NULL; return;
	case A_PROTNONE:	c->ptr = g.protnone + below(w, 2) * 8; return;
	case A_UNMAPPED:	c->ptr = g.unmapped; return;
	case A_KERNEL:		c->ptr = (void *)(uintptr_t)(KERNEL_ADDR + below(w, 64) * 8); return;
	case A_NONCANONICAL:	c->ptr = (void *)(uintptr_t)(chance(w, 50) ? NONCANONICAL : USER_TOP);
				return;
	case A_CHURNED: {
		if (!w->args)
			goto priv;
		char *p = w->args + below(w, ARG_PAGES) * PAGE + below(w, (PAGE - c->len) / 8) * 8;
		struct iovec local = { &c->u, c->len }, remote = { p, c->len };

		if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)c->len) {
			c->ptr = p;
			return;
		}
	}
		/* fall through */
	default:
priv:
		c->kind = A_PRIV;
		c->ptr = w->priv + below(w, (PAGE - c->len) / 8 + 1) * 8;
		memcpy(c->ptr, &c->u, c->len);
	}
}

static const char *errname(int err)
{
	static __thread char buf[16];
	const char *n = err > 0 && err < 256 ? strerrorname_np(err) : NULL;

	if (!err)
		return "ok";
	if (err == 256)
		return "bad-return";
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

static void describe(char *buf, size_t n, const struct worker *w, const struct call *c)
{
	int o = snprintf(buf, n, "seed 0x%llx thread %d call %ld: %s cmd 0x%08lx arg %s %p, "
			 "struct", (unsigned long long)g.seed, w->idx, w->calls,
			 docs[c->slot].name, c->cmd, arg_names[c->kind], c->ptr);

	for (size_t k = 0; k < c->len && k < 96 && o < (int)n - 3; k += 4)
		o += snprintf(buf + o, n - o, " %08x", *(const __u32 *)(c->u.b + k));
}

static void note_latency(struct worker *w, const char *what, long long t0)
{
	long long dt = now_ns() - t0;

	atomic_store(&w->in_call_since, 0);
	if (dt > w->max_ns) {
		w->max_ns = dt;
		snprintf(w->max_what, sizeof(w->max_what), "%s, thread %d", what, w->idx);
	}
	if (dt > g.bound_ns)
		fail("seed 0x%llx thread %d: %s took %lld ms, bound %lld ms",
		     (unsigned long long)g.seed, w->idx, what, dt / 1000000, g.bound_ns / 1000000);
}

static long long note_call(struct worker *w, const char *what)
{
	long long t0 = now_ns();

	w->in_call = what;
	atomic_store(&w->in_call_since, t0);
	return t0;
}

/* Time one system call; one over the bound fails the run. */
#define TIMED(w, what, expr) ({						\
	long long t0_ = note_call((w), (what));				\
	typeof(expr) r_ = (expr);					\
	note_latency((w), (what), t0_);					\
	r_;								\
})

static void judge(struct worker *w, const struct call *c, long ret, int err)
{
	char d[512];
	int e = ret == 0 ? 0 : ret == -1 && err > 0 && err < 256 ? err : 256;

	w->hist[c->slot][e]++;
	if (e && !documented(c->slot, e)) {
		describe(d, sizeof(d), w, c);
		fail("%s: returned %ld, %s, not documented for %s", d, ret,
		     e == 256 ? "a bad return value" : errname(e), docs[c->slot].name);
		return;
	}
	/* A collected job failed as an access fails while it runs, or not at all. */
	if (c->slot == C_WAIT && !e && (c->kind == A_PRIV || c->kind == A_MISALIGNED)) {
		struct tlbrace_wait out;
		int job;

		memcpy(&out, c->ptr, sizeof(out));
		job = -out.error;
		if (job && job != EFAULT && job != ENOSPC && job != EAGAIN && job != ENOMEM &&
		    job != EINTR) {
			describe(d, sizeof(d), w, c);
			fail("%s: collected a job with error %d, not an access's", d, out.error);
		}
	}
	/* A rejected call has had no effect: the struct is as we wrote it. */
	if ((e == EINVAL || e == ENOTTY || e == EPERM || e == EBUSY) &&
	    (c->kind == A_PRIV || c->kind == A_MISALIGNED) && memcmp(c->ptr, &c->u, c->len)) {
		describe(d, sizeof(d), w, c);
		fail("%s: rejected with %s but the struct changed", d, errname(e));
	}
}

static void sigusr1(int sig)
{
}

static void *fuzz_thread(void *arg)
{
	struct worker *w = arg;
	struct call c;

	pthread_barrier_wait(&g.start);
	while (!atomic_load(&g.stop) && atomic_fetch_sub(&g.calls_left, 1) > 0) {
		long ret;

		gen_call(w, &c);
		place_call(w, &c);
		long long max = w->max_ns, t0 = note_call(w, docs[c.slot].name), dt;
		int err, config = atomic_load(&g.config);

		errno = 0;
		ret = ioctl(g.fd, c.cmd, c.ptr);
		err = errno;
		note_latency(w, docs[c.slot].name, t0);
		dt = now_ns() - t0;
		if (!ret && c.slot == C_CONFIG)
			atomic_store(&g.config, c.u.c.contract * 5 + c.u.c.tracker);
		if (dt > SLOW_MS * 1000000LL)
			atomic_fetch_add(&g.slow[config / 5][config % 5], 1);
		if (dt > w->slot_max_ns[c.slot]) {
			w->slot_max_ns[c.slot] = dt;
			describe(w->slot_max_what[c.slot], sizeof(w->slot_max_what[0]), w, &c);
		}
		if (w->max_ns > max)
			describe(w->max_what, sizeof(w->max_what), w, &c);
		judge(w, &c, ret, err);
		w->calls++;
	}
	atomic_store(&w->finished, true);
	return NULL;
}

/* Churn operations, as counted in worker.ops[]. */
enum { O_MUNMAP, O_MMAP, O_MPROTECT, O_MADVISE, O_FORK, O_CLEAR_REFS, O_SIGNAL, O_CPU_WRITE,
	NR_OPS };
static const char *const op_names[NR_OPS] = {
	"munmap", "mmap", "mprotect", "madvise", "fork", "clear_refs", "signal", "cpu-write",
};

/* A page range in the data region, or now and then in the argument pages. */
static void churn_range(struct worker *w, char **p, size_t *len)
{
	size_t pages = FUZZ_THREADS * ARG_PAGES, first, n;
	char *base = g.args;

	if (chance(w, 85)) {
		base = g.data;
		pages = DATA_PAGES;
	}
	switch (below(w, 10)) {
	case 0 ... 6:	n = 1 + below(w, 16); break;
	case 7 ... 8:	n = 512; break;
	default:	n = pages;
	}
	if (n > pages)
		n = pages;
	first = n == 512 ? below(w, 2) * 512 : below(w, pages - n + 1);
	*p = base + first * PAGE;
	*len = n * PAGE;
}

/*
 * In a forked child: one call on the inherited fd, from an mm the device
 * does not mirror.  Only async-signal-safe calls here; the errno is the
 * exit status (0 success, 255 a return value other than 0 or -1).
 */
static void churn_fork(struct worker *w)
{
	struct call c;
	bool call = chance(w, 70);
	long long t0;
	int status;
	pid_t pid;

	if (call) {
		gen_call(w, &c);
		place_call(w, &c);
	}
	t0 = note_call(w, "fork");
	pid = fork();
	if (pid == 0) {
		long ret = call ? ioctl(g.fd, c.cmd, c.ptr) : 0;

		_exit(ret == 0 ? 0 : ret == -1 ? errno & 0xff : 255);
	}
	note_latency(w, "fork", t0);
	if (pid < 0)
		return;
	while (TIMED(w, "waitpid", waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (!call)
		return;
	if (!WIFEXITED(status)) {
		fail("seed 0x%llx churn %d: the forked child died (status 0x%x)",
		     (unsigned long long)g.seed, w->idx, status);
		return;
	}
	if (WEXITSTATUS(status) == 0 && c.slot != C_VERSION) {
		char d[512];

		describe(d, sizeof(d), w, &c);
		fail("%s: succeeded from a forked child, another mm", d);
		return;
	}
	judge(w, &c, WEXITSTATUS(status) ? -1 : 0, WEXITSTATUS(status) == 255 ? 256 :
	      WEXITSTATUS(status));
	w->calls++;
}

static void churn_op(struct worker *w)
{
	static const int advice[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_FREE, MADV_FREE, MADV_WILLNEED, MADV_COLD,
		MADV_PAGEOUT, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_READ,
		MADV_POPULATE_WRITE, MADV_REMOVE, MADV_COLLAPSE,
	};
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE,
				     PROT_READ | PROT_WRITE };
	int op = below(w, 100);
	size_t len;
	char *p;

	churn_range(w, &p, &len);
	if (op < 12) {
		op = O_MUNMAP;
		TIMED(w, "munmap", munmap(p, len));
	} else if (op < 30) {
		int flags = MAP_FIXED | MAP_ANONYMOUS | (chance(w, 70) ? MAP_PRIVATE : MAP_SHARED);

		op = O_MMAP;
		TIMED(w, "mmap", mmap(p, len, PROT_READ | PROT_WRITE, flags, -1, 0));
	} else if (op < 45) {
		op = O_MPROTECT;
		TIMED(w, "mprotect", mprotect(p, len, prots[below(w, 4)]));
	} else if (op < 75) {
		op = O_MADVISE;
		TIMED(w, "madvise", madvise(p, len, advice[below(w, sizeof(advice) / sizeof(int))]));
	} else if (op < 80) {
		op = O_FORK;
		churn_fork(w);
	} else if (op < 83) {
		op = O_CLEAR_REFS;
		TIMED(w, "clear_refs", pwrite(g.clear_refs, "4", 1, 0));
	} else if (op < 90 && w->idx == FUZZ_THREADS) {
		op = O_SIGNAL;
		pthread_kill(g.fuzz[below(w, FUZZ_THREADS)].tid, SIGUSR1);
	} else {
		/* A CPU write: breaks COW after a fork, dirties, faults in. */
		__u64 v = rnd(w);
		struct iovec local = { &v, 8 }, remote = { (void *)(uintptr_t)data_addr(w), 8 };

		op = O_CPU_WRITE;
		TIMED(w, "cpu-write", process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	}
	w->ops[op]++;
}

static void *churn_thread(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&g.start);
	while (!atomic_load(&g.stop) && !atomic_load(&g.churn_stop))
		churn_op(w);
	return NULL;
}

/* Every writable mapping now, but the data region: the device may not write there. */
static int read_protected(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY), n = 0, r;
	char *line;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	g.nr_prot = 0;
	for (line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned long long lo, hi;
		char perms[5];

		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) != 3)
			return -1;
		if (perms[1] != 'w' || (lo >= (uintptr_t)g.data && hi <= (uintptr_t)g.data + DATA_SIZE))
			continue;
		if (g.nr_prot == (int)(sizeof(g.prot) / sizeof(g.prot[0])))
			return -1;
		g.prot[g.nr_prot].lo = lo;
		g.prot[g.nr_prot++].hi = hi;
	}
	return 0;
}

/* A positive integer from the environment: dflt when unset, 0 when not one. */
static unsigned long long env_num(const char *name, unsigned long long dflt)
{
	const char *e = getenv(name);
	unsigned long long n;
	char *end;

	if (!e)
		return dflt;
	errno = 0;
	n = strtoull(e, &end, 0);
	return *e >= '0' && *e <= '9' && !*end && !errno ? n : 0;
}

/*
 * n read-write pages, aligned to align, inside PROT_NONE guards: at least a
 * page before and after, and up to span bytes from the start.
 */
static char *guarded(size_t n, size_t span, size_t align)
{
	span = (span > n * PAGE ? span : n * PAGE) + align + 2 * PAGE;
	char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *p;

	if (r == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)r + PAGE + align - 1) & ~(uintptr_t)(align - 1));
	if (mmap(p, n * PAGE, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0) == MAP_FAILED)
		return NULL;
	return p;
}

FIXTURE(fuzz) {
	int fd;
};

FIXTURE_SETUP(fuzz)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0)
		TH_LOG("open /dev/tlbrace: %s (is tlbrace.ko loaded?)", strerror(errno));
}

FIXTURE_TEARDOWN(fuzz)
{
	close(self->fd);
}

static void print_hist(const char *name, unsigned long long *h, long long max_ns)
{
	char line[1024];
	unsigned long long calls = 0;
	int o = 0;

	for (int e = 0; e < NR_ERRNO; e++)
		calls += h[e];
	if (!calls)
		return;
	for (int e = 0; e < NR_ERRNO; e++)
		if (h[e])
			o += snprintf(line + o, sizeof(line) - o, " %s %llu", errname(e), h[e]);
	if (max_ns)
		printf("# fuzz: %-14s %7llu, max %6.1f ms:%s\n", name, calls, max_ns / 1e6, line);
	else
		printf("# fuzz: %-14s %7llu:%s\n", name, calls, line);
}

/* After the run: the device still answers and still reads and writes. */
static void check_device_works(struct __test_metadata *_metadata, int fd)
{
	volatile __u64 *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tlbrace_version v = { .size = sizeof(v) };
	struct tlbrace_wait wt;
	__u64 val = 0;
	int err;

	ASSERT_NE(MAP_FAILED, (void *)p);
	ASSERT_EQ(0, inj_disarm(fd, TLBRACE_ALL_ARMS));
	ASSERT_EQ(0, inj_release(fd, TLBRACE_ALL_ARMS));
	/* A job left queued is collected (its own error does not matter). */
	err = dev_wait(fd, TLBRACE_MAX_WAIT_MS, &wt);
	ASSERT_TRUE(err == 0 || err == ENOENT) TH_LOG("WAIT: %s", strerror(err));
	ASSERT_EQ(0, tlbrace_err(ioctl(fd, TLBRACE_IOC_VERSION, &v)));
	ASSERT_EQ(TLBRACE_ABI_VERSION, v.abi_version);
	ASSERT_EQ(0, tlbrace_config(fd, TLBRACE_CONTRACT_SYNC, 64, 4, TLBRACE_REPL_LRU));
	*p = 0x1234;
	ASSERT_EQ(0, dev_read(fd, p, &val, NULL));
	ASSERT_EQ(0x1234, val);
	ASSERT_EQ(0, dev_write(fd, p, 0x5678, NULL));
	ASSERT_EQ(0x5678, *p);
	munmap((void *)p, PAGE);
}

TEST_F_TIMEOUT(fuzz, ioctls_under_churn, FUZZ_TIMEOUT_S)
{
	unsigned long long total[NR_SLOTS][NR_ERRNO] = {}, errnos[NR_ERRNO] = {};
	struct sigaction sa = { .sa_handler = sigusr1 };	/* no SA_RESTART: EINTR */
	long long t0, max_ns = 0, churn_max_ns = 0;
	const char *max_what = "", *churn_max_what = "";
	unsigned long long ops[NR_OPS] = {};
	long long slot_max_ns[NR_SLOTS] = {};
	const char *slot_max_what[NR_SLOTS] = {};
	struct tlbrace_stats st;
	long calls = 0, child_calls = 0;
	bool done = false;
	char line[512];
	int o = 0;

	g.fd = self->fd;
	g.total_calls = env_num("TLBRACE_FUZZ_CALLS", DEFAULT_CALLS);
	ASSERT_TRUE(g.total_calls > 0 && g.total_calls <= INT_MAX)
		TH_LOG("TLBRACE_FUZZ_CALLS=\"%s\": want a positive integer",
		       getenv("TLBRACE_FUZZ_CALLS"));
	/* A new seed each run unless told; 48 bits, to be typed back in. */
	g.seed = env_num("TLBRACE_FUZZ_SEED", ((__u64)now_ns() ^ getpid()) & ((1ULL << 48) - 1));
	ASSERT_NE(0, g.seed) TH_LOG("TLBRACE_FUZZ_SEED=\"%s\": want a positive integer",
				    getenv("TLBRACE_FUZZ_SEED"));
	g.bound_ns = latency_bound_ms() * 1000000LL;
	atomic_store(&g.calls_left, g.total_calls);
	printf("# fuzz: seed 0x%llx (TLBRACE_FUZZ_SEED replays it), %ld calls, %d ioctl + %d "
	       "churn threads, latency bound %lld ms\n", (unsigned long long)g.seed,
	       g.total_calls, FUZZ_THREADS, CHURN_THREADS, latency_bound_ms());
	fflush(stdout);

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	g.data = guarded(DATA_PAGES, 0, 2 << 20);
	g.args = guarded(FUZZ_THREADS * ARG_PAGES, 0, PAGE);
	g.readonly = guarded(1, 0, PAGE);
	g.protnone = guarded(1, 0, PAGE);
	g.unmapped = guarded(1, 0, PAGE);
	ASSERT_TRUE(g.data && g.args && g.readonly && g.protnone && g.unmapped);
	ASSERT_EQ(0, mprotect(g.readonly, PAGE, PROT_READ));
	ASSERT_EQ(0, mprotect(g.protnone, PAGE, PROT_NONE));
	/* Nothing maps during the run but the churn threads, in their regions. */
	ASSERT_EQ(0, munmap(g.unmapped, PAGE));
	g.clear_refs = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, g.clear_refs);
	ASSERT_EQ(0, pthread_barrier_init(&g.start, NULL, FUZZ_THREADS + CHURN_THREADS + 1));

	for (int t = 0; t < FUZZ_THREADS + CHURN_THREADS; t++) {
		struct worker *w = t < FUZZ_THREADS ? &g.fuzz[t] : &g.churn[t - FUZZ_THREADS];

		w->idx = t;
		w->rng = g.seed * 0x9e3779b97f4a7c15ULL + (t + 1) * 0xbf58476d1ce4e5b9ULL;
		w->rng = w->rng ? w->rng : 1;
		w->priv = guarded(1, 0, PAGE);
		w->entries = (void *)guarded(ENTRIES_CAP * sizeof(*w->entries) / PAGE,
					     ENTRIES_SPAN, PAGE);
		/* Each ioctl thread writes only its own part of the argument region. */
		w->args = t < FUZZ_THREADS ? g.args + t * ARG_PAGES * PAGE : NULL;
		ASSERT_TRUE(w->priv && w->entries);
		ASSERT_EQ(0, pthread_create(&w->tid, NULL, t < FUZZ_THREADS ? fuzz_thread :
					    churn_thread, w));
	}
	/* The threads' stacks exist now: the list of memory to protect is complete. */
	ASSERT_EQ(0, read_protected());

	t0 = now_ns();
	pthread_barrier_wait(&g.start);
	/* The watchdog: nobody may stay in one call for HANG_FACTOR bounds. */
	while (!done) {
		usleep(20000);
		done = true;
		for (int t = 0; t < FUZZ_THREADS + CHURN_THREADS; t++) {
			struct worker *w = t < FUZZ_THREADS ? &g.fuzz[t] : &g.churn[t - FUZZ_THREADS];
			long long since = atomic_load(&w->in_call_since);

			if (since && now_ns() - since > HANG_FACTOR * g.bound_ns) {
				printf("# fuzz: seed 0x%llx thread %d stuck in %s for %lld ms\n",
				       (unsigned long long)g.seed, t, w->in_call,
				       (now_ns() - since) / 1000000);
				fflush(stdout);
				ASSERT_TRUE(0) TH_LOG("a call hangs: %s", g.failure);
			}
			if (t < FUZZ_THREADS && !atomic_load(&w->finished))
				done = false;
		}
	}
	/* Churn threads signal ioctl threads: those are joined last. */
	atomic_store(&g.churn_stop, true);
	for (int t = 0; t < CHURN_THREADS; t++)
		ASSERT_EQ(0, pthread_join(g.churn[t].tid, NULL));
	for (int t = 0; t < FUZZ_THREADS; t++)
		ASSERT_EQ(0, pthread_join(g.fuzz[t].tid, NULL));

	for (int t = 0; t < FUZZ_THREADS + CHURN_THREADS; t++) {
		struct worker *w = t < FUZZ_THREADS ? &g.fuzz[t] : &g.churn[t - FUZZ_THREADS];

		for (int s = 0; s < NR_SLOTS; s++)
			for (int e = 0; e < NR_ERRNO; e++) {
				total[s][e] += w->hist[s][e];
				errnos[e] += w->hist[s][e];
			}
		if (t < FUZZ_THREADS) {
			calls += w->calls;
			for (int s = 0; s < NR_SLOTS; s++)
				if (w->slot_max_ns[s] > slot_max_ns[s]) {
					slot_max_ns[s] = w->slot_max_ns[s];
					slot_max_what[s] = w->slot_max_what[s];
				}
			if (w->max_ns > max_ns) {
				max_ns = w->max_ns;
				max_what = w->max_what;
			}
		} else {
			child_calls += w->calls;
			for (int op = 0; op < NR_OPS; op++)
				ops[op] += w->ops[op];
			if (w->max_ns > churn_max_ns) {
				churn_max_ns = w->max_ns;
				churn_max_what = w->max_what;
			}
		}
	}
	printf("# fuzz: %ld ioctls in %.1f s (+ %ld from forked children), max latency %.1f ms, "
	       "bound %lld ms; the slowest: %s\n", calls, (now_ns() - t0) / 1e9, child_calls,
	       max_ns / 1e6, latency_bound_ms(), max_what);
	for (int op = 0; op < NR_OPS; op++)
		o += snprintf(line + o, sizeof(line) - o, " %s %llu", op_names[op], ops[op]);
	printf("# fuzz: churn:%s; max latency %.1f ms (%s)\n", line, churn_max_ns / 1e6,
	       churn_max_what);
	print_hist("errnos", errnos, 0);
	for (int s = 0; s < NR_SLOTS; s++)
		print_hist(docs[s].name, total[s], slot_max_ns[s]);
	/* The slow ones, to explain; and what the module counted (maybe reset). */
	for (int s = 0; s < NR_SLOTS; s++)
		if (slot_max_ns[s] > g.bound_ns / 8)
			printf("# fuzz: slowest %s, %.1f ms: %s\n", docs[s].name,
			       slot_max_ns[s] / 1e6, slot_max_what[s]);
	o = 0;
	for (int k = 0; k < 25; k++)
		if (g.slow[k / 5][k % 5])
			o += snprintf(line + o, sizeof(line) - o, " contract %d tracker %d: %ld;",
				      k / 5, k % 5, g.slow[k / 5][k % 5]);
	printf("# fuzz: ioctls over %d ms by the configuration they started under:%s\n",
	       SLOW_MS, o ? line : " none");
	if (!dev_stats(self->fd, &st))
		printf("# fuzz: module (since the last RESET_STATS): faults %llu, fault_retries "
		       "%llu, gather_waits %llu, wait_timeouts %llu, stale %llu\n",
		       st.faults, st.fault_retries, st.gather_waits, st.wait_timeouts,
		       st.stale_reads + st.stale_writes);
	fflush(stdout);

	ASSERT_FALSE(atomic_load(&g.failed)) TH_LOG("%s", g.failure);
	ASSERT_EQ(g.total_calls, calls);
	check_device_works(_metadata, self->fd);
}

TEST_HARNESS_MAIN
