// SPDX-License-Identifier: GPL-2.0
/*
 * ABI tests of /dev/tlbrace: the version handshake, and the exact error of
 * every kind of bad input (never a splat: the run's kernel-log check
 * fails on one).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

/*
 * The ABI has no padding (the module's byte-level view of the structs relies
 * on that): each size is the sum of its fields.
 */
_Static_assert(sizeof(struct tlbrace_version) == 16, "tlbrace_version");
_Static_assert(offsetof(struct tlbrace_version, reserved) == 12, "tlbrace_version");
_Static_assert(sizeof(struct tlbrace_config) == 32, "tlbrace_config");
_Static_assert(sizeof(struct tlbrace_access) == 56, "tlbrace_access");
_Static_assert(offsetof(struct tlbrace_access, stale) == 52, "tlbrace_access");
_Static_assert(sizeof(struct tlbrace_range) == 32, "tlbrace_range");
_Static_assert(sizeof(struct tlbrace_flush) == 16, "tlbrace_flush");
_Static_assert(sizeof(struct tlbrace_snapshot_entry) == 32, "tlbrace_snapshot_entry");
_Static_assert(sizeof(struct tlbrace_snapshot) == 40, "tlbrace_snapshot");
_Static_assert(sizeof(struct tlbrace_stale_event) == 16, "tlbrace_stale_event");
_Static_assert(sizeof(struct tlbrace_stats) == 8 + 28 * 8 + 8 + 16 * 16, "tlbrace_stats");
_Static_assert(sizeof(struct tlbrace_wait) == 16 + sizeof(struct tlbrace_access), "tlbrace_wait");
_Static_assert(sizeof(struct tlbrace_inject) == 80, "tlbrace_inject");
_Static_assert(sizeof(struct tlbrace_arm_status) == 56, "tlbrace_arm_status");
_Static_assert(sizeof(struct tlbrace_inject_status) == 8 + 8 * 56, "tlbrace_inject_status");
_Static_assert(sizeof(struct tlbrace_release) == 16, "tlbrace_release");

FIXTURE(dev)
{
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->fd, 0)
		TH_LOG("open /dev/tlbrace: %s (is tlbrace.ko loaded?)", strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST(module_loaded)
{
	struct stat st;

	ASSERT_EQ(0, stat("/sys/module/tlbrace", &st));
	ASSERT_EQ(0, stat("/dev/" TLBRACE_DEVICE_NAME, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(dev, version)
{
	struct tlbrace_version v = { .size = sizeof(v) };

	ASSERT_EQ(0, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ((__u32)TLBRACE_ABI_VERSION, v.abi_version);
	EXPECT_EQ(sizeof(v), v.struct_size);
}

TEST_F(dev, version_bad_size)
{
	struct tlbrace_version v = { .size = 0 };

	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
	v.size = sizeof(v) + 8;
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, version_reserved_must_be_zero)
{
	struct tlbrace_version v = { .size = sizeof(v), .reserved = 1 };

	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, version_bad_pointer)
{
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, (void *)16));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, NULL));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(dev, unknown_ioctl)
{
	struct tlbrace_version v = { .size = sizeof(v) };

	/* Our magic, a number the module does not define. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(TLBRACE_IOC_MAGIC, 0xff, struct tlbrace_version), &v));
	EXPECT_EQ(ENOTTY, errno);
	/* Right number, wrong size: a different command. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_VERSION, __u64), &v));
	EXPECT_EQ(ENOTTY, errno);
	/* Someone else's magic. */
	EXPECT_EQ(-1, ioctl(self->fd, _IO('x', 1)));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(dev, config_bad_values)
{
	/* Default geometry is accepted under every implemented contract. */
	EXPECT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, 4, TLBRACE_REPL_LRU));
	EXPECT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_DEFERRED_END, 1, 1, TLBRACE_REPL_FIFO));
	EXPECT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_SVA, TLBRACE_MAX_SETS,
				    TLBRACE_MAX_WAYS, TLBRACE_REPL_LRU));
	EXPECT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_NONE, 2, 3, TLBRACE_REPL_LRU));
	/* The batched contract takes a tracker; others ignore the field. */
	EXPECT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_BATCHED, 64, 4, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, 99, 64, 4, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 0, 4, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 48, 4, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 2 * TLBRACE_MAX_SETS, 4, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, 0, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, TLBRACE_MAX_WAYS + 1, 0));
	EXPECT_EQ(EINVAL, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, 4, 7));
}

TEST_F(dev, config_bad_size_and_flags)
{
	struct tlbrace_config c = {
		.size = sizeof(c) - 4, .contract = TLBRACE_CONTRACT_SYNC, .sets = 64, .ways = 4,
	};

	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, &c)));
	c.size = sizeof(c);
	c.flags = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, &c)));
	c.flags = 0;
	c.tracker = 99;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, &c)));
	c.tracker = TLBRACE_TRACKER_RANGES_WAIT;
	c.reserved = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, &c)));
	c.reserved = 0;
	c.contract = TLBRACE_CONTRACT_BATCHED;
	EXPECT_EQ(0, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, &c)));
	EXPECT_EQ(EFAULT, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CONFIG, (void *)8)));
}

TEST_F(dev, access_bad_input)
{
	__u64 *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tlbrace_access a;
	__u64 v;

	ASSERT_NE(MAP_FAILED, buf);
#define ACCESS(cmd, ...) ({ a = (struct tlbrace_access){ .addr = (uintptr_t)buf, .count = 1, \
							 __VA_ARGS__ };			\
			    tlbrace_access(self->fd, cmd, &a); })
	EXPECT_EQ(0, ACCESS(TLBRACE_IOC_READ));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .addr = (uintptr_t)buf + 4));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .count = 0));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .count = TLBRACE_MAX_ACCESS_COUNT + 1, .stride = 8));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .count = 2, .stride = 0));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .count = 2, .stride = 12));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_CAS, .count = 2, .stride = 8));
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_WRITE, .flags = 0x80));
	/* The last word would wrap around the address space. */
	EXPECT_EQ(EINVAL, ACCESS(TLBRACE_IOC_READ, .addr = ~7ULL, .count = 3, .stride = 8));
	/* Unmapped, kernel and NULL addresses: a device fault that fails. */
	EXPECT_EQ(EFAULT, dev_read(self->fd, NULL, &v, NULL));
	EXPECT_EQ(EFAULT, dev_read(self->fd, (void *)0xffffffff81000000ULL, &v, NULL));
	ASSERT_EQ(0, munmap(buf + PAGE / 8, PAGE));
	EXPECT_EQ(EFAULT, ACCESS(TLBRACE_IOC_READ, .count = 3, .stride = PAGE));
	/* Writing a read-only mapping fails; reading it works. */
	ASSERT_EQ(0, mprotect(buf, PAGE, PROT_READ));
	EXPECT_EQ(EFAULT, ACCESS(TLBRACE_IOC_WRITE, .value = 1));
	EXPECT_EQ(0, ACCESS(TLBRACE_IOC_READ));
	/* Bad argument pointer, and a size that is not the struct's. */
	EXPECT_EQ(EFAULT, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_READ, (void *)8)));
	a = (struct tlbrace_access){ .size = 8, .addr = (uintptr_t)buf, .count = 1 };
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_READ, &a)));
#undef ACCESS
	munmap(buf, 4 * PAGE);
}

TEST_F(dev, range_bad_input)
{
	char *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tlbrace_snapshot_entry e[2];
	struct tlbrace_snapshot s = {
		.size = sizeof(s), .addr = (uintptr_t)buf, .len = PAGE,
		.entries = (uintptr_t)e, .max_entries = 2,
	};

	ASSERT_NE(MAP_FAILED, buf);
	EXPECT_EQ(0, dev_prefetch(self->fd, buf, 2 * PAGE, 0));
	EXPECT_EQ(EINVAL, dev_prefetch(self->fd, buf + 8, PAGE, 0));
	EXPECT_EQ(EINVAL, dev_prefetch(self->fd, buf, PAGE + 8, 0));
	EXPECT_EQ(EINVAL, dev_prefetch(self->fd, buf, 0, 0));
	EXPECT_EQ(EINVAL, dev_prefetch(self->fd, buf, TLBRACE_MAX_RANGE_LEN + PAGE, 0));
	EXPECT_EQ(EINVAL, dev_prefetch(self->fd, (void *)(-PAGE), 2 * PAGE, 0));
	EXPECT_EQ(EFAULT, dev_prefetch(self->fd, NULL, PAGE, 0));

	EXPECT_EQ(0, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s)));
	EXPECT_EQ(1, s.nr_entries);
	s.max_entries = (1 << 16) + 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s)));
	s.max_entries = 2;
	s.entries = 8;
	EXPECT_EQ(EFAULT, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s)));
	s.entries = (uintptr_t)e;
	s.flags = 4;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_SNAPSHOT, &s)));

	EXPECT_EQ(0, dev_flush(self->fd, 0));
	EXPECT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	EXPECT_EQ(EINVAL, dev_flush(self->fd, 2));
	munmap(buf, 2 * PAGE);
}

TEST_F(dev, stats_bad_input)
{
	struct tlbrace_stats st = { .size = sizeof(st), .reserved = 1 };

	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_STATS, &st)));
	st.reserved = 0;
	st.flags = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_RESET_STATS, &st)));
	st.flags = 0;
	EXPECT_EQ(0, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_RESET_STATS, &st)));
	EXPECT_EQ(0, dev_stats(self->fd, &st));
	EXPECT_EQ(0, st.hits + st.misses + st.faults);
}

TEST_F(dev, wait_bad_input)
{
	struct tlbrace_wait w = { .size = sizeof(w), .timeout_ms = TLBRACE_MAX_WAIT_MS + 1 };

	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_WAIT, &w)));
	w.timeout_ms = 0;
	w.reserved = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_WAIT, &w)));
	EXPECT_EQ(ENOENT, dev_wait(self->fd, 0, &w));
	EXPECT_EQ(EFAULT, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_WAIT, (void *)8)));
}

TEST_F(dev, inject_bad_input)
{
	struct tlbrace_inject a = { .id = 0, .point = TLBRACE_POINT_RANGE_START_ENTER,
				    .action = TLBRACE_ACTION_DELAY, .delay_us = 10 };
	struct tlbrace_release r = { .size = sizeof(r), .id = 99 };

	EXPECT_EQ(0, inj_arm(self->fd, &a));
	a.id = TLBRACE_NR_ARMS;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.id = 1;
	a.point = TLBRACE_NR_POINTS;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.point = TLBRACE_POINT_GATHER_CLOSE;
	EXPECT_EQ(EOPNOTSUPP, inj_arm(self->fd, &a));
	a.point = TLBRACE_POINT_RANGE_END_ENTER;
	a.delay_us = 0;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.delay_us = TLBRACE_DELAY_MAX_US + 1;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	/* The secondary-TLB hook runs under the PT lock: short spins, no park. */
	a.point = TLBRACE_POINT_SECONDARY_TLBS;
	a.delay_us = TLBRACE_DELAY_ATOMIC_MAX_US + 1;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.action = TLBRACE_ACTION_PARK;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.point = TLBRACE_POINT_RANGE_END_ENTER;
	a.timeout_ms = TLBRACE_PARK_MAX_MS + 1;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.timeout_ms = 100;
	a.release_on = 1; /* itself */
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.release_on = TLBRACE_RELEASE_BY_IOCTL;
	a.start = 2 * PAGE;
	a.end = PAGE;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.start = a.end = 0;
	a.action = TLBRACE_ACTION_ACCESS;
	a.access_addr = 4;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.access_addr = 8;
	a.access_op = 7;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	a.action = 9;
	EXPECT_EQ(EINVAL, inj_arm(self->fd, &a));
	EXPECT_EQ(EINVAL, inj_disarm(self->fd, TLBRACE_NR_ARMS));
	EXPECT_EQ(0, inj_disarm(self->fd, TLBRACE_ALL_ARMS));
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_INJECT_RELEASE, &r)));
	r.id = 0;
	r.reserved = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_INJECT_RELEASE, &r)));
	EXPECT_EQ(0, inj_release(self->fd, TLBRACE_ALL_ARMS));
}

/* Every open device shows its counters under debugfs until it is closed. */
TEST(debugfs_stats)
{
	char path[128], line[64], text[4096] = "";
	int fd = tlbrace_open(), sfd;
	__u64 *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tlbrace_stats st;
	ssize_t n;
	int id;

	ASSERT_GE(fd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, tlbrace_config(fd, TLBRACE_CONTRACT_NONE, 32, 2, TLBRACE_REPL_FIFO));
	ASSERT_EQ(0, dev_prefetch(fd, buf, 2 * PAGE, 0));
	ASSERT_EQ(0, dev_stats(fd, &st));
	/* Directory names are <tgid>-<n>, n counting up from 0; find ours. */
	for (id = 0, sfd = -1; id < 100000 && sfd < 0; id++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/tlbrace/%d-%d/stats", getpid(), id);
		sfd = open(path, O_RDONLY);
	}
	ASSERT_GE(sfd, 0);
	n = read(sfd, text, sizeof(text) - 1);
	ASSERT_GT(n, 0);
	close(sfd);
	EXPECT_NE(NULL, strstr(text, "contract: none\n"));
	EXPECT_NE(NULL, strstr(text, "dtlb: 32 sets x 2 ways, fifo\n"));
	EXPECT_EQ(2, st.faults);
	snprintf(line, sizeof(line), "faults: %llu\n", (unsigned long long)st.faults);
	EXPECT_NE(NULL, strstr(text, line));
	close(fd);
	/* Closing the device removes its directory. */
	snprintf(path, sizeof(path), "/sys/kernel/debug/tlbrace/%d-%d", getpid(), id - 1);
	EXPECT_EQ(-1, access(path, F_OK));
}

/* A device is used only by the address space it mirrors. */
TEST_F(dev, other_mm_gets_eperm)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct tlbrace_stats st;
		__u64 v;
		struct tlbrace_inject a = { .point = TLBRACE_POINT_RANGE_START_ENTER,
					    .action = TLBRACE_ACTION_DELAY, .delay_us = 1 };
		int ok = dev_read(self->fd, &v, &v, NULL) == EPERM &&
			 inj_arm(self->fd, &a) == EPERM &&
			 tlbrace_config(self->fd, TLBRACE_CONTRACT_NONE, 64, 4, 0) == EPERM &&
			 dev_stats(self->fd, &st) == EPERM;

		_exit(ok ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

/* Drops cap from this task's effective set; 0 or an errno. */
static int drop_effective_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return errno;
	d[cap / 32].effective &= ~(1U << (cap % 32));
	return syscall(SYS_capset, &h, d) ? errno : 0;
}

/*
 * SNAPSHOT shows page frame numbers only to an opener with CAP_SYS_ADMIN,
 * the rule of /proc/pid/pagemap: without it both show 0 for a page that is
 * mapped, and with it both show the same frame.
 */
TEST(snapshot_pfn_needs_cap_sys_admin)
{
	volatile __u64 *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct tlbrace_snapshot_entry e;
	int fd, status;
	pid_t pid;
	__u64 v;

	ASSERT_NE(MAP_FAILED, p);
	*p = 1;
	fd = tlbrace_open();
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, dev_read(fd, p, &v, NULL));
	ASSERT_EQ(0, dev_snapshot_page(fd, (void *)p, &e));
	ASSERT_NE(0, e.pfn);
	ASSERT_EQ(cpu_pfn((void *)p), e.pfn);
	close(fd);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* Exit codes: 1 set-up, 2 pagemap showed a PFN, 3 SNAPSHOT did. */
		if (drop_effective_cap(CAP_SYS_ADMIN))
			_exit(1);
		*p = 2;	/* the child's own page */
		fd = tlbrace_open();
		if (fd < 0 || dev_read(fd, p, &v, NULL) || dev_snapshot_page(fd, (void *)p, &e) ||
		    !(e.flags & TLBRACE_SNAP_DTLB) || !(pagemap_entry(p) & (1ULL << 63)))
			_exit(1);
		if (cpu_pfn((void *)p))
			_exit(2);
		_exit(e.pfn ? 3 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status))
		TH_LOG("child without CAP_SYS_ADMIN: %s", WEXITSTATUS(status) == 3 ?
		       "SNAPSHOT showed a PFN" : WEXITSTATUS(status) == 2 ?
		       "pagemap showed a PFN" : "set-up failed");
	munmap((void *)p, PAGE);
}

/*
 * CONFIG replaces the dTLB, about 1 MiB at 1024 x 16 (vmalloc'd when kmalloc
 * cannot find the pages), and vfree() may sleep: the old dTLB is freed after
 * the MMU spinlock is dropped.  The module's dTLB destructor says
 * might_sleep(), so a free under the lock splats on the test kernel
 * (DEBUG_ATOMIC_SLEEP), which fails the run, whichever allocator served it.
 * Each round also checks that the device serves memory through the new one.
 */
TEST_F(dev, config_replaces_large_dtlb)
{
	const __u32 contracts[] = {
		TLBRACE_CONTRACT_SYNC, TLBRACE_CONTRACT_BATCHED, TLBRACE_CONTRACT_SVA,
	};
	const int pages = 64;
	__u64 *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, buf);
	for (__u64 round = 0; round < 32; round++) {
		ASSERT_EQ(0, tlbrace_config(self->fd, contracts[round % 3], TLBRACE_MAX_SETS,
					    TLBRACE_MAX_WAYS, TLBRACE_REPL_LRU));
		for (int p = 0; p < pages; p++)
			buf[p * PAGE / 8] = round << 8 | p;
		ASSERT_EQ(0, dev_prefetch(self->fd, buf, pages * PAGE, 0));
		for (int p = 0; p < pages; p++) {
			__u64 v = ~0ULL;
			__u32 out = 0;

			ASSERT_EQ(0, dev_read(self->fd, &buf[p * PAGE / 8], &v, &out));
			ASSERT_EQ(round << 8 | p, v);
			ASSERT_EQ(TLBRACE_OUT_HIT, out);
		}
	}
	munmap(buf, pages * PAGE);
}

TEST_HARNESS_MAIN
