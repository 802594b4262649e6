"""A batch line's states and the moves between them (pure logic, no I/O).

The table is what gateway/batches/services.py does today; the README's "Batch line
states" table is rendered from it.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.transitions import NEW, Machine


class LineState(StrEnum):
    PENDING = "pending"  # its inquiry not made yet
    ACCEPTED = "accepted"  # its request made
    REFUSED = "refused"  # the inquiry broke a rule: the error says which


L = LineState  # short, for the table below

BATCH_LINE = Machine("batch line", LineState, {
    (NEW, L.PENDING): "the batch accepted (`submit`)",
    (L.PENDING, L.ACCEPTED): "its inquiry made, by this process or another meanwhile (`_expand_line`)",
    (L.PENDING, L.REFUSED): "its inquiry refused (`_expand_line`)",
})

# The lines a set-based mark may move to accepted or to refused (its WHERE), from the table.
EXPANDABLE = BATCH_LINE.sources(L.ACCEPTED, among=BATCH_LINE.sources(L.REFUSED))
