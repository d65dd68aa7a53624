// SPDX-License-Identifier: GPL-2.0
/*
 * The module's trace events (tlbrace_events.h), with the rust_do_trace_*()
 * entry points rust/trace.rs calls once the event's static key is on.
 */
#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "tlbrace_events.h"
