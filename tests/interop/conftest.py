"""Peers from other ecosystems. node-soap (the npm package ``soap``) is installed
from the committed lock file on first use; a machine without Node.js or npm
fails these tests rather than skipping them, because the interop proof is a
requirement, not an extra."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_SOAP_DIR = Path(__file__).parent / "node_soap"


@pytest.fixture(scope="session")
def node_soap_dir() -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the node-soap interop tests need Node.js and npm (apt-get install nodejs npm)")
    if not (NODE_SOAP_DIR / "node_modules" / "soap").is_dir():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_SOAP_DIR, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci in {NODE_SOAP_DIR} failed:\n{result.stdout}\n{result.stderr}")
    return NODE_SOAP_DIR
