/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small wrappers around the /dev/tlbrace ioctls, shared by the selftests.
 * Each returns 0 or a positive errno, so a test can assert the exact error.
 */
#ifndef TLBRACE_LIB_H
#define TLBRACE_LIB_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tlbrace.h>

#define PAGE 4096UL

static inline int tlbrace_err(int ret)
{
	return ret ? errno : 0;
}

static inline int tlbrace_open(void)
{
	return open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);
}

static inline int tlbrace_config_tracker(int fd, __u32 contract, __u32 tracker, __u32 sets,
					 __u32 ways, __u32 repl)
{
	struct tlbrace_config c = {
		.size = sizeof(c), .contract = contract, .tracker = tracker,
		.sets = sets, .ways = ways, .replacement = repl,
	};

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_CONFIG, &c));
}

/* The batched contract gets the naive tracker here. */
static inline int tlbrace_config(int fd, __u32 contract, __u32 sets, __u32 ways, __u32 repl)
{
	return tlbrace_config_tracker(fd, contract, TLBRACE_TRACKER_NAIVE, sets, ways, repl);
}

static inline int tlbrace_access(int fd, unsigned long cmd, struct tlbrace_access *a)
{
	a->size = sizeof(*a);
	return tlbrace_err(ioctl(fd, cmd, a));
}

/* One device read of the word at p; *outcome gets TLBRACE_OUT_*. */
static inline int dev_read(int fd, const volatile void *p, __u64 *val, __u32 *outcome)
{
	struct tlbrace_access a = { .addr = (uintptr_t)p, .count = 1 };
	int err = tlbrace_access(fd, TLBRACE_IOC_READ, &a);

	if (!err) {
		*val = a.value;
		if (outcome)
			*outcome = a.outcome;
	}
	return err;
}

static inline int dev_write(int fd, volatile void *p, __u64 val, __u32 *outcome)
{
	struct tlbrace_access a = { .addr = (uintptr_t)p, .count = 1, .value = val };
	int err = tlbrace_access(fd, TLBRACE_IOC_WRITE, &a);

	if (!err && outcome)
		*outcome = a.outcome;
	return err;
}

static inline int dev_cas(int fd, volatile void *p, __u64 expected, __u64 new, __u64 *old)
{
	struct tlbrace_access a = {
		.addr = (uintptr_t)p, .count = 1, .value = new, .expected = expected,
	};
	int err = tlbrace_access(fd, TLBRACE_IOC_CAS, &a);

	if (!err)
		*old = a.expected;
	return err;
}

static inline int dev_prefetch(int fd, void *p, size_t len, int write)
{
	struct tlbrace_range r = {
		.size = sizeof(r), .addr = (uintptr_t)p, .len = len,
		.flags = write ? TLBRACE_RANGE_WRITE : 0,
	};

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_PREFETCH, &r));
}

static inline int dev_flush(int fd, __u32 flags)
{
	struct tlbrace_flush f = { .size = sizeof(f), .flags = flags };

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_FLUSH, &f));
}

static inline int dev_stats(int fd, struct tlbrace_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	return tlbrace_err(ioctl(fd, TLBRACE_IOC_STATS, s));
}

static inline int dev_reset_stats(int fd)
{
	struct tlbrace_stats s = { .size = sizeof(s) };

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_RESET_STATS, &s));
}

static inline __u64 dev_stale(int fd)
{
	struct tlbrace_stats s;

	if (dev_stats(fd, &s))
		return ~0ULL;
	return s.stale_reads + s.stale_writes;
}

/* Queue an access on the device worker. */
static inline int dev_submit(int fd, unsigned long cmd, volatile void *p, __u32 count, __u64 value)
{
	struct tlbrace_access a = {
		.flags = TLBRACE_ACCESS_ASYNC, .addr = (uintptr_t)p, .count = count,
		.stride = count > 1 ? 8 : 0, .value = value,
	};

	return tlbrace_access(fd, cmd, &a);
}

/* Collect the worker's job; the job's own error goes to w->error. */
static inline int dev_wait(int fd, __u32 timeout_ms, struct tlbrace_wait *w)
{
	memset(w, 0, sizeof(*w));
	w->size = sizeof(*w);
	w->timeout_ms = timeout_ms;
	return tlbrace_err(ioctl(fd, TLBRACE_IOC_WAIT, w));
}

/* Snapshot of the single page at p; returns 0 with e->flags == 0 if absent. */
static inline int dev_snapshot_page(int fd, void *p, struct tlbrace_snapshot_entry *e)
{
	struct tlbrace_snapshot s = {
		.size = sizeof(s), .addr = (uintptr_t)p, .len = PAGE,
		.entries = (uintptr_t)e, .max_entries = 1,
	};
	int err;

	memset(e, 0, sizeof(*e));
	err = tlbrace_err(ioctl(fd, TLBRACE_IOC_SNAPSHOT, &s));
	if (!err && s.nr_entries == 0)
		memset(e, 0, sizeof(*e));
	return err;
}

/* The /proc/self/pagemap entry of the page at p (0 if unreadable). */
static inline __u64 pagemap_entry(const volatile void *p)
{
	__u64 ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), ((uintptr_t)p / PAGE) * 8) != sizeof(ent))
		ent = 0;
	close(fd);
	return ent;
}

/* The PFN the CPU maps at p (0 if not present). */
static inline __u64 cpu_pfn(const void *p)
{
	__u64 ent = pagemap_entry(p);

	return (ent & (1ULL << 63)) ? (ent & ((1ULL << 55) - 1)) : 0;
}

/* KPF_THP of include/uapi/linux/kernel-page-flags.h. */
#define KPF_THP 22

/* Whether the CPU maps p through a transparent huge page (-1: cannot tell). */
static inline int cpu_thp(const void *p)
{
	__u64 pfn = cpu_pfn(p), flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);
	int ok;

	if (fd < 0 || !pfn) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ok = pread(fd, &flags, sizeof(flags), pfn * 8) == sizeof(flags);
	close(fd);
	return ok ? !!(flags & (1ULL << KPF_THP)) : -1;
}

/* Whether the page at p is soft-dirty. */
static inline int soft_dirty(const volatile void *p)
{
	return !!(pagemap_entry(p) & (1ULL << 55));
}

/* Clears the soft-dirty bits of this process (write-protecting its PTEs). */
static inline int clear_soft_dirty(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, "4", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

/* TLBRACE_IOC_CPU: sets policy if set, reads the state into *c (if c). */
static inline int cpu_ioctl(int fd, bool set, __u32 policy, __u32 flags, struct tlbrace_cpu *c)
{
	struct tlbrace_cpu mine;

	if (!c)
		c = &mine;
	memset(c, 0, sizeof(*c));
	c->size = sizeof(*c);
	c->flags = flags | (set ? TLBRACE_CPU_SET : 0);
	c->policy = policy;
	return tlbrace_err(ioctl(fd, TLBRACE_IOC_CPU, c));
}

static inline int cpu_policy(int fd, __u32 policy)
{
	return cpu_ioctl(fd, true, policy, 0, NULL);
}

static inline int inj_arm(int fd, struct tlbrace_inject *a)
{
	a->size = sizeof(*a);
	return tlbrace_err(ioctl(fd, TLBRACE_IOC_INJECT_ARM, a));
}

static inline int inj_disarm(int fd, __u32 id)
{
	struct tlbrace_inject a = { .size = sizeof(a), .id = id };

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_INJECT_DISARM, &a));
}

static inline int inj_release(int fd, __u32 id)
{
	struct tlbrace_release r = { .size = sizeof(r), .id = id };

	return tlbrace_err(ioctl(fd, TLBRACE_IOC_INJECT_RELEASE, &r));
}

static inline int inj_status(int fd, struct tlbrace_inject_status *s)
{
	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	return tlbrace_err(ioctl(fd, TLBRACE_IOC_INJECT_STATUS, s));
}

/*
 * Wait until the state "n tasks parked at arm id" holds.  This polls a
 * state the module reports, it does not guess a timing window; the bound
 * only turns a broken run into a failure instead of a hang.
 */
static inline int inj_wait_parked(int fd, __u32 id, __u32 n, int bound_ms)
{
	struct tlbrace_inject_status s;

	for (int i = 0; i < bound_ms * 10; i++) {
		if (inj_status(fd, &s))
			return -1;
		if (s.arms[id].parked >= n)
			return 0;
		usleep(100);
	}
	return -1;
}

#endif /* TLBRACE_LIB_H */
