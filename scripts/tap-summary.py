#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Follow the guest's serial logs, print its TAP output and judge the run.

The guest prints its tests' output on the first serial port (--follow) and
the kernel prints its console on the second (--klog).  Each suite (in demo
and bench mode: each step) is delimited by '# tlbrace-suite: NAME' and
'# tlbrace-exit: NAME RC' (selftests/guest/markers.sh); '# tlbrace-done' is
printed last.

A check run passes only if
- exactly the expected suites ran (--suites: selftests/guest/suites, cut
  down by --only), each once, plus setup and teardown, and nothing else;
- each suite printed one TAP plan and every planned result once, no number
  outside the plan, no 'Bail out!', and exited 0 (or 4, kselftest's skip);
- the kunit suite reported every KUnit suite and case the module's source
  declares (--kunit-src: '#[kunit_tests(NAME)]' and its '#[test]'s);
- the guest finished, and the kernel log holds no splat.
A demo or bench run passes if it ran at least one step, every step exited 0,
the guest finished and the kernel log holds no splat.

The last line is 'N passed, N failed, N skipped' (also written to
--summary-file).
"""
import argparse
import os
import re
import sys
import time

# Kernel log lines that fail a run: warnings, oopses, lockdep, sanitizers,
# stalls, lockups, leaks, and lost log lines (which could hide any of these).
SPLAT = re.compile(
    r"WARNING:|BUG:|Oops|Call Trace:|Kernel panic|kernel BUG|general protection fault|"
    r"UBSAN:|KASAN:|KCSAN:|KFENCE:|INFO: task .* blocked|self-detected stall|detected stalls|"
    r"detected expedited stalls|hard LOCKUP|soft lockup|"
    r"possible circular locking|inconsistent lock state|possible recursive locking|"
    r"suspicious RCU usage|bad unlock balance|lock held when returning to user space|"
    r"kmemleak: .*suspected memory leak|unreferenced object 0x|"
    r"printk messages dropped|list_(add|del) corruption|refcount_t: "
)
RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\b\s*(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)\s*(#\s*SKIP\b.*)?", re.I)
SUITE = re.compile(r"^# tlbrace-suite: (\S+)")
EXIT = re.compile(r"^# tlbrace-exit: (\S+) (-?\d+)")
# kselftest's exit status for "skipped".
KSFT_SKIP = 4
ALWAYS = ["setup", "teardown"]


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0
        self.plans = []
        self.skip_plan = None
        self.numbers = []
        self.cases = []
        self.rc = None
        self.bailed = False
        self.failures = []
        self.notes = []

    def fail(self, why):
        self.failed += 1
        self.failures.append(why)


def expected_suites(path, only):
    """The suites the guest must run: setup, the listed ones, teardown."""
    listed = []
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                listed.append(line.split()[0])
    if only:
        unknown = [s for s in only if s not in listed + ALWAYS]
        if unknown:
            raise SystemExit(f"tap-summary: unknown suite(s) {', '.join(unknown)}; "
                             f"known: {', '.join(listed)}")
        listed = [s for s in listed if s in only]
    return ALWAYS[:1] + listed + ALWAYS[1:]


def expected_kunit(src):
    """{suite: cases} declared by '#[kunit_tests(NAME)]' modules under src
    (and its subfolders, e.g. rust/kernel_ext/)."""
    want = {}
    paths = sorted(os.path.join(d, n) for d, _, names in os.walk(src) for n in names)
    for path in paths:
        if not path.endswith(".rs"):
            continue
        with open(path) as f:
            text = f.read()
        m = re.search(r"#\[\s*(?:kernel::macros::)?kunit_tests\((\w+)\)\s*\]", text)
        if m:
            want[m.group(1)] = len(re.findall(r"^\s*#\[test\]", text[m.end():], re.M))
    return want


def judge(lines, mode="check", expect=None, kunit=None, out=print, may_skip=None):
    """Judge the guest output; returns (suites, splats, done)."""
    suites, cur, splats, done = [], None, [], False
    quiet = False
    for line in lines:
        # A saved trace (demo.sh) is for scripts/demo-traces.sh, not the
        # terminal; its lines are judged like any other.
        if line.startswith("# tlbrace-trace-begin"):
            quiet = True
        elif line.startswith("# tlbrace-trace-end"):
            quiet = False
            continue
        if SPLAT.search(line):
            splats.append(line)
        if line.startswith("# tlbrace-done"):
            done = True
            continue
        m = SUITE.match(line)
        if m or EXIT.match(line):
            # A trace cut short (its step died) ends with its suite.
            quiet = False
        if m:
            if cur:
                cur.fail("no exit marker")
            cur = Suite(m.group(1))
            suites.append(cur)
            out(f"# ==== {cur.name}")
            continue
        m = EXIT.match(line)
        if m and cur:
            if m.group(1) != cur.name:
                cur.fail(f"exit marker of {m.group(1)}")
            cur.rc = int(m.group(2))
            cur = None
            continue
        if not quiet:
            out(line)
        if not cur or mode != "check":
            continue
        if line.startswith("Bail out!"):
            cur.bailed = True
            continue
        m = PLAN.match(line)
        if m:
            cur.plans.append(int(m.group(1)))
            if m.group(2):
                cur.skip_plan = m.group(2)
            continue
        m = RESULT.match(line)
        if m:
            cur.numbers.append(int(m.group(2)))
            desc = m.group(3)
            cur.cases.append(desc)
            if m.group(1) == "not ok":
                cur.fail(f"not ok {m.group(2)} {desc}")
            elif re.search(r"#\s*SKIP", desc, re.I):
                cur.skipped += 1
            else:
                cur.passed += 1
    if cur:
        cur.fail("never finished")
        cur.rc = cur.rc if cur.rc is not None else -1

    if mode == "check":
        check_tap(suites, expect or [], kunit, may_skip or {})
    else:
        if not suites:
            s = Suite(mode)
            s.fail("ran no step")
            suites.append(s)
        for s in suites:
            if s.rc not in (0, None):
                s.fail(f"exited with {s.rc}")
            elif not s.failures:
                s.passed += 1
    return suites, splats, done


def check_tap(suites, expect, kunit, may_skip):
    """The structural checks of a check run, added to the suites' failures.
    A suite of may_skip (the kernel under test cannot run it) may skip as a
    whole ('1..0 # SKIP'); it then counts as one skip, with the reason."""
    seen = {}
    for s in suites:
        seen.setdefault(s.name, []).append(s)
        if (s.name in may_skip and s.plans == [0] and s.skip_plan and not s.numbers
                and s.rc in (0, KSFT_SKIP) and len(seen[s.name]) == 1):
            s.skipped = 1
            s.failures = []
            s.notes = [f"skipped as expected: {may_skip[s.name]}"]
            continue
        if len(seen[s.name]) > 1:
            s.fail("ran more than once")
        if s.name not in expect:
            s.fail("not an expected suite")
        if len(s.plans) != 1:
            s.fail("no TAP plan" if not s.plans else f"{len(s.plans)} TAP plans")
        plan = s.plans[0] if s.plans else 0
        if not s.numbers:
            s.fail("empty: no test result")
        dups = sorted({n for n in s.numbers if s.numbers.count(n) > 1})
        if dups:
            s.fail(f"duplicate result number(s) {dups}")
        outside = sorted({n for n in s.numbers if n < 1 or n > plan})
        if s.plans and outside:
            s.fail(f"result number(s) {outside} outside the plan 1..{plan}")
        missing = plan - len(set(s.numbers) & set(range(1, plan + 1)))
        if missing > 0:
            s.failed += missing - 1
            s.fail(f"{missing} planned case(s) never reported")
        if s.bailed:
            s.fail("bailed out")
        if s.rc is None:
            s.fail("never finished")
        elif s.rc not in (0, KSFT_SKIP) and not s.failures:
            s.fail(f"exited with {s.rc}")
    for name in expect:
        if name not in seen:
            s = Suite(name)
            s.fail("never ran")
            suites.append(s)
    if kunit is not None and "kunit" in seen and "kunit" not in may_skip:
        check_kunit(seen["kunit"][0], kunit)


def check_kunit(s, want):
    """Every declared KUnit suite reported exactly its number of cases."""
    got = {}
    for desc in s.cases:
        name = desc.split(".", 1)[0] if "." in desc else desc
        got[name] = got.get(name, 0) + 1
    for name, n in sorted(want.items()):
        if got.get(name, 0) != n:
            s.fail(f"KUnit suite {name}: {got.get(name, 0)} case(s) reported, {n} declared")
    for name in sorted(set(got) - set(want)):
        s.fail(f"KUnit suite {name} is not declared in the module's source")


def follow(paths, pid):
    """Yield (index, line) of files that are still being written by pid."""
    files = [None] * len(paths)
    bufs = [""] * len(paths)
    while True:
        progress = False
        for i, p in enumerate(paths):
            if files[i] is None:
                if not os.path.exists(p):
                    continue
                files[i] = open(p, errors="replace")
            chunk = files[i].readline()
            while chunk:
                progress = True
                bufs[i] += chunk
                if bufs[i].endswith("\n"):
                    yield i, bufs[i].rstrip("\r\n")
                    bufs[i] = ""
                chunk = files[i].readline()
        if not progress:
            if not pid or not alive(pid):
                for i, f in enumerate(files):
                    rest = bufs[i] + (f.read() if f else "")
                    for line in rest.splitlines():
                        yield i, line.rstrip("\r")
                return
            time.sleep(0.05)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def guest_lines(paths, pid, klog_splats):
    """The test output lines; kernel log lines are shown when they are
    splats (as they happen) and scanned for splats."""
    for i, line in follow(paths, pid):
        if i == 0:
            yield line
        elif SPLAT.search(line):
            klog_splats.append(line)
            print(f"# kernel: {line}", flush=True)


def report(suites, splats, done, mode):
    kernel = Suite("kernel-log")
    if splats:
        kernel.fail(f"{len(splats)} splat line(s)")
    else:
        kernel.passed = 1
    guest = Suite("guest")
    if done:
        guest.passed = 1
    else:
        guest.fail("the guest did not finish (crash or timeout)")
    suites = suites + [kernel, guest]
    lines = ["#", f"# {'suite':<22} {'passed':>7} {'failed':>7} {'skipped':>8}"]
    for s in suites:
        lines.append(f"# {s.name:<22} {s.passed:>7} {s.failed:>7} {s.skipped:>8}")
    for s in suites:
        for n in s.notes:
            lines.append(f"# {s.name}: {n}")
        for f in s.failures:
            lines.append(f"# FAILED {s.name}: {f}")
    if splats:
        lines.append("# kernel splat in the guest log:")
        lines += [f"#   {line}" for line in splats[:40]]
    p = sum(s.passed for s in suites)
    f = sum(s.failed for s in suites)
    k = sum(s.skipped for s in suites)
    lines.append(f"{p} passed, {f} failed, {k} skipped")
    return lines, f == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", default="check", choices=["check", "demo", "bench"])
    ap.add_argument("--follow", required=True, help="the guest's test output (serial 0)")
    ap.add_argument("--klog", help="the guest's kernel console (serial 1)")
    ap.add_argument("--pid", type=int, default=0, help="the writer to wait for (none: read the logs as they are)")
    ap.add_argument("--suites", help="the suite list (selftests/guest/suites)")
    ap.add_argument("--only", default="", help="comma-separated suites (SUITES=)")
    ap.add_argument("--kunit-src", help="the module's Rust sources, for KUnit cases")
    ap.add_argument("--may-skip", action="append", default=[], metavar="SUITE=REASON",
                    help="the kernel under test cannot run SUITE: it may skip as a whole")
    ap.add_argument("--summary-file", help="also write the summary here")
    args = ap.parse_args()

    only = [s for s in args.only.split(",") if s]
    expect = expected_suites(args.suites, only) if args.suites else None
    if args.mode == "check" and expect is None:
        ap.error("--suites is required in check mode")
    kunit = expected_kunit(args.kunit_src) if args.kunit_src else None

    klog_splats = []
    paths = [args.follow] + ([args.klog] if args.klog else [])
    lines = guest_lines(paths, args.pid, klog_splats)
    may_skip = dict(m.split("=", 1) if "=" in m else (m, "") for m in args.may_skip)
    suites, splats, done = judge(lines, args.mode, expect, kunit,
                                 out=lambda l: print(l, flush=True), may_skip=may_skip)
    summary, ok = report(suites, splats + klog_splats, done, args.mode)
    print("\n".join(summary))
    if args.summary_file:
        with open(args.summary_file, "w") as f:
            f.write(summary[-1] + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
