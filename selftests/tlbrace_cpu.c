// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU path (kernel/patches, Documentation/cpu-path.rst): the module
 * decides tlb_finish_mmu()'s flush for the mm that opted in through
 * TLBRACE_IOC_CPU, with the device's trackers.  The ioctl's ABI, then seed
 * 003 on the CPUs' own TLBs under each policy: cpu/naive must reproduce in
 * >= 99 % of the valid iterations, cpu/stock, cpu/ranges and
 * cpu/ranges-wait never.  Verdicts come from user memory alone.  Needs a
 * kernel with CONFIG_MMU_GATHER_POLICY and 2 CPUs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "tlbrace_matrix.h"
#include "kselftest_harness.h"
#include "tlbrace_matrix_test.h"

FIXTURE(abi)
{
	int fd;
};

FIXTURE_SETUP(abi)
{
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
}

FIXTURE_TEARDOWN(abi)
{
	close(self->fd);
}

TEST_F(abi, off_until_set_and_after)
{
	struct tlbrace_cpu c;

	ASSERT_EQ(0, cpu_ioctl(self->fd, false, 0, 0, &c));
	EXPECT_EQ(TLBRACE_CPU_OFF, c.policy);
	for (int v = CPU_STOCK; v < NR_VARIANTS; v++) {
		ASSERT_EQ(0, cpu_policy(self->fd, cpu_policy_uapi[v - CPU_STOCK]));
		ASSERT_EQ(0, cpu_ioctl(self->fd, false, 0, 0, &c));
		EXPECT_EQ(cpu_policy_uapi[v - CPU_STOCK], c.policy) TH_LOG("%s", contract_names[v]);
	}
	ASSERT_EQ(0, cpu_policy(self->fd, TLBRACE_CPU_OFF));
	ASSERT_EQ(0, cpu_ioctl(self->fd, false, 0, 0, &c));
	EXPECT_EQ(TLBRACE_CPU_OFF, c.policy);
}

TEST_F(abi, bad_input_is_refused)
{
	struct tlbrace_cpu c = { .size = sizeof(c), .flags = TLBRACE_CPU_SET, .policy = 99 };

	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CPU, &c)));
	c.policy = TLBRACE_CPU_RANGES;
	c.flags = 1U << 7;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CPU, &c)));
	c.flags = TLBRACE_CPU_SET;
	c.reserved = 1;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CPU, &c)));
	c.reserved = 0;
	c.size = sizeof(c) - 8;
	EXPECT_EQ(EINVAL, tlbrace_err(ioctl(self->fd, TLBRACE_IOC_CPU, &c)));
	/* None of these opted the mm in. */
	ASSERT_EQ(0, cpu_ioctl(self->fd, false, 0, 0, &c));
	EXPECT_EQ(TLBRACE_CPU_OFF, c.policy);
}

/* One policy per mm: a second device of the same mm may not set another. */
TEST_F(abi, second_device_of_the_mm_is_busy)
{
	int fd2 = tlbrace_open();
	struct tlbrace_cpu c;

	ASSERT_GE(fd2, 0);
	ASSERT_EQ(0, cpu_policy(self->fd, TLBRACE_CPU_RANGES));
	EXPECT_EQ(EBUSY, cpu_policy(fd2, TLBRACE_CPU_NAIVE));
	ASSERT_EQ(0, cpu_ioctl(self->fd, false, 0, 0, &c));
	EXPECT_EQ(TLBRACE_CPU_RANGES, c.policy);
	/* Closing the first device opts the mm out: the second may. */
	close(self->fd);
	self->fd = fd2;
	EXPECT_EQ(0, cpu_policy(fd2, TLBRACE_CPU_NAIVE));
}

/*
 * TLBRACE_CPU_MAX_MMS mms at once: children opt theirs in and wait; one
 * more is refused with ENOSPC, and one exiting makes room.
 */
TEST_F(abi, table_full_is_enospc)
{
	int up[2], go[2], n = TLBRACE_CPU_MAX_MMS;
	pid_t pids[TLBRACE_CPU_MAX_MMS];
	char ok;

	ASSERT_EQ(0, pipe(up));
	ASSERT_EQ(0, pipe(go));
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (!pids[i]) {
			int fd = tlbrace_open();
			char r = fd >= 0 && !cpu_policy(fd, TLBRACE_CPU_STOCK) ? 'y' : 'n';

			if (write(up[1], &r, 1) != 1 || read(go[0], &r, 1) != 1)
				_exit(1);
			_exit(0);
		}
	}
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(1, read(up[0], &ok, 1));
		EXPECT_EQ('y', ok);
	}
	EXPECT_EQ(ENOSPC, cpu_policy(self->fd, TLBRACE_CPU_STOCK));
	/* Let one go: its file closes at exit. */
	ASSERT_EQ(1, write(go[1], "x", 1));
	ASSERT_EQ(pids[0], waitpid(pids[0], NULL, 0)) {
		for (int i = 1; i < n; i++)
			kill(pids[i], SIGKILL);
	}
	EXPECT_EQ(0, cpu_policy(self->fd, TLBRACE_CPU_STOCK));
	for (int i = 1; i < n; i++)
		ASSERT_EQ(1, write(go[1], "x", 1));
	for (int i = 1; i < n; i++)
		waitpid(pids[i], NULL, 0);
}

FIXTURE(cpu)
{
	int fd;
};

FIXTURE_VARIANT(cpu)
{
	int variant;
};

FIXTURE_VARIANT_ADD(cpu, stock) { .variant = CPU_STOCK };
FIXTURE_VARIANT_ADD(cpu, naive) { .variant = CPU_NAIVE };
FIXTURE_VARIANT_ADD(cpu, ranges) { .variant = CPU_RANGES };
FIXTURE_VARIANT_ADD(cpu, ranges_wait) { .variant = CPU_RANGES_WAIT };

FIXTURE_SETUP(cpu)
{
	ASSERT_EQ(0, break_cow());
	self->fd = tlbrace_open();
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(0, configure_variant(self->fd, variant->variant));
}

FIXTURE_TEARDOWN(cpu)
{
	close(self->fd);
}

/*
 * Seed 003 on the CPUs under the variant's policy, as the matrix expects:
 * only cpu/naive may (and must) reproduce.
 */
TEST_F_TIMEOUT(cpu, overlapping_dontneed, 900)
{
	run_matrix(_metadata, self->fd, variant->variant,
		   scenario_by_name("cpu_overlapping_dontneed"));
}

TEST_HARNESS_MAIN
