#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Follow the guest's serial log, print its TAP output and judge the run.

The guest delimits each suite with '# tlbrace-suite: NAME' and
'# tlbrace-exit: NAME RC', dumps dmesg between '# tlbrace-dmesg-begin/end'
and prints '# tlbrace-done' last.  The run passes only if every suite passed
or skipped, every planned case reported, the guest finished, and the kernel
log holds no splat.  The last line is 'N passed, N failed, N skipped'.
"""
import argparse
import os
import re
import sys
import time

SPLAT = re.compile(
    r"WARNING:|BUG:|Oops|Call Trace:|Kernel panic|kernel BUG|general protection fault|"
    r"UBSAN:|INFO: task .* blocked|self-detected stall|detected stalls|possible circular locking|"
    r"inconsistent lock state|possible recursive locking"
)
RESULT = re.compile(r"^(not ok|ok)\s+\d+\s*(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)")


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0
        self.plan = None
        self.rc = None
        self.failures = []

    def reported(self):
        return self.passed + self.failed + self.skipped


def follow(path, pid):
    """Yield the lines of a file that is still being written by pid."""
    while not os.path.exists(path):
        time.sleep(0.1)
    with open(path, errors="replace") as f:
        buf = ""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    yield buf.rstrip("\n")
                    buf = ""
                continue
            if pid and not alive(pid):
                rest = f.read()
                for line in (buf + rest).splitlines():
                    yield line
                return
            time.sleep(0.05)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="check")
    ap.add_argument("--follow", required=True, help="serial log to read")
    ap.add_argument("--pid", type=int, default=0, help="writer to wait for")
    args = ap.parse_args()

    suites, cur, splats, done, in_dmesg = [], None, [], False, False
    for line in follow(args.follow, args.pid):
        if SPLAT.search(line):
            splats.append(line)
        if line.startswith("# tlbrace-dmesg-begin"):
            in_dmesg = True
            continue
        if line.startswith("# tlbrace-dmesg-end"):
            in_dmesg = False
            continue
        if in_dmesg:
            continue
        if line.startswith("# tlbrace-done"):
            done = True
            continue
        m = re.match(r"^# tlbrace-suite: (\S+)", line)
        if m:
            cur = Suite(m.group(1))
            suites.append(cur)
            print(f"# ==== {cur.name}", flush=True)
            continue
        m = re.match(r"^# tlbrace-exit: (\S+) (\d+)", line)
        if m and cur:
            cur.rc = int(m.group(2))
            cur = None
            continue
        print(line, flush=True)
        if not cur:
            continue
        m = PLAN.match(line)
        if m:
            cur.plan = int(m.group(1))
            continue
        m = RESULT.match(line)
        if m:
            directive = m.group(2)
            if m.group(1) == "not ok":
                cur.failed += 1
                cur.failures.append(directive)
            elif re.search(r"#\s*SKIP", directive, re.I):
                cur.skipped += 1
            else:
                cur.passed += 1

    if args.mode != "check":
        for s in splats:
            print(f"splat: {s}")
        return 1 if splats or not done else 0

    # Cases a suite planned but never reported (it crashed or hung), and
    # suites that failed without a failing case, count as failures.
    for s in suites:
        if s.plan is not None and s.reported() < s.plan:
            missing = s.plan - s.reported()
            s.failed += missing
            s.failures.append(f"{missing} planned case(s) never reported")
        if s.rc not in (0, 4) and not s.failures:
            s.failed += 1
            s.failures.append(f"exited with {s.rc}" if s.rc is not None else "never finished")

    kernel = Suite("kernel-log")
    if splats:
        kernel.failed = 1
        kernel.failures.append(f"{len(splats)} splat line(s)")
    else:
        kernel.passed = 1
    guest = Suite("guest")
    if done:
        guest.passed = 1
    else:
        guest.failed = 1
        guest.failures.append("the guest did not finish (crash or timeout)")
    suites += [kernel, guest]

    print("#")
    print(f"# {'suite':<16} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for s in suites:
        print(f"# {s.name:<16} {s.passed:>7} {s.failed:>7} {s.skipped:>8}")
    for s in suites:
        for f in s.failures:
            print(f"# FAILED {s.name}: {f}")
    if splats:
        print("# kernel splat in the guest log:")
        for line in splats[:40]:
            print(f"#   {line}")
    p = sum(s.passed for s in suites)
    f = sum(s.failed for s in suites)
    k = sum(s.skipped for s in suites)
    print(f"{p} passed, {f} failed, {k} skipped")
    return 0 if f == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
