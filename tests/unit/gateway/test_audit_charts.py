"""The auditor console's chart arithmetic and drawing: nearest-rank percentiles,
latency grouped per agency per Beijing day, and line charts with a legend."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from gateway.auditing.charts import line_chart_svg
from gateway.auditing.services import latency_by_agency_day, percentile, volumes_by_day


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)
    assert percentile(list(range(1, 61)), 0.95) == 57  # 0.95 * 60 is 57 exactly, not 57.000001
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3, 1, 2], 0.5) == 2


def test_latency_is_grouped_per_agency_and_beijing_day():
    # 17:00 UTC is 01:00 the next day in Beijing: the answer counts on the Beijing day.
    late = datetime(2026, 3, 1, 17, 0, tzinfo=timezone.utc)
    rows = [("psb", late - timedelta(seconds=s), late) for s in (1, 2, 3, 40)]
    rows.append(("bank", late.replace(tzinfo=None) - timedelta(seconds=5), late.replace(tzinfo=None)))  # SQLite: naive UTC
    grouped = latency_by_agency_day(rows)
    assert grouped == {"bank": {date(2026, 3, 2): (5.0, 5.0, 1)}, "psb": {date(2026, 3, 2): (2.0, 40.0, 4)}}


def test_line_chart_has_a_legend_a_gap_and_dots():
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    svg = str(line_chart_svg("psb latency", days, [("p50", [1.0, None, 3.0], False), ("p95", [2.0, 4.0, 8.0], True)],
                             unit="s", empty="none"))
    legend = svg.split('<g class="legend">')[1].split("</g>")[0]
    assert ">p50<" in legend and ">p95<" in legend and 'stroke-dasharray="6 4"' in legend
    assert svg.count("<polyline") == 1  # p50 has a gap between its two days; p95 is one line
    assert svg.count("<circle") == 5 and "p95 · 2026-03-03: 8 s" in svg
    assert ">10<" in svg  # the axis tops at 10 for a largest value of 8
    assert "<p class=\"empty\">" in str(line_chart_svg("t", days, [("a", [None, None, None], False)], unit="s", empty="none"))


def test_volumes_are_counted_per_beijing_day():
    # 23:30 UTC on 1 March is 07:30 on 2 March in Beijing: both events count on 2 March.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)
    rows = [(late, "request.inquiry", "330102", "officer-a", {}),
            (late.replace(tzinfo=None), "delivery.result", None, None, {"agency": "psb"}),  # SQLite: naive UTC
            (late - timedelta(hours=16), "request.inquiry", "330102", "officer-a", {})]  # 15:30 Beijing, 1 March
    volumes = volumes_by_day(rows)
    assert volumes["court"] == [("2026-03-01", "330102", 1), ("2026-03-02", "330102", 1)]
    assert volumes["officer"] == [("2026-03-01", "officer-a", 1), ("2026-03-02", "officer-a", 1)]
    assert volumes["agency"] == [("2026-03-02", "psb", 1)]
