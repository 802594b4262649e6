"""Reading the gateway's TOML files (the settings, the agency registry, the court
code table): a file missing or not TOML stops the gateway with a ConfigError that
names the file and what it is."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The file's document; ``what`` names it in the error ("agency registry")."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
