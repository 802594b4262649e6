"""The REST sandboxes' made-up records come from the subject's identity number
alone, so the same subject gets the same answer from every run and every
sandbox process: a seed of the number, and from it one endless byte stream per
purpose (a list of the answer) to draw from."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence


def subject_seed(id_number: str) -> bytes:
    """``sha256(id number)``: the root of everything a sandbox knows about a subject."""
    return hashlib.sha256(id_number.encode("utf-8")).digest()


class SubjectBytes:
    """An endless, deterministic byte stream for one subject and one purpose.

    Blocks are ``sha256(seed | purpose | counter)``; 32 bytes of the seed alone
    would run out for a subject with several vehicles.
    """

    def __init__(self, seed: bytes, purpose: str):
        self._prefix = seed + b"|" + purpose.encode("ascii") + b"|"
        self._counter = 0
        self._buffer = b""

    def take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            block = hashlib.sha256(self._prefix + self._counter.to_bytes(4, "big")).digest()
            self._buffer += block
            self._counter += 1
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def below(self, bound: int) -> int:
        # Modulo bias over 32 bits is irrelevant for made-up data.
        return int.from_bytes(self.take(4), "big") % bound

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.below(len(options))]

    def chars(self, alphabet: str, count: int) -> str:
        return "".join(self.pick(alphabet) for _ in range(count))
