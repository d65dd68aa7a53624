#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tests of scripts/tap-summary.py, the host's judge of a guest run.

Each check of the judge is fed a guest log that breaks exactly one rule and
must fail it; a well-formed log must pass.  Run by `make check-harness` (and
so by `make check`) before the VM boots.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
spec = importlib.util.spec_from_file_location("tap_summary", os.path.join(HERE, "tap-summary.py"))
ts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ts)

EXPECT = ["setup", "kunit", "tlbrace_basic", "teardown"]
KUNIT = {"tlbrace_a": 2, "tlbrace_b": 1}


def suite(name, body, rc=0):
    return [f"# tlbrace-suite: {name}", *body, f"# tlbrace-exit: {name} {rc}"]


def tap(*results, plan=None):
    plan = len(results) if plan is None else plan
    return ["TAP version 13", f"1..{plan}", *results]


def good_run(**replace):
    parts = {
        "setup": suite("setup", tap("ok 1 guest has 2 CPUs", "ok 2 insmod")),
        "kunit": suite("kunit", tap("ok 1 tlbrace_a.one", "ok 2 tlbrace_a.two",
                                    "ok 3 tlbrace_b.one")),
        "tlbrace_basic": suite("tlbrace_basic", tap("ok 1 version", "ok 2 x # SKIP no y")),
        "teardown": suite("teardown", tap("ok 1 rmmod tlbrace")),
    }
    parts.update(replace)
    lines = []
    for name in EXPECT:
        lines += parts.get(name) or []
    return lines + ["# tlbrace-done"]


def verdict(lines, mode="check", may_skip=None):
    suites, splats, done = ts.judge(lines, mode, EXPECT, KUNIT, out=lambda l: None,
                                    may_skip=may_skip)
    summary, ok = ts.report(suites, splats, done, mode)
    return ok, "\n".join(summary)


class CheckRun(unittest.TestCase):
    def assertFails(self, lines, why, mode="check"):
        ok, summary = verdict(lines, mode)
        self.assertFalse(ok, f"passed, expected a failure with '{why}':\n{summary}")
        self.assertIn(why, summary)

    def test_good_run_passes(self):
        ok, summary = verdict(good_run())
        self.assertTrue(ok, summary)
        self.assertTrue(summary.endswith("9 passed, 0 failed, 1 skipped"), summary)

    def test_missing_run_tests_fails(self):
        self.assertFails(["/tests/run_tests.sh: not found", "# tlbrace-done"], "never ran")

    def test_missing_suite_fails(self):
        self.assertFails(good_run(tlbrace_basic=[]), "tlbrace_basic: never ran")

    def test_silent_suite_fails(self):
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", [])), "no TAP plan")
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", [])), "empty")

    def test_planless_suite_fails(self):
        body = ["ok 1 version", "ok 2 other"]
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "no TAP plan")

    def test_empty_plan_fails(self):
        body = ["TAP version 13", "1..0"]
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "empty")

    def test_duplicate_number_fails(self):
        body = tap("ok 1 a", "ok 1 b")
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "duplicate")

    def test_out_of_plan_number_fails(self):
        body = tap("ok 1 a", "ok 3 b", plan=2)
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "outside the plan")

    def test_missing_case_fails(self):
        body = tap("ok 1 a", plan=2)
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "never reported")

    def test_not_ok_fails(self):
        body = tap("ok 1 a", "not ok 2 b")
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "not ok 2 b")

    def test_nonzero_exit_fails(self):
        body = tap("ok 1 a")
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body, rc=1)),
                         "exited with 1")

    def test_bail_out_fails(self):
        body = tap("ok 1 a", plan=1) + ["Bail out! no device"]
        self.assertFails(good_run(tlbrace_basic=suite("tlbrace_basic", body)), "bailed out")

    def test_unfinished_suite_fails(self):
        lines = good_run()
        lines = lines[:lines.index("# tlbrace-exit: tlbrace_basic 0")]
        self.assertFails(lines, "never finished")

    def test_unexpected_suite_fails(self):
        lines = good_run() [:-1] + suite("surprise", tap("ok 1 a")) + ["# tlbrace-done"]
        self.assertFails(lines, "not an expected suite")

    def test_suite_twice_fails(self):
        lines = good_run()[:-1] + suite("tlbrace_basic", tap("ok 1 a")) + ["# tlbrace-done"]
        self.assertFails(lines, "ran more than once")

    def test_kunit_case_missing_fails(self):
        body = tap("ok 1 tlbrace_a.one", "ok 2 tlbrace_b.one")
        self.assertFails(good_run(kunit=suite("kunit", body)), "tlbrace_a: 1 case(s) reported, 2")

    def test_kunit_suite_missing_fails(self):
        body = tap("ok 1 tlbrace_a.one", "ok 2 tlbrace_a.two")
        self.assertFails(good_run(kunit=suite("kunit", body)), "tlbrace_b: 0 case(s)")

    def test_kunit_unknown_suite_fails(self):
        body = tap("ok 1 tlbrace_a.one", "ok 2 tlbrace_a.two", "ok 3 tlbrace_b.one",
                   "ok 4 tlbrace_c.one")
        self.assertFails(good_run(kunit=suite("kunit", body)), "tlbrace_c is not declared")

    def test_guest_not_done_fails(self):
        self.assertFails(good_run()[:-1], "did not finish")

    def test_splats_fail(self):
        for line in [
            "WARNING: CPU: 1 PID: 77 at mm/mmu_notifier.c:251 x+0x1/0x2",
            "BUG: unable to handle page fault for address: ffffffffc0201000",
            "rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... }",
            "rcu: INFO: rcu_preempt self-detected stall on CPU",
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
            "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [tlbrace_races:91]",
            "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "unreferenced object 0xffff888003a1c000 (size 4096):",
            "INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
            "WARNING: possible circular locking dependency detected",
            "** 12 printk messages dropped **",
        ]:
            with self.subTest(line=line):
                self.assertFails(good_run()[:-1] + [line, "# tlbrace-done"], "splat")

    def test_whole_suite_skip_fails_unless_allowed(self):
        body = ["TAP version 13", "1..0 # SKIP no test_hmm"]
        lines = good_run(tlbrace_basic=suite("tlbrace_basic", body, rc=4))
        self.assertFails(lines, "empty")
        ok, summary = verdict(lines, may_skip={"tlbrace_basic": "no test_hmm.ko in KDIR"})
        self.assertTrue(ok, summary)
        self.assertIn("skipped as expected: no test_hmm.ko in KDIR", summary)
        self.assertTrue(summary.endswith("8 passed, 0 failed, 1 skipped"), summary)

    def test_allowed_skip_still_needs_the_suite(self):
        ok, summary = verdict(good_run(tlbrace_basic=[]), may_skip={"tlbrace_basic": "x"})
        self.assertFalse(ok)
        self.assertIn("never ran", summary)

    def test_benign_kernel_lines_pass(self):
        lines = good_run()[:-1] + ["tlbrace: ABI version 1", "random: crng init done",
                                   "# tlbrace-done"]
        ok, summary = verdict(lines)
        self.assertTrue(ok, summary)


class DemoBenchRun(unittest.TestCase):
    def test_good_steps_pass(self):
        lines = suite("load", []) + suite("demo", ["hello"]) + ["# tlbrace-done"]
        ok, summary = verdict(lines, "demo")
        self.assertTrue(ok, summary)

    def test_no_step_fails(self):
        ok, summary = verdict(["/tests/demo.sh: not found", "# tlbrace-done"], "demo")
        self.assertFalse(ok)
        self.assertIn("ran no step", summary)

    def test_saved_trace_is_quiet_but_judged(self):
        trace = ["# tlbrace-trace-begin t", "# tracer: nop", "  x-1 [000] 1.0: tlbrace_fill: dev=1",
                 "# tlbrace-trace-end"]
        lines = suite("load", []) + trace + ["after", "# tlbrace-done"]
        shown = []
        ts.judge(lines, "demo", out=shown.append)
        self.assertNotIn("# tracer: nop", shown)
        self.assertNotIn("# tlbrace-trace-end", shown)
        self.assertIn("after", shown)
        splat = trace[:2] + ["BUG: kernel NULL pointer dereference"] + trace[2:]
        ok, summary = verdict(suite("load", []) + splat + ["# tlbrace-done"], "demo")
        self.assertFalse(ok, summary)

    def test_trace_without_its_end_is_quiet_only_to_its_suite(self):
        cut = ["# tlbrace-trace-begin t", "# tracer: nop"]
        lines = suite("demo", cut, rc=1) + suite("bench", ["after"]) + ["# tlbrace-done"]
        shown = []
        ts.judge(lines, "demo", out=shown.append)
        self.assertNotIn("# tracer: nop", shown)
        self.assertIn("after", shown)

    def test_failed_step_fails(self):
        lines = suite("load", []) + suite("bench", ["die: mmap"], rc=1) + ["# tlbrace-done"]
        ok, summary = verdict(lines, "bench")
        self.assertFalse(ok)
        self.assertIn("bench: exited with 1", summary)


class Expectations(unittest.TestCase):
    def test_suite_list(self):
        path = os.path.join(TOP, "selftests", "guest", "suites")
        full = ts.expected_suites(path, [])
        self.assertEqual(full[0], "setup")
        self.assertEqual(full[-1], "teardown")
        self.assertIn("kunit", full)
        self.assertEqual(ts.expected_suites(path, ["kunit"]), ["setup", "kunit", "teardown"])
        with self.assertRaises(SystemExit):
            ts.expected_suites(path, ["no_such_suite"])

    def test_kunit_from_source(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "x.rs"), "w") as f:
                f.write("fn a() {}\n#[kernel::macros::kunit_tests(tlbrace_x)]\nmod tests {\n"
                        "    #[test]\n    fn one() {}\n    #[test]\n    fn two() {}\n}\n")
            with open(os.path.join(d, "y.rs"), "w") as f:
                f.write("fn no_tests() {}\n")
            os.mkdir(os.path.join(d, "sub"))
            with open(os.path.join(d, "sub", "z.rs"), "w") as f:
                f.write("#[kunit_tests(tlbrace_z)]\nmod tests {\n    #[test]\n    fn one() {}\n}\n")
            self.assertEqual(ts.expected_kunit(d), {"tlbrace_x": 2, "tlbrace_z": 1})
        self.assertTrue(ts.expected_kunit(os.path.join(TOP, "rust")))


class EndToEnd(unittest.TestCase):
    def run_main(self, lines, klog=()):
        with tempfile.TemporaryDirectory() as d:
            log, kl = os.path.join(d, "vm.log"), os.path.join(d, "vm.klog")
            with open(log, "w") as f:
                f.write("\n".join(lines) + "\n")
            with open(kl, "w") as f:
                f.write("".join(f"{line}\r\n" for line in klog))
            suites = os.path.join(d, "suites")
            with open(suites, "w") as f:
                f.write("# list\nkunit ./kunit.sh\ntlbrace_basic ./tlbrace_basic\n")
            p = subprocess.run([sys.executable, os.path.join(HERE, "tap-summary.py"),
                                "--follow", log, "--klog", kl, "--suites", suites],
                               capture_output=True, text=True, timeout=60)
            return p.returncode, p.stdout.strip().splitlines()[-1]

    def test_exit_status_and_last_line(self):
        lines = good_run(kunit=suite("kunit", tap("ok 1 tlbrace_z.one")))
        self.assertEqual(self.run_main(lines), (0, "7 passed, 0 failed, 1 skipped"))
        rc, last = self.run_main(lines[:-1])
        self.assertEqual(rc, 1)
        self.assertRegex(last, r"^\d+ passed, [1-9]\d* failed, \d+ skipped$")

    def test_splat_in_kernel_log_fails(self):
        lines = good_run(kunit=suite("kunit", tap("ok 1 tlbrace_z.one")))
        rc, last = self.run_main(lines, klog=["WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1"])
        self.assertEqual((rc, last), (1, "6 passed, 1 failed, 1 skipped"))


if __name__ == "__main__":
    unittest.main(verbosity=1)
