"""The courts' hierarchy: table ``[superiors]`` of the court code table
(config/courts.toml, ``[gateway] courts_file``), read once at start.

Who may move a case (Civil Procedure Law art. 226 of the 2017 text, the SPC's rules
on 交叉执行): a court above the court that has the case. The gateway reads "above"
as "an ancestor in the configured tree", and asks that the receiving court lies in
the ordering court's district too (the ordering court itself included: 提级执行).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from gateway.errors import ConfigError


@dataclass(frozen=True)
class CourtTree:
    superiors: Mapping[str, str]

    @classmethod
    def from_table(cls, superiors: Mapping[str, object], source: str) -> "CourtTree":
        """Raises ConfigError for a superior that is not a court id, a court its own superior, or a cycle."""
        parents: dict[str, str] = {}
        for court, named in superiors.items():
            if not isinstance(named, str) or not named:
                raise ConfigError(f"{source}: [superiors] {court} must name its superior court's id")
            parents[court] = named
        for court in parents:
            seen = [court]
            parent = parents.get(court)
            while parent is not None:
                if parent in seen:
                    raise ConfigError(f"{source}: [superiors] court {court} is above itself "
                                      f"({' -> '.join(seen + [parent])})")
                seen.append(parent)
                parent = parents.get(parent)
        return cls(parents)

    def knows(self, court: str) -> bool:
        return court in self.superiors or court in self.superiors.values()

    def chain(self, court: str) -> list[str]:
        """The court's superiors, nearest first."""
        chain, parent = [], self.superiors.get(court)
        while parent is not None:
            chain.append(parent)
            parent = self.superiors.get(parent)
        return chain

    def is_above(self, upper: str, lower: str) -> bool:
        return upper in self.chain(lower)

    def refusal(self, ordering: str, from_court: str, to_court: str) -> str | None:
        """Why ``ordering`` may not move a case from ``from_court`` to ``to_court``, or None."""
        if to_court == from_court:
            return f"the case is already with court {to_court}"
        if not self.knows(to_court):
            return f"court {to_court} is not in the configured hierarchy ([superiors] of the court code table)"
        if not self.is_above(ordering, from_court):
            return f"court {ordering} is not above court {from_court}, which has the case"
        if to_court != ordering and not self.is_above(ordering, to_court):
            return f"court {to_court} is not within the district of court {ordering}"
        return None


def load_court_tree(path: Path) -> CourtTree:
    """``[superiors]`` of the court code table (its ``[courts]`` is checked by
    gateway/cases/courts.load_court_codes, which runs first)."""
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("superiors", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [superiors] must be a table (court id = \"its superior's court id\")")
    return CourtTree.from_table(table, str(path))
