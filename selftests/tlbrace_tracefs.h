/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A trace instance of tracefs for one run: its own ring buffer and event
 * switches (instances/NAME), so that recording tlbrace's events leaves the
 * global buffer and other users' tracing alone.  Shared by the trace suite
 * (tlbrace_trace.c) and `tlbrace trace` (tools/tlbrace.c).
 */
#ifndef TLBRACE_TRACEFS_H
#define TLBRACE_TRACEFS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRACEFS "/sys/kernel/tracing"

/* Writes s to dir/name; 0 or an errno (reported on stderr). */
static inline int tracefs_put(const char *dir, const char *name, const char *s)
{
	char path[512];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	errno = 0;	/* a short write sets none: EIO then */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (err)
		fprintf(stderr, "tlbrace: write '%s' to %s: %s\n", s, path, strerror(err));
	return err;
}

/* tracefs, mounted if it is not (a minimal system); 0 or an errno. */
static inline int tracefs_ready(void)
{
	if (!access(TRACEFS "/instances", F_OK))
		return 0;
	if (mount("nodev", TRACEFS, "tracefs", 0, NULL) && errno != EBUSY) {
		int err = errno;

		fprintf(stderr, "tlbrace: mount tracefs on %s: %s (a kernel without "
			"CONFIG_TRACING?)\n", TRACEFS, strerror(err));
		return err;
	}
	return 0;
}

/*
 * The ring buffer of an instance, per CPU: one iteration of a seed race is
 * about 60 events, and in the 2-CPU test VM 600 iterations of
 * overlapping_dontneed fit, 2000 do not: the oldest are overwritten then
 * (tracefs_lost() tells).  1 MiB per CPU, only while the instance lives.
 */
#define TRACEFS_BUFFER_KB	"1024"

/*
 * Creates instances/tlbrace-PID-TAG (its path in inst, of size n) with the
 * tlbrace events on, and the CPUs' TLB shootdowns (tlb:tlb_flush without
 * the task-switch flushes, reason 0, which are noise here) where the kernel
 * has them.  0 or an errno (reported); on error nothing is left behind.
 */
static inline int tracefs_instance(char *inst, size_t n, const char *tag)
{
	char path[600];
	int err = tracefs_ready();

	if (err)
		return err;
	snprintf(inst, n, TRACEFS "/instances/tlbrace-%d-%s", getpid(), tag);
	if (mkdir(inst, 0700)) {
		err = errno;
		fprintf(stderr, "tlbrace: mkdir %s: %s\n", inst, strerror(err));
		return err;
	}
	snprintf(path, sizeof(path), "%s/events/tlbrace", inst);
	if (access(path, F_OK)) {
		fprintf(stderr, "tlbrace: no tlbrace events in %s (is tlbrace.ko loaded, and "
			"built for a kernel with CONFIG_TRACEPOINTS?)\n", path);
		err = ENOENT;
	}
	if (!err)
		err = tracefs_put(inst, "buffer_size_kb", TRACEFS_BUFFER_KB);
	if (!err)
		err = tracefs_put(inst, "events/tlbrace/enable", "1");
	if (!err && !access(TRACEFS "/events/tlb/tlb_flush", F_OK)) {
		err = tracefs_put(inst, "events/tlb/tlb_flush/filter", "reason != 0");
		if (!err)
			err = tracefs_put(inst, "events/tlb/tlb_flush/enable", "1");
	}
	if (err)
		rmdir(inst);
	return err;
}

/* Opens the instance's trace_marker for writing: an fd, or -1 (reported). */
static inline int tracefs_marker(const char *inst)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/trace_marker", inst);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "tlbrace: %s: %s\n", path, strerror(errno));
	return fd;
}

/*
 * How many events the instance's buffer overwrote or dropped, over all
 * CPUs (the "overrun:" and "dropped events:" of per_cpu/cpuN/stats).
 */
static inline long tracefs_lost(const char *inst)
{
	char path[700], line[128];
	long lost = 0;

	for (int cpu = 0;; cpu++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/per_cpu/cpu%d/stats", inst, cpu);
		f = fopen(path, "re");
		if (!f)
			break;
		while (fgets(line, sizeof(line), f)) {
			long n;

			if (sscanf(line, "overrun: %ld", &n) == 1 ||
			    sscanf(line, "dropped events: %ld", &n) == 1)
				lost += n;
		}
		fclose(f);
	}
	return lost;
}

/* Stops recording and removes the instance (its buffer goes with it). */
static inline int tracefs_instance_remove(const char *inst)
{
	int err;

	tracefs_put(inst, "tracing_on", "0");
	err = rmdir(inst) ? errno : 0;
	if (err)
		fprintf(stderr, "tlbrace: rmdir %s: %s\n", inst, strerror(err));
	return err;
}

#endif /* TLBRACE_TRACEFS_H */
