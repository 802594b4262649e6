"""Debian's Chromium for the console tests, driven by Playwright: fixtures the browser tests import."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from system_packages import apt_install

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots kept as test artifacts (gitignored), per test and backend below this.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt if missing (Playwright cannot download browsers here)."""
    apt_install(["chromium"], CHROMIUM.exists)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing and `apt-get install -y chromium` did not provide it: "
                    "the console tests need Debian's Chromium (run as root, or install it first)", pytrace=False)
    return CHROMIUM


# Per module: each module that imports these holds its own copy of the fixture, and two
# Playwright instances of the sync API may not run at once.
@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def cjk_font() -> None:
    """A Chinese font for the screenshots (Debian's fonts-wqy-microhei, also the PDF report's)."""
    def present() -> bool:
        listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True) if shutil.which("fc-list") else None
        return bool(listed and listed.stdout.strip())
    apt_install(["fonts-wqy-microhei"], present)
    if not present():
        pytest.fail("no Chinese font: `apt-get install -y fonts-wqy-microhei`", pytrace=False)
