"""Guards for the private (underscore) names of libraries the packages use.

Each test holds one private name to what our code relies on, so that a library
upgrade that moves or changes it fails here, by name, instead of somewhere deep
in the audit chain or the SOAP service. Found with an AST scan for ``x._name``
on objects that are not ours (`self`/`cls`) over gateway, adapters, schemas,
audit and sandboxes; pybreaker's ``_state_storage`` was replaced by the public
``state_storage`` argument instead (gateway/deliveries/breaker.py).
"""

from __future__ import annotations

import json
import json.encoder

import pytest
from lxml import etree
from marshmallow import Schema, fields
from sqlalchemy import create_engine, text
from webargs.flaskparser import FlaskParser

from audit import chain


def test_json_c_make_encoder_is_there_and_takes_the_nine_arguments_audit_chain_passes():
    """audit/chain.py builds CPython's C encoder once (no circular check) to encode hashed
    values ~5 µs faster each; without it the chain falls back to JSONEncoder.encode."""
    make = json.encoder.c_make_encoder
    assert make is not None, "CPython's json C accelerator (json.encoder.c_make_encoder) is gone"
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encode = make(None, encoder.default, json.encoder.encode_basestring, None, ":", ",", True, False, True)
    value = {"b": [1, 2.5, None, True], "a": "维权 \"quoted\"", "c": {"z": 0, "y": "x"}}
    assert "".join(encode(value, 0)) == encoder.encode(value)


def test_audit_chain_uses_the_c_encoder_and_it_agrees_with_jsonencoder():
    assert chain._ENCODE_VALUE.__name__ == "_encode_value_in_c"
    reference = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for value in ("text", 12, 3.25, None, False, ["x", {"k": "v"}], {"n": {"m": [1]}}):
        assert chain._ENCODE_VALUE(value) == reference.encode(value)


def test_lxml_element_class_is_etree__element():
    """``etree._Element`` (and ``_ElementTree``) annotate every XML function; lxml documents
    them as the classes of parsed elements and trees."""
    root = etree.fromstring(b"<a><b/></a>")
    assert isinstance(root, etree._Element)
    assert isinstance(root.getroottree(), etree._ElementTree)


def test_marshmallow_field_deserialize_calls_the_underscore_hook():
    """schemas/fields.py and schemas/canonical.py override ``Field._deserialize``,
    marshmallow's documented extension point for custom fields."""

    class Doubled(fields.Integer):
        def _deserialize(self, value, attr, data, **kwargs):
            return super()._deserialize(value, attr, data, **kwargs) * 2

    class Holder(Schema):
        n = Doubled()

    assert Holder().load({"n": "21"}) == {"n": 42}


def test_webargs_flaskparser_loads_json_through_the_hooks_gateway_api_overrides():
    """gateway/api.py's GatewayParser overrides ``_raw_load_json`` (JSON only, depth
    limited) and ``_handle_invalid_json_error``; both must still be on the path of
    ``load_json``."""
    from flask import Flask

    assert callable(FlaskParser._raw_load_json) and callable(FlaskParser._handle_invalid_json_error)
    seen: list[str] = []

    class Probe(FlaskParser):
        def _raw_load_json(self, req):
            seen.append("raw")
            return super()._raw_load_json(req)

        def _handle_invalid_json_error(self, error, req, *args, **kwargs):
            seen.append("invalid")
            raise ValueError("invalid json") from error

    app = Flask("probe")
    with app.test_request_context("/", method="POST", data=b'{"a": 1}', content_type="application/json"):
        from flask import request

        assert Probe().load_json(request, Schema()) == {"a": 1}
    with app.test_request_context("/", method="POST", data=b'{"a": ', content_type="application/json"):
        from flask import request

        with pytest.raises(ValueError, match="invalid json"):
            Probe().load_json(request, Schema())
    assert seen == ["raw", "raw", "invalid"]


def test_sqlalchemy_row_mapping():
    """gateway/attachments/services.py reads a Row as a mapping through ``Row._mapping``
    (SQLAlchemy's documented name, underscored so it cannot clash with a column)."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT 1 AS one, 'x' AS name")).one()
    assert dict(row._mapping) == {"one": 1, "name": "x"}
    engine.dispose()


def test_pybreaker_storage_given_is_the_one_the_breaker_opens():
    """Not private any more: the breaker is given our CircuitMemoryStorage and reads
    ``opened_at`` from it; this holds pybreaker to writing there."""
    import pybreaker

    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60, state_storage=storage,
                                       throw_new_error_on_trip=False)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.current_state == pybreaker.STATE_OPEN
    assert storage.opened_at is not None
