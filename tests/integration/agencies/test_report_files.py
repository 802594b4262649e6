"""The asset report as CSV and PDF (Accept: text/csv, application/pdf, or ?format=).

The PDF is checked the way a reader sees it: poppler renders it to an image and
extracts its text, so a font without Chinese glyphs (boxes) or a missing ToUnicode
map fails here. Debian's fonts-wqy-microhei and poppler-utils are installed by the
test if missing; the rendered page is kept under test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import subprocess
from decimal import Decimal
from pathlib import Path


from conftest import audit_rows, poppler_and_font  # noqa: F401 (fixture)
from test_agency_actions import (  # noqa: F401 (fixtures)
    CASE, DEBTOR, OWED, agencies, app, assets, court, inquire, report,
)

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
REPORT_URL = f"/api/v1/cases/{CASE}/subjects/{DEBTOR['id_number']}/assets"


def _dark_pixels(ppm: bytes) -> int:
    """Pixels darker than mid-grey in a binary PGM (P5) image."""
    header, _, rest = ppm.partition(b"\n")
    assert header == b"P5"
    dims, _, rest = rest.partition(b"\n")
    _maxval, _, pixels = rest.partition(b"\n")
    return sum(1 for value in pixels if value < 128)


def test_the_report_as_csv_has_every_asset_the_totals_and_the_gaps(court, app, agencies):
    inquire(court, app)
    as_json = report(court)
    reply = court.get(REPORT_URL, headers={"Accept": "text/csv"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert "attachment;" in reply.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))
    listed = [(r["agency"], r["category"], r["identifier"]) for r in rows if r["record"] == "asset"]
    assert listed == [(a["agency"], a["category"], a["identifier"]) for a in as_json["assets"]]
    totals = {r["identifier"]: r["balance"] for r in rows if r["record"] == "total"}
    assert totals["amount_owed"] == OWED
    assert Decimal(totals["cash_found"]) == Decimal(as_json["cash_found"])
    assert totals["cash_recoverable_ratio"] == as_json["cash_recoverable_ratio"]
    assert [r["agency"] for r in rows if r["record"] == "gap"] == [g["agency"] for g in as_json["gaps"]]
    # ?format= gives the same file (a console link cannot set Accept).
    assert court.get(REPORT_URL + "?format=csv").content == reply.content
    formats = [e.details["format"] for e in audit_rows(app) if e.action == "report.read"]
    assert formats[-2:] == ["text/csv", "text/csv"]


def test_the_report_as_pdf_renders_with_its_chinese_text(court, app, agencies, poppler_and_font, tmp_path):
    inquire(court, app)
    deposits = assets(report(court), "bank-a", "deposit")
    reply = court.get(REPORT_URL, headers={"Accept": "application/pdf"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "application/pdf" and reply.content.startswith(b"%PDF-")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(reply.content)

    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "WenQuanYi" in fonts and " yes " in fonts  # embedded, so it reads the same anywhere
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "财产查询报告" in text and DEBTOR["name"] in text and CASE in text
    assert DEBTOR["id_number"] not in text and DEBTOR["id_number"][-4:] in text  # masked in a file that travels
    assert all(d["identifier"] in text for d in deposits)
    assert "现金可回收率" in text

    subprocess.run(["pdftoppm", "-r", "60", "-gray", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    (page,) = tmp_path.glob("page*.pgm")
    assert _dark_pixels(page.read_bytes()) > 2000  # the heading and tables are drawn, not a blank page
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "80", "-png", "-singlefile", str(pdf), str(ARTIFACTS / "asset-report-page1")],
                   check=True)


def test_a_format_the_report_has_not_is_refused_naming_it(court, app, agencies):
    inquire(court, app)
    refused = court.get(REPORT_URL, headers={"Accept": "image/png"})
    assert refused.status_code == 406 and "Accept" in refused.json()["error"]["fields"]
    assert court.get(REPORT_URL + "?format=docx").json()["error"]["fields"]["format"]


def test_a_pdf_without_a_chinese_font_says_what_to_install(court, app, agencies, monkeypatch, tmp_path):
    monkeypatch.setattr("gateway.reports.render.FONT_CANDIDATES", (tmp_path / "none.ttc",))
    inquire(court, app)
    reply = court.get(REPORT_URL + "?format=pdf")
    assert reply.status_code == 503 and "fonts-wqy-microhei" in reply.json()["error"]["message"]
