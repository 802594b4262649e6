"""A cheap pass for messages that are plainly valid against a marshmallow schema.

A JSON agency's answer goes through its schema's ``load`` on every delivery, and
marshmallow's per-field machinery cost more than all the rest of decoding it
(public security's answer: ~640 us, bench/RESULTS.md "protocol paths"). For a schema
made only of string, list and nested fields, with no hooks, no renamed keys and no
defaults, ``plain_load`` gives what ``schema.load`` gives when the data is plainly
valid: exact JSON types, every required field there, no unknown field, each
field's own validators passed (the schema's validator objects themselves). Anything
else gives None, and the caller loads with the schema, so a refusal is still the
schema's own ValidationError, field by field. ``tests/unit/schemas/test_plain_load.py``
holds the two together over generated good and bad answers.
"""

from __future__ import annotations

from typing import Any, Callable

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

# (name, required, allow_none, validators, check of the value or None)
_Plan = tuple[tuple[str, bool, bool, tuple[Callable[[Any], Any], ...], Callable[[Any], Any]], ...]
_NOT_PLAIN = object()  # what a check returns for data it leaves to the schema
_plans: dict[type[Schema], _Plan | None] = {}


def plain_load(schema: Schema, data: Any) -> dict[str, Any] | None:
    """``schema.load(data)``'s result if the data is plainly valid and the schema is
    one this pass knows how to follow; None otherwise (then load with the schema)."""
    if not _default_instance(schema):
        return None
    plan = _plan_of(type(schema))
    if plan is None:
        return None
    loaded = _load_object(plan, data)
    return None if loaded is _NOT_PLAIN else loaded


def _default_instance(schema: Schema) -> bool:
    return (schema.unknown == RAISE and schema.only is None and not schema.exclude and not schema.partial
            and not schema.many)


def _plan_of(schema_class: type[Schema]) -> _Plan | None:
    if schema_class not in _plans:
        _plans[schema_class] = _build(schema_class)
    return _plans[schema_class]


def _build(schema_class: type[Schema]) -> _Plan | None:
    schema = schema_class()
    if any(schema._hooks.values()) or not _default_instance(schema):  # pre/post-load, validates(_schema)
        return None
    plan = []
    for name, field in schema.load_fields.items():
        if field.data_key not in (None, name) or field.attribute not in (None, name) or field.load_default is not missing:
            return None
        check = _check_for(field)
        if check is None:
            return None
        plan.append((name, field.required, field.allow_none, tuple(field.validators), check))
    return tuple(plan)


def _check_for(field: fields.Field) -> Callable[[Any], Any] | None:
    """The check of one field's value (the loaded value, or _NOT_PLAIN); None if this pass cannot follow the field."""
    if type(field) is fields.String:
        return _string
    if type(field) is fields.Nested:
        nested = field.schema
        if field.many or not isinstance(nested, Schema) or not _default_instance(nested):
            return None
        plan = _plan_of(type(nested))
        return None if plan is None else (lambda value: _load_object(plan, value))
    if type(field) is fields.List:
        inner = field.inner
        inner_check = _check_for(inner)
        if inner_check is None or inner.validators or inner.allow_none:
            return None
        return lambda value: _load_list(inner_check, value)
    return None


def _string(value: Any) -> Any:
    return value if type(value) is str else _NOT_PLAIN


def _load_list(check: Callable[[Any], Any], value: Any) -> Any:
    if type(value) is not list:
        return _NOT_PLAIN
    loaded = [check(item) for item in value]
    return _NOT_PLAIN if any(item is _NOT_PLAIN for item in loaded) else loaded


def _load_object(plan: _Plan, value: Any) -> Any:
    if type(value) is not dict:
        return _NOT_PLAIN
    loaded: dict[str, Any] = {}
    seen = 0
    for name, required, allow_none, validators, check in plan:
        if name not in value:
            if required:
                return _NOT_PLAIN
            continue
        seen += 1
        item = value[name]
        if item is None:
            if not allow_none:
                return _NOT_PLAIN
            loaded[name] = None
            continue
        item = check(item)
        if item is _NOT_PLAIN:
            return _NOT_PLAIN
        try:
            if any(validator(item) is False for validator in validators):  # a validator may say no by returning False
                return _NOT_PLAIN
        except ValidationError:
            return _NOT_PLAIN
        loaded[name] = item
    if seen != len(value):  # an unknown field: the schema refuses it, in its own words
        return _NOT_PLAIN
    return loaded
