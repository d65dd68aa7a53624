// SPDX-License-Identifier: GPL-2.0
/*
 * tlbrace - command-line front end of /dev/tlbrace.
 *
 *   tlbrace info     print the module's ABI version and what it offers
 *   tlbrace demo     show a missed invalidation: the device reads through
 *                    its TLB after MADV_DONTNEED, under each contract
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/tlbrace.h>

static const struct {
	const char *name;
	__u32 id;
	const char *what;
} contracts[] = {
	{ "sync", TLBRACE_CONTRACT_SYNC, "invalidate dPT+dTLB in invalidate_range_start" },
	{ "deferred-end", TLBRACE_CONTRACT_DEFERRED_END, "invalidate only in invalidate_range_end" },
	{ "sva", TLBRACE_CONTRACT_SVA, "no dPT; flush dTLB in arch_invalidate_secondary_tlbs" },
	{ "none", TLBRACE_CONTRACT_NONE, "never invalidate (negative control)" },
	{ "batched", TLBRACE_CONTRACT_BATCHED, "gathers; dTLB flushed at close (naive tracker)" },
};

static int usage(void)
{
	fprintf(stderr, "usage: tlbrace info|demo\n");
	return 2;
}

static int open_dev(void)
{
	int fd = open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "tlbrace: open /dev/%s: %s (is tlbrace.ko loaded?)\n",
			TLBRACE_DEVICE_NAME, strerror(errno));
	return fd;
}

static int cmd_info(void)
{
	struct tlbrace_version v = { .size = sizeof(v) };
	struct tlbrace_config c = { .size = sizeof(c), .sets = 64, .ways = 4 };
	int fd = open_dev();

	if (fd < 0)
		return 1;
	if (ioctl(fd, TLBRACE_IOC_VERSION, &v)) {
		perror("TLBRACE_IOC_VERSION");
		return 1;
	}
	printf("tlbrace: /dev/%s, ABI version %u (this tool: %u)\n",
	       TLBRACE_DEVICE_NAME, v.abi_version, TLBRACE_ABI_VERSION);
	printf("device TLB: up to %u sets x %u ways, LRU or FIFO (default 64 x 4, LRU)\n",
	       TLBRACE_MAX_SETS, TLBRACE_MAX_WAYS);
	printf("contracts:\n");
	for (unsigned int i = 0; i < sizeof(contracts) / sizeof(contracts[0]); i++) {
		c.contract = contracts[i].id;
		printf("  %-13s %-55s %s\n", contracts[i].name, contracts[i].what,
		       ioctl(fd, TLBRACE_IOC_CONFIG, &c) ? strerror(errno) : "available");
	}
	close(fd);
	return v.abi_version == TLBRACE_ABI_VERSION ? 0 : 1;
}

static int cmd_demo(void)
{
	printf("CPU writes 0x1234, the device reads it (filling its TLB), the CPU does\n"
	       "MADV_DONTNEED, the device reads again:\n");
	for (unsigned int i = 0; i < sizeof(contracts) / sizeof(contracts[0]); i++) {
		struct tlbrace_config c = {
			.size = sizeof(c), .contract = contracts[i].id, .sets = 64, .ways = 4,
		};
		volatile __u64 *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct tlbrace_access a = { .size = sizeof(a), .addr = (uintptr_t)p, .count = 1 };
		int fd = open_dev();

		if (fd < 0 || p == MAP_FAILED || ioctl(fd, TLBRACE_IOC_CONFIG, &c))
			return 1;
		*p = 0x1234;
		if (ioctl(fd, TLBRACE_IOC_READ, &a))
			return 1;
		madvise((void *)p, 4096, MADV_DONTNEED);
		if (ioctl(fd, TLBRACE_IOC_READ, &a))
			return 1;
		printf("  %-13s device reads %#6llx, CPU reads %#llx%s\n", contracts[i].name,
		       (unsigned long long)a.value, (unsigned long long)*p,
		       a.outcome & TLBRACE_OUT_STALE ? "  <- stale TLB entry" : "");
		close(fd);
		munmap((void *)p, 4096);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return usage();
	if (!strcmp(argv[1], "info"))
		return cmd_info();
	if (!strcmp(argv[1], "demo"))
		return cmd_demo();
	return usage();
}
