"""What a fuzz target is, shared by the fast slice in `make test` and the long `make fuzz` run.

A target feeds one input (bytes) to one parser a user can reach. The only exceptions it may
let out are the project's own (``DiffservError`` and its subclasses): those are the clear
one-line errors a user sees. Anything else is a finding.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
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


SCRATCH_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
_scratch_paths: dict[str, str] = {}


def scratch_path(ext: str) -> str:
    """The one temporary file that inputs of format ``ext`` are written to (made once).

    File parsers are fed through a real file, as a user's command would be; one name
    per format, in memory-backed /dev/shm where there is one, keeps a case cheap.
    """
    path = _scratch_paths.get(ext)
    if path is None:
        fd, path = tempfile.mkstemp(prefix="diffserv-fuzz-", suffix=f".{ext}", dir=SCRATCH_DIR)
        os.close(fd)
        _scratch_paths[ext] = path
        atexit.register(remove_scratch, path)
    return path


def remove_scratch(path: str) -> None:
    """Remove a scratch file (atheris ends the process without running atexit)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
