// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of rust/kernel_ext/mmu_gather_policy.rs: the kernel's
 * struct mmu_gather_policy_ops (<linux/mmu_gather_policy.h>, from the
 * series in kernel/patches), whose callbacks forward to the Rust provider.
 * In C so that the ops table and its prototypes are checked against the
 * kernel's header; Rust sees the gather as a number and the mm.
 */
#include <linux/build_bug.h>
#include <linux/mm_types.h>
#include <linux/mmu_gather_policy.h>

#include "tlbrace_gather_policy.h"

/* Set before registering, read only while registered. */
static tlbrace_gather_open_fn rs_open;
static tlbrace_gather_hold_fn rs_hold;
static tlbrace_gather_decide_fn rs_decide;
static tlbrace_gather_closed_fn rs_closed;

static void open_cb(const struct mmu_gather *tlb, struct mm_struct *mm,
		    unsigned long start, unsigned long end)
{
	rs_open((unsigned long)tlb, mm, start, end);
}

static void hold_cb(const struct mmu_gather *tlb, struct mm_struct *mm)
{
	rs_hold((unsigned long)tlb, mm);
}

static enum mmu_gather_flush decide_cb(const struct mmu_gather *tlb,
				       struct mm_struct *mm, bool nested,
				       bool may_sleep, unsigned long *start,
				       unsigned long *end)
{
	return rs_decide((unsigned long)tlb, mm, nested, may_sleep, start, end);
}

static void closed_cb(const struct mmu_gather *tlb, struct mm_struct *mm)
{
	rs_closed((unsigned long)tlb, mm);
}

static const struct mmu_gather_policy_ops tlbrace_ops = {
	.open = open_cb,
	.hold = hold_cb,
	.decide = decide_cb,
	.closed = closed_cb,
};

int tlbrace_gather_policy_register(tlbrace_gather_open_fn open,
				   tlbrace_gather_hold_fn hold,
				   tlbrace_gather_decide_fn decide,
				   tlbrace_gather_closed_fn closed)
{
	/* The values Rust returns from decide (kernel_ext::mmu_gather_policy). */
	BUILD_BUG_ON(MMU_GATHER_FLUSH_STOCK != 0);
	BUILD_BUG_ON(MMU_GATHER_FLUSH_GATHERED != 1);
	BUILD_BUG_ON(MMU_GATHER_FLUSH_RANGE != 2);
	BUILD_BUG_ON(MMU_GATHER_FLUSH_ALL != 3);

	rs_open = open;
	rs_hold = hold;
	rs_decide = decide;
	rs_closed = closed;
	/* Publishes the ops (rcu_assign_pointer): they see the stores above. */
	return mmu_gather_policy_register(&tlbrace_ops);
}

void tlbrace_gather_policy_unregister(void)
{
	mmu_gather_policy_unregister(&tlbrace_ops);
}
