"""schemas.plain.plain_load: the cheap pass over plainly valid messages gives what the
schema's own ``load`` gives, and never takes what the schema refuses, over the public
security bureau's real answers and thousands of damaged ones; schemas it cannot follow
(hooks, defaults, other field types) are always left to marshmallow."""

from __future__ import annotations

import copy
import json
import uuid
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validates_schema

from adapters.codecs.public_security import PublicSecurityCodec
from adapters.interfaces import DeliveryOrder, SubjectRef
from sandboxes.public_security import create_app
from schemas.agencies import public_security as psb
from schemas.identifiers import resident_id_check_digit
from schemas.plain import plain_load

ANSWER = psb.AnswerSchema()


def _answers() -> list[dict]:
    """The sandbox bureau's answers for a few debtors: households, vehicles, whereabouts, none."""
    codec, agency, found = PublicSecurityCodec(), create_app().test_client(), []
    for n in range(12):
        base = f"3301021987031{n:04d}"[:17]
        order = DeliveryOrder(message_id=str(uuid.uuid4()), action="inquiry",
                              categories=codec.action_categories["inquiry"],
                              subject=SubjectRef(kind="person", name="张三", id_number=base + resident_id_check_digit(base)),
                              case_number="(2024)浙0102执1234号", court_code="330102", officer="officer.wang")
        envelope = codec.encode(order)
        reply = agency.post(f"/psb/v1/{envelope.operation}", data=envelope.body,
                            headers={"Content-Type": envelope.media_type, "X-Message-Id": envelope.message_id})
        found.append(json.loads(reply.get_data()))
    return found


GOOD = _answers()


def _outcome(check, data):
    try:
        return "ok", check(data)
    except ValidationError as error:
        return "refused", error.messages


def assert_same(schema: Schema, data) -> None:
    expected = _outcome(schema.load, copy.deepcopy(data))
    plain = plain_load(schema, data)
    if plain is not None:
        assert expected == ("ok", plain)
        assert list(plain) == list(expected[1])  # the same keys in the same order


def test_every_real_answer_takes_the_cheap_pass_with_the_schemas_result():
    kinds = set()
    for answer in GOOD:
        assert plain_load(ANSWER, answer) == ANSWER.load(answer)
        data = answer["Data"]
        kinds |= {k for k in ("CL", "XZ") if data.get(k)} | ({"HJ"} if data.get("HJ") else {"no HJ"})
    assert kinds == {"HJ", "no HJ", "CL", "XZ"}  # the sample covers each part of an answer


def _paths(value, path=()):
    """Every place in a JSON value: (path to the container, key or index)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield path, index
            yield from _paths(item, path + (index,))


def _at(value, path):
    for step in path:
        value = value[step]
    return value


ODD = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.just([]), st.just(["a"]), st.just({}),
    st.just({"x": "1"}), st.text(max_size=3), st.just(""), st.just("x" * 300), st.just("12"), st.just("12\n"),
    st.just("1999-01-01"), st.just("2026-12-07T06:00:00Z"), st.just("0" * 64), st.just(b"bytes"),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(GOOD))), st.data())
def test_damaged_answers_are_never_taken_unless_the_schema_takes_them_alike(which, data):
    answer = copy.deepcopy(GOOD[which])
    places = list(_paths(answer))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path, key = data.draw(st.sampled_from(places))
        try:
            container = _at(answer, path)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced it
        how = data.draw(st.sampled_from(["replace", "delete", "add", "suffix"]))
        try:
            if how == "replace":
                container[key] = data.draw(ODD)
            elif how == "delete":
                del container[key]
            elif how == "add" and isinstance(container, dict):
                container[data.draw(st.sampled_from(["EXTRA", "hj", "Head2"]))] = "1"
            elif how == "suffix" and isinstance(container[key], str):
                container[key] += data.draw(st.sampled_from(["\n", " ", "x", "x" * 200]))
        except (KeyError, IndexError, TypeError):
            continue
    assert_same(ANSWER, answer)


@pytest.mark.parametrize("odd", [OrderedDict(GOOD[0]), [GOOD[0]], None, "answer", GOOD[0]["Data"]])
def test_other_shapes_are_left_to_the_schema(odd):
    """Not a plain dict (a mapping marshmallow takes, a list, a scalar, the wrong part): the schema decides."""
    assert plain_load(ANSWER, odd) is None


class _WithHook(Schema):
    A = fields.Str(required=True)

    @validates_schema
    def _never(self, data, **kwargs):
        raise ValidationError("never")


class _WithDefault(Schema):
    A = fields.Str(load_default="x")


class _WithOtherField(Schema):
    A = fields.Int()


class _Renamed(Schema):
    A = fields.Str(data_key="a")


@pytest.mark.parametrize("schema, data", [
    (_WithHook(), {"A": "1"}), (_WithDefault(), {}), (_WithOtherField(), {"A": 1}), (_Renamed(), {"a": "1"}),
    (psb.AnswerSchema(unknown="exclude"), GOOD[0]), (psb.AnswerSchema(partial=True), GOOD[0]),
    (psb.AnswerSchema(many=True), [GOOD[0]]), (psb.InquirySchema(), {}),
])
def test_schemas_it_cannot_follow_are_always_left_to_marshmallow(schema, data):
    assert plain_load(schema, data) is None
