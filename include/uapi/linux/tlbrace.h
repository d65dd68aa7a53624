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
 *  - a bad pointer gives -EFAULT, an unknown command -ENOTTY.
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

#endif /* _UAPI_LINUX_TLBRACE_H */
