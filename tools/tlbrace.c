// SPDX-License-Identifier: GPL-2.0
/*
 * tlbrace - command-line front end of /dev/tlbrace.
 *
 *   tlbrace info     print the module's ABI version and what it offers
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tlbrace.h>

static int usage(void)
{
	fprintf(stderr, "usage: tlbrace info\n");
	return 2;
}

static int cmd_info(int fd)
{
	struct tlbrace_version v = { .size = sizeof(v) };

	if (ioctl(fd, TLBRACE_IOC_VERSION, &v)) {
		perror("TLBRACE_IOC_VERSION");
		return 1;
	}
	printf("tlbrace: /dev/%s, ABI version %u (this tool: %u), version struct %u bytes\n",
	       TLBRACE_DEVICE_NAME, v.abi_version, TLBRACE_ABI_VERSION, v.struct_size);
	return v.abi_version == TLBRACE_ABI_VERSION ? 0 : 1;
}

int main(int argc, char **argv)
{
	int fd, ret;

	if (argc != 2 || strcmp(argv[1], "info"))
		return usage();
	fd = open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "tlbrace: open /dev/%s: %s (is tlbrace.ko loaded?)\n",
			TLBRACE_DEVICE_NAME, strerror(errno));
		return 1;
	}
	ret = cmd_info(fd);
	close(fd);
	return ret;
}
