"""The asset report as a court files it: CSV for spreadsheets, PDF for the case file.

Pure rendering of the report ``build_report`` made (no database, no request). Both
show every asset with its controls, exempt cash apart, the totals and the agencies
that have not answered (gaps). The identity number is masked in both: a file
leaves the gateway and travels further than an API answer.

The PDF needs a TrueType font with Chinese glyphs; reportlab embeds the subset it
uses, so the file reads the same on any machine. Which font: ``[reports]
pdf_font_file``, else the first of ``FONT_CANDIDATES`` on this machine (Debian's
fonts-wqy-microhei). CFF-flavoured OpenType (Noto CJK .otf/.ttc) is not usable by
reportlab, so it is not a candidate.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.errors import ServiceUnavailable
from gateway.timeutil import court_date, court_timezone
from schemas.identifiers import mask_id_number

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)

CATEGORY_NAMES = {
    "deposit": "存款", "wealth_product": "理财产品", "securities": "证券", "real_estate": "不动产",
    "vehicle": "车辆", "equity": "股权", "enterprise": "企业登记", "tax": "纳税", "identity": "户籍",
    "whereabouts": "出入境/住宿", "social_security": "社保", "provident_fund": "公积金",
    "internet_payment": "网络支付",
}
CONTROL_NAMES = {"freeze": "冻结", "seal": "查封", "deduct": "扣划", "watch": "布控", "renew": "续冻"}

CSV_COLUMNS = ("record", "agency", "category", "identifier", "description", "balance", "value", "exempt",
               "encumbrances", "controls", "found_at", "state", "error")


def _money(value: Any) -> str:
    return "" if value is None else f"{Decimal(value):.2f}"


def _local_time(moment: datetime | str | None) -> str:
    """Beijing (court) local time to the minute, as a court reads it."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(court_timezone()).strftime("%Y-%m-%d %H:%M")


def _controls_text(controls: Iterable[dict[str, Any]]) -> str:
    parts = []
    for c in controls:
        until = c.get("until")
        words = [CONTROL_NAMES.get(c.get("action", ""), c.get("action", "")), c.get("state", "")]
        if c.get("amount") is not None:
            words.append(_money(c["amount"]))
        if until:
            words.append(f"至 {until.isoformat() if isinstance(until, date) else until}")
        parts.append(" ".join(w for w in words if w))
    return "; ".join(parts)


def _report_rows(report: dict[str, Any]) -> Iterable[list[str]]:
    """A row per asset, then the totals, then each gap (column ``record`` says which)."""
    for a in report["assets"]:
        yield ["asset", a["agency"], a["category"], a["identifier"], a["description"], _money(a["balance"]),
               _money(a["value"]), "yes" if a["exempt"] else "no", "; ".join(a["encumbrances"] or []),
               _controls_text(a["controls"]), _local_time(a["found_at"]), "", ""]
    for name in ("amount_owed", "cash_found", "cash_exempt", "cash_frozen"):
        yield ["total", "", "", name, "", _money(report[name]), "", "", "", "", "", "", ""]
    yield ["total", "", "", "cash_recoverable_ratio", "", report["cash_recoverable_ratio"], "", "", "", "", "", "", ""]
    for g in report["gaps"]:
        yield ["gap", g["agency"], " ".join(g["categories"]), "", "", "", "", "", "", "", "", g["state"], g["error"] or ""]


def report_csv(report: dict[str, Any]) -> str:
    """One table: a row per asset, then the totals, then each gap (column ``record`` says which)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_report_rows(report))
    return out.getvalue()


BATCH_COLUMNS = ("line", "case_number", "debtor", "debtor_id_number", "line_state", "request_state")


def batch_report_csv(entries: Iterable[tuple[dict[str, Any], dict[str, Any] | None]]) -> str:
    """One table for a whole batch: each line's report rows, prefixed with the line, case
    and debtor (masked); a line without a report (refused, or not yet made) has one row
    saying why."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BATCH_COLUMNS + CSV_COLUMNS)
    for line, report in entries:
        prefix = [str(line["line"]), line["case_number"], line["debtor"]["name"], line["debtor"]["id_number_masked"],
                  line["state"], line["request_state"] or ""]
        if report is None:
            writer.writerow(prefix + ["line"] + [""] * (len(CSV_COLUMNS) - 2) + [line["error"] or ""])
            continue
        writer.writerows(prefix + row for row in _report_rows(report))
    return out.getvalue()


def find_font(configured: str) -> Path:
    """The font file to embed. Raises ServiceUnavailable saying what to install."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ServiceUnavailable(f"setting reports.pdf_font_file: {path} is not a file")
        return path
    for path in FONT_CANDIDATES:
        if path.is_file():
            return path
    raise ServiceUnavailable("no Chinese font for the PDF report: install Debian's fonts-wqy-microhei "
                             "or name a TrueType font in [reports] pdf_font_file")


def _register_font(path: Path) -> str:
    """The font's name for reportlab, registered once per process (reportlab keeps a global table)."""
    name = f"CJK-{path.stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    return name


def report_pdf(report: dict[str, Any], *, font_file: Path, generated_at: datetime) -> bytes:
    """An A4 landscape PDF: heading, totals, assets with their controls, gaps."""
    body = ParagraphStyle("body", fontName=_register_font(font_file), fontSize=8.5, leading=11)
    heading = ParagraphStyle("heading", parent=body, fontSize=15, leading=20, spaceAfter=4)
    subheading = ParagraphStyle("subheading", parent=body, fontSize=11, leading=15, spaceBefore=8, spaceAfter=3)

    def cell(text: Any) -> Paragraph:
        escaped = str(text if text is not None else "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return Paragraph(escaped, body)

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table([[cell(v) for v in row] for row in rows], colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]))
        return t

    subject = report["subject"]
    story: list[Any] = [
        Paragraph("财产查询报告", heading),
        cell(f"案号 {report['case_number']}　被执行人 {subject['name']}（{mask_id_number(subject['id_number'])}）"),
        cell(f"截至 {_local_time(report['as_of'])}　生成于 {_local_time(generated_at)}（北京时间）"
             f"　报告日期 {court_date(generated_at).isoformat()}"),
        Paragraph("合计", subheading),
        table([["申请执行标的", "可冻结现金", "豁免现金（不得冻结）", "已冻结现金", "现金可回收率"],
               [_money(report["amount_owed"]), _money(report["cash_found"]), _money(report["cash_exempt"]),
                _money(report["cash_frozen"]), report["cash_recoverable_ratio"]]], [45, 45, 55, 45, 45]),
        Paragraph(f"财产（{len(report['assets'])} 项）", subheading),
        table([["类别", "机构", "标识", "描述", "余额", "价值", "豁免", "权利负担", "控制措施"]] + [
            [CATEGORY_NAMES.get(a["category"], a["category"]), a["agency"], a["identifier"], a["description"],
             _money(a["balance"]), _money(a["value"]), "是" if a["exempt"] else "", "；".join(a["encumbrances"] or []),
             _controls_text(a["controls"])]
            for a in report["assets"]], [20, 24, 38, 52, 22, 22, 12, 32, 45]),
        Paragraph(f"未答复的机构（{len(report['gaps'])}）", subheading),
    ]
    if report["gaps"]:
        story.append(table([["机构", "类别", "状态", "原因"]] + [
            [g["agency"], "、".join(CATEGORY_NAMES.get(c, c) for c in g["categories"]), g["state"], g["error"] or ""]
            for g in report["gaps"]], [40, 60, 30, 130]))
    else:
        story.append(cell("全部机构均已答复。"))
    story.append(Spacer(1, 4 * mm))
    story.append(cell("现金可回收率 = 可冻结现金 ÷ 申请执行标的；1.0 表示已查到的现金足以清偿。豁免账户（社保、低保等）不计入。"))

    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                      bottomMargin=12 * mm, title=f"财产查询报告 {report['case_number']}",
                      author="enforcement data exchange gateway").build(story)
    return out.getvalue()
