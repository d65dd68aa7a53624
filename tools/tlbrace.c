// SPDX-License-Identifier: GPL-2.0
/*
 * tlbrace - command-line front end of /dev/tlbrace: races from the shell.
 * The race commands run the same scenario code as the race matrix of the
 * selftests (selftests/tlbrace_matrix.h).  `tlbrace --help` says it all;
 * Documentation/tool.rst is its manual.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/tlbrace.h>

#include "tlbrace_matrix.h"
#include "tlbrace_tracefs.h"

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

static const char help[] =
"usage: tlbrace COMMAND [OPTIONS]\n"
"\n"
"  info                      the module's ABI version and the contracts it offers\n"
"  list                      the seed race scenarios and their expected verdicts\n"
"  race SCENARIO [-c CONTRACT | -t TRACKER] [-n ITERS]\n"
"                            run one seed race and print the verdict with its\n"
"                            evidence (what the CPU and the device saw), the hit\n"
"                            rate and the time to the first hit\n"
"  trace SCENARIO [-c CONTRACT | -t TRACKER] [-n ITERS] [-o FILE]\n"
"                            race (default: 1 iteration) with the kernel's\n"
"                            tracing on, in a trace instance of its own: the\n"
"                            device's events (tlbrace:*), the CPUs' TLB flushes\n"
"                            (tlb:tlb_flush) and the scenario's steps go to FILE\n"
"                            (default tlbrace-trace.txt); on the host,\n"
"                            scripts/trace-timeline.py FILE OUT.svg draws it\n"
"  matrix [-n ITERS] [-s SCENARIO] [-c CONTRACT]\n"
"                            every scenario under every contract (or those named)\n"
"  stats [PID]               the statistics of every open device (or PID's), from\n"
"                            /sys/kernel/debug/tlbrace\n"
"  demo                      a missed invalidation under each contract\n"
"\n"
"  -c, --contract C   sync, deferred-end, sva, none, batched/naive, batched/counter,\n"
"                     batched/ranges, batched/ranges-wait, batched/ranges-full; for a\n"
"                     CPU scenario (cpu_*) the CPU path's policy: cpu/stock, cpu/naive,\n"
"                     cpu/ranges, cpu/ranges-wait (needs the patched kernel)\n"
"  -t, --tracker T    the batched contract with tracker T (naive, counter, ranges, ...)\n"
"  -n, --iters N      iterations per cell (default 100; trace: 1)\n"
"  -o, --output FILE  trace: where the trace goes\n"
"  -s, --scenario S   only this scenario (matrix)\n"
"  -h, --help         this text\n"
"\n"
"Exit status: 0 when every cell showed what the matrix expects (an unsafe one\n"
"reproduces in >= 99 % of its valid iterations, a safe one never, at most 1 %\n"
"invalid), 1 when one did not, 2 on bad usage or an error.  Needs root and\n"
"tlbrace.ko.\n";

static int usage(void)
{
	fputs(help, stderr);
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
	{
		struct tlbrace_cpu cpu = { .size = sizeof(cpu) };

		printf("cpu path: %s\n", !ioctl(fd, TLBRACE_IOC_CPU, &cpu) ? "available" :
		       errno == EOPNOTSUPP ? "not in this kernel (CONFIG_MMU_GATHER_POLICY, kernel/patches)" :
		       strerror(errno));
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

/* At most 1 % of a cell's iterations may have missed their race window. */
#define MAX_INVALID_PCT 1

static int scenarios_list(void)
{
	printf("%-26s %s\n%-26s", "scenario",
	       "verdict per contract (U: unsafe, s: safe, -: does not apply)", "");
	for (int v = 0; v < NR_VARIANTS; v++)
		printf(" %2d", v);
	printf("\n");
	for (unsigned int i = 0; i < NR_SCENARIOS; i++) {
		printf("%-26s", matrix[i].name);
		for (int v = 0; v < NR_VARIANTS; v++)
			printf("  %c", !variant_applies(&matrix[i], v) ? '-' :
			       matrix[i].unsafe[v] ? 'U' : 's');
		printf("\n  %s\n", matrix[i].what);
	}
	printf("contracts:");
	for (int v = 0; v < NR_VARIANTS; v++)
		printf(" %d=%s", v, contract_names[v]);
	printf("\n");
	return 0;
}

/* Runs one cell; prints it (verbose: with its evidence).  0, 1 or 2. */
static int cell(const struct scenario *s, int v, int n, bool verbose)
{
	bool unsafe = s->unsafe[v], ok;
	int fd = open_dev(), err;
	struct cell c;

	if (fd < 0)
		return 2;
	err = configure_variant(fd, v);
	if (err) {
		fprintf(stderr, "tlbrace: CONFIG %s: %s\n", contract_names[v], strerror(err));
		close(fd);
		return 2;
	}
	err = run_cell(fd, s, n, &c);
	close(fd);
	if (err) {
		fprintf(stderr, "tlbrace: %s/%s: iteration %d: %s\n", s->name, contract_names[v],
			c.error_at, c.error.why);
		return 2;
	}
	ok = cell_as_expected(&c, unsafe, MAX_INVALID_PCT);
	if (!verbose) {
		int valid = c.iterations - c.invalid;

		printf("%-26s %-20s %-6s %6d %7d %6d %6.1f%%  %s\n", s->name,
		       contract_names[v], unsafe ? "unsafe" : "safe", c.iterations, c.invalid,
		       c.violations, valid ? 100.0 * c.violations / valid : 0.0,
		       ok ? "as expected" : "NOT AS EXPECTED");
		fflush(stdout);
		return !ok;
	}
	printf("scenario   %s\n           %s\n", s->name, s->what);
	printf("contract   %s\n", contract_names[v]);
	printf("expected   %s\n", unsafe ? "unsafe: a violation in >= 99 % of valid iterations" :
	       "safe: no violation");
	printf("result     %d of %d valid iterations violated (%.1f %%), %d correct, "
	       "%d invalid (window not opened)\n", c.violations, c.iterations - c.invalid,
	       c.iterations - c.invalid ? 100.0 * c.violations / (c.iterations - c.invalid) : 0.0,
	       c.correct, c.invalid);
	if (c.first >= 0)
		printf("first hit  iteration %d, after %.1f ms\n", c.first, c.first_us / 1000);
	printf("time       %.2f ms per iteration\n", c.us_per_iteration / 1000);
	if (c.violations)
		printf("evidence   violation: %s\n", c.violation.why);
	if (c.correct)
		printf("evidence   correct: %s\n", c.correct_one.why);
	for (int i = 0; i < c.invalid && i < INVALID_SHOWN; i++)
		printf("invalid    %s\n", c.invalid_why[i]);
	printf("verdict    %s%s\n", c.violations ? "UNSAFE" : "safe",
	       ok ? " (as the matrix expects)" : " (NOT what the matrix expects)");
	return !ok;
}

struct options {
	const char *scenario;
	int contract;	/* -1: every one */
	int iters;	/* 0: not given */
	const char *output;
};

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "contract", required_argument, NULL, 'c' },
		{ "tracker", required_argument, NULL, 't' },
		{ "iters", required_argument, NULL, 'n' },
		{ "scenario", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char name[64], *end;
	int opt;
	long n;

	*o = (struct options){ .contract = -1 };
	while ((opt = getopt_long(argc, argv, "c:t:n:s:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
		case 't':
			snprintf(name, sizeof(name), "%s%s", opt == 't' ? "batched/" : "", optarg);
			o->contract = contract_by_name(name);
			if (o->contract < 0) {
				fprintf(stderr, "tlbrace: no contract %s (see tlbrace list)\n", name);
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || n <= 0 || n > 1000000) {
				fprintf(stderr, "tlbrace: --iters %s: want 1..1000000\n", optarg);
				return 2;
			}
			o->iters = n;
			break;
		case 's':
			o->scenario = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			exit(0);
		default:
			return usage();
		}
	}
	if (o->scenario && !scenario_by_name(o->scenario)) {
		fprintf(stderr, "tlbrace: no scenario %s (see tlbrace list)\n", o->scenario);
		return 2;
	}
	return 0;
}

/*
 * The variant a race or trace runs under: the one asked for (which must
 * apply to s), else sync for a device scenario and cpu/stock for a CPU one.
 */
static int default_variant(const struct scenario *s, int asked)
{
	if (asked < 0)
		return scenario_is_cpu(s) ? CPU_STOCK : SYNC;
	if (!variant_applies(s, asked)) {
		fprintf(stderr, "tlbrace: %s does not run under %s (%s)\n", s->name,
			contract_names[asked], scenario_is_cpu(s) ? "a CPU scenario: cpu/..." :
			"a device scenario: not cpu/...");
		return -1;
	}
	return asked;
}

static int cmd_race(int argc, char **argv)
{
	const struct scenario *s;
	struct options o;
	int err = parse(argc, argv, &o), v;

	if (err)
		return err;
	if (optind != argc - 1 || o.scenario || o.output)
		return usage();
	o.scenario = argv[optind];
	s = scenario_by_name(o.scenario);
	if (!s) {
		fprintf(stderr, "tlbrace: no scenario %s (see tlbrace list)\n", o.scenario);
		return 2;
	}
	v = default_variant(s, o.contract);
	if (v < 0 || break_cow())
		return 2;
	return cell(s, v, o.iters ?: 100, true);
}

/* Whether the module offers the CPU path on this kernel. */
static bool cpu_path_available(void)
{
	int fd = open_dev(), err;

	if (fd < 0)
		return false;
	err = cpu_ioctl(fd, false, 0, 0, NULL);
	close(fd);
	return !err;
}

static int cmd_matrix(int argc, char **argv)
{
	struct options o;
	int err = parse(argc, argv, &o), rc = 0;
	bool cpu_path;

	if (err)
		return err;
	if (optind != argc || o.output)
		return usage();
	if (break_cow())
		return 2;
	cpu_path = cpu_path_available();
	printf("%-26s %-20s %-6s %6s %6s %6s %7s\n", "scenario", "contract", "expect", "iters",
	       "invalid", "hits", "rate");
	for (unsigned int i = 0; i < NR_SCENARIOS; i++) {
		if (o.scenario && strcmp(o.scenario, matrix[i].name))
			continue;
		for (int v = 0; v < NR_VARIANTS; v++) {
			if ((o.contract >= 0 && v != o.contract) || !variant_applies(&matrix[i], v))
				continue;
			if (v >= NR_CONTRACTS && !cpu_path) {
				printf("%-26s %-20s skipped: the kernel has no mmu_gather policy hook\n",
				       matrix[i].name, contract_names[v]);
				continue;
			}
			err = cell(&matrix[i], v, o.iters ?: 100, false);
			if (err == 2)
				return 2;
			rc |= err;
		}
	}
	return rc;
}

/* ---- tlbrace trace ---------------------------------------------------- */

/*
 * Copies the instance's trace to out; counts the lines of the device's
 * events, the TLB flushes and the marks.
 */
static int save_trace(const char *inst, const char *out, int counts[3])
{
	char path[512], line[1024];
	FILE *in, *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/trace", inst);
	in = fopen(path, "re");
	/* out is truncated only once there is a trace to put in it. */
	f = in ? fopen(out, "we") : NULL;
	if (!in || !f) {
		err = errno;
		fprintf(stderr, "tlbrace: %s: %s\n", in ? out : path, strerror(err));
	}
	while (!err && fgets(line, sizeof(line), in)) {
		counts[0] += !!strstr(line, ": tlbrace_");
		counts[1] += !!strstr(line, ": tlb_flush:");
		counts[2] += !!strstr(line, ": tracing_mark_write:");
		if (fputs(line, f) == EOF)
			err = errno;
	}
	if (f && fclose(f) && !err)
		err = errno;
	if (in)
		fclose(in);
	if (err)
		fprintf(stderr, "tlbrace: writing %s: %s\n", out, strerror(err));
	return err;
}

/*
 * The instance of a running `tlbrace trace` and its open trace_marker (kept
 * here too: mark() forgets its copy when a write fails), for the handler.
 */
static char trace_inst[256];
static int trace_marker = -1;
static pid_t trace_owner;

/*
 * Ctrl-C (or kill) during a trace: the instance is removed all the same,
 * with only async-signal-safe calls.  The marker fd is closed first, as an
 * open file of an instance makes rmdir fail (EBUSY); a mark() another
 * thread is writing right then holds the file until its write returns, so
 * rmdir is retried for up to a second.
 */
static void trace_interrupted(int sig)
{
	static const char msg[] = "tlbrace: interrupted, trace instance removed\n";
	const struct timespec ms = { .tv_nsec = 1000000 };

	if (getpid() == trace_owner) {
		trace_marker_fd = -1;
		if (trace_marker >= 0)
			close(trace_marker);
		for (int i = 0; i < 1000; i++) {
			if (!rmdir(trace_inst)) {
				if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
					_exit(128 + sig);
				break;
			}
			if (errno != EBUSY)
				break;
			nanosleep(&ms, NULL);
		}
	}
	_exit(128 + sig);
}

/*
 * Runs one cell with tracing on in a trace instance of its own (the global
 * buffer and other users' events are left alone), saves the trace and
 * removes the instance.
 */
static int cmd_trace(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = trace_interrupted };
	int counts[3] = { 0 }, rc, err, v;
	const char *inst = trace_inst;
	const struct scenario *s;
	struct options o;
	sigset_t stop;
	long lost;

	err = parse(argc, argv, &o);
	if (err)
		return err;
	if (optind != argc - 1 || o.scenario)
		return usage();
	s = scenario_by_name(argv[optind]);
	if (!s) {
		fprintf(stderr, "tlbrace: no scenario %s (see tlbrace list)\n", argv[optind]);
		return 2;
	}
	v = default_variant(s, o.contract);
	if (v < 0)
		return 2;
	if (!o.output)
		o.output = "tlbrace-trace.txt";
	if (break_cow() || tracefs_instance(trace_inst, sizeof(trace_inst), "trace"))
		return 2;
	trace_owner = getpid();
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sa.sa_mask = stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	trace_marker = tracefs_marker(inst);
	if (trace_marker < 0) {
		tracefs_instance_remove(inst);
		return 2;
	}
	trace_marker_fd = trace_marker;
	rc = cell(s, v, o.iters ?: 1, true);
	/*
	 * From here the trace file is open, which would make the handler's
	 * rmdir fail: a signal waits until the instance is gone.
	 */
	sigprocmask(SIG_BLOCK, &stop, NULL);
	tracefs_put(inst, "tracing_on", "0");
	trace_marker_fd = -1;
	close(trace_marker);
	trace_marker = -1;
	lost = tracefs_lost(inst);
	if (lost)
		fprintf(stderr,
			"tlbrace: the trace lost its %ld oldest events (buffer %s KiB per CPU): trace fewer iterations (-n)\n",
			lost, TRACEFS_BUFFER_KB);
	if (save_trace(inst, o.output, counts)) {
		rc = 2;
	} else if (!counts[0]) {
		fprintf(stderr, "tlbrace: the trace holds no tlbrace event\n");
		rc = 2;
	} else {
		printf("trace      %s: %d device events, %d TLB flushes, %d marks\n", o.output,
		       counts[0], counts[1], counts[2]);
		printf("picture    scripts/trace-timeline.py %s OUT.svg (on the host)\n",
		       o.output);
	}
	if (tracefs_instance_remove(inst))
		rc = 2;
	sigprocmask(SIG_UNBLOCK, &stop, NULL);
	return rc;
}

/* The stats files of every open device, or of process pid's. */
static int cmd_stats(int argc, char **argv)
{
	const char *root = "/sys/kernel/debug/tlbrace";
	char prefix[32] = "", path[512], line[256];
	struct dirent *e;
	int shown = 0;
	DIR *d;

	if (argc > 2)
		return usage();
	if (argc == 2)
		snprintf(prefix, sizeof(prefix), "%d-", atoi(argv[1]));
	d = opendir(root);
	if (!d) {
		fprintf(stderr, "tlbrace: %s: %s (debugfs mounted? tlbrace.ko loaded?)\n", root,
			strerror(errno));
		return 2;
	}
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "%s/%s/stats", root, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		printf("== %s (process-device)\n", e->d_name);
		while (fgets(line, sizeof(line), f))
			fputs(line, stdout);
		fclose(f);
		shown++;
	}
	closedir(d);
	if (!shown)
		printf("no open tlbrace device%s%s\n", *prefix ? " of process " : "",
		       *prefix ? argv[1] : "");
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(help, stdout);
		return 0;
	}
	if (!strcmp(cmd, "info") && argc == 2)
		return cmd_info();
	if (!strcmp(cmd, "demo") && argc == 2)
		return cmd_demo();
	if (!strcmp(cmd, "list") && argc == 2)
		return scenarios_list();
	if (!strcmp(cmd, "race"))
		return cmd_race(argc - 1, argv + 1);
	if (!strcmp(cmd, "matrix"))
		return cmd_matrix(argc - 1, argv + 1);
	if (!strcmp(cmd, "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc - 1, argv + 1);
	return usage();
}
