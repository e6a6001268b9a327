"""A headless Chromium (Debian's chromium + chromium-driver, driven by selenium) for the
dashboard's browser tests, and helpers that read a page's Bokeh models and tap its glyphs.

Without Chromium the browser tests are skipped on a developer's machine and fail in CI
(``CI`` set), where `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
)


def _binaries() -> tuple[str | None, str | None]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


@pytest.fixture
def browser():
    """A fresh headless Chromium (its own user-data dir), quit after the test."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver_binary = _binaries()
    if binary is None or driver_binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: .ci/run installs them")
        pytest.skip("no chromium / chromedriver (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="faasdag-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_binary))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
