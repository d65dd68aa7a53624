/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tlbrace's trace events: what the fake device did, in the order it did it,
 * next to the kernel's own events (tlb:tlb_flush, ...) in one ring buffer.
 * Defined in C because TRACE_EVENT() is C; the Rust code reaches them
 * through rust/trace.rs.  Every argument is a scalar, so any value is a
 * valid call.  Documentation/tool.rst ("tlbrace trace") describes them.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM tlbrace

#if !defined(_TLBRACE_EVENTS_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TLBRACE_EVENTS_H

#include <linux/tracepoint.h>
#include <linux/tlbrace.h>

/* The field values (TLBRACE_CB_*, TLBRACE_CLOSE_*, ...) are in the uapi header. */

#define tlbrace_show_event(e) __print_symbolic(e,				\
	{ TLBRACE_EVENT_UNMAP, "unmap" }, { TLBRACE_EVENT_CLEAR, "clear" },	\
	{ TLBRACE_EVENT_PROTECTION_VMA, "protection_vma" },			\
	{ TLBRACE_EVENT_PROTECTION_PAGE, "protection_page" },			\
	{ TLBRACE_EVENT_SOFT_DIRTY, "soft_dirty" },				\
	{ TLBRACE_EVENT_RELEASE, "release" },					\
	{ TLBRACE_EVENT_MIGRATE, "migrate" },					\
	{ TLBRACE_EVENT_EXCLUSIVE, "exclusive" }, { TLBRACE_EVENT_NONE, "none" })

TRACE_EVENT(tlbrace_fill,
	TP_PROTO(u32 dev, u64 addr, u64 pfn, u32 flags),
	TP_ARGS(dev, addr, pfn, flags),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, flags)
		__field(u64, addr)
		__field(u64, pfn)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->flags = flags;
		__entry->addr = addr;
		__entry->pfn = pfn;
	),
	TP_printk("dev=%u addr=0x%llx pfn=0x%llx %s from=%s", __entry->dev, __entry->addr,
		  __entry->pfn, __entry->flags & TLBRACE_FILL_WRITABLE ? "rw" : "ro",
		  __entry->flags & TLBRACE_FILL_FROM_DPT ? "dpt" : "fault")
);

TRACE_EVENT(tlbrace_access,
	TP_PROTO(u32 dev, u64 addr, u32 write, u64 value, u32 outcome),
	TP_ARGS(dev, addr, write, value, outcome),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, write)
		__field(u64, addr)
		__field(u64, value)
		__field(u32, outcome)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->write = write;
		__entry->addr = addr;
		__entry->value = value;
		__entry->outcome = outcome;
	),
	TP_printk("dev=%u addr=0x%llx %s value=0x%llx outcome=%s", __entry->dev, __entry->addr,
		  __entry->write ? "write" : "read", __entry->value,
		  __print_flags(__entry->outcome, "|", { TLBRACE_OUT_HIT, "hit" },
				{ TLBRACE_OUT_DPT, "dpt" }, { TLBRACE_OUT_FAULT, "fault" },
				{ TLBRACE_OUT_STALE, "stale" }))
);

/*
 * early: the invalidation was still in progress (between its range_start
 * and range_end), where a device may legitimately still use the old entry.
 */
TRACE_EVENT(tlbrace_stale,
	TP_PROTO(u32 dev, u64 addr, u32 write, u32 event, u32 early),
	TP_ARGS(dev, addr, write, event, early),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, write)
		__field(u64, addr)
		__field(u32, event)
		__field(u32, early)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->write = write;
		__entry->addr = addr;
		__entry->event = event;
		__entry->early = early;
	),
	TP_printk("dev=%u addr=0x%llx %s through a translation the %s invalidation %s",
		  __entry->dev, __entry->addr, __entry->write ? "write" : "read",
		  tlbrace_show_event(__entry->event),
		  __entry->early ? "is removing (early)" : "removed")
);

TRACE_EVENT(tlbrace_notifier,
	TP_PROTO(u32 dev, u32 cb, u64 start, u64 end, u32 event, u32 dropped),
	TP_ARGS(dev, cb, start, end, event, dropped),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, cb)
		__field(u64, start)
		__field(u64, end)
		__field(u32, event)
		__field(u32, dropped)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->cb = cb;
		__entry->start = start;
		__entry->end = end;
		__entry->event = event;
		__entry->dropped = dropped;
	),
	TP_printk("dev=%u %s start=0x%llx end=0x%llx event=%s dropped=%u", __entry->dev,
		  __print_symbolic(__entry->cb, { TLBRACE_CB_RANGE_START, "range_start" },
				   { TLBRACE_CB_RANGE_END, "range_end" },
				   { TLBRACE_CB_SECONDARY_TLBS, "secondary_tlbs" },
				   { TLBRACE_CB_RELEASE, "release" }),
		  __entry->start, __entry->end, tlbrace_show_event(__entry->event),
		  __entry->dropped)
);

TRACE_EVENT(tlbrace_gather_open,
	TP_PROTO(u32 dev, u64 id, u64 start, u64 end, u32 cleared),
	TP_ARGS(dev, id, start, end, cleared),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, cleared)
		__field(u64, id)
		__field(u64, start)
		__field(u64, end)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->cleared = cleared;
		__entry->id = id;
		__entry->start = start;
		__entry->end = end;
	),
	TP_printk("dev=%u gather=%llu start=0x%llx end=0x%llx cleared=%u", __entry->dev,
		  __entry->id, __entry->start, __entry->end, __entry->cleared)
);

TRACE_EVENT(tlbrace_gather_close,
	TP_PROTO(u32 dev, u64 id, u64 start, u64 end, u32 decision, u32 waited, u32 flushed),
	TP_ARGS(dev, id, start, end, decision, waited, flushed),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, decision)
		__field(u64, id)
		__field(u64, start)
		__field(u64, end)
		__field(u32, waited)
		__field(u32, flushed)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->decision = decision;
		__entry->id = id;
		__entry->start = start;
		__entry->end = end;
		__entry->waited = waited;
		__entry->flushed = flushed;
	),
	TP_printk("dev=%u gather=%llu start=0x%llx end=0x%llx flush=%s waited=%u flushed=%u",
		  __entry->dev, __entry->id, __entry->start, __entry->end,
		  __print_symbolic(__entry->decision, { TLBRACE_CLOSE_CLEARED, "cleared" },
				   { TLBRACE_CLOSE_RANGES, "ranges" },
				   { TLBRACE_CLOSE_ALL, "all" },
				   { TLBRACE_CLOSE_FORCED_ALL, "forced_all" }),
		  __entry->waited, __entry->flushed)
);

TRACE_EVENT(tlbrace_inject,
	TP_PROTO(u32 dev, u32 arm, u32 point, u32 what, u64 start),
	TP_ARGS(dev, arm, point, what, start),
	TP_STRUCT__entry(
		__field(u32, dev)
		__field(u32, arm)
		__field(u32, point)
		__field(u32, what)
		__field(u64, start)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->arm = arm;
		__entry->point = point;
		__entry->what = what;
		__entry->start = start;
	),
	TP_printk("dev=%u arm=%u point=%s %s start=0x%llx", __entry->dev, __entry->arm,
		  __print_symbolic(__entry->point,
				   { TLBRACE_POINT_RANGE_START_ENTER, "range_start_enter" },
				   { TLBRACE_POINT_RANGE_START_EXIT, "range_start_exit" },
				   { TLBRACE_POINT_RANGE_END_ENTER, "range_end_enter" },
				   { TLBRACE_POINT_RANGE_END_EXIT, "range_end_exit" },
				   { TLBRACE_POINT_SECONDARY_TLBS, "secondary_tlbs" },
				   { TLBRACE_POINT_FAULT_FILL, "fault_fill" },
				   { TLBRACE_POINT_ACCESS_HIT, "access_hit" },
				   { TLBRACE_POINT_GATHER_CLOSE, "gather_close" },
				   { TLBRACE_POINT_CPU_FINISH, "cpu_finish" }),
		  __print_symbolic(__entry->what, { TLBRACE_TRACE_INJ_FIRE, "fire" },
				   { TLBRACE_TRACE_INJ_PARKED, "parked" },
				   { TLBRACE_TRACE_INJ_RELEASED, "released" },
				   { TLBRACE_TRACE_INJ_TIMEOUT, "timeout" },
				   { TLBRACE_TRACE_INJ_SIGNAL, "signal" },
				   { TLBRACE_TRACE_INJ_REFUSED, "refused" }),
		  __entry->start)
);

#endif /* _TLBRACE_EVENTS_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_PATH .
#define TRACE_INCLUDE_FILE tlbrace_events
#include <trace/define_trace.h>
