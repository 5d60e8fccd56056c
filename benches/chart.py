#!/usr/bin/env python3
"""SVG chart of benches/compare.sh results (python3 standard library only).

    python3 benches/chart.py target/bench-results/compare-STAMP.jsonl -o chart.svg [--title T]

Reads the JSON lines of ringws-load runs and draws, per scenario, grouped bars (one per server,
in the order first seen) of the median over the reps with min-max whiskers:
  1. server CPU µs per message (lower is better),
  2. messages per second,
  3. idle server RSS per connection (if any idle runs).
"""

import argparse
import json
import statistics
import sys
from html import escape

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

WIDTH = 1100
PANEL_H = 300
LEFT = 70
RIGHT = 20
TOP = 60
GAP = 90


def load(path):
    """(scenarios, servers, cells): cells[(scenario, server)] = {metric: [values]}."""
    scenarios, servers, cells = [], [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if not isinstance(v, dict):
                continue
            sc = v.get("scenario") or v.get("mode") or "?"
            sv = v.get("label") or v.get("addr") or "?"
            if sc not in scenarios:
                scenarios.append(sc)
            if sv not in servers:
                servers.append(sv)
            cell = cells.setdefault((sc, sv), {"cpu": [], "rate": [], "rss": [], "idle": False})
            if v.get("mode") == "idle":
                cell["idle"] = True
                if v.get("rss_per_conn_bytes") is not None:
                    cell["rss"].append(float(v["rss_per_conn_bytes"]))
            else:
                if v.get("server_cpu_us_per_msg") is not None:
                    cell["cpu"].append(float(v["server_cpu_us_per_msg"]))
                if v.get("msgs_per_sec") is not None:
                    cell["rate"].append(float(v["msgs_per_sec"]))
    return scenarios, servers, cells


def spread(values):
    """(median, min, max) or None."""
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def nice_max(x):
    """A round axis maximum >= x."""
    if x <= 0:
        return 1.0
    e = 10 ** len(str(int(x))) / 10 if x >= 1 else 10 ** -(len(str(int(1 / x))))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= x:
            return m * e
    return 10 * e


def fmt(x):
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x / 1e3:.1f}k"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.2f}"


def panel(out, y0, title, scenarios, servers, cells, metric):
    """One grouped-bar panel at vertical offset y0; returns False if it has no data."""
    groups = [sc for sc in scenarios
              if any(spread(cells.get((sc, sv), {}).get(metric, [])) for sv in servers)]
    if not groups:
        return False
    top = max(spread(cells[(sc, sv)][metric])[2]
              for sc in groups for sv in servers
              if (sc, sv) in cells and cells[(sc, sv)][metric])
    ymax = nice_max(top)
    plot_w = WIDTH - LEFT - RIGHT
    gw = plot_w / len(groups)
    bw = gw * 0.8 / max(1, len(servers))

    def y(v):
        return y0 + PANEL_H - v / ymax * PANEL_H

    out.append(f'<text x="{LEFT}" y="{y0 - 12}" class="t">{escape(title)}</text>')
    for k in range(6):
        v = ymax * k / 5
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" class="ax" '
                   f'text-anchor="end">{fmt(v)}</text>')
    for gi, sc in enumerate(groups):
        gx = LEFT + gi * gw + gw * 0.1
        for si, sv in enumerate(servers):
            s = spread(cells.get((sc, sv), {}).get(metric, []))
            if not s:
                continue
            med, lo, hi = s
            x = gx + si * bw
            color = PALETTE[si % len(PALETTE)]
            out.append(f'<rect x="{x:.1f}" y="{y(med):.1f}" width="{bw * 0.9:.1f}" '
                       f'height="{max(0.5, y0 + PANEL_H - y(med)):.1f}" fill="{color}">'
                       f'<title>{escape(sv)} · {escape(sc)}: {fmt(med)} '
                       f'[{fmt(lo)}–{fmt(hi)}]</title></rect>')
            cx = x + bw * 0.45
            out.append(f'<path d="M{cx:.1f},{y(lo):.1f}V{y(hi):.1f}M{cx - 3:.1f},{y(lo):.1f}'
                       f'h6M{cx - 3:.1f},{y(hi):.1f}h6" class="wh"/>')
        out.append(f'<text x="{LEFT + gi * gw + gw / 2:.1f}" y="{y0 + PANEL_H + 16}" '
                   f'class="ax" text-anchor="middle">{escape(sc)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y0 + PANEL_H}" '
               f'y2="{y0 + PANEL_H}" class="axis"/>')
    return True


def render(scenarios, servers, cells, title):
    panels = [
        ("Server CPU µs per message (median, whiskers min–max; lower is better)", "cpu"),
        ("Messages per second (median, whiskers min–max)", "rate"),
        ("Idle server RSS bytes per connection (median, whiskers min–max)", "rss"),
    ]
    body = []
    y0 = TOP + 30
    for ptitle, metric in panels:
        if panel(body, y0, ptitle, scenarios, servers, cells, metric):
            y0 += PANEL_H + GAP
    height = y0
    legend = []
    x = LEFT
    for si, sv in enumerate(servers):
        legend.append(f'<rect x="{x}" y="{TOP - 12}" width="12" height="12" '
                      f'fill="{PALETTE[si % len(PALETTE)]}"/>'
                      f'<text x="{x + 16}" y="{TOP - 2}" class="ax">{escape(sv)}</text>')
        x += 24 + 8 * len(sv)
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        "<style>.t{font-size:14px;font-weight:bold}.ax{font-size:11px;fill:#333}"
        ".grid{stroke:#ddd;stroke-width:1}.axis{stroke:#333;stroke-width:1}"
        ".wh{stroke:#000;stroke-width:1.2;fill:none}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        f'<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
        *legend, *body, "</svg>", ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--title", default="ringws vs peers")
    a = ap.parse_args()
    scenarios, servers, cells = load(a.jsonl)
    if not cells:
        print(f"{a.jsonl}: no results", file=sys.stderr)
        return 1
    svg = render(scenarios, servers, cells, a.title)
    if a.output == "-":
        sys.stdout.write(svg)
    else:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
