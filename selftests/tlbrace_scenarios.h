/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The seed races as scenario functions, shared by the race matrix
 * (tlbrace_races.c) and the stochastic comparison (tlbrace_bench.c).  Each
 * returns a struct verdict (below).  See Documentation/races/ for the
 * interleavings.
 */
#ifndef TLBRACE_SCENARIOS_H
#define TLBRACE_SCENARIOS_H

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include <linux/userfaultfd.h>

#include "tlbrace_lib.h"

/*
 * Variants of the matrix: the device's contracts (and, for batched, its
 * tracker), then the CPU path's policies (TLBRACE_IOC_CPU, the device
 * under sync).  A device scenario runs under the former, a CPU scenario
 * under the latter.
 */
enum {
	SYNC, DEFERRED_END, SVA, NONE,
	B_NAIVE, B_COUNTER, B_RANGES, B_RANGES_WAIT, B_RANGES_FULL, NR_CONTRACTS,
	CPU_STOCK = NR_CONTRACTS, CPU_NAIVE, CPU_RANGES, CPU_RANGES_WAIT, NR_VARIANTS
};

static const char *const contract_names[] = {
	"sync", "deferred-end", "sva", "none", "batched/naive", "batched/counter",
	"batched/ranges", "batched/ranges-wait", "batched/ranges-full",
	"cpu/stock", "cpu/naive", "cpu/ranges", "cpu/ranges-wait",
};

/* TLBRACE_CPU_* of the CPU variants, from CPU_STOCK on. */
static const __u32 cpu_policy_uapi[] = {
	TLBRACE_CPU_STOCK, TLBRACE_CPU_NAIVE, TLBRACE_CPU_RANGES, TLBRACE_CPU_RANGES_WAIT,
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
	/* The CPU variants: the device is not part of their race. */
	{ TLBRACE_CONTRACT_SYNC, 0 },
	{ TLBRACE_CONTRACT_SYNC, 0 },
	{ TLBRACE_CONTRACT_SYNC, 0 },
	{ TLBRACE_CONTRACT_SYNC, 0 },
};

/*
 * What one iteration showed.  Each scenario states its correct outcome in
 * evidence a user can see: the value the device read, the errno of its
 * access, the page's contents, a pagemap bit.  Evidence that is neither the
 * violation nor that correct outcome, and any failed call, is an error,
 * never a pass.  An iteration whose race window did not open (a park that
 * was not reached or ended by its timeout, an injected access that did not
 * fire) is invalid: it says nothing either way.
 */
enum verdict_kind {
	V_VIOLATION,	/* the race's bad outcome happened */
	V_CORRECT,	/* the contract's correct outcome happened */
	V_INVALID,	/* the race window was not opened */
	V_ERROR,	/* a call failed, or evidence that fits no outcome */
};

struct verdict {
	enum verdict_kind kind;
	char why[160];	/* V_INVALID and V_ERROR: what happened */
};

static inline struct verdict verdict(enum verdict_kind kind)
{
	struct verdict v = { .kind = kind };

	return v;
}

static inline struct verdict __attribute__((format(printf, 2, 3)))
verdict_why(enum verdict_kind kind, const char *fmt, ...)
{
	struct verdict v = { .kind = kind };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v.why, sizeof(v.why), fmt, ap);
	va_end(ap);
	return v;
}

/* A scenario run once on the device fd. */
struct scenario {
	const char *name;
	struct verdict (*run)(int fd);
	bool unsafe[NR_VARIANTS];
	const char *what;	/* the race, and the seed thread it comes from */
};

/* A CPU-path scenario (named cpu_*): it runs under the CPU variants. */
static inline bool scenario_is_cpu(const struct scenario *s)
{
	return !strncmp(s->name, "cpu_", 4);
}

/* Whether scenario s runs under variant v. */
static inline bool variant_applies(const struct scenario *s, int v)
{
	return scenario_is_cpu(s) == (v >= NR_CONTRACTS);
}

/*
 * How long a park holds a task (the module's bound, the park ends by itself
 * after that), and how long the test polls for a state.  The test finishes
 * its part of the interleaving well inside the park, and releases it.
 */
#define PARK_TIMEOUT_MS	5000
#define WAIT_MS		5000

/*
 * The steps of a scenario, written into the kernel's trace buffer as
 * tracing_mark_write events while `tlbrace trace` records it (the fd of
 * tracefs's trace_marker), so that the trace shows what user space did
 * between the kernel's and the device's events.  -1: marks cost nothing.
 */
static int trace_marker_fd = -1;

static inline void __attribute__((format(printf, 1, 2))) mark(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (trace_marker_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(trace_marker_fd, buf, n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1) < 0)
		trace_marker_fd = -1;	/* tracing went away: stop marking */
}

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
		.count = 1, .timeout_ms = PARK_TIMEOUT_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	return inj_arm(fd, &a);
}

/*
 * Whether the park at arm 0 held the race window open until the test
 * released it: it fired once, and ended neither by its timeout nor by a
 * refusal (a callback that may not sleep).  Call once the parked task went
 * on, before disarming.  If not, *v says why (invalid, or an error).
 */
static inline bool park_held(int fd, struct verdict *v)
{
	struct tlbrace_inject_status st;
	struct tlbrace_arm_status *a = &st.arms[0];
	int err = inj_status(fd, &st);

	if (err)
		*v = verdict_why(V_ERROR, "INJECT_STATUS: %s", strerror(err));
	else if (a->refused)
		*v = verdict_why(V_INVALID, "park refused: the callback could not sleep");
	else if (a->fired != 1)
		*v = verdict_why(V_INVALID, "park fired %llu times, not once",
				 (unsigned long long)a->fired);
	else if (a->timeouts)
		*v = verdict_why(V_INVALID, "park ended by its %d ms timeout, not by the test",
				 PARK_TIMEOUT_MS);
	else
		return true;
	return false;
}

/* Whether the page at p is present and soft-dirty, from pagemap. */
static inline int pagemap_soft_dirty(const volatile void *p, bool *dirty)
{
	int fd = open("/proc/self/pagemap", O_RDONLY), err = 0;
	__u64 ent;

	if (fd < 0)
		return errno;
	if (pread(fd, &ent, sizeof(ent), ((uintptr_t)p / PAGE) * 8) != sizeof(ent))
		err = errno ? errno : EIO;
	else if (!(ent & (1ULL << 63)))
		err = ENOENT;	/* not present: no soft-dirty bit to read */
	else
		*dirty = ent & (1ULL << 55);
	close(fd);
	return err;
}

/* What read_past_park() saw. */
struct park_read {
	int err;	/* the job's errno, 0 if it read */
	__u64 value;	/* the value it read */
	bool early;	/* it finished before the park was released */
};

/*
 * The device reads p as a worker job while a task is parked at arm 0.  A
 * correct device may block on the invalidation in progress (a sync fault
 * waits for it): once the job is done, or reported blocked (fault_retries
 * grew), or after half the park's timeout, the park is released.  Returns 0
 * or the errno of a failed ioctl; the job's outcome in *r.
 */
static inline int read_past_park(int fd, volatile void *p, struct park_read *r)
{
	struct tlbrace_stats st0, st;
	struct tlbrace_wait res;
	double t0 = now_us();
	int err;

	err = dev_stats(fd, &st0);
	if (!err)
		err = dev_submit(fd, TLBRACE_IOC_READ, p, 1, 0);
	if (err) {
		inj_release(fd, 0);
		return err;
	}
	r->early = false;
	while (now_us() - t0 < PARK_TIMEOUT_MS * 500.0) {
		err = dev_wait(fd, 0, &res);
		if (err == 0) {
			r->early = true;
			break;
		}
		if (err != ETIMEDOUT)
			break;
		err = dev_stats(fd, &st);
		if (err || st.fault_retries > st0.fault_retries)
			break;
		usleep(100);
	}
	inj_release(fd, 0);
	if (!r->early) {
		if (err && err != ETIMEDOUT)
			return err;
		err = dev_wait(fd, 10000, &res);
		if (err)
			return err;
	}
	r->err = -res.error;
	r->value = res.result.value;
	return 0;
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

	mark("CPU writes %#llx: COW fault", (unsigned long long)w->value);
	*w->p = w->value;
	w->done = 1;
	mark("CPU write of %#llx returned", (unsigned long long)w->value);
	return NULL;
}

/*
 * The device caches a read-only translation of a private file page holding
 * A.  A CPU thread writes B: COW copies the page, switches the PTE, and is
 * parked at invalidate_range_end.  Another CPU thread writes C to the new
 * page.  The device (worker job) reads.
 *
 * Violation: the device reads A (it is still on the pre-COW page).
 * Correct: it reads C, or, if it finished only after the park was released
 * (a sync fault waits for the invalidation), C or B: what the CPU's page
 * held while it read.  Anything else, or a failed read, is an error.
 */
static inline struct verdict scenario_cow(int fd)
{
	const __u64 a = 0xa, b = 0xb, c = 0xc;
	int mfd = memfd_create("tlbrace-cow", MFD_CLOEXEC), err;
	struct writer w = { .p = MAP_FAILED, .value = b };
	struct park_read r = { 0 };
	struct verdict ret;
	bool parked = false;
	pthread_t t;
	__u64 v;

	if (mfd < 0 || ftruncate(mfd, PAGE) || pwrite(mfd, &a, 8, 0) != 8) {
		ret = verdict_why(V_ERROR, "memfd: %s", strerror(errno));
		goto out;
	}
	w.p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	if (w.p == MAP_FAILED) {
		ret = verdict_why(V_ERROR, "mmap: %s", strerror(errno));
		goto out;
	}
	mark("device reads the file page (fill)");
	err = dev_read(fd, w.p, &v, NULL);
	if (err || v != a) {
		ret = verdict_why(V_ERROR, "fill read: %s, value %#llx, file holds %#llx",
				  strerror(err), err ? 0ULL : (unsigned long long)v,
				  (unsigned long long)a);
		goto out;
	}
	err = park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, w.p, TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR));
	if (err) {
		ret = verdict_why(V_ERROR, "INJECT_ARM: %s", strerror(err));
		goto out;
	}
	if (pthread_create(&t, NULL, cpu_write, &w)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	parked = inj_wait_parked(fd, 0, 1, WAIT_MS) == 0;
	if (parked) {
		mark("COW parked at range_end; CPU writes %#llx to the new page",
		     (unsigned long long)c);
		*w.p = c;
		mark("device reads the page");
		err = read_past_park(fd, w.p, &r);
		mark("device read %#llx (error %d)", (unsigned long long)r.value, r.err);
	}
	inj_release(fd, 0);
	pthread_join(t, NULL);

	if (parked && err)
		ret = verdict_why(V_ERROR, "device read job: %s", strerror(err));
	else if (parked && r.err)
		ret = verdict_why(V_ERROR, "device read failed: %s", strerror(r.err));
	else if (*w.p != b)
		ret = verdict_why(V_ERROR, "CPU page holds %#llx after the writers, want %#llx",
				  (unsigned long long)*w.p, (unsigned long long)b);
	else if (!park_held(fd, &ret))
		;
	else if (!parked)
		ret = verdict_why(V_INVALID, "COW fault not seen parked within %d ms", WAIT_MS);
	else if (r.value == a)
		ret = verdict_why(V_VIOLATION, "device read %#llx, the pre-COW page, after the CPU "
				  "wrote %#llx and %#llx to the new one", (unsigned long long)a,
				  (unsigned long long)c, (unsigned long long)b);
	else if (r.value == c || (!r.early && r.value == b))
		ret = verdict_why(V_CORRECT, "device read %#llx, the new page's value",
				  (unsigned long long)r.value);
	else
		ret = verdict_why(V_ERROR,
				  "device read %#llx %s the release; CPU wrote %#llx, then %#llx",
				  (unsigned long long)r.value, r.early ? "before" : "after",
				  (unsigned long long)c, (unsigned long long)b);
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	if (w.p != MAP_FAILED)
		munmap((void *)w.p, PAGE);
	if (mfd >= 0)
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
 * fills its TLB.  The CPU unmaps the page.
 *
 * Violation: the read succeeds with the old contents (the device filled a
 * page that left the CPU page table: use after unmap).  Correct: the read
 * fails with EFAULT (the fault saw the invalidation, retried, and found no
 * mapping), the errno the uapi promises.  Anything else is an error.
 */
static inline struct verdict scenario_unmap_during_fill(int fd)
{
	struct reader r = { .fd = fd, .p = map_page() };
	bool parked, unmapped = false;
	struct verdict ret;
	pthread_t t;
	int err;

	if (!r.p)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	*r.p = 0x55;
	err = park_at(fd, TLBRACE_POINT_FAULT_FILL, r.p, 0);
	if (err) {
		ret = verdict_why(V_ERROR, "INJECT_ARM: %s", strerror(err));
		goto out;
	}
	if (pthread_create(&t, NULL, device_read, &r)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	parked = inj_wait_parked(fd, 0, 1, WAIT_MS) == 0;
	if (parked) {
		unmapped = munmap((void *)r.p, PAGE) == 0;
		err = errno;
	}
	inj_release(fd, 0);
	pthread_join(t, NULL);

	if (parked && !unmapped)
		ret = verdict_why(V_ERROR, "munmap: %s", strerror(err));
	else if (r.err && r.err != EFAULT)
		ret = verdict_why(V_ERROR, "device read failed with %s, want EFAULT",
				  strerror(r.err));
	else if (!r.err && r.value != 0x55)
		ret = verdict_why(V_ERROR, "device read %#llx, the page held 0x55",
				  (unsigned long long)r.value);
	else if (!park_held(fd, &ret))
		;
	else if (!parked)
		ret = verdict_why(V_INVALID, "device fault not seen parked within %d ms", WAIT_MS);
	else if (r.err)
		ret = verdict_why(V_CORRECT, "device read failed with EFAULT after munmap");
	else
		ret = verdict_why(V_VIOLATION, "device read 0x55 after munmap returned: it "
				  "filled a page the CPU no longer maps");
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	if (!unmapped)
		munmap((void *)r.p, PAGE);
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

			__atomic_store_n(&m->trapped, true, __ATOMIC_RELEASE);
			ioctl(m->uffd, UFFDIO_WRITEPROTECT, &wp);
		}
	}
	return NULL;
}

/*
 * userfaultfd write-protects a page the device holds a writable translation
 * of.  After UFFDIO_WRITEPROTECT returned, the device writes 3.
 *
 * Violation: the write lands (the page holds 3) and the monitor never saw a
 * write-protect fault: lost protection.  Correct: the write trapped to the
 * monitor (which then unprotected the page) and landed.  A failed write, or
 * a page without 3 after it, is an error.
 */
static inline struct verdict scenario_uffd_wp(int fd)
{
	struct monitor m = { .p = map_page() };
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int stop[2] = { -1, -1 }, err;
	struct verdict ret;
	pthread_t t;

	m.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (!m.p || m.uffd < 0 || ioctl(m.uffd, UFFDIO_API, &api) || pipe(stop)) {
		ret = verdict_why(V_ERROR, "mmap/userfaultfd/pipe: %s", strerror(errno));
		goto out;
	}
	m.stop = stop[0];
	*m.p = 1;
	reg.range.start = wp.range.start = (uintptr_t)m.p;
	reg.range.len = wp.range.len = PAGE;
	if (ioctl(m.uffd, UFFDIO_REGISTER, &reg)) {
		ret = verdict_why(V_ERROR, "UFFDIO_REGISTER: %s", strerror(errno));
		goto out;
	}
	err = dev_write(fd, m.p, 2, NULL);
	if (err || *m.p != 2) {
		ret = verdict_why(V_ERROR, "fill write: %s, CPU reads %#llx, want 2",
				  strerror(err), (unsigned long long)*m.p);
		goto out;
	}
	if (ioctl(m.uffd, UFFDIO_WRITEPROTECT, &wp)) {
		ret = verdict_why(V_ERROR, "UFFDIO_WRITEPROTECT: %s", strerror(errno));
		goto out;
	}
	if (pthread_create(&t, NULL, uffd_monitor, &m)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	err = dev_write(fd, m.p, 3, NULL);
	if (err)
		ret = verdict_why(V_ERROR, "device write failed: %s", strerror(err));
	else if (*m.p != 3)
		ret = verdict_why(V_ERROR, "device wrote 3, CPU reads %#llx",
				  (unsigned long long)*m.p);
	else if (__atomic_load_n(&m.trapped, __ATOMIC_ACQUIRE))
		ret = verdict_why(V_CORRECT, "device write trapped to the uffd monitor, then landed");
	else
		ret = verdict_why(V_VIOLATION, "device wrote 3 into the write-protected page with "
				  "no uffd-wp fault");
	if (write(stop[1], "x", 1) != 1)
		ret = verdict_why(V_ERROR, "stopping the monitor: %s", strerror(errno));
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
 * The verdict of a device write of 3 to p made after clear_refs (how says
 * when, err is its errno): the CPU must read 3, and the page must be
 * soft-dirty again; a clean page is the lost-dirty violation.
 */
static inline struct verdict dirty_verdict(volatile __u64 *p, int err, const char *how)
{
	bool dirty = false;

	if (err)
		return verdict_why(V_ERROR, "device write %s failed: %s", how, strerror(err));
	if (*p != 3)
		return verdict_why(V_ERROR, "device wrote 3 %s, CPU reads %#llx", how,
				   (unsigned long long)*p);
	err = pagemap_soft_dirty(p, &dirty);
	if (err)
		return verdict_why(V_ERROR, "pagemap: %s", strerror(err));
	return verdict_why(dirty ? V_CORRECT : V_VIOLATION,
			   "device wrote 3 %s; the page is %ssoft-dirty", how, dirty ? "" : "not ");
}

/*
 * The same with soft-dirty tracking (CRIU, live migration): after
 * clear_refs returned (the page is clean), the device writes 3.
 *
 * Violation: the page holds 3 and pagemap says it is clean: the write left
 * no trace.  Correct: the page holds 3 and is soft-dirty.  A failed write, a
 * page still soft-dirty right after clear_refs, or one without 3, is an
 * error.
 */
static inline struct verdict scenario_soft_dirty(int fd)
{
	volatile __u64 *p = map_page();
	struct verdict ret;
	bool dirty = true;
	int err;

	if (!p)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	*p = 1;
	err = dev_write(fd, p, 2, NULL);
	if (err || *p != 2) {
		ret = verdict_why(V_ERROR, "fill write: %s, CPU reads %#llx, want 2",
				  strerror(err), (unsigned long long)*p);
		goto out;
	}
	if (clear_soft_dirty()) {
		ret = verdict_why(V_ERROR, "clear_refs: %s", strerror(errno));
		goto out;
	}
	err = pagemap_soft_dirty(p, &dirty);
	if (err || dirty) {
		ret = verdict_why(V_ERROR, "after clear_refs: pagemap %s, soft-dirty %d",
				  strerror(err), dirty);
		goto out;
	}
	ret = dirty_verdict(p, dev_write(fd, p, 3, NULL), "after clear_refs");
out:
	munmap((void *)p, PAGE);
	return ret;
}

/* ---- 2. Concurrent MADV_DONTNEED on overlapping ranges (seeds 001, 003) - */

struct zap {
	const char *who;
	volatile char *p;
	size_t len;
	volatile int done;
};

static inline void *zap_range(void *arg)
{
	struct zap *z = arg;

	mark("%s: madvise(MADV_DONTNEED) %#lx-%#lx", z->who, (unsigned long)z->p,
	     (unsigned long)z->p + z->len);
	madvise((void *)z->p, z->len, MADV_DONTNEED);
	z->done = 1;
	mark("%s: madvise returned", z->who);
	return NULL;
}

/*
 * Pages 1..3 of a 4-page buffer are mirrored.  Gather A (pages 1-2) clears
 * the device's entries 1 and 2 and is parked before it closes.  Gather B
 * (pages 2-3) finds entry 2 already cleared, clears only 3, closes, and its
 * madvise returns.  The device reads page 2: a tracker that let B flush only
 * what B cleared still translates it to the old page (seed 003's
 * CPU-0/CPU-1 race).  A waiting tracker makes B wait for A instead.
 *
 * Violation: the device reads the old contents 0xd2.  Correct: it reads 0,
 * what page 2 holds after MADV_DONTNEED (the CPU reads 0 there too).  A
 * failed read, or another value, is an error.  B starts at page b_first
 * (2: the overlapping race; 1: B's range is A's).
 */
static inline struct verdict overlapping_dontneed_from(int fd, int b_first)
{
	volatile char *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zap a = { .who = "A", .len = 2 * PAGE }, b = { .who = "B", .len = 2 * PAGE };
	struct tlbrace_stats st0, st;
	struct park_read r = { 0 };
	volatile __u64 *page2;
	struct verdict ret;
	bool parked;
	pthread_t ta, tb;
	int err = 0;
	__u64 v;

	if (buf == MAP_FAILED)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	a.p = buf + PAGE;
	b.p = buf + b_first * PAGE;
	page2 = (volatile __u64 *)(buf + 2 * PAGE);
	mark("device reads pages 1-3 (fill)");
	for (int i = 1; i < 4; i++) {
		volatile __u64 *pi = (volatile __u64 *)(buf + i * PAGE);

		*pi = 0xd0 + i;
		err = dev_read(fd, pi, &v, NULL);
		if (err || v != *pi) {
			ret = verdict_why(V_ERROR,
					  "fill read of page %d: %s, value %#llx, want %#llx",
					  i, strerror(err), err ? 0ULL : (unsigned long long)v,
					  (unsigned long long)*pi);
			goto out;
		}
	}
	err = park_at(fd, TLBRACE_POINT_RANGE_END_ENTER, a.p, TLBRACE_EVENT_BIT(TLBRACE_EVENT_CLEAR));
	if (err) {
		ret = verdict_why(V_ERROR, "INJECT_ARM: %s", strerror(err));
		goto out;
	}
	if (pthread_create(&ta, NULL, zap_range, &a)) {
		ret = verdict_why(V_ERROR, "pthread_create");
		goto out;
	}
	/* Only A's own range: the filter covers [page 1, page 2). */
	parked = inj_wait_parked(fd, 0, 1, WAIT_MS) == 0;
	if (!parked)
		goto join_a;
	err = dev_stats(fd, &st0);
	if (err || pthread_create(&tb, NULL, zap_range, &b)) {
		err = err ? err : EAGAIN;
		goto join_a;
	}
	/* Until B returned, or is reported waiting for A (ranges-wait). */
	for (double t0 = now_us(); !b.done && now_us() - t0 < PARK_TIMEOUT_MS * 500.0;) {
		err = dev_stats(fd, &st);
		if (err || st.gather_waits > st0.gather_waits)
			break;
		usleep(100);
	}
	if (!b.done)
		inj_release(fd, 0);
	pthread_join(tb, NULL);
	/* B's madvise returned: the device must not see the old page 2. */
	if (!err) {
		mark("device reads page 2 %#lx", (unsigned long)page2);
		err = read_past_park(fd, page2, &r);
		mark("device read %#llx (error %d)", (unsigned long long)r.value, r.err);
	}
join_a:
	inj_release(fd, 0);
	pthread_join(ta, NULL);

	if (parked && err)
		ret = verdict_why(V_ERROR, "stats, thread or read job: %s", strerror(err));
	else if (parked && r.err)
		ret = verdict_why(V_ERROR, "device read of page 2 failed: %s", strerror(r.err));
	else if (*page2 != 0)
		ret = verdict_why(V_ERROR, "CPU reads %#llx in page 2 after MADV_DONTNEED",
				  (unsigned long long)*page2);
	else if (!park_held(fd, &ret))
		;
	else if (!parked)
		ret = verdict_why(V_INVALID, "gather A not seen parked within %d ms", WAIT_MS);
	else if (r.value == 0xd2)
		ret = verdict_why(V_VIOLATION, "device read 0xd2, the old page 2, after B's "
				  "MADV_DONTNEED returned; the CPU reads 0");
	else if (r.value == 0)
		ret = verdict_why(V_CORRECT, "device read 0 in page 2, as the CPU");
	else
		ret = verdict_why(V_ERROR, "device read %#llx in page 2, want 0 (or 0xd2: stale)",
				  (unsigned long long)r.value);
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	munmap((void *)buf, 4 * PAGE);
	return ret;
}

/* B covers pages 2-3: it overlaps A (seed 003's CPU-0/CPU-1 race). */
static inline struct verdict scenario_overlapping_dontneed(int fd)
{
	return overlapping_dontneed_from(fd, 2);
}

/*
 * B covers pages 1-2, exactly A's range: two invalidations with the same
 * bounds and event are still two gathers, and B's close must not close A's
 * (a device that finds gathers by their bounds flushes A's entries at B's
 * close and hides the race under naive).
 */
static inline struct verdict scenario_identical_dontneed(int fd)
{
	return overlapping_dontneed_from(fd, 1);
}

/* ---- 4. Dirty tracking vs asynchronous flush (seed 004) ---------------- */

/*
 * clear_refs clears soft-dirty and write-protects the PTEs between
 * invalidate_range_start and _end, and flushes the TLBs only after _end.  The
 * device writes 3 at invalidate_range_end (an injected access, through its
 * dTLB only).  If the device had no translation there (ENOENT), it writes 3
 * after clear_refs returned, through a fault.
 *
 * Violation: the page holds 3 and pagemap says it is clean: lost dirty.
 * Correct: the page holds 3 and is soft-dirty.  Invalid: the injected write
 * did not fire (no invalidate_range_end of clear_refs was seen).  A failed
 * write (other than ENOENT from the dTLB-only one), or a page without 3, is
 * an error.
 */
static inline struct verdict scenario_dirty_window(int fd)
{
	volatile __u64 *p = map_page();
	struct tlbrace_inject a = {
		.id = 0, .point = TLBRACE_POINT_RANGE_END_ENTER, .action = TLBRACE_ACTION_ACCESS,
		.events = TLBRACE_EVENT_BIT(TLBRACE_EVENT_SOFT_DIRTY), .count = 1,
		.access_op = TLBRACE_INJ_WRITE, .access_value = 3,
	};
	struct tlbrace_inject_status st;
	struct verdict ret;
	int err;

	if (!p)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	*p = 1;
	a.start = a.access_addr = (uintptr_t)p;
	a.end = a.start + PAGE;
	err = dev_write(fd, p, 2, NULL);
	if (err || *p != 2) {
		ret = verdict_why(V_ERROR, "fill write: %s, CPU reads %#llx, want 2",
				  strerror(err), (unsigned long long)*p);
		goto out;
	}
	err = inj_arm(fd, &a);
	if (!err && clear_soft_dirty())
		err = errno ? errno : EIO;
	if (!err)
		err = inj_status(fd, &st);
	if (err) {
		ret = verdict_why(V_ERROR, "arm, clear_refs, status: %s", strerror(err));
		goto out;
	}
	if (st.arms[0].fired != 1) {
		ret = verdict_why(V_INVALID, "injected write fired %llu times, not once",
				  (unsigned long long)st.arms[0].fired);
		goto out;
	}
	if (st.arms[0].access_error == -ENOENT)
		ret = dirty_verdict(p, dev_write(fd, p, 3, NULL),
				    "after clear_refs, through a fault");
	else
		ret = dirty_verdict(p, -st.arms[0].access_error,
				    "inside clear_refs, through its dTLB");
out:
	inj_disarm(fd, TLBRACE_ALL_ARMS);
	munmap((void *)p, PAGE);
	return ret;
}

/*
 * Stochastic twins of scenarios 1 and 5: the same race left to timing, as
 * hmm-tests' anon_teardown does, and judged by the staleness detector
 * (TLBRACE_OUT_STALE) since no injection point says when the window was:
 * V_VIOLATION if a device access was stale, V_CORRECT if not, V_ERROR if
 * the set-up failed.
 */
static inline struct verdict stochastic_cow(int fd)
{
	int mfd = memfd_create("tlbrace-cow", MFD_CLOEXEC);
	struct verdict ret = verdict(V_CORRECT);
	struct writer w = { .value = 0xb };
	__u64 a = 0xa, v;
	__u32 out;
	pthread_t t;

	if (mfd < 0 || ftruncate(mfd, PAGE) || pwrite(mfd, &a, 8, 0) != 8) {
		if (mfd >= 0)
			close(mfd);
		return verdict_why(V_ERROR, "memfd: %s", strerror(errno));
	}
	w.p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	if (w.p == MAP_FAILED || dev_read(fd, w.p, &v, NULL) ||
	    pthread_create(&t, NULL, cpu_write, &w)) {
		ret = verdict_why(V_ERROR, "set-up");
		goto out;
	}
	while (!w.done)
		if (dev_read(fd, w.p, &v, &out) == 0 && (out & TLBRACE_OUT_STALE))
			ret = verdict(V_VIOLATION);
	pthread_join(t, NULL);
out:
	if (w.p != MAP_FAILED)
		munmap((void *)w.p, PAGE);
	close(mfd);
	return ret;
}

static inline struct verdict stochastic_unmap_during_fill(int fd)
{
	struct reader r = { .fd = fd, .p = map_page() };
	pthread_t t;

	if (!r.p)
		return verdict_why(V_ERROR, "mmap: %s", strerror(errno));
	*r.p = 0x55;
	if (pthread_create(&t, NULL, device_read, &r)) {
		munmap((void *)r.p, PAGE);
		return verdict_why(V_ERROR, "pthread_create");
	}
	munmap((void *)r.p, PAGE);
	pthread_join(t, NULL);
	return verdict(r.err == 0 && (r.outcome & TLBRACE_OUT_STALE) ? V_VIOLATION : V_CORRECT);
}

#endif /* TLBRACE_SCENARIOS_H */
