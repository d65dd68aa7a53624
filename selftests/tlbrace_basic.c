// SPDX-License-Identifier: GPL-2.0
/*
 * Basic ABI tests of /dev/tlbrace: the version handshake and the error codes
 * of bad input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/tlbrace.h>

#include "kselftest_harness.h"

/* The ABI has no padding: the module's byte-level view of it relies on that. */
_Static_assert(sizeof(struct tlbrace_version) == 16, "tlbrace_version size");
_Static_assert(offsetof(struct tlbrace_version, reserved) == 12, "tlbrace_version layout");

FIXTURE(dev)
{
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = open("/dev/" TLBRACE_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->fd, 0)
		TH_LOG("open /dev/tlbrace: %s (is tlbrace.ko loaded?)", strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST(module_loaded)
{
	struct stat st;

	ASSERT_EQ(0, stat("/sys/module/tlbrace", &st));
	ASSERT_EQ(0, stat("/dev/" TLBRACE_DEVICE_NAME, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(dev, version)
{
	struct tlbrace_version v = { .size = sizeof(v) };

	ASSERT_EQ(0, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ((__u32)TLBRACE_ABI_VERSION, v.abi_version);
	EXPECT_EQ(sizeof(v), v.struct_size);
}

TEST_F(dev, version_bad_size)
{
	struct tlbrace_version v = { .size = 0 };

	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
	v.size = sizeof(v) + 8;
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, version_reserved_must_be_zero)
{
	struct tlbrace_version v = { .size = sizeof(v), .reserved = 1 };

	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, version_bad_pointer)
{
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, (void *)16));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, TLBRACE_IOC_VERSION, NULL));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(dev, unknown_ioctl)
{
	struct tlbrace_version v = { .size = sizeof(v) };

	/* Our magic, a number the module does not define. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(TLBRACE_IOC_MAGIC, 0xff, struct tlbrace_version), &v));
	EXPECT_EQ(ENOTTY, errno);
	/* Right number, wrong size: a different command. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(TLBRACE_IOC_MAGIC, TLBRACE_IOC_NR_VERSION, __u64), &v));
	EXPECT_EQ(ENOTTY, errno);
	/* Someone else's magic. */
	EXPECT_EQ(-1, ioctl(self->fd, _IO('x', 1)));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_HARNESS_MAIN
