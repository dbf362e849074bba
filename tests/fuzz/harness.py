"""What a fuzz target is, shared by the fast slice in `make test` and the long `make fuzz` run.

A target feeds one input (bytes) to one parser a user can reach. The only exceptions it may
let out are the project's own (``DiffservError`` and its subclasses): those are the clear
one-line errors a user sees. Anything else is a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diffserv.errors import DiffservError


@dataclass(frozen=True, slots=True)
class FuzzTarget:
    """One parser under fuzzing.

    ``run`` takes one input and returns normally or raises a DiffservError; ``seeds``
    gives the starting corpus (valid inputs and near misses) the mutators work from;
    ``max_len`` bounds generated inputs.
    """

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    max_len: int = 1 << 16


class FuzzFindingError(AssertionError):
    """A target let something other than a DiffservError escape."""


def check_one(target: FuzzTarget, data: bytes) -> None:
    """Run ``target`` on ``data``; raise FuzzFindingError for anything but a project error."""
    try:
        target.run(data)
    except DiffservError:
        return
    except Exception as exc:
        raise FuzzFindingError(
            f"{target.name}: {type(exc).__name__}: {exc} on input {data[:200]!r}"
            + (" …" if len(data) > 200 else "")
        ) from exc
