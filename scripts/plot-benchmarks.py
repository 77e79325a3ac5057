#!/usr/bin/env python3
"""Plot the `exec` benches: event throughput against vCPU threads, one line per path.

Reads criterion's medians from target/criterion/exec/<path>/<threads>/new/estimates.json
(written by `cargo bench --bench callbacks`), writes
docs/benchmarks-throughput.svg by hand (python3 standard library only), and prints the
results as Markdown tables for docs/benchmarks.md.

One criterion iteration of an `exec` bench is one event on each vCPU thread, so the
median is the wall time per event per thread; aggregate throughput is threads / median.

Usage: python3 scripts/plot-benchmarks.py [--criterion DIR] [--out FILE]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = [1, 2, 4, 8]
CORES = os.cpu_count() or 2
# (bench name, legend label, colour, dashed)
PATHS = [
    ("mutex", "10.1-style: global Mutex", "#d62728", False),
    ("atomic", "shared AtomicU64 fetch_add", "#ff7f0e", False),
    ("shard", "PerVcpu shard (on_exec)", "#1f77b4", False),
    ("inline", "inline counter (mock floor)", "#2ca02c", False),
    ("c", "raw C callback (mock floor)", "#7f7f7f", True),
]


def median_ns(crit, *parts):
    """Criterion's median estimate (ns per iteration) of one bench, or None."""
    path = os.path.join(crit, *parts, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def exec_results(crit):
    """{path: {threads: median ns per event per thread}} for the benches present."""
    out = {}
    for name, *_ in PATHS:
        row = {n: median_ns(crit, "exec", name, str(n)) for n in THREADS}
        row = {n: v for n, v in row.items() if v is not None}
        if row:
            out[name] = row
    return out


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(crit, res):
    """The results as Markdown tables."""
    lines = []
    over = lambda n: " (oversubscribed)" if n > CORES else ""
    lines.append(
        "| path | threads | ns/event per thread | per-thread Mevents/s "
        "| aggregate Mevents/s | per-thread vs 1 thread |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, label, *_ in PATHS:
        row = res.get(name)
        if not row:
            continue
        base = row.get(1)
        for n in THREADS:
            t = row.get(n)
            if t is None:
                continue
            per = 1e3 / t
            rel = f"{base / t * 100:.0f}%" if base else "–"
            lines.append(
                f"| {name} | {n}{over(n)} | {t:.2f} | {per:.0f} | {per * n:.0f} | {rel} |"
            )
    lines.append("")
    lines.append("Ratios of ns/event per thread (medians):")
    lines.append("")
    lines.append("| threads | mutex / shard | atomic / shard | shard / inline | shard / c |")
    lines.append("| ---: | ---: | ---: | ---: | ---: |")
    for n in THREADS:
        g = lambda p: res.get(p, {}).get(n)
        r = lambda a, b: fmt(g(a) / g(b)) + "×" if g(a) and g(b) else "–"
        lines.append(
            f"| {n}{over(n)} | {r('mutex', 'shard')} | {r('atomic', 'shard')} "
            f"| {r('shard', 'inline')} | {r('shard', 'c')} |"
        )
    lines.append("")
    others = [
        ("config", "none", "1"),
        ("config", "read", "1"),
        ("config", "none", "2"),
        ("config", "read", "2"),
        ("translate", "no_capture"),
        ("translate", "capture"),
        ("syscall", "batched"),
        ("syscall", "roundtrip"),
    ]
    lines.append("| bench | median |")
    lines.append("| --- | ---: |")
    for parts in others:
        v = median_ns(crit, *parts)
        if v is not None:
            unit = f"{v / 1e3:.2f} µs" if v >= 1e3 else f"{v:.2f} ns"
            lines.append(f"| `{'/'.join(parts)}` | {unit} |")
    return "\n".join(lines)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(res, cpu):
    """Aggregate throughput (Mevents/s) against threads, one polyline per path."""
    w, h = 760, 470
    left, right, top, bottom = 70, 250, 50, 60
    pw, ph = w - left - right, h - top - bottom
    points = {
        name: {n: n * 1e3 / t for n, t in row.items()} for name, row in res.items()
    }
    ymax = max([v for row in points.values() for v in row.values()] + [1.0])
    step = nice_step(ymax / 5)
    ymax = step * (int(ymax / step) + 1)
    xs = {n: left + pw * i / (len(THREADS) - 1) for i, n in enumerate(THREADS)}
    y = lambda v: top + ph * (1 - v / ymax)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">'
        "Exec events per second, all vCPU threads (mock QEMU host)</text>",
        f'<text x="{left}" y="40" fill="#555">{esc(cpu)}; one event per guest '
        "instruction; criterion medians</text>",
    ]
    # Oversubscribed region: more vCPU threads than cores.
    over = [n for n in THREADS if n > CORES]
    if over:
        x0 = (xs[max(n for n in THREADS if n <= CORES)] + xs[min(over)]) / 2
        out.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{left + pw - x0:.1f}" height="{ph}" '
            'fill="#f2f2f2"/>'
        )
        out.append(
            f'<text x="{(x0 + left + pw) / 2:.1f}" y="{top + 16}" text-anchor="middle" '
            f'fill="#777">oversubscribed ({CORES} cores)</text>'
        )
    for i in range(int(ymax / step) + 1):
        v = i * step
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
        )
    for n, x in xs.items():
        out.append(
            f'<text x="{x:.1f}" y="{top + ph + 20}" text-anchor="middle">{n}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="black"/>'
    )
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="black"/>')
    out.append(
        f'<text x="{left + pw / 2}" y="{h - 18}" text-anchor="middle">vCPU threads</text>'
    )
    out.append(
        f'<text transform="translate(20 {top + ph / 2}) rotate(-90)" '
        'text-anchor="middle">million events / s (aggregate)</text>'
    )
    ly = top + 10
    for name, label, colour, dashed in PATHS:
        row = points.get(name)
        if not row:
            continue
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        pts = " ".join(f"{xs[n]:.1f},{y(v):.1f}" for n, v in sorted(row.items()))
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>'
        )
        for n, v in row.items():
            out.append(f'<circle cx="{xs[n]:.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
        lx = left + pw + 15
        out.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2.5"{dash}/>'
        )
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{esc(label)}</text>')
        ly += 22
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(raw):
    """A 1/2/5 × 10^k step at least `raw`."""
    k = 1.0
    while k * 10 <= raw:
        k *= 10
    while k > raw * 10:
        k /= 10
    for m in (1, 2, 5, 10):
        if k * m >= raw:
            return k * m
    return k * 10


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {CORES} cores"
    except OSError:
        pass
    return f"{CORES} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criterion", default=os.path.join(ROOT, "target", "criterion"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-throughput.svg"))
    a = ap.parse_args()
    res = exec_results(a.criterion)
    if not res:
        sys.exit(
            f"no exec results under {a.criterion}: run "
            "`cargo bench --bench callbacks` first"
        )
    with open(a.out, "w") as f:
        f.write(svg(res, cpu_model()))
    print(markdown(a.criterion, res))
    print(f"\nwrote {os.path.relpath(a.out, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
