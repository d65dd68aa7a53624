/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between rust/tlbrace_gather_policy.c and the Rust provider
 * (rust/kernel_ext/mmu_gather_policy.rs declares the same).  One provider
 * at a time: the Rust side registers at most once.
 */
#ifndef TLBRACE_GATHER_POLICY_H
#define TLBRACE_GATHER_POLICY_H

#include <linux/types.h>

struct mm_struct;

typedef void (*tlbrace_gather_open_fn)(unsigned long tlb, struct mm_struct *mm,
				       unsigned long start, unsigned long end);
typedef void (*tlbrace_gather_hold_fn)(unsigned long tlb, struct mm_struct *mm);
/* Returns an enum mmu_gather_flush value. */
typedef unsigned int (*tlbrace_gather_decide_fn)(unsigned long tlb,
						 struct mm_struct *mm,
						 bool nested, bool may_sleep,
						 unsigned long *start,
						 unsigned long *end);
typedef void (*tlbrace_gather_closed_fn)(unsigned long tlb, struct mm_struct *mm);

int tlbrace_gather_policy_register(tlbrace_gather_open_fn open,
				   tlbrace_gather_hold_fn hold,
				   tlbrace_gather_decide_fn decide,
				   tlbrace_gather_closed_fn closed);
void tlbrace_gather_policy_unregister(void);

#endif /* TLBRACE_GATHER_POLICY_H */
