"""Bar charts drawn on the server as inline SVG: the console loads nothing from
the network and runs no script to show them."""

from __future__ import annotations

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
