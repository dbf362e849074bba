"""Where a command is in its input, for the one-line report of an unexpected failure.

A command registers a function that describes its position ("edge.pcap: near packet
1 234"); the top-level handler asks it only when something went wrong that the command
did not report itself, so the user can say which input and where.
"""

from __future__ import annotations

from collections.abc import Callable

_describe: Callable[[], str] | None = None


def set_position(describe: Callable[[], str] | None) -> None:
    """Register (or clear, with None) the description of the current position."""
    global _describe  # noqa: PLW0603 - one command runs per process
    _describe = describe


def current_position() -> str:
    """The registered description, or "" (never raises: it runs while handling a failure)."""
    if _describe is None:
        return ""
    try:
        return _describe()
    except Exception:
        return ""
