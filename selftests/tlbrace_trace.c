// SPDX-License-Identifier: GPL-2.0
/*
 * The device's trace events (system tlbrace): each is listed by tracefs with
 * its fields, perf counts them for the task that caused them, and a trace
 * instance shows what the device did in the order it did it, next to what
 * user space saw (a stale read under `none`, none under `sync`).  The
 * race's interleaving in a trace is the CLI suite's (`tlbrace trace`).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include "tlbrace_lib.h"
#include "tlbrace_tracefs.h"
#include "kselftest_harness.h"

static const char *const events[] = {
	"tlbrace_fill", "tlbrace_access", "tlbrace_stale", "tlbrace_notifier",
	"tlbrace_gather_open", "tlbrace_gather_close", "tlbrace_inject",
};

/* The whole of a tracefs file (NUL-terminated, malloc'd), or NULL. */
static char *slurp(const char *path)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (cap - len < 4096) {
			char *more = realloc(buf, cap * 2);

			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = 0;
	return buf;
}

/*
 * Stops recording in instance inst, reads its trace and removes it: every
 * test removes its instance before any assertion can end it.
 */
static char *trace_of(const char *inst)
{
	char path[300], *trace;

	tracefs_put(inst, "tracing_on", "0");
	snprintf(path, sizeof(path), "%s/trace", inst);
	trace = slurp(path);
	tracefs_instance_remove(inst);
	return trace;
}

TEST(events_are_listed_with_their_fields)
{
	static const char *const fields[] = {
		"u64 addr;", "u64 value;", "u32 early;", "u32 dropped;", "u32 cleared;",
		"u32 decision;", "u32 what;",
	};

	ASSERT_EQ(0, tracefs_ready());
	for (unsigned int i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		char path[256], *fmt;

		snprintf(path, sizeof(path), TRACEFS "/events/tlbrace/%s/format", events[i]);
		fmt = slurp(path);
		ASSERT_NE(NULL, fmt) TH_LOG("%s: %s", path, strerror(errno));
		EXPECT_NE(NULL, strstr(fmt, "field:u32 dev;")) TH_LOG("%s:\n%s", path, fmt);
		EXPECT_NE(NULL, strstr(fmt, fields[i])) TH_LOG("%s has no %s", path, fields[i]);
		free(fmt);
	}
}

/* A perf counter of tracepoint tlbrace:name for this task; an fd or -1. */
static int perf_tracepoint(const char *name)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_TRACEPOINT, .size = sizeof(attr), .disabled = 0,
	};
	char path[256], *id;

	snprintf(path, sizeof(path), TRACEFS "/events/tlbrace/%s/id", name);
	id = slurp(path);
	if (!id)
		return -1;
	attr.config = strtoull(id, NULL, 10);
	free(id);
	return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

static __u64 perf_count(int fd)
{
	__u64 n = ~0ULL;

	return read(fd, &n, sizeof(n)) == sizeof(n) ? n : ~0ULL;
}

FIXTURE(dev)
{
	int fd;
	volatile __u64 *p;
};

FIXTURE_SETUP(dev)
{
	ASSERT_EQ(0, tracefs_ready());
	self->fd = open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/tlbrace: %s", strerror(errno));
	self->p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->p);
	*self->p = 0x5a;
}

FIXTURE_TEARDOWN(dev)
{
	munmap((void *)self->p, PAGE);
	close(self->fd);
}

/*
 * perf counts the events of this task's accesses: one fill for the first
 * read (a fault), one access per read, none for another task's.
 */
TEST_F(dev, perf_counts_fills_and_accesses)
{
	int fill = perf_tracepoint("tlbrace_fill"), access = perf_tracepoint("tlbrace_access");
	__u64 v;

	ASSERT_GE(fill, 0) TH_LOG("perf_event_open tlbrace:tlbrace_fill: %s", strerror(errno));
	ASSERT_GE(access, 0) TH_LOG("perf_event_open tlbrace:tlbrace_access: %s", strerror(errno));
	ASSERT_EQ(0, dev_read(self->fd, self->p, &v, NULL));
	ASSERT_EQ(0x5a, v);
	ASSERT_EQ(0, dev_read(self->fd, self->p, &v, NULL));
	EXPECT_EQ(1, perf_count(fill));
	EXPECT_EQ(2, perf_count(access));
	close(fill);
	close(access);
}

/*
 * Under `none` (never invalidates) a read after MADV_DONTNEED goes through
 * the dTLB to the old page: user space sees the old value, and the trace
 * shows the range_start that dropped nothing, then the stale access to that
 * address.  Under `sync` the range_start drops the page's dTLB and dPT
 * entries, the read faults the zero page in, and there is no stale event.
 */
static void stale_read_traced(struct __test_metadata *_metadata, int fd,
			      volatile __u64 *p, __u32 contract)
{
	char inst[256], want[64], line[512], *trace, *start, *stale;
	bool is_none = contract == TLBRACE_CONTRACT_NONE;
	__u32 outcome = 0;
	int zap, rd;
	__u64 v;

	ASSERT_EQ(0, tlbrace_config(fd, contract, 64, 4, TLBRACE_REPL_LRU));
	ASSERT_EQ(0, dev_read(fd, p, &v, NULL));
	ASSERT_EQ(0, tracefs_instance(inst, sizeof(inst), is_none ? "none" : "sync"));
	zap = madvise((void *)p, PAGE, MADV_DONTNEED);
	rd = dev_read(fd, p, &v, &outcome);
	trace = trace_of(inst);
	ASSERT_EQ(0, zap);
	ASSERT_EQ(0, rd);
	ASSERT_NE(NULL, trace);
	/* What user space saw decides; the trace has to agree with it. */
	ASSERT_EQ(is_none ? 0x5a : 0, v);
	snprintf(want, sizeof(want), "start=0x%lx", (unsigned long)p);
	start = strstr(trace, "range_start start=");
	EXPECT_NE(NULL, start) TH_LOG("no range_start in:\n%s", trace);
	if (start) {
		/* The range_start line alone (range_end's has dropped= too). */
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(start, "\n"), start);
		EXPECT_EQ(0, strncmp(line + strlen("range_start "), want, strlen(want)));
		/* sync drops the page's dTLB and dPT entries. */
		EXPECT_NE(NULL, strstr(line, is_none ? "event=clear dropped=0" :
						      "event=clear dropped=2"))
			TH_LOG("%s", trace);
	}
	snprintf(want, sizeof(want), "tlbrace_stale: dev=");
	stale = strstr(trace, want);
	if (is_none) {
		snprintf(want, sizeof(want), "addr=0x%lx read", (unsigned long)p);
		ASSERT_NE(NULL, stale) TH_LOG("no stale event in:\n%s", trace);
		EXPECT_TRUE(start && stale > start) TH_LOG("stale access before the range_start");
		EXPECT_NE(NULL, strstr(stale, want)) TH_LOG("%s", trace);
		EXPECT_NE(NULL, strstr(stale, "the clear invalidation removed"))
			TH_LOG("%s", trace);
		EXPECT_TRUE(outcome & TLBRACE_OUT_STALE);
	} else {
		EXPECT_EQ(NULL, stale) TH_LOG("stale event under sync:\n%s", trace);
		EXPECT_NE(NULL, strstr(trace, "outcome=fault")) TH_LOG("%s", trace);
	}
	free(trace);
}

TEST_F(dev, none_traces_the_stale_read)
{
	stale_read_traced(_metadata, self->fd, self->p, TLBRACE_CONTRACT_NONE);
}

TEST_F(dev, sync_traces_no_stale_read)
{
	stale_read_traced(_metadata, self->fd, self->p, TLBRACE_CONTRACT_SYNC);
}

/*
 * A gather of the batched contract shows up from open to close with the
 * tracker's decision: alone, under `counter`, it clears the one dPT entry
 * and flushes just that dTLB entry (flush=cleared).  Nested gathers and the
 * other decisions are the CLI suite's, in a race (`tlbrace trace`).
 */
TEST_F(dev, gather_close_shows_the_decision)
{
	char inst[256], *trace, *close1;
	__u64 v;
	int zap;

	ASSERT_EQ(0, tlbrace_config_tracker(self->fd, TLBRACE_CONTRACT_BATCHED,
					    TLBRACE_TRACKER_COUNTER, 64, 4, TLBRACE_REPL_LRU));
	ASSERT_EQ(0, dev_read(self->fd, self->p, &v, NULL));
	ASSERT_EQ(0, tracefs_instance(inst, sizeof(inst), "gather"));
	zap = madvise((void *)self->p, PAGE, MADV_DONTNEED);
	trace = trace_of(inst);
	ASSERT_EQ(0, zap);
	ASSERT_NE(NULL, trace);
	ASSERT_NE(NULL, strstr(trace, "tlbrace_gather_open: ")) TH_LOG("%s", trace);
	ASSERT_NE(NULL, strstr(trace, "cleared=1")) TH_LOG("%s", trace);
	close1 = strstr(trace, "tlbrace_gather_close: ");
	ASSERT_NE(NULL, close1) TH_LOG("%s", trace);
	EXPECT_NE(NULL, strstr(close1, "flush=cleared waited=0 flushed=1")) TH_LOG("%s", trace);
	free(trace);
}

/*
 * Last (a fixture of its own: the harness runs fixtures in the order they
 * are declared, the global one first): every test above removed its trace
 * instance, whatever it found; one left behind keeps its buffer and its
 * events on.
 */
FIXTURE(after_all) {};
FIXTURE_SETUP(after_all) {}
FIXTURE_TEARDOWN(after_all) {}

TEST_F(after_all, no_instance_is_left_behind)
{
	struct dirent *e;
	DIR *d;

	ASSERT_EQ(0, tracefs_ready());
	d = opendir(TRACEFS "/instances");
	ASSERT_NE(NULL, d) TH_LOG("%s/instances: %s", TRACEFS, strerror(errno));
	while ((e = readdir(d)))
		EXPECT_NE(0, strncmp(e->d_name, "tlbrace-", strlen("tlbrace-")))
			TH_LOG("left behind: %s/instances/%s", TRACEFS, e->d_name);
	closedir(d);
}

TEST_HARNESS_MAIN
