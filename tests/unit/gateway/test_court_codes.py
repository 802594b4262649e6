"""The court code table (gateway/cases/courts.py, config/courts.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cases.courts import CourtCodes, load_court_codes
from gateway.errors import ConfigError, RuleViolation
from gateway.settings import CONFIG_DIR, load_settings
from schemas.identifiers import IdentifierError, case_number_court_part


def test_court_part_of_a_case_number() -> None:
    assert case_number_court_part("(2024)浙0102执1234号") == "浙0102"
    assert case_number_court_part("（2024）京01执保3号") == "京01"
    with pytest.raises(IdentifierError, match="must look like"):
        case_number_court_part("2024-1234")


def test_the_default_table_knows_the_courts_of_the_demo_and_the_tests() -> None:
    courts = load_court_codes(load_settings(environ={}).courts_path)
    assert load_settings(environ={}).courts_path == CONFIG_DIR / "courts.toml"
    assert courts.parts["330102"] == {"浙0102"} and courts.parts["330106"] == {"浙0106"}
    assert courts.parts["110105"] == {"京0105"}
    courts.check("330102", "(2024)浙0102执1234号")


def test_a_case_number_of_another_court_is_refused_naming_the_rule() -> None:
    courts = CourtCodes.from_table({"330102": "浙0102", "110105": "京0105"}, "courts.toml")
    with pytest.raises(RuleViolation) as refused:
        courts.check("330102", "(2024)京0105执3号")
    assert refused.value.http_status == 422
    (rule,) = refused.value.fields["case_number"]
    assert "京0105" in rule and "court 330102 numbers its cases 浙0102" in rule
    with pytest.raises(RuleViolation):
        courts.check("330102", "(2024)浙01执3号")  # the intermediate court's, not the district court's


def test_a_court_missing_from_the_table_registers_nothing() -> None:
    courts = CourtCodes.from_table({"330102": "浙0102"}, "courts.toml")
    with pytest.raises(RuleViolation) as refused:
        courts.check("999999", "(2024)浙0102执3号")
    assert "court code table" in refused.value.fields["court_code"][0]


def test_a_court_may_number_under_several_parts() -> None:
    courts = CourtCodes.from_table({"330102": ["浙0102", "浙0103"]}, "courts.toml")
    courts.check("330102", "(2024)浙0103执3号")
    courts.check("330102", "(2024)浙０１０２执3号".replace("(", "（"))  # full width, normalised


@pytest.mark.parametrize("table, problem", [
    ({"330102": "0102"}, "province abbreviation"),
    ({"330102": []}, "must name a court part"),
    ({"330102": 102}, "must name a court part"),
    ({"3": "浙0102"}, "2 to 32"),
    ({"330102": "浙0102", "330103": "浙0102"}, "both court 330102 and court 330103"),
])
def test_a_bad_table_stops_the_start(table, problem) -> None:
    with pytest.raises(ConfigError, match=problem):
        CourtCodes.from_table(table, "courts.toml")


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "courts.toml"
    path.write_text('[court]\n330102 = "浙0102"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"one table \[courts\]"):
        load_court_codes(path)
    with pytest.raises(ConfigError, match="not found"):
        load_court_codes(tmp_path / "missing.toml")
    path.write_text('[courts]\n330102 = "浙0102"\n', encoding="utf-8")
    settings = load_settings({"gateway": {"courts_file": str(path)}}, environ={})
    assert load_court_codes(settings.courts_path).parts == {"330102": {"浙0102"}}
