"""schemas.canonical.load_asset_record: the cheap check of a codec's assets takes and
refuses exactly what AssetRecordSchema takes and refuses, with the same result and the
same field-by-field errors, over good and bad assets alike."""

from __future__ import annotations

from collections import UserDict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from adapters.codecs.bank import BankCodec
from adapters.interfaces import DeliveryOrder, Reply, SubjectRef
from sandboxes.bank import BankAgency
from schemas.canonical import AssetRecordSchema, _plain_asset, load_asset_record
from schemas.vocabulary import CATEGORIES

SCHEMA = AssetRecordSchema()


class Text(str):
    """A str subclass: marshmallow takes it; the cheap path leaves it to marshmallow."""


def outcome(check, data):
    """("ok", loaded) or ("refused", messages)."""
    try:
        return "ok", check(data)
    except ValidationError as error:
        return "refused", error.messages


def assert_same(data) -> None:
    assert outcome(load_asset_record, data) == outcome(SCHEMA.load, data)
    plain = _plain_asset(data)
    if plain is not None:  # the cheap path never takes what the schema refuses, and gives what it gives
        assert plain == SCHEMA.load(data)


GOOD = {"category": "deposit", "identifier": "6222****1234", "description": "current account",
        "balance": "12.30", "value": None, "encumbrances": ["frozen by (2023)沪01执5号: 100.00"],
        "details": {"branch": "上海浦东支行", "freezes": [{"amount": "100.00"}], "exempt": False}}

STRINGS = st.one_of(
    st.text(max_size=3), st.sampled_from(["", "x" * 128, "x" * 129, "x" * 500, "x" * 501]),
    st.sampled_from(list(CATEGORIES) + ["gold", "Deposit"]), st.builds(Text, st.text(max_size=3)),
)
MONEY = st.sampled_from(["0.00", "12.30", "1" * 16 + ".00", "1" * 17 + ".00", "01.00", "1.0", "1.000", "-1.00",
                         "1.00\n", " 1.00", "1e2", "１.00", "", "0"])
ODD = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False), st.just(Decimal("1.00")), st.binary(max_size=4),
    st.just(b"\xff"), st.booleans(), st.just(("a",)), st.just(["a", 1]), st.just({1: "a"}), st.just({"a": 1}),
    st.just(UserDict({"a": 1})), st.just(Text("1.00")),
)
FIELD_VALUES = {
    "category": st.one_of(st.sampled_from(CATEGORIES), STRINGS, ODD),
    "identifier": st.one_of(STRINGS, ODD),
    "description": st.one_of(STRINGS, ODD),
    "balance": st.one_of(MONEY, ODD),
    "value": st.one_of(MONEY, ODD),
    "encumbrances": st.one_of(st.lists(st.one_of(st.text(max_size=3), ODD), max_size=3), ODD),
    "details": st.one_of(st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.binary(max_size=2)),
                                         st.one_of(st.text(max_size=3), ODD), max_size=3), ODD),
}


@st.composite
def assets(draw):
    data = {}
    for name, values in FIELD_VALUES.items():
        choice = draw(st.sampled_from(["good", "good", "other", "missing"]))
        if choice == "good":
            data[name] = GOOD[name]
        elif choice == "other":
            data[name] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.sampled_from(["extra", "Category", "id", 1]))] = "x"
    return data


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assets())
def test_cheap_check_agrees_with_the_schema(data) -> None:
    assert_same(data)


@pytest.mark.parametrize("data", [
    GOOD,
    {"category": "deposit", "identifier": "a", "description": ""},             # defaults filled
    {**GOOD, "balance": "1.00\n"},                                              # Money's own pattern ($ before LF)
    {**GOOD, "category": "gold"}, {**GOOD, "identifier": ""}, {**GOOD, "identifier": "x" * 129},
    {**GOOD, "description": "x" * 501}, {**GOOD, "description": None}, {**GOOD, "balance": "1"},
    {**GOOD, "balance": 12.3}, {**GOOD, "encumbrances": None}, {**GOOD, "encumbrances": [1]},
    {**GOOD, "encumbrances": ("a",)}, {**GOOD, "details": {1: "a"}}, {**GOOD, "details": None},
    {**GOOD, "identifier": b"6222"}, {**GOOD, "extra": 1}, {"identifier": "a", "description": "b"},
    [GOOD], None, "asset",
])
def test_named_cases_agree(data) -> None:
    assert_same(data)


def test_bad_asset_is_refused_with_the_schemas_errors() -> None:
    with pytest.raises(ValidationError) as info:
        load_asset_record({**GOOD, "category": "gold", "balance": "1", "extra": 1})
    assert set(info.value.messages) == {"category", "balance", "extra"}


def test_codec_assets_take_the_cheap_path() -> None:
    codec = BankCodec()
    order = DeliveryOrder(message_id="d-0001", action="inquiry", categories=("deposit", "wealth_product"),
                          subject=SubjectRef(kind="person", name="张三", id_number="330102198703151157"),
                          case_number="(2024)浙0102执1234号", court_code="330102", officer="officer.wang")
    envelope = codec.encode(order)
    answer = codec.decode(Reply(status=200, body=BankAgency("Bank C", 18).handle(envelope.body),
                                media_type=envelope.media_type), envelope)
    assert answer.assets
    for asset in answer.assets:
        plain = _plain_asset(asset)
        assert plain is not None and plain == SCHEMA.load(asset)
