"""Turn marshmallow's nested error messages into flat field paths.

``{"subject": {"id_number": ["..."]}}`` becomes ``{"subject.id_number": ["..."]}``
and list positions become ``[i]``, so a caller sees each bad field by its path.
"""

from __future__ import annotations

from typing import Any


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "_body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, texts in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(texts)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_body"] = list(messages)
    elif isinstance(messages, list):
        for value in messages:
            for sub_path, texts in flatten_errors(value, prefix).items():
                flat.setdefault(sub_path, []).extend(texts)
    else:
        flat[prefix or "_body"] = [str(messages)]
    return flat


def describe_errors(flat: dict[str, list[str]]) -> str:
    """One line for people: ``subject.id_number: check digit is wrong; amount: ...``."""
    return "; ".join(f"{path}: {' '.join(texts)}" for path, texts in flat.items())
