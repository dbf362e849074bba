"""External tools the tests check our output against (tshark, softflowd, nfdump ...).

A missing tool fails the test under CI (``CI=1`` or ``DIFFSERV_REQUIRE_TOOLS=1``, as
``make test`` sets) and skips it elsewhere, so a developer without the tools can still
run the suite while CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def tools_required() -> bool:
    """Whether a missing tool is a failure (CI) rather than a skip."""
    return bool(os.environ.get("CI") or os.environ.get("DIFFSERV_REQUIRE_TOOLS"))


def unavailable(message: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if tools_required():
        pytest.fail(message)
    pytest.skip(message)


def require_tool(tool: str) -> str:
    """The tool's path on ``PATH``; a missing tool fails under CI and skips elsewhere."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None
    )  # nft and friends live in sbin, which a user's PATH may leave out
    if path is None:
        unavailable(f"{tool} is required (make system-tools)")
    return path
