"""Headless Chromium from Debian's packages, for the tests of pages people look at."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from support.tools import unavailable


def browser() -> Any:
    """A headless Chromium (skipped, or failed under DIFFSERV_REQUIRE_TOOLS, without it)."""
    if not (shutil.which("chromium") and os.path.exists("/usr/bin/chromedriver")):
        unavailable("chromium and chromedriver are required (make system-tools)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--window-size=1400,1800"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def keep(driver: Any, path: Path) -> None:
    """A screenshot of the page, also copied to $DIFFSERV_ARTIFACTS when set."""
    driver.save_screenshot(str(path))
    artifacts = os.environ.get("DIFFSERV_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(path, artifacts)


def wait_for(driver: Any, script: str, timeout: float = 15) -> Any:
    """The first truthy value of ``script`` in the page, polled until ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never true: {script}")
