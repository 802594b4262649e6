"""A depth limit for JSON bodies and answers.

Python's json parser recurses once per nested array or object and fails with
RecursionError (a 500, not a 400) near a thousand levels; no message of the
canonical model or of any agency format nests more than a handful. Bodies are
checked before they are parsed, and refused naming the rule.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64

# Strings (which may hold brackets) and brackets; everything else is skipped.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_error(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The rule broken when ``text`` nests arrays and objects deeper than ``limit``, else None."""
    if text.count("[") + text.count("{") <= limit:  # cannot be deeper: most bodies stop here
        return None
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return f"JSON may nest arrays and objects at most {limit} levels deep"
        elif token in "]}":
            depth -= 1
    return None
