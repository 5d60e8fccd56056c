#!/usr/bin/env python3
"""The soak's verdict and pictures (benches/soak.sh; python3 standard library only).

    python3 benches/soak.py DIR --warmup SECS --max-slope KIB_PER_MIN

DIR holds what soak.sh wrote: samples.csv (unix time, server RSS in KiB, open descriptors,
churn cycles done), steady-*.json (the steady groups' broadcast reports, with --every parts)
and churn-*.jsonl (one idle report per churn cycle). Writes DIR/soak.csv (one row per sample,
with each steady group's last finished part: deliveries per second and p50/p99 latency) and
DIR/soak.svg (RSS and p99 latency over time), prints a summary, and exits 1 when:
  - a steady group lost, duplicated or reordered a message, or failed otherwise;
  - a churn cycle failed (other than by connections refused or reset by the server);
  - the server's RSS grew faster than --max-slope KiB per minute after the warm-up (least
    squares over the samples), or it died.
"""

import argparse
import csv
import glob
import json
import os
import sys
from html import escape


def slope_per_min(points):
    """Least-squares slope of (seconds, value) points, per minute; None under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 60.0


def read_samples(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({k: float(v) for k, v in r.items()})
    return rows


def read_report(path):
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if not text:
        return None
    try:
        return json.loads(text.splitlines()[-1])
    except ValueError:
        return None


def steady_verdict(name, report):
    """Problems of one steady group's report (empty: none)."""
    if report is None:
        return [f"{name}: no report (the run failed; see its log)"]
    problems = []
    b = report  # the broadcast figures are top-level keys
    for key in ("lost_gaps", "undelivered", "out_of_order", "joins_missing"):
        if b.get(key, 0):
            problems.append(f"{name}: {key} {b[key]}")
    errors = {k: v for k, v in (report.get("errors") or {}).items() if v}
    if errors:
        problems.append(f"{name}: errors {errors} {report.get('notes')}")
    if report.get("established") != report.get("connections"):
        problems.append(f"{name}: {report.get('established')} of {report.get('connections')} connected")
    return problems


def churn_verdict(path):
    """(cycles, connections, problems) of one churn loop's reports."""
    cycles = conns = 0
    problems = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            cycles += 1
            conns += r.get("established", 0)
            errors = {k: v for k, v in (r.get("errors") or {}).items() if v}
            if errors:
                problems.append(f"{os.path.basename(path)} cycle {cycles}: errors {errors} {r.get('notes')}")
    return cycles, conns, problems


def read_metrics(path):
    """The server's `ringws_*` values from a /metrics scrape, summed over labels."""
    values = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.startswith("ringws_"):
                    continue
                name, _, value = line.rpartition(" ")
                name = name.split("{")[0][len("ringws_"):]
                try:
                    values[name] = values.get(name, 0.0) + float(value)
                except ValueError:
                    continue
    except OSError:
        pass
    return values


def polyline(points, x0, y0, w, h, tmax, vmax, colour):
    if not points:
        return ""
    coords = " ".join(
        f"{x0 + t / tmax * w:.1f},{y0 + h - v / vmax * h:.1f}" for t, v in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'


def nice(x):
    if x <= 0:
        return 1.0
    p = 10 ** len(str(int(x)))
    for m in (0.1, 0.2, 0.25, 0.5, 1.0):
        if x <= m * p:
            return m * p
    return p


def svg(samples, groups, t0, title):
    """Two panels over time: the server's RSS (MiB), each steady group's p99 latency (ms)."""
    width, ph, left, top, gap = 900, 220, 70, 50, 70
    tmax = max([s["unix"] - t0 for s in samples] + [1.0])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + 2 * ph + gap + 40}" '
           'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="24" font-size="15">{escape(title)}</text>']
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    panels = [("server RSS, MiB", [[(s["unix"] - t0, s["rss_kib"] / 1024) for s in samples]], ["RSS"])]
    lat = [[(p["ended_unix_secs"] - t0, p["p99_us"] / 1000) for p in parts] for _, parts in groups]
    panels.append(("delivery latency p99, ms (per part)", lat, [n for n, _ in groups]))
    w = width - left - 20
    for i, (label, series, names) in enumerate(panels):
        y0 = top + i * (ph + gap)
        vmax = nice(max([v for s in series for _, v in s] + [0.001]) * 1.1)
        out.append(f'<rect x="{left}" y="{y0}" width="{w}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{left}" y="{y0 - 8}">{escape(label)}</text>')
        for k in range(5):
            v = vmax * k / 4
            y = y0 + ph - ph * k / 4
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
            out.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        for k in range(5):
            t = tmax * k / 4
            x = left + w * k / 4
            out.append(f'<text x="{x:.1f}" y="{y0 + ph + 16}" text-anchor="middle">{t / 60:.1f} min</text>')
        for j, (pts, name) in enumerate(zip(series, names)):
            out.append(polyline(pts, left, y0, w, ph, tmax, vmax, colours[j % len(colours)]))
            out.append(f'<text x="{left + w - 150}" y="{y0 + 16 + 14 * j}" fill="{colours[j % len(colours)]}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--warmup", type=float, required=True)
    ap.add_argument("--max-slope", type=float, required=True, help="KiB per minute")
    ap.add_argument("--title", default="ringws soak")
    a = ap.parse_args()

    samples = read_samples(os.path.join(a.dir, "samples.csv"))
    if not samples:
        print("soak: no samples", file=sys.stderr)
        return 1
    t0 = samples[0]["unix"]
    problems = []
    groups = []
    for path in sorted(glob.glob(os.path.join(a.dir, "steady-*.json"))):
        name = os.path.basename(path)[len("steady-"):-len(".json")]
        report = read_report(path)
        problems += steady_verdict(name, report)
        groups.append((name, (report or {}).get("windows") or []))
    if not groups:
        problems.append("no steady group reported")
    churn_cycles = churn_conns = 0
    for path in sorted(glob.glob(os.path.join(a.dir, "churn-*.jsonl"))):
        cycles, conns, p = churn_verdict(path)
        churn_cycles += cycles
        churn_conns += conns
        problems += p

    # One row per sample, with each group's last part ended by then.
    with open(os.path.join(a.dir, "soak.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        header = ["seconds", "rss_mib", "fds", "churn_cycles"]
        for name, _ in groups:
            header += [f"{name}_deliveries_per_sec", f"{name}_p50_ms", f"{name}_p99_ms"]
        w.writerow(header)
        for s in samples:
            row = [f"{s['unix'] - t0:.0f}", f"{s['rss_kib'] / 1024:.1f}", f"{s['fds']:.0f}", f"{s['churn_cycles']:.0f}"]
            for _, parts in groups:
                done = [p for p in parts if p["ended_unix_secs"] <= s["unix"]]
                if done:
                    p = done[-1]
                    row += [f"{p['messages'] / max(p['secs'], 1e-9):.0f}", f"{p['p50_us'] / 1000:.2f}", f"{p['p99_us'] / 1000:.2f}"]
                else:
                    row += ["", "", ""]
            w.writerow(row)
    with open(os.path.join(a.dir, "soak.svg"), "w", encoding="utf-8") as f:
        f.write(svg(samples, groups, t0, a.title))

    after = [(s["unix"] - t0, s["rss_kib"]) for s in samples if s["unix"] - t0 >= a.warmup]
    slope = slope_per_min(after)
    if slope is None:
        problems.append(f"too few samples after the {a.warmup:.0f} s warm-up for a slope")
    elif slope > a.max_slope:
        problems.append(f"RSS grew {slope:.0f} KiB/min after the warm-up (bound {a.max_slope:.0f})")
    if samples[-1].get("alive", 1) == 0:
        problems.append("the server died")

    def at(minutes):
        t = minutes * 60
        best = min(samples, key=lambda s: abs(s["unix"] - t0 - t))
        return best["rss_kib"] / 1024 if abs(best["unix"] - t0 - t) <= 30 else None

    delivered = sum(p["messages"] for _, parts in groups for p in parts)
    p99s = [p["p99_us"] / 1000 for _, parts in groups for p in parts]
    print(f"soak: {(samples[-1]['unix'] - t0) / 60:.1f} min, {len(samples)} samples")
    print("  RSS MiB: start {:.1f}, end {:.1f}, max {:.1f}; at 5/30/60 min: {}".format(
        samples[0]["rss_kib"] / 1024, samples[-1]["rss_kib"] / 1024,
        max(s["rss_kib"] for s in samples) / 1024,
        ", ".join("-" if v is None else f"{v:.1f}" for v in (at(5), at(30), at(60)))))
    print(f"  RSS slope after the {a.warmup:.0f} s warm-up: "
          + ("-" if slope is None else f"{slope:.1f} KiB/min") + f" (bound {a.max_slope:.0f})")
    print(f"  descriptors: start {samples[0]['fds']:.0f}, end {samples[-1]['fds']:.0f}, max {max(s['fds'] for s in samples):.0f}")
    print(f"  steady deliveries (checked: none lost, duplicated or reordered): {delivered}")
    if p99s:
        print(f"  p99 per part, ms: min {min(p99s):.2f}, median {sorted(p99s)[len(p99s) // 2]:.2f}, max {max(p99s):.2f}")
    print(f"  churn: {churn_cycles} cycles, {churn_conns} connections opened and ended")
    metrics = read_metrics(os.path.join(a.dir, "metrics-end.txt"))
    if metrics:
        names = ["accepted_total", "upgraded_total", "open", "dropped_total", "pong_timeouts_total",
                 "closed_clean_total", "closed_abnormal_total", "bytes_queued"]
        print("  server at the end: " + ", ".join(
            f"{n} {metrics[n]:.0f}" for n in names if n in metrics))
    print(f"  files: {a.dir}/soak.csv, {a.dir}/soak.svg")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
