"""A state machine as a table of allowed moves (pure logic, no I/O).

Each machine (a delivery's, a request's) is one table in the module its package
owns (gateway/deliveries/states.py, gateway/requests/states.py): which state may
follow which, and what in the code makes that move. Every site that changes a
row's state asks the table first (``move``), so an illegal move is refused where
it is attempted, not found later in the data; a set-based UPDATE takes its WHERE
from the same table (``sources``). The README's tables are rendered from these
(``markdown``), and a unit test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Iterable, Mapping, TypeVar

from gateway.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)

NEW = None  # the source of a move that creates the row


@dataclass(frozen=True)
class Machine(Generic[S]):
    """``moves`` maps (from, to) to what makes the move; ``from`` None is a new row."""

    name: str
    states: type[S]
    moves: Mapping[tuple[S | None, S], str]

    def __post_init__(self) -> None:
        for source, target in self.moves:  # a typo in the table fails at import, not at the first move
            if not isinstance(target, self.states) or not (source is None or isinstance(source, self.states)):
                raise TypeError(f"{self.name}: move {source!r} -> {target!r} names a state outside {self.states.__name__}")

    def allows(self, source: str | None, target: str) -> bool:
        return (self._state(source), self._state(target)) in self.moves

    def move(self, source: str | None, target: str) -> S:
        """``target`` as a member, if a row in ``source`` may move there; raises
        IllegalTransition otherwise (the row's state is left as it was)."""
        if not self.allows(source, target):
            shown = "a new row" if source is None else repr(str(source))
            raise IllegalTransition(
                f"a {self.name} may not move from {shown} to {str(target)!r}",
                fields={"state": [f"{source or 'new'} -> {target} is not an allowed {self.name} move"]},
            )
        return self.states(target)

    def sources(self, target: S, among: Iterable[S] | None = None) -> tuple[S, ...]:
        """The states a set-based UPDATE to ``target`` may take rows from: ``among``
        (every legal source, if None), each checked against the table. For a WHERE
        clause, so an UPDATE never moves a row the table would refuse."""
        legal = tuple(s for s in self.states if (s, target) in self.moves)
        if among is None:
            return legal
        chosen = tuple(among)
        for source in chosen:
            self.move(source, target)
        return chosen

    def markdown(self) -> str:
        """The table of moves as the README shows it, in the enum's order."""
        order = {s: i for i, s in enumerate(self.states)}
        rows = sorted(self.moves.items(), key=lambda m: (-1 if m[0][0] is None else order[m[0][0]], order[m[0][1]]))
        lines = ["| from | to | when |", "| --- | --- | --- |"]
        lines += [f"| {'(new)' if s is None else f'`{s}`'} | `{t}` | {why} |" for (s, t), why in rows]
        return "\n".join(lines)

    def _state(self, value: str | None) -> S | None:
        if value is None:
            return None
        try:
            return self.states(value)
        except ValueError:
            raise IllegalTransition(f"{value!r} is not a {self.name} state",
                                    fields={"state": [f"one of {', '.join(self.states)}"]}) from None


def state_check(states: Iterable[StrEnum], column: str = "state") -> str:
    """The CHECK constraint's condition that keeps ``column`` to these states (the
    models'; migration 0017_state_checks spells its own out, as it stood then)."""
    return f"{column} IN ({', '.join(repr(str(s)) for s in states)})"
