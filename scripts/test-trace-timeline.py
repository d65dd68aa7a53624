#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tests of scripts/trace-timeline.py, the SVG timeline of a race's trace.

The sample is a made-up run of overlapping_dontneed: two gathers, a parked
range_end and one stale read.  The picture is read back with xml.etree:
each drawn element is a <g> whose class names its kind and whose <title>
holds its trace line(s).  Run by `make check-harness`.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "trace-timeline.py")
spec = importlib.util.spec_from_file_location("trace_timeline", SCRIPT)
tt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tt)

SVG = "{http://www.w3.org/2000/svg}"

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 12/12   #P:2
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
SAMPLE = HEADER + """\
         tlbrace-97      [001] .....   41.512345: tracing_mark_write: iteration 0: overlapping_dontneed under batched/naive
         tlbrace-97      [001] .....   41.512400: tlbrace_fill: dev=3 addr=0x7f0000001000 pfn=0x1234 rw from=fault
         tlbrace-97      [001] .....   41.512410: tlbrace_access: dev=3 addr=0x7f0000001000 read value=0xd1 outcome=fault
         tlbrace-98      [000] .....   41.513000: tracing_mark_write: A: madvise(MADV_DONTNEED) pages 1-2
         tlbrace-98      [000] .....   41.513010: tlbrace_notifier: dev=3 range_start start=0x7f0000001000 end=0x7f0000003000 event=clear dropped=0
         tlbrace-98      [000] .....   41.513020: tlbrace_gather_open: dev=3 gather=1 start=0x7f0000001000 end=0x7f0000003000 cleared=2
         tlbrace-98      [000] .....   41.513100: tlbrace_inject: dev=3 arm=0 point=range_end_enter fire start=0x7f0000001000
         tlbrace-98      [000] .....   41.513110: tlbrace_inject: dev=3 arm=0 point=range_end_enter parked start=0x7f0000001000
         tlbrace-99      [001] .....   41.514000: tlbrace_gather_open: dev=3 gather=2 start=0x7f0000002000 end=0x7f0000004000 cleared=1
         tlbrace-99      [001] d....   41.514100: tlb_flush: pages:2 reason:remote shootdown (1)
         tlbrace-99      [001] .....   41.514200: tlbrace_gather_close: dev=3 gather=2 start=0x7f0000002000 end=0x7f0000004000 flush=cleared waited=0 flushed=1
         tlbrace-97      [001] .....   41.520000: tlbrace_access: dev=3 addr=0x7f0000002000 read value=0xd2 outcome=hit|stale
         tlbrace-97      [001] .....   41.520001: tlbrace_stale: dev=3 addr=0x7f0000002000 read through a translation the clear invalidation removed
         tlbrace-98      [000] .....   41.820000: tlbrace_inject: dev=3 arm=0 point=range_end_enter released start=0x7f0000001000
         tlbrace-98      [000] .....   41.820100: tlbrace_gather_close: dev=3 gather=1 start=0x7f0000001000 end=0x7f0000003000 flush=cleared waited=0 flushed=2
         tlbrace-97      [001] .....   41.830000: tracing_mark_write: verdict: VIOLATION: device read 0xd2, the old page 2
"""
MARKERS = ["iteration 0: overlapping_dontneed under batched/naive",
           "A: madvise(MADV_DONTNEED) pages 1-2",
           "verdict: VIOLATION: device read 0xd2, the old page 2"]


def ev(ts, body, task="tlbrace-97", cpu=1):
    return f"  {task}  [{cpu:03d}] .....  {ts:.6f}: {body}\n"


def render(text, **kw):
    """(root element, SVG text, trace) of a trace given as text."""
    trace = tt.parse_trace(text.splitlines(keepends=True))
    svg, _ = tt.render(trace, kw.pop("title", "t"), "sample.txt", **kw)
    return ET.fromstring(svg), svg, trace


def of_kind(root, kind):
    return [e for e in root.iter() if kind in e.get("class", "").split()]


def texts(el):
    return " ".join(t.text or "" for t in el.iter(SVG + "text"))


def title(el):
    return el.find(SVG + "title").text


def extent(g):
    r = g.find(SVG + "rect")
    return float(r.get("x")), float(r.get("x")) + float(r.get("width"))


class Sample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root, cls.svg, _ = render(SAMPLE)

    def test_valid_svg_with_desc(self):
        self.assertEqual(self.root.tag, SVG + "svg")
        self.assertEqual(self.root.get("version"), "1.1")
        desc = self.root.find(SVG + "desc").text
        self.assertIn("source: sample.txt", desc)
        self.assertIn("16 events", desc)
        self.assertEqual(self.root.find(SVG + "title").text, "t")

    def test_a_lane_per_cpu(self):
        lanes = of_kind(self.root, "lane")
        self.assertEqual([texts(l) for l in lanes], ["CPU 0", "CPU 1"])

    def test_one_stale_access_in_red(self):
        stale = of_kind(self.root, "stale")
        self.assertEqual(len(stale), 1)
        self.assertIn("tlbrace_stale: dev=3 addr=0x7f0000002000", title(stale[0]))
        self.assertEqual(stale[0].find(SVG + "polygon").get("fill"), tt.COLOR["stale"])
        self.assertIn("STALE read 0x7f0000002000", texts(stale[0]))

    def test_gathers_span_open_to_close(self):
        g = {}
        for el in of_kind(self.root, "gather"):
            n = "1" if "gather=1" in title(el) else "2"
            g[n] = extent(el)
            self.assertIn("tlbrace_gather_open", title(el))
            self.assertIn("tlbrace_gather_close", title(el))
        self.assertEqual(sorted(g), ["1", "2"])
        self.assertLess(g["1"][0], g["2"][0])       # 1 opened first
        self.assertLess(g["2"][1], g["1"][1])       # 2 closed first
        labels = " ".join(texts(el) for el in of_kind(self.root, "gather"))
        self.assertIn("gather 2: flush=cleared flushed=1", labels)

    def test_bars_are_in_the_lane_where_they_began(self):
        # Also a gather whose task migrated from CPU 0 to CPU 1 before closing.
        moved = (ev(50.0, "tlbrace_gather_open: dev=1 gather=7 start=0x1000 end=0x2000 cleared=1",
                    cpu=0)
                 + ev(50.001, "tlbrace_gather_close: dev=1 gather=7 start=0x1000 end=0x2000 "
                              "flush=cleared waited=0 flushed=1"))
        for root in (self.root, render(moved)[0]):
            lanes = {texts(l): l.find(SVG + "rect") for l in of_kind(root, "lane")}
            for el in of_kind(root, "gather") + of_kind(root, "park"):
                lane = lanes["CPU 0" if "[000]" in title(el).splitlines()[0] else "CPU 1"]
                y, top = float(el.find(SVG + "rect").get("y")), float(lane.get("y"))
                self.assertTrue(top <= y < top + float(lane.get("height")), title(el))

    def test_one_parked_interval(self):
        park = of_kind(self.root, "park")
        self.assertEqual(len(park), 1)
        self.assertIn("parked", texts(park[0]))
        self.assertEqual(park[0].find(SVG + "rect").get("fill"), "url(#hatch)")
        self.assertIn(" parked ", title(park[0]))
        self.assertIn(" released ", title(park[0]))

    def test_markers_tell_the_story(self):
        found = [texts(m) for m in of_kind(self.root, "marker")]
        self.assertEqual(len(found), 3)
        for text in MARKERS:
            self.assertTrue(any(text in f for f in found), text)

    def test_long_gap_is_compressed(self):
        self.assertLessEqual(float(self.root.get("width")), 1300)
        breaks = [texts(b) for b in of_kind(self.root, "break")]
        self.assertTrue(any("300" in b for b in breaks), breaks)
        # Compressed, gather 2's 0.2 ms are readable (plain: under 1 px).
        x0, x1 = extent([el for el in of_kind(self.root, "gather") if "gather=2" in title(el)][0])
        self.assertGreater(x1 - x0, 20)
        for el in of_kind(self.root, "gather") + of_kind(self.root, "park"):
            self.assertLessEqual(extent(el)[1], tt.W)

    def test_x_is_monotonic(self):
        times = sorted({e.ts for e in tt.parse_trace(SAMPLE.splitlines())["events"]})
        xmap = tt.TimeMap(times, 2e-3, tt.LEFT, tt.W - tt.RIGHT)
        probe = [times[0] + i * (times[-1] - times[0]) / 997 for i in range(998)] + times
        xs = [xmap(t) for t in sorted(probe)]
        self.assertEqual(xs, sorted(xs))
        self.assertEqual(xs[0], tt.LEFT)
        self.assertLessEqual(xs[-1], tt.W - tt.RIGHT)

    def test_items_name_their_task(self):
        for kind in ["fill", "access", "stale", "notifier", "gather", "park", "marker"]:
            for el in of_kind(self.root, kind):
                self.assertRegex(texts(el), r"tlbrace-9[789]", kind)

    def test_deterministic(self):
        self.assertEqual(render(SAMPLE)[1], self.svg)
        # Across processes too, whatever the seed of str hashes.
        text = SAMPLE + "".join(ev(41.9, f"{name}: x") for name in [
            "sched_switch", "sched_wakeup", "irq_handler_entry", "softirq_raise",
            "workqueue_execute_start", "mm_page_alloc"])
        outs = set()
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "trace.txt")
            with open(src, "w") as f:
                f.write(text)
            for seed in range(4):
                out = os.path.join(d, f"{seed}.svg")
                subprocess.run([sys.executable, SCRIPT, src, out], check=True, capture_output=True,
                               env=dict(os.environ, PYTHONHASHSEED=str(seed)), timeout=60)
                with open(out) as f:
                    outs.add(f.read())
        self.assertEqual(len(outs), 1)


def label_rows(root, kinds):
    """{y: [(x0, x1)]} of the point labels of these kinds."""
    rows = {}
    for kind in kinds:
        for t in (t for g in of_kind(root, kind) for t in g.iter(SVG + "text")):
            x, w = float(t.get("x")), len(t.text) * tt.CHAR_W
            rows.setdefault(t.get("y"), []).append((x, x + w) if t.get("text-anchor") == "start"
                                                   else (x - w, x))
    return rows


class Layout(unittest.TestCase):
    def test_overlapping_labels_get_rows_of_their_own(self):
        burst = "".join(ev(1.0, f"tlbrace_fill: dev=1 addr=0x{i:x}000 pfn=0x1 rw from=dpt")
                        for i in range(6))
        root, _, _ = render(burst)
        self.assertEqual(len(label_rows(root, ["fill"])), 6)    # six at one x: six rows
        lane = float(of_kind(root, "lane")[0].find(SVG + "rect").get("height"))
        self.assertGreaterEqual(lane, 6 * tt.ROW_H)

    def test_no_labels_overlap_in_the_sample(self):
        root, _, _ = render(SAMPLE)
        for y, spans in label_rows(root, ["fill", "access", "stale", "notifier", "inject",
                                          "tlb_flush", "marker"]).items():
            spans.sort()
            for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
                self.assertLessEqual(a1, b0, f"labels overlap at y={y}")


class Parsing(unittest.TestCase):
    def test_task_names_with_spaces_and_dashes(self):
        for line, task, pid, cpu in [
            ("   kworker/u8:1-45      [000] d..2.   1.000000: tlb_flush: pages:1 reason:x (2)",
             "kworker/u8:1", 45, 0),
            ("  my prog-x-101  [003] .....  2.5: tracing_mark_write: B returned", "my prog-x", 101, 3),
            ("<idle>-0 [001] d.h1. 3.000001: tlb_flush: pages:-1 reason:y (1)", "<idle>", 0, 1),
        ]:
            with self.subTest(line=line):
                e = tt.parse_line(line)
                self.assertEqual((e.task, e.pid, e.cpu), (task, pid, cpu))
        root, svg, _ = render(ev(1.0, "tlbrace_fill: dev=1 addr=0x1000 pfn=0x1 rw from=dpt",
                                 task="my prog-x-101"))
        self.assertIn("my prog-x-101", texts(of_kind(root, "fill")[0]))

    def test_unclosed_gather_extends_to_the_end(self):
        trace = (ev(1.0, "tlbrace_gather_open: dev=1 gather=5 start=0x1000 end=0x2000 cleared=1")
                 + ev(1.0005, "tlbrace_fill: dev=1 addr=0x1000 pfn=0x1 rw from=dpt", cpu=0)
                 + ev(1.001, "tracing_mark_write: the end", cpu=0))
        root, _, _ = render(trace)
        g = of_kind(root, "gather")
        self.assertEqual(len(g), 1)
        self.assertIn("open", g[0].get("class").split())
        self.assertIn("gather 5: open", texts(g[0]))
        end = float(of_kind(root, "marker")[0].find(SVG + "line").get("x1"))
        self.assertAlmostEqual(extent(g[0])[1], end, places=0)

    def test_bad_lines_are_skipped_and_counted(self):
        bad = ("garbage\n"
               "         tlbrace-97      [001] .....   41.5\n"
               "         tlbrace-99      [001] .....   41.514200: tlbrace_gather_close: dev=3 gath\n")
        root, _, trace = render(SAMPLE + bad)
        self.assertEqual(len(trace["bad"]), 3)
        self.assertEqual(len(trace["events"]), 16)
        self.assertIn("3 bad lines skipped", root.find(SVG + "desc").text)

    def test_text_is_escaped(self):
        root, _, _ = render(SAMPLE + ev(42.0, "tracing_mark_write: a <&> \"b\" 'c' \x01"),
                            title='x & <y>')
        self.assertTrue(any("a <&> \"b\" 'c'" in texts(m) for m in of_kind(root, "marker")))
        self.assertEqual(root.find(SVG + "title").text, "x & <y>")

    def test_other_events_are_ignored_and_counted(self):
        other = ev(41.6, "sched_switch: prev_comm=a prev_pid=1 ==> next_comm=b next_pid=2") * 2
        _, svg, trace = render(SAMPLE + other)
        self.assertEqual(len(trace["events"]), 16)
        self.assertIn("<!-- ignored events: sched_switch: 2 -->", svg)

    def test_notifier_labels_show_the_range(self):
        root, _, _ = render(
            ev(1.0, "tlbrace_notifier: dev=1 range_start start=0x7f0000001000 end=0x7f0000003000 "
                    "event=unmap dropped=0")
            + ev(1.1, "tlbrace_notifier: dev=1 release start=0x0 end=0xffffffffffffffff "
                      "event=release dropped=3"))
        labels = [texts(n) for n in of_kind(root, "notifier")]
        self.assertIn("range_start unmap [0x7f0000001000,0x7f0000003000) 2p", labels[0])
        self.assertIn("release [0x0,~0) dropped=3", labels[1])

    def test_early_stale_access_says_so(self):
        root, _, _ = render(
            ev(1.0, "tlbrace_stale: dev=1 addr=0x1000 write through a translation the clear "
                    "invalidation is removing (early)")
            + ev(1.1, "tlbrace_stale: dev=1 addr=0x2000 read through a translation the unmap "
                      "invalidation removed"))
        labels = [texts(n) for n in of_kind(root, "stale")]
        self.assertIn("STALE write 0x1000 (clear) early", labels[0])
        self.assertIn("STALE read 0x2000 (unmap)", labels[1])
        self.assertNotIn("early", labels[1])

    def test_task_switch_flushes_are_dropped(self):
        root, _, _ = render(ev(1.0, "tlbrace_fill: dev=1 addr=0x1000 pfn=0x1 rw from=dpt")
                            + ev(1.0001, "tlb_flush: pages:0 reason:task switch (0)")
                            + ev(1.0002, "tlb_flush: pages:-1 reason:remote shootdown (1)"))
        flushes = of_kind(root, "tlb_flush")
        self.assertEqual(len(flushes), 1)
        self.assertIn("tlb_flush all remote shootdown", texts(flushes[0]))

    def test_short_trace_in_microseconds(self):
        root, _, _ = render(ev(1.0, "tlbrace_fill: dev=1 addr=0x1000 pfn=0x1 rw from=dpt")
                            + ev(1.0009, "tlbrace_stale: dev=1 addr=0x1000 read through a "
                                         "translation the clear invalidation removed"))
        self.assertIn("(µs)", texts(of_kind(root, "axis")[0]))
        self.assertEqual(of_kind(root, "break"), [])


class CommandLine(unittest.TestCase):
    def run_script(self, text, exists=True):
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "trace.txt"), os.path.join(d, "out.svg")
            if exists:
                with open(src, "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, SCRIPT, src, out], capture_output=True,
                               text=True, timeout=60)
            return p, (ET.parse(out).getroot() if os.path.exists(out) else None)

    def test_success(self):
        p, root = self.run_script(SAMPLE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^trace-timeline: \S+out\.svg: 16 events, 2 CPUs, 317\.655 ms\n$")
        self.assertEqual(root.find(SVG + "title").text, "trace.txt")

    def test_no_tlbrace_events_fails(self):
        notrace = HEADER + ev(1.0, "tlb_flush: pages:1 reason:x (1)") + ev(1.1, "tracing_mark_write: A")
        p, root = self.run_script(notrace)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^trace-timeline: error: .*no tlbrace events")
        self.assertIsNone(root)

    def test_unreadable_fails(self):
        p, root = self.run_script("", exists=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^trace-timeline: error: cannot read .*trace\.txt")


if __name__ == "__main__":
    unittest.main(verbosity=1)
