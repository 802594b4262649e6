"""Reading an XML agency's validated messages in the sandboxes (the bank, the tax
bureau): its elements by local name in the format's namespace, and money as the
formats write it. The sandboxes' own, like the rest of the agency side: nothing
of the gateway's codecs."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree


class Namespace:
    def __init__(self, uri: str):
        self.uri = uri

    def tag(self, name: str) -> str:
        return f"{{{self.uri}}}{name}"

    def text(self, parent: etree._Element | None, name: str) -> str | None:
        element = parent.find(self.tag(name)) if parent is not None else None
        return element.text if element is not None else None

    def child(self, parent: etree._Element, name: str) -> etree._Element:
        element = parent.find(self.tag(name))
        if element is None:  # the schema requires it, so a validated request has it
            raise ValueError(f"request has no {name}")
        return element


def money(amount: Decimal) -> str:
    """Two decimals, never an exponent."""
    return f"{amount.quantize(Decimal('0.01')):f}"
