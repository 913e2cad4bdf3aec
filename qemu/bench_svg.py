"""SVG chart of a qemu/bench report: one row per variant and profile with the spread of its boots
(guest uptime and wall time at the marker: min-max line, median-p90 bar, median dot, every sample),
then lifsea-init's own boot chart (`initctl analyze --svg`, fetched from the guest) below it.

Kept apart from qemu/bench so the harness stays about booting and timing; plain string output, no
dependencies beyond the standard library.
"""

import re
from xml.sax.saxutils import escape

WIDTH = 1100
LEFT = 260
RIGHT = 40
ROW = 34
TOP = 70
SERIES = (("uptime_s", "guest uptime at marker", "#2b6cb0"), ("wall_s", "wall, QEMU exec to marker", "#718096"))


def _tick_step(span):
    for step in (0.5, 1, 2, 5, 10, 20, 30, 60):
        if span / step <= 12:
            return step
    return 120


def _spread(x, y, s, color):
    """One series of one row: min-max line, median-p90 bar, samples, median."""
    out = [f'<line x1="{x(s["min"]):.1f}" y1="{y}" x2="{x(s["max"]):.1f}" y2="{y}" stroke="{color}" '
           f'stroke-width="1.5"/>',
           f'<rect x="{x(s["median"]):.1f}" y="{y - 4}" width="{max(x(s["p90"]) - x(s["median"]), 1):.1f}" '
           f'height="8" fill="{color}" fill-opacity="0.35"/>']
    for v in s["samples"]:
        out.append(f'<circle cx="{x(v):.1f}" cy="{y}" r="2" fill="{color}" fill-opacity="0.6"/>')
    out.append(f'<circle cx="{x(s["median"]):.1f}" cy="{y}" r="4.5" fill="{color}"/>')
    out.append(f'<text x="{x(s["max"]) + 6:.1f}" y="{y + 4}" font-size="11" fill="{color}">'
               f'{s["median"]:.2f} s</text>')
    return out


def _embed(chart, y):
    """The guest's own SVG as a nested <svg> placed at y; returns (markup, its width, its height)."""
    body = re.sub(r"<\?xml[^>]*\?>", "", chart).strip()
    m = re.search(r"<svg\b[^>]*>", body)
    if not m:
        return "", 0, 0
    tag = m.group(0)
    h = re.search(r'\bheight="([0-9.]+)', tag)
    w = re.search(r'\bwidth="([0-9.]+)', tag)
    height = float(h.group(1)) if h else 300.0
    width = float(w.group(1)) if w else WIDTH
    tag2 = re.sub(r'\s(x|y)="[^"]*"', "", tag).replace("<svg", f'<svg x="0" y="{y}"', 1)
    return body.replace(tag, tag2, 1), width, height


def render(report, chart=None):
    rows = [r for r in report["variants"] if r["uptime_s"] or r["wall_s"]]
    hi = max([r[k]["max"] for r in rows for k, _, _ in SERIES if r[k]] + [1.0])
    step = _tick_step(hi)
    hi = (int(hi / step) + 1) * step
    plot_w = WIDTH - LEFT - RIGHT

    def x(v):
        return LEFT + plot_w * v / hi

    height = TOP + ROW * len(rows) + 50
    width = WIDTH
    out = [f'<text x="20" y="28" font-size="16" font-weight="bold">Boot to "containerd ready": '
           f'{escape(report["date"])}, rounds: {report["rounds"]}, TCG, {escape(report["kernel"])}</text>',
           f'<text x="20" y="48" font-size="11" fill="#4a5568">{escape(report["machine"]["cpu"])}, '
           f'{report["machine"]["cpus"]} host CPUs, load average before {report["load_average"]["before"][0]}'
           f', after {report["load_average"]["after"][0]}. Dot: median; bar: median to p90; line: min to max'
           f'</text>']
    lx = LEFT
    for _, name, color in SERIES:
        out.append(f'<circle cx="{lx}" cy="{TOP - 8}" r="4.5" fill="{color}"/>'
                   f'<text x="{lx + 8}" y="{TOP - 4}" font-size="11">{escape(name)}</text>')
        lx += 220
    axis_y = TOP + ROW * len(rows) + 6
    t = 0.0
    while t <= hi + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#e2e8f0"/>'
                   f'<text x="{x(t):.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">{t:g} s</text>')
        t += step
    for i, r in enumerate(rows):
        y0 = TOP + ROW * i + ROW // 2
        label = f'{r["label"]} ({r["profile"]})'
        out.append(f'<text x="{LEFT - 10}" y="{y0 + 4}" font-size="12" text-anchor="end">{escape(label)}</text>')
        for j, (k, _, color) in enumerate(SERIES):
            if r[k]:
                out += _spread(x, y0 - 6 + 12 * j, r[k], color)
    if chart:
        out.append(f'<text x="20" y="{height + 10}" font-size="14" font-weight="bold">lifsea-init boot chart'
                   f' (initctl analyze --svg in the guest, {escape(report.get("boot_chart") or "")})</text>')
        markup, w, h = _embed(chart, height + 20)
        out.append(markup)
        height += 30 + h
        width = max(width, int(w))
    else:
        out.append(f'<text x="20" y="{height}" font-size="11" fill="#4a5568">No lifsea-init boot chart in this'
                   f' run (the lifsea-direct variant did not run or did not print it).</text>')
        height += 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{int(height) + 10}" '
            f'viewBox="0 0 {width} {int(height) + 10}" font-family="sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>')
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "\n".join(out) + "</svg>\n"
