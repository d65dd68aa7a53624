// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input for every ioctl command of /dev/tlbrace, table-driven.
 *
 * One FIXTURE_VARIANT per command: its struct abi_cmd says where the fields
 * that must be zero, the out fields and the user pointers are, and has three
 * hooks: prepare (device state and a valid argument), unchanged (after a
 * rejected call: the command had no effect) and outputs (after a successful
 * call: the outputs are right and the effect happened).  Each TEST_F throws
 * one kind of input at every command:
 *
 *   bad_size      size 0, 4, size-1, size+1, ... ~0         -> EINVAL
 *   bad_pointer   NULL, unmapped, half-mapped, kernel, ...  -> EFAULT
 *   read_only     the write-back hits a read-only page      -> EFAULT
 *   must_be_zero  each unknown flag bit, each reserved bit  -> EINVAL
 *   wrong_cmd     other direction, size or magic            -> ENOTTY
 *   outputs       out fields poisoned: every one written, in fields kept
 *   misaligned    the struct at an odd address              -> works
 *
 * After every rejected call the struct must be as the caller wrote it and
 * the command must have had no effect.  The effect is checked from what the
 * device and the CPU see (a device read's outcome and value, memory, a job
 * still there to collect, a task still parked); the outputs hook checks the
 * same evidence the other way round on success, so each no-effect check is
 * known to be able to see the effect.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "tlbrace_lib.h"
#include "kselftest_harness.h"

#define POISON_BYTE	0xa5
#define POISON32	0xa5a5a5a5U
#define V0		0x0123456789abcdefULL	/* the word the device accesses */
#define V1		0x0fedcba987654321ULL	/* what WRITE and CAS store */
#define MAX_ARG		512			/* >= the largest struct */
#define NR_ENTS		4			/* SNAPSHOT's array */
#define PARK_WORD	(2 * PAGE / 8)		/* INJECT_RELEASE parks a read here */
#define NO_EFFECT_MS	100

FIXTURE(abi)
{
	int fd;
	__u64 *buf;		/* 4 pages the device accesses */
	char *rw;		/* a 2-page memfd, mapped writable ... */
	char *ro;		/* ... and again with page 1 read-only */
	char *hole;		/* an unmapped page after a mapped one */
	struct tlbrace_snapshot_entry *ents;
	struct tlbrace_stats before;	/* RESET_STATS: counters before */
	pthread_t parker;		/* INJECT_RELEASE: a task parked */
	int parker_running;
	int parker_done;
	int parker_err;
};

typedef void prepare_fn(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg);
typedef void check_fn(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		      const void *in, const void *out);

struct span {
	unsigned short off, len;	/* len 0 ends the list */
};

struct zero_field {
	unsigned short off;		/* 0 ends the list (0 is size) */
	__u32 allowed;			/* bits that may be set */
};

struct abi_cmd {
	unsigned long cmd;
	unsigned short size;
	struct zero_field zero[2];	/* fields that must be zero */
	struct span out[3];		/* fields the command writes */
	unsigned short uptr;		/* offset of a __u64 user pointer, or 0 */
	prepare_fn *prepare;
	check_fn *unchanged;		/* in: the rejected argument */
	check_fn *outputs;		/* in: as passed, out: as returned */
};

#define FIELD(t, f)		{ offsetof(struct t, f), sizeof(((struct t *)0)->f) }
#define SPAN(t, f, end)		{ offsetof(struct t, f), offsetof(struct t, end) - offsetof(struct t, f) }
#define TO_END(t, f)		{ offsetof(struct t, f), sizeof(struct t) - offsetof(struct t, f) }
#define ZERO(t, f, ok)		{ offsetof(struct t, f), ok }

static __u32 get32(const void *p, unsigned int off)
{
	__u32 v;

	memcpy(&v, (const char *)p + off, sizeof(v));
	return v;
}

static void put32(void *p, unsigned int off, __u32 v)
{
	memcpy((char *)p + off, &v, sizeof(v));
}

static int call(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? errno : 0;
}

/* Whether byte off of the struct is part of an out field. */
static int is_out(const struct abi_cmd *c, unsigned int off)
{
	for (const struct span *s = c->out; s < c->out + 3 && s->len; s++)
		if (off >= s->off && off < s->off + s->len)
			return 1;
	return 0;
}

static int all_poison(const void *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (((const unsigned char *)p)[i] != POISON_BYTE)
			return 0;
	return 1;
}

/* One device read of buf[0]: its outcome (or 0 on error). */
static __u32 dev_outcome(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self)
{
	__u32 outcome = 0;
	__u64 v = 0;

	EXPECT_EQ(0, dev_read(self->fd, self->buf, &v, &outcome));
	EXPECT_EQ(V0, v);
	return outcome;
}

static void poison_ents(FIXTURE_DATA(abi) *self)
{
	memset(self->ents, POISON_BYTE, NR_ENTS * sizeof(*self->ents));
}

/* --- per-command hooks ------------------------------------------------ */

static void nothing(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
}

static void no_effect(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		      const void *in, const void *out)
{
	/* A command without side effects: nothing to look at. */
}

static void version_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			    const void *in, const void *out)
{
	const struct tlbrace_version *v = out;

	EXPECT_EQ(TLBRACE_ABI_VERSION, v->abi_version);
	EXPECT_EQ(sizeof(*v), v->struct_size);
}

/* CONFIG drops every translation: buf[0] is cached before it. */
static void config_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_config *c = arg;

	ASSERT_EQ(0, tlbrace_config(self->fd, TLBRACE_CONTRACT_SYNC, 64, 4, TLBRACE_REPL_LRU));
	self->buf[0] = V0;
	ASSERT_EQ(0, dev_prefetch(self->fd, self->buf, PAGE, 0));
	c->contract = TLBRACE_CONTRACT_NONE;
	c->sets = 1;
	c->ways = 1;
	c->replacement = TLBRACE_REPL_FIFO;
}

static void config_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			     const void *in, const void *out)
{
	EXPECT_EQ(TLBRACE_OUT_HIT, dev_outcome(_metadata, self)) TH_LOG("config was applied");
}

static void config_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			   const void *in, const void *out)
{
	EXPECT_EQ(TLBRACE_OUT_FAULT, dev_outcome(_metadata, self)) TH_LOG("config not applied");
}

/* READ, WRITE, CAS: buf[0] holds V0 and is in neither the dTLB nor the dPT. */
static void access_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_access *a = arg;

	self->buf[0] = V0;
	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	a->addr = (uintptr_t)self->buf;
	a->count = 1;
	a->value = V1;
	a->expected = V0;
}

static void async_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	access_prepare(_metadata, self, arg);
	((struct tlbrace_access *)arg)->flags = TLBRACE_ACCESS_ASYNC;
}

static void access_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			     const void *in, const void *out)
{
	struct tlbrace_wait w;

	EXPECT_EQ(V0, self->buf[0]) TH_LOG("the word was written");
	EXPECT_EQ(ENOENT, dev_wait(self->fd, 0, &w)) TH_LOG("a job was queued");
	EXPECT_EQ(TLBRACE_OUT_FAULT, dev_outcome(_metadata, self)) TH_LOG("a translation was filled");
	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
}

static void expect_first_access(struct __test_metadata *_metadata, const struct tlbrace_access *a)
{
	EXPECT_EQ(TLBRACE_OUT_FAULT, a->outcome);
	EXPECT_EQ(0, a->hits);
	EXPECT_EQ(1, a->faults);
	EXPECT_EQ(0, a->stale);
}

static void read_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			 const void *in, const void *out)
{
	const struct tlbrace_access *a = out;

	EXPECT_EQ(V0, a->value);
	expect_first_access(_metadata, a);
}

static void write_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			  const void *in, const void *out)
{
	EXPECT_EQ(V1, self->buf[0]);
	expect_first_access(_metadata, out);
}

static void cas_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			const void *in, const void *out)
{
	const struct tlbrace_access *i = in, *o = out;

	EXPECT_EQ(V0, o->expected);
	EXPECT_EQ(i->expected == V0 ? V1 : V0, self->buf[0]);
	expect_first_access(_metadata, o);
}

static void async_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			  const void *in, const void *out)
{
	struct tlbrace_wait w;

	ASSERT_EQ(0, dev_wait(self->fd, 5000, &w));
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(V1, self->buf[0]);
	expect_first_access(_metadata, &w.result);
}

/* WAIT: a job is queued, reading buf[0]; WAIT_FAILED: reading an unmapped page. */
static void wait_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	self->buf[0] = V0;
	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, self->buf, 1, 0));
	((struct tlbrace_wait *)arg)->timeout_ms = 5000;
}

static void wait_failed_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
				void *arg)
{
	ASSERT_EQ(0, dev_submit(self->fd, TLBRACE_IOC_READ, self->hole, 1, 0));
	((struct tlbrace_wait *)arg)->timeout_ms = 5000;
}

static void wait_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			   const void *in, const void *out)
{
	struct tlbrace_wait w;

	ASSERT_EQ(0, dev_wait(self->fd, 5000, &w)) TH_LOG("the job was collected");
	EXPECT_EQ(0, w.error);
	EXPECT_EQ(V0, w.result.value);
}

static void wait_failed_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
				  const void *in, const void *out)
{
	struct tlbrace_wait w;

	ASSERT_EQ(0, dev_wait(self->fd, 5000, &w)) TH_LOG("the job was collected");
	EXPECT_EQ(-EFAULT, w.error);
}

static void wait_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			 const void *in, const void *out)
{
	const struct tlbrace_wait *w = out;
	struct tlbrace_wait again;

	EXPECT_EQ(0, w->error);
	EXPECT_EQ(sizeof(w->result), w->result.size);
	EXPECT_EQ(TLBRACE_ACCESS_ASYNC, w->result.flags);
	EXPECT_EQ((uintptr_t)self->buf, w->result.addr);
	EXPECT_EQ(1, w->result.count);
	EXPECT_EQ(V0, w->result.value);
	expect_first_access(_metadata, &w->result);
	EXPECT_EQ(ENOENT, dev_wait(self->fd, 0, &again)) TH_LOG("the job was not collected");
}

static void wait_failed_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
				const void *in, const void *out)
{
	const struct tlbrace_wait *w = out;
	struct tlbrace_wait again;

	EXPECT_EQ(-EFAULT, w->error);
	EXPECT_EQ((uintptr_t)self->hole, w->result.addr);
	EXPECT_EQ(0, w->result.value);
	EXPECT_EQ(0, w->result.outcome);
	EXPECT_EQ(0, w->result.hits + w->result.faults + w->result.stale);
	EXPECT_EQ(ENOENT, dev_wait(self->fd, 0, &again)) TH_LOG("the job was not collected");
}

/* PREFETCH fills buf[0]'s page; FLUSH drops it. */
static void prefetch_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_range *r = arg;

	self->buf[0] = V0;
	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	r->addr = (uintptr_t)self->buf;
	r->len = PAGE;
}

static void prefetch_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			       const void *in, const void *out)
{
	EXPECT_EQ(TLBRACE_OUT_FAULT, dev_outcome(_metadata, self)) TH_LOG("the page was filled");
	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
}

static void prefetch_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			     const void *in, const void *out)
{
	EXPECT_EQ(1, ((const struct tlbrace_range *)out)->filled);
	EXPECT_EQ(TLBRACE_OUT_HIT, dev_outcome(_metadata, self));
}

static void flush_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	self->buf[0] = V0;
	ASSERT_EQ(0, dev_prefetch(self->fd, self->buf, PAGE, 0));
	((struct tlbrace_flush *)arg)->flags = TLBRACE_FLUSH_DPT;
}

static void flush_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			    const void *in, const void *out)
{
	EXPECT_EQ(TLBRACE_OUT_HIT, dev_outcome(_metadata, self)) TH_LOG("the dTLB was flushed");
}

static void flush_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			  const void *in, const void *out)
{
	/* One dTLB and one dPT entry. */
	EXPECT_EQ(2, ((const struct tlbrace_flush *)out)->flushed);
	EXPECT_EQ(TLBRACE_OUT_FAULT, dev_outcome(_metadata, self));
}

/* SNAPSHOT of 4 pages, one of them cached, into a poisoned array. */
static void snapshot_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_snapshot *s = arg;

	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	ASSERT_EQ(0, dev_prefetch(self->fd, self->buf, PAGE, 0));
	poison_ents(self);
	s->addr = (uintptr_t)self->buf;
	s->len = 4 * PAGE;
	s->entries = (uintptr_t)self->ents;
	s->max_entries = NR_ENTS;
}

static void snapshot_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			       const void *in, const void *out)
{
	EXPECT_TRUE(all_poison(self->ents, NR_ENTS * sizeof(*self->ents)))
		TH_LOG("entries were written");
}

static void snapshot_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			     const void *in, const void *out)
{
	const struct tlbrace_snapshot_entry *e = self->ents;

	ASSERT_EQ(1, ((const struct tlbrace_snapshot *)out)->nr_entries);
	EXPECT_EQ((uintptr_t)self->buf, e->addr);
	EXPECT_EQ(cpu_pfn(self->buf), e->pfn);
	EXPECT_EQ(TLBRACE_SNAP_DTLB | TLBRACE_SNAP_DPT,
		  e->flags & (TLBRACE_SNAP_DTLB | TLBRACE_SNAP_DPT));
	EXPECT_EQ(0, e->reserved);
	for (unsigned int off = 0; off < sizeof(*e); off += 4) {
		EXPECT_NE(POISON32, get32(e, off)) TH_LOG("entry byte %u not written", off);
	}
	EXPECT_TRUE(all_poison(e + 1, (NR_ENTS - 1) * sizeof(*e)))
		TH_LOG("entries past nr_entries were written");
}

static void stats_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			  const void *in, const void *out)
{
	const struct tlbrace_stats *s = out;
	static const struct tlbrace_stale_event zero;

	ASSERT_LE(s->ring_count, TLBRACE_STALE_RING);
	for (unsigned int i = s->ring_count; i < TLBRACE_STALE_RING; i++) {
		EXPECT_EQ(0, memcmp(&zero, &s->ring[i], sizeof(zero))) TH_LOG("ring[%u]", i);
	}
}

/* RESET_STATS: a device read has been counted. */
static void reset_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	__u64 v;

	ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
	ASSERT_EQ(0, dev_read(self->fd, self->buf, &v, NULL));
	ASSERT_EQ(0, dev_stats(self->fd, &self->before));
	ASSERT_NE(0, self->before.faults);
}

static void reset_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			    const void *in, const void *out)
{
	struct tlbrace_stats s;

	ASSERT_EQ(0, dev_stats(self->fd, &s));
	EXPECT_EQ(self->before.faults, s.faults) TH_LOG("the counters were reset");
	EXPECT_EQ(self->before.misses, s.misses);
}

static void reset_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			  const void *in, const void *out)
{
	struct tlbrace_stats s;

	stats_outputs(_metadata, self, in, out);
	EXPECT_EQ(self->before.faults, ((const struct tlbrace_stats *)out)->faults);
	ASSERT_EQ(0, dev_stats(self->fd, &s));
	EXPECT_EQ(0, s.faults + s.misses) TH_LOG("the counters were not reset");
}

/* INJECT_ARM: slot 0 free; INJECT_DISARM: slot 0 armed. */
static __u32 armed0(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self)
{
	struct tlbrace_inject_status s;

	EXPECT_EQ(0, inj_status(self->fd, &s));
	return s.arms[0].armed;
}

static void arm_arg(FIXTURE_DATA(abi) *self, struct tlbrace_inject *a)
{
	a->id = 0;
	a->point = TLBRACE_POINT_FAULT_FILL;
	a->action = TLBRACE_ACTION_DELAY;
	a->delay_us = 1;
	a->start = (uintptr_t)self->buf;
	a->end = (uintptr_t)self->buf + PAGE;
}

static void arm_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	ASSERT_EQ(0, inj_disarm(self->fd, TLBRACE_ALL_ARMS));
	arm_arg(self, arg);
}

static void disarm_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_inject a = { 0 };

	arm_arg(self, &a);
	ASSERT_EQ(0, inj_arm(self->fd, &a));
	((struct tlbrace_inject *)arg)->id = 0;
}

static void slot0_free(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		       const void *in, const void *out)
{
	EXPECT_EQ(0, armed0(_metadata, self)) TH_LOG("slot 0 is armed");
}

static void slot0_armed(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			const void *in, const void *out)
{
	EXPECT_EQ(1, armed0(_metadata, self)) TH_LOG("slot 0 is not armed");
}

/* INJECT_RELEASE: a thread's device read is parked at slot 0. */
static void *parker(void *arg)
{
	FIXTURE_DATA(abi) *self = arg;
	__u64 v;

	self->parker_err = dev_read(self->fd, self->buf + PARK_WORD, &v, NULL);
	__atomic_store_n(&self->parker_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void parker_join(FIXTURE_DATA(abi) *self)
{
	if (self->parker_running) {
		pthread_join(self->parker, NULL);
		self->parker_running = 0;
	}
}

static void release_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self, void *arg)
{
	struct tlbrace_inject a = {
		.id = 0, .point = TLBRACE_POINT_FAULT_FILL, .action = TLBRACE_ACTION_PARK,
		.start = (uintptr_t)(self->buf + PARK_WORD),
		.end = (uintptr_t)(self->buf + PARK_WORD) + PAGE,
		.timeout_ms = TLBRACE_PARK_MAX_MS, .release_on = TLBRACE_RELEASE_BY_IOCTL,
	};

	if (__atomic_load_n(&self->parker_done, __ATOMIC_ACQUIRE))
		parker_join(self);
	if (!self->parker_running) {
		ASSERT_EQ(0, inj_arm(self->fd, &a));
		ASSERT_EQ(0, dev_flush(self->fd, TLBRACE_FLUSH_DPT));
		self->parker_done = 0;
		ASSERT_EQ(0, pthread_create(&self->parker, NULL, parker, self));
		self->parker_running = 1;
	}
	ASSERT_EQ(0, inj_wait_parked(self->fd, 0, 1, 5000));
	((struct tlbrace_release *)arg)->id = 0;
}

/*
 * A release wakes the parked task at once, but it leaves the park (and the
 * parked count drops) only when it runs: give it NO_EFFECT_MS to show up.
 * This can only miss a wrong release, never invent one.
 */
static void release_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			      const void *in, const void *out)
{
	struct timespec ts = { 0, 1000 * 1000 };
	struct tlbrace_inject_status s;

	for (int ms = 0; ms < NO_EFFECT_MS; ms++) {
		if (__atomic_load_n(&self->parker_done, __ATOMIC_ACQUIRE))
			break;
		nanosleep(&ts, NULL);
	}
	EXPECT_EQ(0, __atomic_load_n(&self->parker_done, __ATOMIC_ACQUIRE))
		TH_LOG("the parked read went on");
	ASSERT_EQ(0, inj_status(self->fd, &s));
	EXPECT_EQ(1, s.arms[0].parked);
}

static void release_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			    const void *in, const void *out)
{
	EXPECT_EQ(1, ((const struct tlbrace_release *)out)->released);
	parker_join(self);
	EXPECT_EQ(1, self->parker_done);
	EXPECT_EQ(0, self->parker_err);
}

static void status_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			   const void *in, const void *out)
{
	const struct tlbrace_inject_status *s = out;
	static const struct tlbrace_arm_status idle;

	for (int i = 0; i < TLBRACE_NR_ARMS; i++) {
		EXPECT_EQ(0, memcmp(&idle, &s->arms[i], sizeof(idle))) TH_LOG("slot %d", i);
	}
}

/* CPU path, read only: the mm is not opted in, no counter moved. */
static void cpu_off(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		    const void *in, const void *out)
{
	struct tlbrace_cpu c = { .size = sizeof(c) };

	ASSERT_EQ(0, call(self->fd, TLBRACE_IOC_CPU, &c));
	EXPECT_EQ(TLBRACE_CPU_OFF, c.policy);
	EXPECT_EQ(0, c.gathers);
}

static void cpu_outputs(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
			const void *in, const void *out)
{
	const struct tlbrace_cpu *c = out;

	EXPECT_EQ(TLBRACE_CPU_OFF, c->policy);
	EXPECT_EQ(0, c->gathers);
	EXPECT_EQ(0, c->full);
	cpu_off(_metadata, self, in, out);
}

/* --- the table -------------------------------------------------------- */

FIXTURE_VARIANT(abi)
{
	const struct abi_cmd *c;
};

#define ABI_CMD(name, ...) \
	FIXTURE_VARIANT_ADD(abi, name) { .c = &(const struct abi_cmd){ __VA_ARGS__ } }

ABI_CMD(version, .cmd = TLBRACE_IOC_VERSION, .size = sizeof(struct tlbrace_version),
	.zero = { ZERO(tlbrace_version, reserved, 0) },
	.out = { SPAN(tlbrace_version, abi_version, reserved) },
	.prepare = nothing, .unchanged = no_effect, .outputs = version_outputs);

ABI_CMD(config, .cmd = TLBRACE_IOC_CONFIG, .size = sizeof(struct tlbrace_config),
	.zero = { ZERO(tlbrace_config, flags, 0), ZERO(tlbrace_config, reserved, 0) },
	.prepare = config_prepare, .unchanged = config_unchanged, .outputs = config_outputs);

ABI_CMD(read, .cmd = TLBRACE_IOC_READ, .size = sizeof(struct tlbrace_access),
	.zero = { ZERO(tlbrace_access, flags, TLBRACE_ACCESS_ASYNC) },
	.out = { FIELD(tlbrace_access, value), TO_END(tlbrace_access, outcome) },
	.prepare = access_prepare, .unchanged = access_unchanged, .outputs = read_outputs);

ABI_CMD(write, .cmd = TLBRACE_IOC_WRITE, .size = sizeof(struct tlbrace_access),
	.zero = { ZERO(tlbrace_access, flags, TLBRACE_ACCESS_ASYNC) },
	.out = { TO_END(tlbrace_access, outcome) },
	.prepare = access_prepare, .unchanged = access_unchanged, .outputs = write_outputs);

ABI_CMD(cas, .cmd = TLBRACE_IOC_CAS, .size = sizeof(struct tlbrace_access),
	.zero = { ZERO(tlbrace_access, flags, TLBRACE_ACCESS_ASYNC) },
	.out = { FIELD(tlbrace_access, expected), TO_END(tlbrace_access, outcome) },
	.prepare = access_prepare, .unchanged = access_unchanged, .outputs = cas_outputs);

/* An ASYNC access has no outputs: WAIT returns them. */
ABI_CMD(write_async, .cmd = TLBRACE_IOC_WRITE, .size = sizeof(struct tlbrace_access),
	.zero = { ZERO(tlbrace_access, flags, TLBRACE_ACCESS_ASYNC) },
	.prepare = async_prepare, .unchanged = access_unchanged, .outputs = async_outputs);

ABI_CMD(wait, .cmd = TLBRACE_IOC_WAIT, .size = sizeof(struct tlbrace_wait),
	.zero = { ZERO(tlbrace_wait, reserved, 0) },
	.out = { FIELD(tlbrace_wait, error), TO_END(tlbrace_wait, result) },
	.prepare = wait_prepare, .unchanged = wait_unchanged, .outputs = wait_outputs);

ABI_CMD(wait_failed_job, .cmd = TLBRACE_IOC_WAIT, .size = sizeof(struct tlbrace_wait),
	.zero = { ZERO(tlbrace_wait, reserved, 0) },
	.out = { FIELD(tlbrace_wait, error), TO_END(tlbrace_wait, result) },
	.prepare = wait_failed_prepare, .unchanged = wait_failed_unchanged,
	.outputs = wait_failed_outputs);

ABI_CMD(prefetch, .cmd = TLBRACE_IOC_PREFETCH, .size = sizeof(struct tlbrace_range),
	.zero = { ZERO(tlbrace_range, flags, TLBRACE_RANGE_WRITE) },
	.out = { FIELD(tlbrace_range, filled) },
	.prepare = prefetch_prepare, .unchanged = prefetch_unchanged, .outputs = prefetch_outputs);

ABI_CMD(flush, .cmd = TLBRACE_IOC_FLUSH, .size = sizeof(struct tlbrace_flush),
	.zero = { ZERO(tlbrace_flush, flags, TLBRACE_FLUSH_DPT) },
	.out = { FIELD(tlbrace_flush, flushed) },
	.prepare = flush_prepare, .unchanged = flush_unchanged, .outputs = flush_outputs);

ABI_CMD(snapshot, .cmd = TLBRACE_IOC_SNAPSHOT, .size = sizeof(struct tlbrace_snapshot),
	.zero = { ZERO(tlbrace_snapshot, flags, 0) },
	.out = { FIELD(tlbrace_snapshot, nr_entries) },
	.uptr = offsetof(struct tlbrace_snapshot, entries),
	.prepare = snapshot_prepare, .unchanged = snapshot_unchanged, .outputs = snapshot_outputs);

ABI_CMD(stats, .cmd = TLBRACE_IOC_STATS, .size = sizeof(struct tlbrace_stats),
	.zero = { ZERO(tlbrace_stats, flags, 0), ZERO(tlbrace_stats, reserved, 0) },
	.out = { SPAN(tlbrace_stats, cb_range_start, reserved), TO_END(tlbrace_stats, ring) },
	.prepare = nothing, .unchanged = no_effect, .outputs = stats_outputs);

ABI_CMD(reset_stats, .cmd = TLBRACE_IOC_RESET_STATS, .size = sizeof(struct tlbrace_stats),
	.zero = { ZERO(tlbrace_stats, flags, 0), ZERO(tlbrace_stats, reserved, 0) },
	.out = { SPAN(tlbrace_stats, cb_range_start, reserved), TO_END(tlbrace_stats, ring) },
	.prepare = reset_prepare, .unchanged = reset_unchanged, .outputs = reset_outputs);

ABI_CMD(inject_arm, .cmd = TLBRACE_IOC_INJECT_ARM, .size = sizeof(struct tlbrace_inject),
	.zero = { ZERO(tlbrace_inject, flags, TLBRACE_INJECT_ANY_TASK) },
	.prepare = arm_prepare, .unchanged = slot0_free, .outputs = slot0_armed);

ABI_CMD(inject_disarm, .cmd = TLBRACE_IOC_INJECT_DISARM, .size = sizeof(struct tlbrace_inject),
	.zero = { ZERO(tlbrace_inject, flags, 0) },
	.prepare = disarm_prepare, .unchanged = slot0_armed, .outputs = slot0_free);

ABI_CMD(inject_release, .cmd = TLBRACE_IOC_INJECT_RELEASE, .size = sizeof(struct tlbrace_release),
	.zero = { ZERO(tlbrace_release, reserved, 0) },
	.out = { FIELD(tlbrace_release, released) },
	.prepare = release_prepare, .unchanged = release_unchanged, .outputs = release_outputs);

ABI_CMD(inject_status, .cmd = TLBRACE_IOC_INJECT_STATUS,
	.size = sizeof(struct tlbrace_inject_status),
	.zero = { ZERO(tlbrace_inject_status, flags, 0) },
	.out = { TO_END(tlbrace_inject_status, arms) },
	.prepare = nothing, .unchanged = no_effect, .outputs = status_outputs);

/* Without TLBRACE_CPU_SET only a read; SET with policy 0 opts out (a no-op). */
ABI_CMD(cpu, .cmd = TLBRACE_IOC_CPU, .size = sizeof(struct tlbrace_cpu),
	.zero = { ZERO(tlbrace_cpu, flags, TLBRACE_CPU_SET | TLBRACE_CPU_RESET_STATS),
		  ZERO(tlbrace_cpu, reserved, 0) },
	.out = { FIELD(tlbrace_cpu, policy), TO_END(tlbrace_cpu, gathers) },
	.prepare = nothing, .unchanged = cpu_off, .outputs = cpu_outputs);

FIXTURE_SETUP(abi)
{
	int mfd = memfd_create("tlbrace_abi", MFD_CLOEXEC);
	struct tlbrace_cpu probe = { .size = sizeof(probe) };
	char *m;

	ASSERT_LE(variant->c->size, MAX_ARG);
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/tlbrace: %s", strerror(errno));
	if (variant->c->cmd == TLBRACE_IOC_CPU &&
	    call(self->fd, TLBRACE_IOC_CPU, &probe) == EOPNOTSUPP)
		SKIP(return, "the kernel has no mmu_gather policy hook (CONFIG_MMU_GATHER_POLICY)");
	self->buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	self->ents = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->ents);
	/* One memfd, two views: rw to write a struct, ro to pass it. */
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, 2 * PAGE));
	self->rw = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, self->rw);
	self->ro = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, self->ro);
	ASSERT_EQ(0, mprotect(self->ro + PAGE, PAGE, PROT_READ));
	close(mfd);
	m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, munmap(m + PAGE, PAGE));
	self->hole = m + PAGE;
}

FIXTURE_TEARDOWN(abi)
{
	if (self->parker_running) {
		inj_release(self->fd, TLBRACE_ALL_ARMS);
		parker_join(self);
	}
	close(self->fd);
}

/* --- the tests -------------------------------------------------------- */

/* A valid argument for the command, in arg (MAX_ARG bytes). */
static void prep(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		 const struct abi_cmd *c, void *arg)
{
	memset(arg, 0, MAX_ARG);
	put32(arg, 0, c->size);
	c->prepare(_metadata, self, arg);
}

/*
 * The call must fail with err, leave the struct (seen, if not NULL, is where
 * it can be read) as want, and have no effect.
 */
static void rejected(struct __test_metadata *_metadata, FIXTURE_DATA(abi) *self,
		     const struct abi_cmd *c, unsigned long cmd, void *p, const void *seen,
		     const void *want, int err, const char *what)
{
	EXPECT_EQ(err, call(self->fd, cmd, p)) TH_LOG("%s", what);
	if (seen) {
		EXPECT_EQ(0, memcmp(seen, want, c->size)) TH_LOG("%s: struct modified", what);
	}
	c->unchanged(_metadata, self, want, NULL);
}

/* The page is not mapped (msync fails with ENOMEM only then). */
static int unmapped(void *p)
{
	return msync(p, PAGE, MS_ASYNC) && errno == ENOMEM;
}

TEST_F(abi, bad_size)
{
	const struct abi_cmd *c = variant->c;
	const __u32 sizes[] = {
		0, 4, c->size - 1, c->size + 1, c->size + 8, 2 * c->size, 4096, 1U << 31, ~0U,
	};
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];
	char what[64];

	for (int i = 0; i < ARRAY_SIZE(sizes); i++) {
		prep(_metadata, self, c, arg);
		put32(arg, 0, sizes[i]);
		memcpy(want, arg, c->size);
		snprintf(what, sizeof(what), "size %u", sizes[i]);
		rejected(_metadata, self, c, c->cmd, arg, arg, want, EINVAL, what);
	}
}

TEST_F(abi, bad_pointer)
{
	const struct abi_cmd *c = variant->c;
	char *half = self->hole - 8;	/* 8 bytes mapped, the rest not */
	void *const bad[] = {
		NULL, (void *)16, self->hole, half, (void *)0xffffffff81000000UL,
		(void *)(1UL << 63), (void *)-8UL,
	};
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];
	char what[64];

	ASSERT_TRUE(unmapped(self->hole));
	for (int i = 0; i < ARRAY_SIZE(bad); i++) {
		prep(_metadata, self, c, arg);
		if (bad[i] == half)
			memcpy(half, arg, 8);
		snprintf(what, sizeof(what), "argument at %p", bad[i]);
		rejected(_metadata, self, c, c->cmd, bad[i], NULL, NULL, EFAULT, what);
		if (!c->uptr)
			continue;
		/* The same pointer inside a valid argument. */
		prep(_metadata, self, c, arg);
		memcpy((char *)arg + c->uptr, &(__u64){ (uintptr_t)bad[i] }, 8);
		memcpy(want, arg, c->size);
		snprintf(what, sizeof(what), "user pointer %p", bad[i]);
		rejected(_metadata, self, c, c->cmd, arg, arg, want, EFAULT, what);
	}
}

/* The struct is written back: a read-only one fails before any effect. */
TEST_F(abi, read_only)
{
	const struct abi_cmd *c = variant->c;
	/* Wholly read-only, and starting 8 writable bytes before. */
	const unsigned int offs[] = { PAGE, PAGE - 8 };
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];
	char what[64];

	for (int i = 0; i < ARRAY_SIZE(offs); i++) {
		prep(_metadata, self, c, arg);
		memcpy(self->rw + offs[i], arg, c->size);
		snprintf(what, sizeof(what), "struct at read-only page - %lu", PAGE - offs[i]);
		rejected(_metadata, self, c, c->cmd, self->ro + offs[i], self->rw + offs[i], arg,
			 EFAULT, what);
	}
	if (!c->uptr)
		return;
	/* A user pointer to a read-only array. */
	prep(_metadata, self, c, arg);
	memset(self->rw + PAGE, POISON_BYTE, PAGE);
	memcpy((char *)arg + c->uptr, &(__u64){ (uintptr_t)(self->ro + PAGE) }, 8);
	memcpy(want, arg, c->size);
	rejected(_metadata, self, c, c->cmd, arg, arg, want, EFAULT, "read-only user pointer");
	EXPECT_TRUE(all_poison(self->rw + PAGE, PAGE));
}

TEST_F(abi, must_be_zero)
{
	const struct abi_cmd *c = variant->c;
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];
	char what[64];
	int n = 0;

	for (const struct zero_field *z = c->zero; z < c->zero + 2 && z->off; z++) {
		for (int bit = 0; bit < 32; bit++) {
			if (z->allowed & (1U << bit))
				continue;
			prep(_metadata, self, c, arg);
			put32(arg, z->off, get32(arg, z->off) | 1U << bit);
			memcpy(want, arg, c->size);
			snprintf(what, sizeof(what), "bit %d at offset %u", bit, z->off);
			rejected(_metadata, self, c, c->cmd, arg, arg, want, EINVAL, what);
			n++;
		}
	}
	/* Every command has flags or a reserved field. */
	EXPECT_GE(n, 31);
}

/* Only the exact command is known: no other direction, size or magic. */
TEST_F(abi, wrong_cmd)
{
	const struct abi_cmd *c = variant->c;
	const unsigned long nr = _IOC_NR(c->cmd), sz = c->size, rw = _IOC_READ | _IOC_WRITE;
	const unsigned long cmds[] = {
		_IOC(_IOC_NONE, TLBRACE_IOC_MAGIC, nr, 0),
		_IOC(_IOC_NONE, TLBRACE_IOC_MAGIC, nr, sz),
		_IOC(_IOC_READ, TLBRACE_IOC_MAGIC, nr, sz),
		_IOC(_IOC_WRITE, TLBRACE_IOC_MAGIC, nr, sz),
		_IOC(rw, TLBRACE_IOC_MAGIC, nr, sz - 8),
		_IOC(rw, TLBRACE_IOC_MAGIC, nr, sz + 8),
		_IOC(rw, TLBRACE_IOC_MAGIC, nr, _IOC_SIZEMASK),
		_IOC(rw, 'U', nr, sz),
	};
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];
	char what[64];

	/* The table's command is what the header says it is. */
	ASSERT_EQ(_IOC(rw, TLBRACE_IOC_MAGIC, nr, sz), c->cmd);
	for (int i = 0; i < ARRAY_SIZE(cmds); i++) {
		prep(_metadata, self, c, arg);
		memcpy(want, arg, c->size);
		snprintf(what, sizeof(what), "cmd %#lx", cmds[i]);
		rejected(_metadata, self, c, cmds[i], arg, arg, want, ENOTTY, what);
	}
}

/*
 * Out fields are not read: poisoned, they are accepted, and on success every
 * one of them is written; every other byte comes back as it was.
 */
TEST_F(abi, outputs)
{
	const struct abi_cmd *c = variant->c;
	__u64 arg[MAX_ARG / 8], want[MAX_ARG / 8];

	prep(_metadata, self, c, arg);
	for (const struct span *s = c->out; s < c->out + 3 && s->len; s++)
		memset((char *)arg + s->off, POISON_BYTE, s->len);
	memcpy(want, arg, c->size);
	ASSERT_EQ(0, call(self->fd, c->cmd, arg));
	for (unsigned int off = 0; off < c->size; off++) {
		if (is_out(c, off))
			continue;
		EXPECT_EQ(((char *)want)[off], ((char *)arg)[off]) TH_LOG("in byte %u changed", off);
	}
	for (const struct span *s = c->out; s < c->out + 3 && s->len; s++) {
		for (unsigned int off = s->off; off < s->off + s->len; off += 4) {
			EXPECT_NE(POISON32, get32(arg, off)) TH_LOG("out byte %u not written", off);
		}
	}
	c->outputs(_metadata, self, want, arg);
}

/* The struct needs no alignment. */
TEST_F(abi, misaligned)
{
	const struct abi_cmd *c = variant->c;
	__u64 arg[MAX_ARG / 8], out[MAX_ARG / 8];
	char *p = self->rw + 1;

	prep(_metadata, self, c, arg);
	memcpy(p, arg, c->size);
	ASSERT_EQ(0, call(self->fd, c->cmd, p));
	memcpy(out, p, c->size);
	c->outputs(_metadata, self, arg, out);
}

/* No other number of the magic is a command, in any direction. */
TEST(unknown_numbers)
{
	const unsigned long dirs[] = { _IOC_READ, _IOC_WRITE, _IOC_READ | _IOC_WRITE };
	struct tlbrace_version v = { .size = sizeof(v) };
	int fd = tlbrace_open();

	ASSERT_GE(fd, 0);
	for (unsigned long nr = TLBRACE_IOC_NR_INJECT_STATUS + 1; nr <= _IOC_NRMASK; nr++) {
		for (int d = 0; d < ARRAY_SIZE(dirs); d++) {
			unsigned long cmd = _IOC(dirs[d], TLBRACE_IOC_MAGIC, nr, sizeof(v));

			EXPECT_EQ(ENOTTY, call(fd, cmd, &v)) TH_LOG("cmd %#lx", cmd);
		}
	}
	/* Never written back. */
	EXPECT_EQ(0, v.abi_version);
	close(fd);
}

/* dPT entries of the device in [p, p + pages), from a SNAPSHOT; -1 on error. */
static long dpt_entries(int fd, void *p, unsigned long pages)
{
	static struct tlbrace_snapshot_entry ents[TLBRACE_DPT_MAX_PAGES];
	struct tlbrace_snapshot s = {
		.size = sizeof(s), .addr = (uintptr_t)p, .len = pages * PAGE,
		.entries = (uintptr_t)ents, .max_entries = TLBRACE_DPT_MAX_PAGES,
	};
	long n = 0;

	if (ioctl(fd, TLBRACE_IOC_SNAPSHOT, &s))
		return -1;
	for (__u32 i = 0; i < s.nr_entries; i++)
		n += !!(ents[i].flags & TLBRACE_SNAP_DPT);
	return n;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * The dPT holds at most TLBRACE_DPT_MAX_PAGES entries: a PREFETCH past it
 * fails with ENOSPC having filled nothing, a device fault past it fails with
 * ENOSPC, a page already there is refilled, and a flush makes room.  Read
 * prefetches of untouched memory map the zero page: the cheapest way for a
 * caller to make the device hold memory, which the bound is there to stop.
 */
/* 65 534 device faults: 1.5 s on the test kernel, 24 s under KASAN. */
FIXTURE(full_dpt) {};
FIXTURE_SETUP(full_dpt) {}
FIXTURE_TEARDOWN(full_dpt) {}

TEST_F_TIMEOUT(full_dpt, dpt_bound, 180)
{
	const unsigned long max = TLBRACE_DPT_MAX_PAGES;
	int fd = tlbrace_open();
	char *buf = mmap(NULL, (max + 1) * PAGE, PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *past = buf + max * PAGE;
	struct timespec t0;
	__u64 v = ~0ULL;

	ASSERT_GE(fd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, dev_prefetch(fd, buf, 2 * PAGE, 0));
	ASSERT_EQ(2, dpt_entries(fd, buf, max + 1));

	/* 2 + max pages: refused up front, the dPT as it was. */
	EXPECT_EQ(ENOSPC, dev_prefetch(fd, buf + 2 * PAGE, max * PAGE, 0));
	EXPECT_EQ(2, dpt_entries(fd, buf, max + 1));

	/* Exactly full. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, dev_prefetch(fd, buf + 2 * PAGE, (max - 2) * PAGE, 0));
	TH_LOG("%lu faults: %.0f ms", max - 2, ms_since(&t0));
	ASSERT_EQ(max, dpt_entries(fd, buf, max + 1));
	/* Pages already there take no room. */
	EXPECT_EQ(0, dev_prefetch(fd, buf, PAGE, 0));
	EXPECT_EQ(0, dev_read(fd, buf, &v, NULL));
	/* A device fault for one more page is refused. */
	EXPECT_EQ(ENOSPC, dev_prefetch(fd, past, PAGE, 0));
	EXPECT_EQ(ENOSPC, dev_read(fd, past, &v, NULL));
	EXPECT_EQ(max, dpt_entries(fd, buf, max + 1));

	/* A flush of the dPT makes room. */
	ASSERT_EQ(0, dev_flush(fd, TLBRACE_FLUSH_DPT));
	EXPECT_EQ(0, dev_read(fd, past, &v, NULL));
	EXPECT_EQ(0, v);
	EXPECT_EQ(1, dpt_entries(fd, buf, max + 1));

	/* Full again; an invalidation of all of it is one walk under the lock. */
	ASSERT_EQ(0, dev_prefetch(fd, buf, (max - 1) * PAGE, 0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, munmap(buf, (max + 1) * PAGE));
	TH_LOG("munmap of a full dPT: %.1f ms", ms_since(&t0));
	close(fd);
}

TEST_HARNESS_MAIN
