"""Debian packages some tests need (Chromium, a Chinese font, poppler, OpenSSH's sshd),
installed with apt-get when missing, and other one-time set-up of the machine (the
node-soap checkout's ``npm ci``): one process at a time.

``make test`` runs the suite in two pytest-xdist processes, and each builds its own
session fixtures: two ``apt-get install`` (or ``npm ci`` in one folder) at once fail on
each other's locks. The first takes this file lock and installs; the second waits, then
finds the package present and installs nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "enforcement-gateway-tests-setup.lock"


@contextmanager
def one_at_a_time() -> Iterator[None]:
    """Hold the machine-wide set-up lock (released when the process dies, too)."""
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apt_install(packages: list[str], present: Callable[[], bool], *, recommends: bool = True) -> str:
    """Install ``packages`` with apt-get unless ``present()`` (looked at again under the
    lock: another process may have installed them meanwhile). The package lists are
    fetched only if the first install fails (a fresh machine has none). Returns the tail
    of apt-get's output for the caller's failure message; the caller checks ``present()``."""
    if shutil.which("apt-get") is None:
        return "apt-get is not on this machine"
    with one_at_a_time():
        if present():
            return ""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", *([] if recommends else ["--no-install-recommends"]), *packages]
        output = ""
        for command in (install, ["apt-get", "update", "-qq"], install):
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            output = result.stdout[-2000:] + result.stderr[-2000:]
            if command is install and result.returncode == 0:
                break
        return output
