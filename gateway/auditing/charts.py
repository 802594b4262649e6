"""Bar charts drawn on the server as inline SVG: the console loads nothing from
the network and runs no script to show them."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

_ROW, _LABEL_WIDTH, _BAR_WIDTH = 22, 260, 360
_PALETTE = ("#2f6690", "#3a7ca5", "#81c3d7", "#16425b", "#d9dcd6")


def bar_chart_svg(title: str, rows: list[tuple[str, str, int]]) -> Markup:
    """One bar per (day, who), grouped by day, longest bar = the largest count.

    ``rows`` are (day, who, count), as ``services.daily_volumes`` returns them.
    """
    if not rows:
        return Markup(f'<p class="empty">{escape(title)}: no events in the period.</p>')
    top = max(n for _, _, n in rows)
    colours: dict[str, str] = {}
    height = _ROW * (len(rows) + 1) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
             f'width="{_LABEL_WIDTH + _BAR_WIDTH + 60}" height="{height}" class="chart">',
             f'<text x="0" y="15" class="chart-title">{escape(title)}</text>']
    for i, (day, who, count) in enumerate(rows):
        y = _ROW * (i + 1) + 6
        colour = colours.setdefault(who, _PALETTE[len(colours) % len(_PALETTE)])
        width = max(1, round(_BAR_WIDTH * count / top))
        parts.append(f'<text x="0" y="{y + 14}" class="chart-label">{escape(day)} · {escape(who)}</text>')
        parts.append(f'<rect x="{_LABEL_WIDTH}" y="{y + 3}" width="{width}" height="{_ROW - 6}" fill="{colour}">'
                     f'<title>{escape(who)} on {escape(day)}: {count}</title></rect>')
        parts.append(f'<text x="{_LABEL_WIDTH + width + 6}" y="{y + 14}" class="chart-count">{count}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# Line charts over days: one line per series, a dot per day with data (a gap where a
# day has none), the y axis from 0 with four gridlines, and a legend under the plot.
_PLOT_LEFT, _PLOT_TOP, _PLOT_WIDTH, _PLOT_HEIGHT = 56, 44, 480, 170
_LINE_COLOURS = ("#2f6690", "#d1495b", "#edae49", "#00798c", "#6a4c93", "#30638e")


def _tick(value: float) -> str:
    return f"{value:.3g}"


def _nice_top(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at or above the largest value."""
    if value <= 0:
        return 1.0
    scale = 10 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    for step in (1, 2, 5, 10):
        if value <= step * scale:
            return float(step * scale)
    return float(10 * scale)


def line_chart_svg(title: str, days: list[str], series: list[tuple[str, list[float | None], bool]], *,
                   unit: str, empty: str, counts: bool = False) -> Markup:
    """``series`` are (legend label, one value or None per day, dashed); ``days`` label the x axis.
    ``counts``: whole numbers, so the gridlines fall on whole numbers too."""
    values = [v for _, points, _ in series for v in points if v is not None]
    if not values:
        return Markup(f'<p class="empty">{escape(title)}: {escape(empty)}</p>')
    top = 4.0 * max(1, math.ceil(max(values) / 4)) if counts else _nice_top(max(values))
    step = _PLOT_WIDTH / max(1, len(days) - 1)
    legend_rows = -(-len(series) // 3)
    height = _PLOT_TOP + _PLOT_HEIGHT + 34 + 20 * legend_rows

    def x(i: int) -> float:
        return _PLOT_LEFT + (i * step if len(days) > 1 else _PLOT_WIDTH / 2)

    def y(v: float) -> float:
        return _PLOT_TOP + _PLOT_HEIGHT * (1 - v / top)

    width = _PLOT_LEFT + _PLOT_WIDTH + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="chart line-chart">',
             f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
             f'<text x="{_PLOT_LEFT - 6}" y="{_PLOT_TOP - 12}" text-anchor="end" class="chart-label">{escape(unit)}</text>']
    for k in range(5):
        level = top * k / 4
        parts.append(f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_LEFT + _PLOT_WIDTH}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
                     f'stroke="#d9dcd6"/>')
        parts.append(f'<text x="{_PLOT_LEFT - 6}" y="{y(level) + 4:.1f}" text-anchor="end" class="chart-label">{_tick(level)}</text>')
    every = max(1, -(-len(days) // 7))  # at most about seven day labels
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{_PLOT_TOP + _PLOT_HEIGHT + 16}" text-anchor="middle" '
                         f'class="chart-label">{escape(day[5:])}</text>')
    legend_y = _PLOT_TOP + _PLOT_HEIGHT + 36
    parts.append('<g class="legend">')
    for n, (label, _, dashed) in enumerate(series):
        colour = _LINE_COLOURS[n % len(_LINE_COLOURS)]
        lx, ly = _PLOT_LEFT + (n % 3) * 170, legend_y + (n // 3) * 20
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"{dash}/>'
                     f'<text x="{lx + 30}" y="{ly}" class="chart-label legend-label">{escape(label)}</text>')
    parts.append("</g>")
    for n, (label, points, dashed) in enumerate(series):
        colour = _LINE_COLOURS[n % len(_LINE_COLOURS)]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        run: list[str] = []
        for i, v in enumerate([*points, None]):  # a None ends a run of joined points
            if v is not None:
                run.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            run = []
        for i, v in enumerate(points):
            if v is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                             f'<title>{escape(label)} · {escape(days[i])}: {_tick(v)} {escape(unit)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
