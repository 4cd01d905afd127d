"""The system's Chromium (Debian's `chromium` package) driven headless by Playwright for
Python, for the tests of pages a person reads in a browser. `playwright install` cannot
download browsers here, so the tests use /usr/bin/chromium and skip, saying why, without it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu"]


@contextmanager
def launched(sync_api: Any) -> Iterator[Any]:
    """A headless Chromium browser, closed on exit (`sync_api`: playwright.sync_api, imported
    by the test module with `pytest.importorskip` so that its absence is a clear skip)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()
