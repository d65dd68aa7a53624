#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Draw the ftrace text trace of one race run as a per-CPU timeline (SVG).

Reads a 'trace' file recorded with the tlbrace_* events on (plus the
kernel's tlb_flush and the test program's trace_marker lines) and draws one
lane per CPU: the device TLB's fills and accesses, the stale access (the
race's symptom, red), the mmu notifier callbacks, gathers and parked tasks
as bars, the CPUs' own TLB flushes as ticks and the test's step markers.
A race idles for long (a 300 ms park) between bursts of microseconds: gaps
longer than --max-gap-ms are drawn at a fixed width with a break mark and
their real length, so the bursts stay readable.  Hover an element in a
browser to see its trace line.  Standard library only.
"""
import argparse
import bisect
import math
import os
import re
import sys

# TASK-PID [CPU] FLAGS TIMESTAMP: NAME: BODY.  The task name may hold
# spaces and dashes: the pid follows the last dash before the CPU.  The
# tgid column (record-tgid) and the flags (irq-info) are optional.
LINE = re.compile(r"^\s*(?P<task>.+)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                  r"(?:\S{4,6}\s+)?(?P<ts>\d+(?:\.\d+)?):\s+(?P<name>\w+):\s?(?P<body>.*)$")
LOST = re.compile(r"^CPU:\d+ \[LOST (\d+) EVENTS\]")
TLB_FLUSH = re.compile(r"pages:(-?\d+) reason:(.*) \((\d+)\)$")
# "removed", or "is removing (early)" while the invalidation is still open.
STALE_WHY = re.compile(r"through a translation the (\S+) invalidation (removed|is removing)")
# Keys and one of the bare words each event prints; a line without them was
# truncated (or is not what this script knows) and is skipped as bad.
NEED = {
    "tlbrace_fill": (("dev", "addr", "pfn", "from"), {"rw", "ro"}),
    "tlbrace_access": (("dev", "addr", "value", "outcome"), {"read", "write"}),
    "tlbrace_stale": (("dev", "addr"), {"read", "write"}),
    "tlbrace_notifier": (("dev", "start", "end", "event", "dropped"), None),
    "tlbrace_gather_open": (("dev", "gather", "start", "end", "cleared"), None),
    "tlbrace_gather_close": (("dev", "gather", "start", "end", "flush", "waited", "flushed"), None),
    "tlbrace_inject": (("dev", "arm", "point", "start"),
                       {"fire", "parked", "released", "timeout", "signal", "refused"}),
}
KINDS = ["fill", "access", "stale", "notifier", "gather", "park", "inject", "tlb_flush", "marker"]
COLOR = {"fill": "#1f77b4", "hit": "#2ca02c", "access": "#138d90", "stale": "#d62728",
         "notifier": "#ff7f0e", "gather": "#cde6fa", "park": "#777777", "inject": "#555555",
         "tlb_flush": "#999999", "marker": "#7b3fa0"}
# Labels are placed first by priority: the symptom and the story first.
PRIO = {"stale": 0, "marker": 1, "notifier": 2, "inject": 3, "access": 4, "fill": 5, "tlb_flush": 6}

W, LEFT, RIGHT, TOP = 1200, 70, 20, 64
CHAR_W = 5.5            # a 9 px monospace character: labels' widths are estimates
ROW_H, BAND_H, BAR_H, PAD = 12, 20, 16, 6
MAX_LABEL_ROWS, MAX_BAR_ROWS = 10, 12
GAP_PX, MIN_BURST_PX = 50, 30
MARKER_CHARS = 90


class Event:
    def __init__(self, m, raw, seq):
        self.task, self.pid, self.cpu = m["task"].strip(), int(m["pid"]), int(m["cpu"])
        self.ts, self.name, self.body = float(m["ts"]), m["name"], m["body"].rstrip()
        self.raw, self.seq = raw, seq
        tokens = self.body.split()
        self.kv = dict(t.split("=", 1) for t in tokens if "=" in t)
        self.words = [t for t in tokens if "=" not in t]


def parse_line(line, seq=0):
    """The Event of an event line, or None if it is not a well-formed one."""
    m = LINE.match(line)
    if not m:
        return None
    e = Event(m, line.strip(), seq)
    need = NEED.get(e.name)
    if need and (any(k not in e.kv for k in need[0])
                 or need[1] and not need[1] & set(e.words)):
        return None
    if e.name == "tlbrace_notifier" and not e.words:
        return None
    if e.name == "tlb_flush" and not TLB_FLUSH.search(e.body):
        return None
    return e


def parse_trace(lines):
    """{events (known kinds, in time order), bad, ignored: {name: n}, lost}"""
    t = {"events": [], "bad": [], "ignored": {}, "lost": 0}
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = LOST.match(line.strip())
        if m:
            t["lost"] += int(m.group(1))
            continue
        e = parse_line(line, n)
        if e is None:
            t["bad"].append(n)
        elif e.name in NEED or e.name in ("tlb_flush", "tracing_mark_write"):
            t["events"].append(e)
        else:
            t["ignored"][e.name] = t["ignored"].get(e.name, 0) + 1
    t["events"].sort(key=lambda e: (e.ts, e.seq))
    return t


class Item:
    """Something to draw: a point (end is None) or a bar."""
    def __init__(self, kind, ev, label, color, end_ev=None, t=None, end=None, is_open=False):
        self.kind, self.ev, self.label, self.color = kind, ev, label, color
        self.cpu, self.is_open = ev.cpu, is_open
        self.t = ev.ts if t is None else t
        self.end = end_ev.ts if end_ev else end
        self.bar = self.end is not None
        self.raw = "\n".join(e.raw for e in (ev, end_ev) if e)
        self.row = self.x = None


def span(kv):
    """[start,end) in hex with its page count, which is what a race is about;
    an end of ~0 (release, the whole address space) is shown as such."""
    try:
        start, end = int(kv["start"], 16), int(kv["end"], 16)
    except ValueError:
        return f"[{kv['start']},{kv['end']})"
    if end >= 1 << 63:
        return f"[{kv['start']},~0)"
    return f"[{kv['start']},{kv['end']}) {(end - start) // 4096}p"


def items_of(events):
    """The points and bars of the events: a gather is open..close of one
    (dev, id), a park is parked..released/timeout/signal of one (dev, arm, pid)."""
    items, gathers, parks = [], {}, {}
    t_last = events[-1].ts
    for e in events:
        # w: the bare words this event may print (rw, read, fire...), in order.
        known = (NEED.get(e.name) or ((), None))[1]
        kv, w = e.kv, [x for x in e.words if known is None or x in known]
        if e.name == "tlbrace_fill":
            items.append(Item("fill", e, f"fill {kv['addr']} {w[0]} {kv['from']}", COLOR["fill"]))
        elif e.name == "tlbrace_access":
            outcome = kv["outcome"] or "-"
            color = COLOR["hit"] if "hit" in outcome.split("|") else COLOR["access"]
            items.append(Item("access", e, f"{w[0]} {kv['addr']} {kv['value']} {outcome}", color))
        elif e.name == "tlbrace_stale":
            why = STALE_WHY.search(e.body)
            label = f"STALE {w[0]} {kv['addr']}" + (f" ({why.group(1)})" if why else "")
            if why and why.group(2) == "is removing":
                label += " early"
            items.append(Item("stale", e, label, COLOR["stale"]))
        elif e.name == "tlbrace_notifier":
            dropped = f" dropped={kv['dropped']}" if kv["dropped"] != "0" else ""
            event = f" {kv['event']}" if kv["event"] != w[0] else ""
            label = f"{w[0]}{event} {span(kv)}{dropped}"
            items.append(Item("notifier", e, label, COLOR["notifier"]))
        elif e.name == "tlbrace_gather_open":
            gathers.setdefault((kv["dev"], kv["gather"]), []).append(e)
        elif e.name == "tlbrace_gather_close":
            opened = gathers.get((kv["dev"], kv["gather"]))
            label = (f"gather {kv['gather']}: flush={kv['flush']} flushed={kv['flushed']}"
                     + (" waited" if kv["waited"] == "1" else ""))
            if opened:
                items.append(Item("gather", opened.pop(0), label, COLOR["gather"], e))
            else:       # opened before the trace began: the bar starts with the trace
                items.append(Item("gather", e, label + " (opened before the trace)",
                                  COLOR["gather"], t=events[0].ts, end=e.ts))
        elif e.name == "tlbrace_inject":
            what, key = w[0], (kv["dev"], kv["arm"], e.pid)
            if what == "parked" and key not in parks:
                parks[key] = e
            elif what in ("released", "timeout", "signal") and key in parks:
                label = f"parked at {kv['point']}, {what}"
                items.append(Item("park", parks.pop(key), label, COLOR["park"], e))
            else:
                items.append(Item("inject", e, f"{what} {kv['point']}", COLOR["inject"]))
        elif e.name == "tlb_flush":
            pages, reason, code = TLB_FLUSH.search(e.body).groups()
            if code != "0":     # task switches: many, and not a shootdown
                pages = "all" if pages == "-1" else pages + "p"
                items.append(Item("tlb_flush", e, f"tlb_flush {pages} {reason}", COLOR["tlb_flush"]))
        elif e.name == "tracing_mark_write":
            text = e.body if len(e.body) <= MARKER_CHARS else e.body[:MARKER_CHARS - 1] + "…"
            items.append(Item("marker", e, text, COLOR["marker"]))
    # Unclosed intervals extend to the end of the trace.
    items += [Item("gather", e, f"gather {e.kv['gather']}: open", COLOR["gather"],
                   end=t_last, is_open=True) for opened in gathers.values() for e in opened]
    items += [Item("park", e, f"parked at {e.kv['point']}: open", COLOR["park"],
                   end=t_last, is_open=True) for e in parks.values()]
    for it in items:
        it.label += f" · {it.ev.task}-{it.ev.pid}"
    return items


class TimeMap:
    """x of a time.  Times closer than max_gap form a burst, drawn with a
    linear scale of its own (at least MIN_BURST_PX wide, so a lone event is
    no sliver); a longer gap between bursts is a GAP_PX break.  Monotonic."""
    def __init__(self, times, max_gap, x0, x1):
        bursts = [[times[0], times[0]]]
        for t in times[1:]:
            if t - bursts[-1][1] > max_gap:
                bursts.append([t, t])
            else:
                bursts[-1][1] = t
        n = len(bursts)
        gap = min(GAP_PX, (x1 - x0) * 0.3 / (n - 1)) if n > 1 else 0
        avail = x1 - x0 - gap * (n - 1)
        minw = min(MIN_BURST_PX, avail / n / 2)
        lin = sum(e - s for s, e in bursts)
        self.knots, self.bursts, self.breaks = [], [], []
        x = x0
        for i, (s, e) in enumerate(bursts):
            w = minw + (avail - n * minw) * (e - s) / lin if lin > 0 else avail / n
            self.knots += [(s, x), (e, x + w)] if e > s else [(s, x + w / 2)]
            self.bursts.append((s, e, x, x + w))
            if i + 1 < n:
                self.breaks.append((x + w, x + w + gap, bursts[i + 1][0] - e))
            x += w + gap
        self.times = [k[0] for k in self.knots]

    def __call__(self, t):
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return self.knots[0][1]
        if i == len(self.knots):
            return self.knots[-1][1]
        (ta, xa), (tb, xb) = self.knots[i - 1], self.knots[i]
        return xa + (xb - xa) * (t - ta) / (tb - ta)


def esc(s):
    """Text for XML: escaped, without the control characters XML 1.0 forbids."""
    s = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "?", str(s))
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def nice(x):
    """The smallest 1, 2 or 5 times a power of ten >= x."""
    p = 10 ** math.floor(math.log10(x))
    return next(f * p for f in (1, 2, 5, 10) if f * p >= x * (1 - 1e-9))


def gap_text(g):
    if g >= 1:
        return f"≈ {g:.3g} s"
    if g >= 0.01:
        return f"≈ {g * 1e3:.0f} ms"
    return f"≈ {g * 1e3:.2g} ms" if g >= 1e-3 else f"≈ {g * 1e6:.0f} µs"


def place(rows, a, b):
    """First row where [a, b] overlaps nothing; None if all are taken."""
    for r, row in enumerate(rows):
        i = bisect.bisect_left(row, (a, b))
        if (i == 0 or row[i - 1][1] + 3 <= a) and (i == len(row) or b + 3 <= row[i][0]):
            row.insert(i, (a, b))
            return r
    return None


def layout(items, xmap):
    """Give each item its x and its text row; returns (label rows, bar rows,
    hidden labels) of the lane.  Labels that would leave the picture on the
    right end at their item instead."""
    rows, bar_rows = [[] for _ in range(MAX_LABEL_ROWS)], [[] for _ in range(MAX_BAR_ROWS)]
    hidden = 0
    for it in sorted((i for i in items if not i.bar), key=lambda i: (PRIO[i.kind], i.t, i.ev.seq)):
        it.x, w = xmap(it.t), len(it.label) * CHAR_W
        it.anchor = "start" if it.x + w <= W - RIGHT else "end"
        a, b = (it.x - 2, it.x + w) if it.anchor == "start" else (it.x - w, it.x + 2)
        it.row = place(rows, a, b)
        hidden += it.row is None
    for it in sorted((i for i in items if i.bar), key=lambda i: (i.t, i.ev.seq)):
        it.x, it.x1, w = xmap(it.t), xmap(it.end), len(it.label) * CHAR_W
        it.tx = min(it.x + 3, W - RIGHT - w)        # the label, in the picture
        it.row = place(bar_rows, min(it.x, it.tx), max(it.x1, it.tx + w))
        if it.row is None:      # no room for its label: the bar alone, or on another
            it.label, hidden = "", hidden + 1
            it.row = place(bar_rows, it.x, it.x1)
            it.row = MAX_BAR_ROWS - 1 if it.row is None else it.row
    used = [i.row for i in items if not i.bar and i.row is not None]
    return max(used, default=0) + 1, max((i.row + 1 for i in items if i.bar), default=0), hidden


def glyph(it, x, y):
    c = it.color
    if it.kind == "fill":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{c}"/>'
    if it.kind == "access":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{c}"/>'
    if it.kind == "stale":
        return (f'<polygon points="{x:.1f},{y - 8:.1f} {x + 8:.1f},{y:.1f} {x:.1f},{y + 8:.1f} '
                f'{x - 8:.1f},{y:.1f}" fill="{c}" stroke="#7a0000" stroke-width="1.5"/>')
    if it.kind in ("notifier", "inject"):
        d = 5 if it.kind == "notifier" else -4      # notifiers point down, injections up
        return (f'<polygon points="{x - 5:.1f},{y - d:.1f} {x + 5:.1f},{y - d:.1f} {x:.1f},'
                f'{y + d:.1f}" fill="{c}"/>')
    if it.kind == "tlb_flush":
        return vline(x, y - 6, y + 6, c, ' stroke-width="1.5"')
    return (vline(x, y - 7, y + 7, c, ' stroke-width="1.5"')     # a marker's flag
            + f'<polygon points="{x:.1f},{y - 7:.1f} {x + 8:.1f},{y - 4.5:.1f} {x:.1f},{y - 2:.1f}" fill="{c}"/>')


def vline(x, y0, y1, color, extra=""):
    return f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="{color}"{extra}/>'


def text(x, y, s, color="#222", anchor="start", size=9, extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="monospace" font-size="{size}" '
            f'fill="{color}" text-anchor="{anchor}"{extra}>{esc(s)}</text>')


def draw_axis(xmap, t0, per, y):
    """A segment per burst, ticks at round times since the first event."""
    out, last_end = [], -1e9
    for s, e, xa, xb in xmap.bursts:
        out.append(f'<line x1="{xa:.1f}" y1="{y}" x2="{xb:.1f}" y2="{y}" stroke="#000"/>')
        step = nice(80 * (e - s) / (xb - xa)) if e > s else None
        first = math.floor((s - t0) / step + 1e-6) + 1 if step else 0
        last = math.floor((e - t0) / step + 1e-6) + 1 if step else 0
        decimals = max(0, -math.floor(math.log10(step / per))) if step else 0
        # A burst's first tick is not at a round time: it is shown to the µs.
        marks = [(s, max(decimals, 3 if per == 1e-3 else 0))]
        marks += [(t0 + k * step, decimals) for k in range(first, last)]
        for t, d in marks:
            x, label = xmap(t), f"{(t - t0) / per:.{d}f}"
            out.append(vline(x, y, y + 4, "#000"))
            if x - len(label) * CHAR_W / 2 > last_end + 6:
                out.append(text(x, y + 14, label, "#000", "middle"))
                last_end = x + len(label) * CHAR_W / 2
    return out


def draw_break(rows, xa, xb, gap, top, y):
    """A grey band across the lanes, a double slash on the axis, the real gap
    above the lanes (in one of three rows, or not at all if all are taken)."""
    mid, label = (xa + xb) / 2, gap_text(gap)
    w = len(label) * CHAR_W
    row = place(rows, mid - w / 2, mid + w / 2)
    return (f'<g class="break"><title>{esc(f"a gap of {gap * 1e3:.3f} ms, drawn {xb - xa:.0f} px wide")}'
            f'</title><rect x="{xa:.1f}" y="{top}" width="{xb - xa:.1f}" height="{y - top}" '
            f'fill="#e0e0e0" opacity="0.6"/>'
            + "".join(f'<line x1="{mid + d - 4:.1f}" y1="{y + 6}" x2="{mid + d + 4:.1f}" y2="{y - 6}" '
                      f'stroke="#444" stroke-width="1.5"/>' for d in (-3, 3))
            + (text(mid, top - 6 - 10 * row, label, "#444", "middle") if row is not None else "")
            + "</g>")


def draw_item(it, top, axis_y):
    """One <g> of the item's kind, its trace line(s) as the tooltip."""
    g = [f'<g class="{it.kind}{" open" if it.is_open else ""}"><title>{esc(it.raw)}</title>']
    if it.bar:
        fill, stroke = ("url(#hatch)", "#444") if it.kind == "park" else (it.color, "#4a90c8")
        dash = ' stroke-dasharray="4,2"' if it.is_open else ""
        g.append(f'<rect x="{it.x:.1f}" y="{it.by:.1f}" width="{max(it.x1 - it.x, 1):.1f}" '
                 f'height="{BAR_H - 3}" fill="{fill}" stroke="{stroke}"{dash}/>')
        g.append(text(it.tx, it.by + BAR_H - 6, it.label, "#123") if it.label else "")
    else:
        if it.kind == "marker":     # a step of the test: a line through every lane
            g.append(vline(it.x, top, axis_y, it.color, ' stroke-dasharray="3,3" opacity="0.45"'))
        g.append(glyph(it, it.x, it.gy))
        if it.row is not None:
            g.append(vline(it.x, it.ly + 2, it.gy - 5, it.color, ' opacity="0.35"'))
            bold = ' font-weight="bold"' if it.kind == "stale" else ""
            color = "#666" if it.kind == "tlb_flush" else it.color
            g.append(text(it.x, it.ly, it.label, color, it.anchor, 10 if bold else 9, bold))
    return "".join(g) + "</g>"


def draw_legend(ev, x, y):
    out = ['<g class="legend">']
    for name, key in [("fill", "fill"), ("access hit", "hit"), ("access miss", "access"),
                      ("STALE", "stale"), ("notifier", "notifier"), ("gather", "gather"),
                      ("parked", "park"), ("injection", "inject"), ("tlb_flush", "tlb_flush"),
                      ("marker", "marker")]:
        if key in ("gather", "park"):
            fill, stroke = ("url(#hatch)", "#444") if key == "park" else (COLOR[key], "#4a90c8")
            out.append(f'<rect x="{x - 6}" y="{y - 5}" width="14" height="10" fill="{fill}" '
                       f'stroke="{stroke}"/>')
        else:
            out.append(glyph(Item("access" if key == "hit" else key, ev, "", COLOR[key]), x, y))
        out.append(text(x + 12, y + 3, name, "#000"))
        x += 26 + len(name) * CHAR_W
    return out + ["</g>"]


def render(trace, title, source, max_gap_ms=2.0):
    """The SVG text of a parsed trace, and (events, cpus, span in ms)."""
    events = trace["events"]
    items = items_of(events)
    t0, t1 = events[0].ts, events[-1].ts
    xmap = TimeMap(sorted({e.ts for e in events}), max_gap_ms / 1e3, LEFT, W - RIGHT)
    cpus = sorted({e.cpu for e in events})
    lanes, y, hidden = [], TOP, 0
    for cpu in cpus:
        mine = [i for i in items if i.cpu == cpu]
        n_lab, n_bar, h = layout(mine, xmap)
        hidden += h
        height = 2 * PAD + n_lab * ROW_H + BAND_H + n_bar * BAR_H
        lanes.append(f'<g class="lane"><rect x="0" y="{y}" width="{W}" height="{height}" '
                     f'fill="{"#f4f4f4" if len(lanes) % 2 else "#fbfbfb"}"/>'
                     + text(8, y + height / 2 + 4, f"CPU {cpu}", "#000", size=12) + "</g>")
        for it in mine:     # label rows count upwards from the glyphs, bar rows down
            it.gy = y + PAD + n_lab * ROW_H + BAND_H / 2
            it.ly = y + PAD + (n_lab - (it.row or 0)) * ROW_H - 3
            it.by = y + PAD + n_lab * ROW_H + BAND_H + (it.row or 0) * BAR_H + 1
        y += height
    axis_y = y + 4
    unit, per = ("µs", 1e-6) if t1 - t0 < 2e-3 else ("ms", 1e-3)
    rows = [[], [], []]
    out = lanes + [draw_break(rows, *b, TOP, axis_y) for b in xmap.breaks]
    out += ['<g class="axis">'] + draw_axis(xmap, t0, per, axis_y) + [
        text(LEFT, axis_y + 28, f"time since the first event ({unit}); gaps over "
                                f"{max_gap_ms:g} ms compressed", "#000"), "</g>"]
    # Markers first (their lines run behind everything), the symptom last (on top).
    order = {"marker": 0, "gather": 1, "park": 1, "tlb_flush": 2, "stale": 9}
    out += [draw_item(it, TOP, axis_y)
            for it in sorted(items, key=lambda i: (order.get(i.kind, 5), i.t, i.ev.seq))]
    out += draw_legend(events[0], LEFT, axis_y + 48)
    height = axis_y + 64

    counts = ", ".join(f"{k} {n}" for k in KINDS for n in [sum(i.kind == k for i in items)] if n)
    desc = (f"source: {source}; {len(events)} events ({counts} drawn); {len(cpus)} CPUs; "
            f"{(t1 - t0) * 1e3:.3f} ms; {len(trace['bad'])} bad lines skipped; "
            f"{sum(trace['ignored'].values())} other events ignored; {trace['lost']} events lost; "
            f"{hidden} labels hidden")
    ignored = ", ".join(f"{k}: {n}" for k, n in sorted(trace["ignored"].items())) or "none"
    head = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}">',
        f"<title>{esc(title)}</title>",
        f"<desc>{esc(desc)}</desc>",
        "<!-- ignored events: " + esc(ignored).replace("--", "- -") + " -->",  # no '--' in comments
        '<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#888888" stroke-width="2"/></pattern></defs>',
        f'<rect x="0" y="0" width="{W}" height="{height}" fill="#ffffff"/>',
        text(LEFT, 22, title, "#000", size=15, extra=' font-weight="bold"'),
    ]
    return "\n".join(head + out + ["</svg>"]) + "\n", (len(events), len(cpus), (t1 - t0) * 1e3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", metavar="TRACE.txt", help="an ftrace 'trace' file (text)")
    ap.add_argument("out", metavar="OUT.svg", help="the picture to write")
    ap.add_argument("--title", metavar="TEXT", help="the picture's title (default: the trace's file name)")
    ap.add_argument("--max-gap-ms", type=float, default=2.0, metavar="N",
                    help="draw idle gaps longer than N ms at a fixed width (default 2)")
    args = ap.parse_args(argv)
    if not args.max_gap_ms > 0:
        ap.error("--max-gap-ms must be positive")

    def fail(why):
        print(f"trace-timeline: error: {why}", file=sys.stderr)
        return 1

    try:
        with open(args.trace, errors="replace") as f:
            trace = parse_trace(f)
    except OSError as e:
        return fail(f"cannot read {args.trace}: {e.strerror or e}")
    if not any(e.name.startswith("tlbrace_") for e in trace["events"]):
        return fail(f"{args.trace}: no tlbrace events (was tracing on, with events/tlbrace enabled?)")
    if trace["bad"]:
        print(f"trace-timeline: warning: {len(trace['bad'])} malformed line(s) skipped "
              f"(first: line {trace['bad'][0]})", file=sys.stderr)
    name = os.path.basename(args.trace)
    svg, (n, c, ms) = render(trace, args.title or name, name, args.max_gap_ms)
    try:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(svg)
    except OSError as e:
        return fail(f"cannot write {args.out}: {e.strerror or e}")
    print(f"trace-timeline: {args.out}: {n} events, {c} CPUs, {ms:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
