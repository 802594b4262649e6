"""Tests for schemas.identifiers: resident IDs, USCCs, case numbers, masking."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from gateway.timeutil import court_today
from schemas.identifiers import (
    IdentifierError,
    check_case_number,
    check_resident_id,
    check_uscc,
    mask_id_number,
    resident_id_check_digit,
    uscc_check_char,
)

DIGITS = "0123456789"
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def make_resident_id(region: str, birth: str, seq: str) -> str:
    body = region + birth + seq
    return body + resident_id_check_digit(body)


def make_uscc(body: str) -> str:
    return body + uscc_check_char(body)


# --------------------------------------------------------------------------
# Resident ID numbers
# --------------------------------------------------------------------------


def test_error_is_a_value_error() -> None:
    assert issubclass(IdentifierError, ValueError)


def test_known_good_resident_id() -> None:
    assert check_resident_id("11010519491231002X") == "11010519491231002X"


def test_lower_case_x_is_normalised() -> None:
    assert check_resident_id("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("11010519491231002", "X"),
        ("44030419900101123", resident_id_check_digit("44030419900101123")),
    ],
)
def test_resident_id_check_digit(body: str, expected: str) -> None:
    assert resident_id_check_digit(body) == expected
    assert check_resident_id(body + expected) == body + expected


def test_constructed_resident_ids_pass() -> None:
    for rid in (
        make_resident_id("110105", "19000101", "001"),
        make_resident_id("330102", "20000229", "123"),
        make_resident_id("650104", court_today().strftime("%Y%m%d"), "999"),
    ):
        assert check_resident_id(rid) == rid


@pytest.mark.parametrize("bad", ["", "1101051949123100", "1" * 19, "1101051949123100X", "a" * 17])
def test_resident_id_check_digit_rejects_bad_body(bad: str) -> None:
    with pytest.raises(IdentifierError, match="17 digits"):
        resident_id_check_digit(bad)


@pytest.mark.parametrize("value", [None, 11010519491231002, b"11010519491231002X"])
def test_resident_id_must_be_str(value: object) -> None:
    with pytest.raises(IdentifierError, match="must be a str"):
        check_resident_id(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "11010519491231002",
        "11010519491231002X0",
        " 11010519491231002X",
        "11010519491231002X ",
        "11010519491231002X\n",
    ],
)
def test_resident_id_wrong_length(value: str) -> None:
    with pytest.raises(IdentifierError, match="must be 18 characters"):
        check_resident_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "1101051949123100YX",
        "A1010519491231002X",
        "110105194912310 2X",
        "11010519491231002Y",
        "１1010519491231002X",  # full-width digit
        "²1010519491231002X",  # str.isdigit() is True for this
        "11010519491231002-",
    ],
)
def test_resident_id_bad_characters(value: str) -> None:
    assert len(value) == 18
    with pytest.raises(IdentifierError, match="17 digits followed by a digit or X"):
        check_resident_id(value)


def test_resident_id_region_must_not_start_with_zero() -> None:
    rid = make_resident_id("010105", "19491231", "002")
    with pytest.raises(IdentifierError, match="region code must not start with 0"):
        check_resident_id(rid)


@pytest.mark.parametrize("birth", ["19490230", "19490000", "19491301", "19490431", "19000229", "00000101"])
def test_resident_id_impossible_date(birth: str) -> None:
    rid = make_resident_id("110105", birth, "002")
    with pytest.raises(IdentifierError, match=f"birth date {birth} is not a real calendar date"):
        check_resident_id(rid)


def test_resident_id_future_date() -> None:
    # The court clock's tomorrow: the machine's (UTC) tomorrow is the court's today between
    # 00:00 and 08:00 Beijing time, which is when CI once ran this and it passed a valid ID.
    tomorrow = (court_today() + dt.timedelta(days=1)).strftime("%Y%m%d")
    for birth in (tomorrow, "29991231"):
        rid = make_resident_id("110105", birth, "002")
        with pytest.raises(IdentifierError, match="is in the future"):
            check_resident_id(rid)


def test_resident_id_before_1900() -> None:
    rid = make_resident_id("110105", "18991231", "002")
    with pytest.raises(IdentifierError, match="before 1900-01-01"):
        check_resident_id(rid)


def test_resident_id_wrong_check_digit_message() -> None:
    with pytest.raises(IdentifierError) as info:
        check_resident_id("110105194912310021")
    assert str(info.value) == "resident ID number check digit is wrong: expected X, got 1"


TODAY = court_today()

valid_resident_ids = st.builds(
    make_resident_id,
    region=st.text(alphabet="123456789", min_size=1, max_size=1).flatmap(
        lambda first: st.text(alphabet=DIGITS, min_size=5, max_size=5).map(lambda rest: first + rest)
    ),
    birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY).map(lambda d: d.strftime("%Y%m%d")),
    seq=st.text(alphabet=DIGITS, min_size=3, max_size=3),
)


@given(valid_resident_ids)
def test_property_constructed_resident_ids_pass(rid: str) -> None:
    assert check_resident_id(rid) == rid
    assert check_resident_id(rid.lower()) == rid


@given(valid_resident_ids, st.integers(min_value=0, max_value=17), st.sampled_from(DIGITS + "X"))
def test_property_single_substitution_is_detected(rid: str, pos: int, new: str) -> None:
    if new == rid[pos] or (new == "X" and pos != 17):
        return
    mutated = rid[:pos] + new + rid[pos + 1 :]
    with pytest.raises(IdentifierError):
        check_resident_id(mutated)


# --------------------------------------------------------------------------
# Unified social credit codes
# --------------------------------------------------------------------------


def test_real_looking_uscc_examples() -> None:
    # Computed with this implementation, not assumed:
    assert check_uscc("91350100M000100Y43") == "91350100M000100Y43"
    assert uscc_check_char("91110000100000589") == "A"
    with pytest.raises(IdentifierError, match="expected A, got B"):
        check_uscc("91110000100000589B")
    assert check_uscc("91110000100000589A") == "91110000100000589A"


def test_uscc_lower_case_is_normalised() -> None:
    assert check_uscc("91350100m000100y43") == "91350100M000100Y43"


@pytest.mark.parametrize("body", ["91350100M000100Y4", "Y1110000100000589", "A1110000100000589", "N2110000ABCDEFGHJ"])
def test_uscc_constructed_pass(body: str) -> None:
    code = make_uscc(body)
    assert check_uscc(code) == code


def test_uscc_must_be_str() -> None:
    with pytest.raises(IdentifierError, match="must be a str"):
        check_uscc(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "91350100M000100Y4", "91350100M000100Y433", " 91350100M000100Y43"])
def test_uscc_wrong_length(value: str) -> None:
    with pytest.raises(IdentifierError, match="must be 18 characters"):
        check_uscc(value)


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V", "i", "o", "z", "s", "v", "-", " ", "ß", "ſ", "Ｍ"])
def test_uscc_forbidden_characters(letter: str) -> None:
    code = "91350100" + letter + "000100Y43"
    assert len(code) == 18
    with pytest.raises(IdentifierError, match="other than I, O, Z, S, V"):
        check_uscc(code)


def test_uscc_region_must_be_digits() -> None:
    code = make_uscc("913501A0M000100Y4")
    with pytest.raises(IdentifierError, match="region code"):
        check_uscc(code)


def test_uscc_wrong_check_char() -> None:
    with pytest.raises(IdentifierError, match="check character is wrong: expected 3, got 4"):
        check_uscc("91350100M000100Y44")


@pytest.mark.parametrize("bad", ["", "9135010M000100Y4", "91350100m000100Y4", "91350100I000100Y4"])
def test_uscc_check_char_rejects_bad_body(bad: str) -> None:
    with pytest.raises(IdentifierError, match="17 characters"):
        uscc_check_char(bad)


charset_chars = st.sampled_from(USCC_CHARSET)
valid_usccs = st.builds(
    lambda head, region, tail: make_uscc("".join(head) + "".join(region) + "".join(tail)),
    st.lists(charset_chars, min_size=2, max_size=2),
    st.lists(st.sampled_from(DIGITS), min_size=6, max_size=6),
    st.lists(charset_chars, min_size=9, max_size=9),
)


@given(valid_usccs)
def test_property_constructed_usccs_pass(code: str) -> None:
    assert check_uscc(code) == code
    assert check_uscc(code.lower()) == code


@given(valid_usccs, st.integers(min_value=0, max_value=17), charset_chars)
def test_property_uscc_single_substitution_is_detected(code: str, pos: int, new: str) -> None:
    if new == code[pos]:
        return
    mutated = code[:pos] + new + code[pos + 1 :]
    with pytest.raises(IdentifierError):
        check_uscc(mutated)


# --------------------------------------------------------------------------
# Case numbers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("(2024)浙0102执1234号", "(2024)浙0102执1234号"),
        ("（2024）浙0102执1234号", "(2024)浙0102执1234号"),
        ("(2024）浙0102执1234号", "(2024)浙0102执1234号"),
        ("(1990)京01执1号", "(1990)京01执1号"),
        ("(2100)粤030406执999999号", "(2100)粤030406执999999号"),
        ("(2019)沪0115执恢12号", "(2019)沪0115执恢12号"),
        ("(2020)苏05执保3号", "(2020)苏05执保3号"),
        ("(2021)川01执异45号", "(2021)川01执异45号"),
        ("(2022)鲁01执复6号", "(2022)鲁01执复6号"),
        ("(2023)最12执监7号", "(2023)最12执监7号"),
        ("(2023)豫01执协8号", "(2023)豫01执协8号"),
        ("(2023)闽01执他9号", "(2023)闽01执他9号"),
        ("(2024)浙０１０２执1234号", "(2024)浙0102执1234号"),  # full-width digits
        ("〔2024〕浙0102执1234号", "(2024)浙0102执1234号"),  # tortoise-shell brackets
    ],
)
def test_good_case_numbers(value: str, expected: str) -> None:
    assert check_case_number(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2024浙0102执1234号",
        "(2024)浙0102执1234",
        "(2024)浙0102执0123号",  # leading zero in serial
        "(2024)浙0102执1234567号",  # serial too long
        "(2024)浙0执1234号",  # court code too short
        "(2024)浙0102030执1234号",  # court code too long
        "(2024)Z0102执1234号",  # not a CJK province character
        "(2024)0102执1234号",  # missing province
        "(2024)浙0102民1234号",  # not an enforcement case
        "(2024)浙0102执终1234号",  # unknown suffix
        "(2024)浙0102执恢保1234号",  # two suffixes
        "(24)浙0102执1234号",
        " (2024)浙0102执1234号",
        "(2024)浙0102执1234号 ",
        "[2024]浙0102执1234号",
    ],
)
def test_bad_case_numbers(value: str) -> None:
    with pytest.raises(IdentifierError, match=r"case number must look like \(2024\)浙0102执1234号"):
        check_case_number(value)


@pytest.mark.parametrize("year", ["1989", "2101", "0000", "9999"])
def test_case_number_year_out_of_range(year: str) -> None:
    with pytest.raises(IdentifierError, match=f"between 1990 and 2100, got {int(year)}"):
        check_case_number(f"({year})浙0102执1234号")


def test_case_number_must_be_str() -> None:
    with pytest.raises(IdentifierError, match="must be a str"):
        check_case_number(20241234)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("110105194912311234", "1101**********1234"),
        ("11010519491231002X", "1101**********002X"),
        ("123456789", "1234*6789"),
        ("12345678", "******78"),
        ("abc", "*bc"),
        ("ab", "**"),
        ("a", "*"),
        ("", ""),
    ],
)
def test_mask_examples(value: str, expected: str) -> None:
    assert mask_id_number(value) == expected


@given(st.text(min_size=18, max_size=18))
def test_property_mask_never_leaks_characters_5_to_14(value: str) -> None:
    masked = mask_id_number(value)
    assert len(masked) == 18
    assert masked[4:14] == "*" * 10
    assert masked[:4] == value[:4] and masked[14:] == value[14:]


@given(valid_resident_ids)
def test_property_mask_hides_birth_date(rid: str) -> None:
    masked = mask_id_number(rid)
    assert rid[6:14] not in masked
    assert masked == rid[:4] + "*" * 10 + rid[-4:]


@given(st.text(alphabet=st.characters(blacklist_characters="*")))
def test_property_mask_always_hides_something(value: str) -> None:
    masked = mask_id_number(value)
    assert len(masked) == len(value)
    if value:
        assert masked != value
    if len(value) > 8:
        assert masked[4:-4] == "*" * (len(value) - 8)
    # at most 8 characters are ever shown in clear
    assert sum(a == b for a, b in zip(masked, value)) <= 8


def test_future_birth_date_is_judged_on_the_court_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 23:30 UTC it is already the next day in Beijing: a child born that Beijing
    morning is registered, one "born" the day after is still refused."""
    from schemas import identifiers

    monkeypatch.setattr(identifiers, "_utc_now",
                        lambda: dt.datetime(2020, 3, 1, 23, 30, tzinfo=dt.timezone.utc))
    born_this_morning = make_resident_id("110105", "20200302", "002")
    assert check_resident_id(born_this_morning) == born_this_morning
    with pytest.raises(IdentifierError, match="in the future"):
        check_resident_id(make_resident_id("110105", "20200303", "002"))
