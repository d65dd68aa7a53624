/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tlbrace: a fake device with its own TLB, to make TLB-flush races visible.
 *
 * ioctl ABI of /dev/tlbrace.  This header is the single source of truth: the
 * module's Rust view of it is generated from it with bindgen at build time.
 *
 * Rules for every command:
 *  - the argument is a fixed-size struct whose first field is __u32 size,
 *    set by the caller to sizeof() of the struct it was compiled with; the
 *    module rejects a size it does not know with -EINVAL, so structs can
 *    grow at the end in later ABI versions;
 *  - reserved fields and unknown flags must be zero (-EINVAL otherwise);
 *  - the struct is always written back, so it must be writable too; on
 *    success every out field is written;
 *  - a bad pointer gives -EFAULT, an unknown command -ENOTTY; a command
 *    rejected for its argument has had no effect.
 *
 * See Documentation/uapi.rst for the reference.
 */
#ifndef _UAPI_LINUX_TLBRACE_H
#define _UAPI_LINUX_TLBRACE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define TLBRACE_ABI_VERSION	1
#define TLBRACE_DEVICE_NAME	"tlbrace"
#define TLBRACE_IOC_MAGIC	'T'

/**
 * struct tlbrace_version - TLBRACE_IOC_VERSION argument
 * @size:        in: sizeof(struct tlbrace_version)
 * @abi_version: out: TLBRACE_ABI_VERSION of the module
 * @struct_size: out: size of this struct as the module knows it
 * @reserved:    must be zero
 */
struct tlbrace_version {
	__u32 size;
	__u32 abi_version;
	__u32 struct_size;
	__u32 reserved;
};

#define TLBRACE_IOC_NR_VERSION	0x00

#define TLBRACE_IOC_VERSION \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_VERSION, struct tlbrace_version)

/* Invalidation contracts: how the device reacts to mmu_notifier callbacks. */
#define TLBRACE_CONTRACT_SYNC		0 /* invalidate dPT + dTLB in range_start */
#define TLBRACE_CONTRACT_DEFERRED_END	1 /* invalidate only in range_end (broken) */
#define TLBRACE_CONTRACT_SVA		2 /* no dPT; flush dTLB in secondary_tlbs */
#define TLBRACE_CONTRACT_NONE		3 /* never invalidate: negative control */
#define TLBRACE_CONTRACT_BATCHED	4 /* gathers closed per the tracker */

/* Pending-flush trackers of the batched contract. */
#define TLBRACE_TRACKER_NAIVE		0 /* flush what the gather cleared */
#define TLBRACE_TRACKER_COUNTER		1 /* stock tlb_flush_pending: nested => all */
#define TLBRACE_TRACKER_RANGES		2 /* overlapping open ranges => their union */
#define TLBRACE_TRACKER_RANGES_WAIT	3 /* wait for older overlapping gathers */
#define TLBRACE_TRACKER_RANGES_FULL	4 /* overlapping open ranges => all */

/* dTLB replacement policies. */
#define TLBRACE_REPL_LRU	0
#define TLBRACE_REPL_FIFO	1

#define TLBRACE_MAX_SETS	1024
#define TLBRACE_MAX_WAYS	16

/**
 * struct tlbrace_config - TLBRACE_IOC_CONFIG argument
 * @size:        sizeof(struct tlbrace_config)
 * @contract:    TLBRACE_CONTRACT_*
 * @sets:        dTLB sets, a power of two, 1..TLBRACE_MAX_SETS (default 64)
 * @ways:        dTLB ways, 1..TLBRACE_MAX_WAYS (default 4)
 * @replacement: TLBRACE_REPL_*
 * @flags:       must be zero
 * @tracker:     TLBRACE_TRACKER_*, for the batched contract (ignored else)
 * @reserved:    zero
 *
 * Applying a configuration drops every dTLB and dPT entry; it fails with
 * -EBUSY while a gather of the batched contract is open.
 */
struct tlbrace_config {
	__u32 size;
	__u32 contract;
	__u32 sets;
	__u32 ways;
	__u32 replacement;
	__u32 flags;
	__u32 tracker;
	__u32 reserved;
};

/* tlbrace_access.outcome bits */
#define TLBRACE_OUT_HIT		(1U << 0) /* dTLB hit: no page table looked at */
#define TLBRACE_OUT_DPT		(1U << 1) /* dTLB miss served by the dPT */
#define TLBRACE_OUT_FAULT	(1U << 2) /* device fault: walked the CPU page tables */
#define TLBRACE_OUT_STALE	(1U << 3) /* used a translation invalidated since its fill */

#define TLBRACE_MAX_ACCESS_COUNT	(1U << 20)

/* tlbrace_access.flags */
#define TLBRACE_ACCESS_ASYNC	(1U << 0) /* queue on the device worker */

/**
 * struct tlbrace_access - TLBRACE_IOC_READ, _WRITE and _CAS argument
 * @size:     sizeof(struct tlbrace_access)
 * @flags:    TLBRACE_ACCESS_ASYNC: queue the access as a job of the device
 *            worker and return at once; TLBRACE_IOC_WAIT collects the result
 * @addr:     user address of the first 64-bit word, 8-byte aligned
 * @count:    number of words, 1..TLBRACE_MAX_ACCESS_COUNT (CAS: 1)
 * @stride:   bytes between words, a multiple of 8 (0 for count == 1)
 * @value:    WRITE: the value stored; CAS: the new value; READ: out, the
 *            value of the last word read
 * @expected: CAS: the expected value; out: the old value of the word
 * @outcome:  out: TLBRACE_OUT_* of the last word
 * @hits:     out: words served by a dTLB hit
 * @faults:   out: words that needed a device fault
 * @stale:    out: words accessed through a stale translation
 *
 * The device accesses memory through its dTLB; a hit uses the cached
 * translation without looking at any page table.  A device fault that finds
 * no mapping (or no write permission, for WRITE and CAS) fails with -EFAULT.
 */
struct tlbrace_access {
	__u32 size;
	__u32 flags;
	__u64 addr;
	__u32 count;
	__u32 stride;
	__u64 value;
	__u64 expected;
	__u32 outcome;
	__u32 hits;
	__u32 faults;
	__u32 stale;
};

#define TLBRACE_MAX_WAIT_MS	60000

/**
 * struct tlbrace_wait - TLBRACE_IOC_WAIT argument
 * @size:       sizeof(struct tlbrace_wait)
 * @timeout_ms: how long to wait for the job, 0..TLBRACE_MAX_WAIT_MS
 * @error:      out: 0, or the negative errno the job failed with
 * @reserved:   zero
 * @result:     out: the job's struct tlbrace_access, outputs filled in
 *
 * Fails with -ENOENT if no job was queued, -ETIMEDOUT if it did not finish
 * in time (it stays queued), -EINTR on a signal.
 */
struct tlbrace_wait {
	__u32 size;
	__u32 timeout_ms;
	__s32 error;
	__u32 reserved;
	struct tlbrace_access result;
};

#define TLBRACE_RANGE_WRITE	(1U << 0) /* PREFETCH: fill writable translations */
#define TLBRACE_MAX_RANGE_LEN	(1ULL << 30)

/*
 * Entries one device's dPT holds at most (32 MiB of address space in 4 KiB
 * pages): a range invalidation frees them under the device's spinlock.  A fill that would add one more fails with -ENOSPC: PREFETCH, and
 * the device fault of READ, WRITE and CAS, under the contracts with a dPT.
 */
#define TLBRACE_DPT_MAX_PAGES	(1U << 13)

/**
 * struct tlbrace_range - TLBRACE_IOC_PREFETCH argument
 * @size:   sizeof(struct tlbrace_range)
 * @flags:  TLBRACE_RANGE_WRITE
 * @addr:   page-aligned start
 * @len:    page-aligned length, 1 page .. TLBRACE_MAX_RANGE_LEN
 * @filled: out: pages filled into the dPT and dTLB
 *
 * Fails with -ENOSPC, having filled nothing, if the pages of the range not
 * in the dPT yet would take it past TLBRACE_DPT_MAX_PAGES.
 */
struct tlbrace_range {
	__u32 size;
	__u32 flags;
	__u64 addr;
	__u64 len;
	__u64 filled;
};

#define TLBRACE_FLUSH_DPT	(1U << 0) /* also drop every dPT entry */

/**
 * struct tlbrace_flush - TLBRACE_IOC_FLUSH argument
 * @size:    sizeof(struct tlbrace_flush)
 * @flags:   TLBRACE_FLUSH_DPT
 * @flushed: out: entries dropped
 */
struct tlbrace_flush {
	__u32 size;
	__u32 flags;
	__u64 flushed;
};

/* tlbrace_snapshot_entry.flags */
#define TLBRACE_SNAP_DTLB	(1U << 0) /* cached in the dTLB */
#define TLBRACE_SNAP_DPT	(1U << 1) /* present in the dPT */
#define TLBRACE_SNAP_WRITABLE	(1U << 2)
#define TLBRACE_SNAP_DIRTY	(1U << 3)
#define TLBRACE_SNAP_ACCESSED	(1U << 4)
#define TLBRACE_SNAP_STALE	(1U << 5) /* CPUs flushed it after it changed */

/**
 * struct tlbrace_snapshot_entry - one translation in a snapshot
 * @addr:     page-aligned user address
 * @pfn:      page frame it maps (compare with /proc/self/pagemap); as
 *            there, 0 unless the device was opened with CAP_SYS_ADMIN
 * @fill_gen: fill generation (device-wide counter at fill time)
 * @flags:    TLBRACE_SNAP_*
 * @reserved: zero
 */
struct tlbrace_snapshot_entry {
	__u64 addr;
	__u64 pfn;
	__u64 fill_gen;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct tlbrace_snapshot - TLBRACE_IOC_SNAPSHOT argument
 * @size:        sizeof(struct tlbrace_snapshot)
 * @flags:       must be zero
 * @addr:        page-aligned start of the range
 * @len:         page-aligned length
 * @entries:     user pointer to an array of struct tlbrace_snapshot_entry
 * @max_entries: its capacity
 * @nr_entries:  out: entries written (one per page with a dTLB or dPT entry,
 *               sorted by address; dTLB and dPT state merged)
 */
struct tlbrace_snapshot {
	__u32 size;
	__u32 flags;
	__u64 addr;
	__u64 len;
	__u64 entries;
	__u32 max_entries;
	__u32 nr_entries;
};

/* tlbrace_stale_event.kind */
#define TLBRACE_STALE_READ	0
#define TLBRACE_STALE_WRITE	1

/**
 * struct tlbrace_stale_event - one stale access
 * @addr:  user address accessed
 * @event: the MMU_NOTIFY_* event of the invalidation the device missed
 * @kind:  TLBRACE_STALE_READ or TLBRACE_STALE_WRITE
 */
struct tlbrace_stale_event {
	__u64 addr;
	__u32 event;
	__u32 kind;
};

#define TLBRACE_STALE_RING	16

/**
 * struct tlbrace_stats - TLBRACE_IOC_STATS and TLBRACE_IOC_RESET_STATS
 * @size:                sizeof(struct tlbrace_stats)
 * @flags:               must be zero
 * @cb_range_start:      invalidate_range_start callbacks
 * @cb_range_end:        invalidate_range_end callbacks
 * @cb_secondary_tlbs:   arch_invalidate_secondary_tlbs callbacks
 * @cb_secondary_full:   ... of them covering the whole address space
 * @cb_release:          release callbacks: 2 per device, which subscribes
 *                       to its mm twice (range callbacks, secondary TLBs)
 * @cb_young:            clear_flush_young + clear_young + test_young
 * @faults:              device faults (CPU page-table walks)
 * @fault_retries:       faults retried because an invalidation raced
 * @hits:                dTLB hits
 * @misses:              dTLB misses
 * @dpt_hits:            dTLB misses served by the dPT
 * @evictions:           dTLB entries evicted by replacement
 * @invalidated:         dTLB + dPT entries dropped by invalidations
 * @full_flushes:        whole-dTLB flushes
 * @stale_reads:         reads through a stale translation
 * @stale_writes:        writes (and CAS) through a stale translation
 * @stale_early:         accesses through a stale translation made while
 *                       an invalidation covering the page is still in
 *                       progress (the stale counters count the others)
 * @gathers:             gathers closed (batched contract)
 * @gather_flushed:      dTLB entries flushed by closing gathers
 * @gather_full:         closes that flushed the whole dTLB
 * @closes_nested:       closes with another gather open (the stock "nested")
 * @closes_overlapping:  closes with an overlapping gather open
 * @gather_waits:        closes that waited for an older overlapping gather
 * @wait_timeouts:       such waits that timed out (then flushed wider)
 * @pending_flushes:     device faults that found a flush pending and
 *                       flushed the page first (seed 000)
 * @tracker_ns:          time spent in the tracker, open + close
 * @kernel_nested:       range_end callbacks that saw mm->tlb_flush_pending > 1
 * @kernel_nested_overlapping: ... while an overlapping invalidation was open
 * @ring_count:          valid entries in @ring (the last ones, oldest first)
 * @reserved:            zero
 * @ring:                the last stale accesses (slots past @ring_count: zero)
 *
 * RESET_STATS returns the counters and zeroes them.
 */
struct tlbrace_stats {
	__u32 size;
	__u32 flags;
	__u64 cb_range_start;
	__u64 cb_range_end;
	__u64 cb_secondary_tlbs;
	__u64 cb_secondary_full;
	__u64 cb_release;
	__u64 cb_young;
	__u64 faults;
	__u64 fault_retries;
	__u64 hits;
	__u64 misses;
	__u64 dpt_hits;
	__u64 evictions;
	__u64 invalidated;
	__u64 full_flushes;
	__u64 stale_reads;
	__u64 stale_writes;
	__u64 stale_early;
	__u64 gathers;
	__u64 gather_flushed;
	__u64 gather_full;
	__u64 closes_nested;
	__u64 closes_overlapping;
	__u64 gather_waits;
	__u64 wait_timeouts;
	__u64 pending_flushes;
	__u64 tracker_ns;
	__u64 kernel_nested;
	__u64 kernel_nested_overlapping;
	__u32 ring_count;
	__u32 reserved;
	struct tlbrace_stale_event ring[TLBRACE_STALE_RING];
};

/* Injection points: named places in the callbacks and device paths. */
#define TLBRACE_POINT_RANGE_START_ENTER	0 /* invalidate_range_start, before the contract acts */
#define TLBRACE_POINT_RANGE_START_EXIT	1 /* invalidate_range_start, after it */
#define TLBRACE_POINT_RANGE_END_ENTER	2 /* invalidate_range_end, before the contract acts */
#define TLBRACE_POINT_RANGE_END_EXIT	3 /* invalidate_range_end, after it */
#define TLBRACE_POINT_SECONDARY_TLBS	4 /* arch_invalidate_secondary_tlbs (PT lock held) */
#define TLBRACE_POINT_FAULT_FILL	5 /* device fault: after the CPU walk, before the fill */
#define TLBRACE_POINT_ACCESS_HIT	6 /* device access about to use a dTLB hit */
#define TLBRACE_POINT_GATHER_CLOSE	7 /* batched: a gather closes, before its flush */
#define TLBRACE_POINT_CPU_FINISH	8 /* CPU path: an mmu_gather of the opted-in mm
					   * enters tlb_finish_mmu(), before its flush */
#define TLBRACE_NR_POINTS		9

/* Actions of an armed point. */
#define TLBRACE_ACTION_DELAY		0 /* wait delay_us (spins where sleeping is not allowed) */
#define TLBRACE_ACTION_PARK		1 /* block until released or timeout_ms passed */
#define TLBRACE_ACTION_ACCESS		2 /* run a device access right there, hit-only */

#define TLBRACE_NR_ARMS			8
#define TLBRACE_RELEASE_BY_IOCTL	0xffffffffU
#define TLBRACE_ALL_ARMS		0xffffffffU
#define TLBRACE_PARK_DEFAULT_MS		1000
/*
 * The most one task may be held by parks and delays before it has run as
 * long unheld: a refilling budget per task, shared by every device.
 */
#define TLBRACE_PARK_BUDGET_MS		5000
#define TLBRACE_PARK_MAX_MS		TLBRACE_PARK_BUDGET_MS
#define TLBRACE_DELAY_MAX_US		100000
#define TLBRACE_DELAY_ATOMIC_MAX_US	1000

/* tlbrace_inject.access_op */
#define TLBRACE_INJ_READ		0
#define TLBRACE_INJ_WRITE		1

/*
 * Invalidation events, for the event filter of struct tlbrace_inject: the
 * values of the kernel's enum mmu_notifier_event (include/linux/mmu_notifier.h),
 * which the module checks when it is built.  @events takes
 * TLBRACE_EVENT_BIT(TLBRACE_EVENT_*) per accepted event.
 */
#define TLBRACE_EVENT_UNMAP		0 /* munmap, exit: the range goes away */
#define TLBRACE_EVENT_CLEAR		1 /* zap, COW, madvise(MADV_DONTNEED) */
#define TLBRACE_EVENT_PROTECTION_VMA	2 /* mprotect */
#define TLBRACE_EVENT_PROTECTION_PAGE	3 /* per-page protection, e.g. uffd-wp */
#define TLBRACE_EVENT_SOFT_DIRTY	4 /* clear_refs soft-dirty */
#define TLBRACE_EVENT_RELEASE		5 /* the mm is torn down */
#define TLBRACE_EVENT_MIGRATE		6 /* page migration */
#define TLBRACE_EVENT_EXCLUSIVE		7 /* make_device_exclusive() */
#define TLBRACE_EVENT_BIT(e)		(1U << (e))

/*
 * Field values of the trace events (TRACE_SYSTEM tlbrace, see
 * Documentation/tool.rst): their text form is what the trace shows, the
 * numbers are what a binary consumer (perf, trace-cmd's raw format) reads.
 */
/* tlbrace_notifier: cb, which mmu_notifier callback */
#define TLBRACE_CB_RANGE_START		0
#define TLBRACE_CB_RANGE_END		1
#define TLBRACE_CB_SECONDARY_TLBS	2
#define TLBRACE_CB_RELEASE		3
/* tlbrace_notifier: event when the callback has none (secondary_tlbs) */
#define TLBRACE_EVENT_NONE		0xff
/* tlbrace_gather_close: decision, what the close flushed from the dTLB */
#define TLBRACE_CLOSE_CLEARED		0 /* what the gather cleared */
#define TLBRACE_CLOSE_RANGES		1 /* ... and the tracker's ranges */
#define TLBRACE_CLOSE_ALL		2 /* everything: the tracker's choice */
#define TLBRACE_CLOSE_FORCED_ALL	3 /* everything: its wait timed out or could not be */
/* tlbrace_inject: what, what the point did to the passing task */
#define TLBRACE_TRACE_INJ_FIRE		0 /* an arm matched and fired */
#define TLBRACE_TRACE_INJ_PARKED	1 /* the task parks */
#define TLBRACE_TRACE_INJ_RELEASED	2 /* ... and was released */
#define TLBRACE_TRACE_INJ_TIMEOUT	3 /* ... and its park timed out */
#define TLBRACE_TRACE_INJ_SIGNAL	4 /* ... and a signal ended it */
#define TLBRACE_TRACE_INJ_REFUSED	5 /* a park or delay was refused */
/* tlbrace_fill: flags */
#define TLBRACE_FILL_WRITABLE		(1U << 0)
#define TLBRACE_FILL_FROM_DPT		(1U << 1) /* a dTLB miss the dPT served */

/* tlbrace_inject.flags */
#define TLBRACE_INJECT_ANY_TASK		(1U << 0) /* callback points: any user task */

/**
 * struct tlbrace_inject - TLBRACE_IOC_INJECT_ARM / _DISARM argument
 * @size:         sizeof(struct tlbrace_inject)
 * @id:           arm slot, 0..TLBRACE_NR_ARMS-1 (DISARM: or TLBRACE_ALL_ARMS)
 * @point:        TLBRACE_POINT_*
 * @action:       TLBRACE_ACTION_*
 * @start:        address filter: fire only if the point's range overlaps
 * @end:          [start, end); 0 and 0 match everything
 * @events:       event filter: TLBRACE_EVENT_BIT(TLBRACE_EVENT_*) per
 *                accepted event; 0 accepts all (device-path points have none)
 * @nth:          fire from the nth matching pass on (0 and 1: the first)
 * @count:        fire at most this many times (0: no limit)
 * @delay_us:     DELAY: 1..TLBRACE_DELAY_MAX_US (TLBRACE_DELAY_ATOMIC_MAX_US
 *                at SECONDARY_TLBS, where it spins; in a range callback that
 *                may not sleep it spins too, cut to TLBRACE_DELAY_ATOMIC_MAX_US)
 * @timeout_ms:   PARK: bound of the park, 0 for TLBRACE_PARK_DEFAULT_MS, at
 *                most TLBRACE_PARK_MAX_MS
 * @release_on:   PARK: TLBRACE_RELEASE_BY_IOCTL, or the id of another arm
 *                whose firing releases this park (a rendezvous)
 * @access_op:    ACCESS: TLBRACE_INJ_READ or TLBRACE_INJ_WRITE
 * @flags:        TLBRACE_INJECT_ANY_TASK (ARM only; DISARM: zero)
 * @access_addr:  ACCESS: 8-byte aligned user address
 * @access_value: ACCESS: the value written
 *
 * At the callback points (all but FAULT_FILL and ACCESS_HIT) an arm fires
 * only in a task of the mm the device is attached to, or with
 * TLBRACE_INJECT_ANY_TASK in any user task; never in a kernel thread.
 * PARK is refused (-EINVAL) at SECONDARY_TLBS, which runs under the page-table
 * lock, and skipped (counted in @refused of the status) in a callback that
 * may not sleep.  Parks and delays are cut to the task's TLBRACE_PARK_BUDGET_MS
 * budget.  GATHER_CLOSE fires only under the batched contract (-EOPNOTSUPP
 * under another one) and has no event (@events must be zero).  Closing the
 * file disarms everything and releases parks.
 */
struct tlbrace_inject {
	__u32 size;
	__u32 id;
	__u32 point;
	__u32 action;
	__u64 start;
	__u64 end;
	__u32 events;
	__u32 nth;
	__u32 count;
	__u32 delay_us;
	__u32 timeout_ms;
	__u32 release_on;
	__u32 access_op;
	__u32 flags;
	__u64 access_addr;
	__u64 access_value;
};

/**
 * struct tlbrace_arm_status - state of one arm slot
 * @armed:         the slot is armed
 * @parked:        tasks parked at it now
 * @matched:       passes that matched the filters
 * @fired:         times the action ran
 * @timeouts:      parks that ended by timeout
 * @refused:       parks skipped because the context could not sleep, and
 *                 parks and delays skipped because the task's budget was spent
 * @access_error:  ACCESS: 0, -ENOENT when there was no dTLB hit, or an errno
 * @access_outcome: ACCESS: TLBRACE_OUT_* of the last access
 * @access_value:  ACCESS: the value read (or written)
 */
struct tlbrace_arm_status {
	__u32 armed;
	__u32 parked;
	__u64 matched;
	__u64 fired;
	__u64 timeouts;
	__u64 refused;
	__s32 access_error;
	__u32 access_outcome;
	__u64 access_value;
};

/**
 * struct tlbrace_inject_status - TLBRACE_IOC_INJECT_STATUS argument
 * @size:  sizeof(struct tlbrace_inject_status)
 * @flags: must be zero
 * @arms:  out: one entry per slot
 */
struct tlbrace_inject_status {
	__u32 size;
	__u32 flags;
	struct tlbrace_arm_status arms[TLBRACE_NR_ARMS];
};

/**
 * struct tlbrace_release - TLBRACE_IOC_INJECT_RELEASE argument
 * @size:     sizeof(struct tlbrace_release)
 * @id:       the arm whose parked tasks go on, or TLBRACE_ALL_ARMS
 * @released: out: tasks released
 * @reserved: zero
 */
struct tlbrace_release {
	__u32 size;
	__u32 id;
	__u32 released;
	__u32 reserved;
};

/*
 * The CPU path: who decides tlb_finish_mmu()'s flush when other mmu_gathers
 * of the same mm are pending, for the opener's mm (kernels with
 * CONFIG_MMU_GATHER_POLICY, the series in kernel/patches).  Every other mm
 * keeps the kernel's own rule.
 */
#define TLBRACE_CPU_OFF			0 /* not opted in: the kernel alone decides */
#define TLBRACE_CPU_STOCK		1 /* the module applies the kernel's rule */
#define TLBRACE_CPU_NAIVE		2 /* never widen (the flush-miss bug class) */
#define TLBRACE_CPU_RANGES		3 /* widen to overlapping requested ranges */
#define TLBRACE_CPU_RANGES_WAIT		4 /* wait for older overlapping gathers */

/* tlbrace_cpu.flags */
#define TLBRACE_CPU_SET			(1U << 0) /* set @policy (else only read) */
#define TLBRACE_CPU_RESET_STATS		(1U << 1) /* zero the counters after reading */

/**
 * struct tlbrace_cpu - TLBRACE_IOC_CPU argument
 * @size:          sizeof(struct tlbrace_cpu)
 * @flags:         TLBRACE_CPU_SET, TLBRACE_CPU_RESET_STATS
 * @policy:        in with TLBRACE_CPU_SET, out: TLBRACE_CPU_*
 * @reserved:      zero
 * @gathers:       out: gathers of the mm that closed under the policy
 * @nested:        closes with another gather of the mm pending (the
 *                 kernel's mm_tlb_flush_nested())
 * @full:          closes that flushed the whole mm (the kernel's rule
 *                 when nested, or the policy)
 * @ranges:        closes widened to overlapping ranges
 * @waits:         closes that waited for older gathers (ranges-wait)
 * @wait_timeouts: waits that ran out and flushed the whole mm instead
 * @untracked:     gathers opened while the table was full, decided by
 *                 the kernel's rule (so is every gather while one is open)
 *
 * The counters explain a result; a test's verdict comes from user memory.
 * Errors: EOPNOTSUPP without CONFIG_MMU_GATHER_POLICY, EBUSY when another
 * provider holds the kernel's hook, ENOSPC when TLBRACE_CPU_MAX_MMS mms
 * are opted in already, EINVAL for a bad policy or flag.
 */
struct tlbrace_cpu {
	__u32 size;
	__u32 flags;
	__u32 policy;
	__u32 reserved;
	__u64 gathers;
	__u64 nested;
	__u64 full;
	__u64 ranges;
	__u64 waits;
	__u64 wait_timeouts;
	__u64 untracked;
};

/* mms opted in at once, over every device. */
#define TLBRACE_CPU_MAX_MMS		16

#define TLBRACE_IOC_NR_CONFIG		0x01
#define TLBRACE_IOC_NR_READ		0x02
#define TLBRACE_IOC_NR_WRITE		0x03
#define TLBRACE_IOC_NR_CAS		0x04
#define TLBRACE_IOC_NR_PREFETCH		0x05
#define TLBRACE_IOC_NR_FLUSH		0x06
#define TLBRACE_IOC_NR_SNAPSHOT		0x07
#define TLBRACE_IOC_NR_STATS		0x08
#define TLBRACE_IOC_NR_RESET_STATS	0x09
#define TLBRACE_IOC_NR_WAIT		0x0a
#define TLBRACE_IOC_NR_INJECT_ARM	0x0b
#define TLBRACE_IOC_NR_INJECT_DISARM	0x0c
#define TLBRACE_IOC_NR_INJECT_RELEASE	0x0d
#define TLBRACE_IOC_NR_INJECT_STATUS	0x0e
#define TLBRACE_IOC_NR_CPU		0x0f

#define TLBRACE_IOC_CONFIG \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_CONFIG, struct tlbrace_config)
#define TLBRACE_IOC_READ \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_READ, struct tlbrace_access)
#define TLBRACE_IOC_WRITE \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_WRITE, struct tlbrace_access)
#define TLBRACE_IOC_CAS \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_CAS, struct tlbrace_access)
#define TLBRACE_IOC_PREFETCH \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_PREFETCH, struct tlbrace_range)
#define TLBRACE_IOC_FLUSH \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_FLUSH, struct tlbrace_flush)
#define TLBRACE_IOC_SNAPSHOT \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_SNAPSHOT, struct tlbrace_snapshot)
#define TLBRACE_IOC_STATS \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_STATS, struct tlbrace_stats)
#define TLBRACE_IOC_RESET_STATS \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_RESET_STATS, struct tlbrace_stats)
#define TLBRACE_IOC_WAIT \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_WAIT, struct tlbrace_wait)
#define TLBRACE_IOC_INJECT_ARM \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_INJECT_ARM, struct tlbrace_inject)
#define TLBRACE_IOC_INJECT_DISARM \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_INJECT_DISARM, struct tlbrace_inject)
#define TLBRACE_IOC_INJECT_RELEASE \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_INJECT_RELEASE, struct tlbrace_release)
#define TLBRACE_IOC_INJECT_STATUS \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_INJECT_STATUS, struct tlbrace_inject_status)
#define TLBRACE_IOC_CPU \
	_IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_CPU, struct tlbrace_cpu)

#endif /* _UAPI_LINUX_TLBRACE_H */
