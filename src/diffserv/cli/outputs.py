"""Output files of a command: never the same file as an input or as another output, never
half-written, never a damaged version of what was there before.

A command names its files up front; ``check_distinct`` refuses any output that is an
input or another output (the same inode counts, so symlinks and hard links are caught).
``AtomicFile`` writes next to the target under a temporary name and renames it onto the
target only when everything succeeded, with the mode a plain ``open`` would give (the
umask, or the mode of the file it replaces); devices and FIFOs are written in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, BinaryIO

import msgspec

from diffserv.errors import HostSystemError, UsageError

STDIO = "-"


class NamedPath(msgspec.Struct, frozen=True):
    """A file a command reads or writes, with the words that name it in a message."""

    role: str  # "the input capture", "--stats", ...
    path: str


def _identity(path: str) -> tuple[object, ...] | None:
    """What makes two paths the same file: the inode if it exists, else the real path."""
    try:
        info = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    if stat.S_ISCHR(info.st_mode) and os.path.realpath(path) == os.devnull:
        return None  # /dev/null may take any number of outputs
    return ("inode", info.st_dev, info.st_ino)


def check_distinct(inputs: Sequence[NamedPath], outputs: Sequence[NamedPath]) -> None:
    """UsageError when an output is an input or another output (``-`` = stdin/stdout)."""
    seen: list[tuple[NamedPath, tuple[object, ...]]] = []
    for item in inputs:
        if item.path != STDIO:
            ident = _identity(item.path)
            if ident is not None:
                seen.append((item, ident))
    to_stdout = [item for item in outputs if item.path == STDIO]
    if len(to_stdout) > 1:
        roles = " and ".join(item.role for item in to_stdout)
        raise UsageError(f"{roles} cannot both write to standard output")
    for item in outputs:
        if item.path == STDIO:
            continue
        ident = _identity(item.path)
        if ident is None:
            continue
        for other, other_ident in seen:
            if other_ident == ident:
                raise UsageError(
                    f"{item.role} {item.path} is the same file as {other.role} "
                    f"{other.path}: refusing to overwrite it"
                )
        seen.append((item, ident))


def check_writable(outputs: Sequence[NamedPath]) -> None:
    """HostSystemError now, before any work, for an output that could never be created."""
    for item in outputs:
        if item.path == STDIO or is_special_file(item.path):
            continue
        directory = os.path.dirname(os.path.abspath(item.path))
        if not os.path.isdir(directory):
            raise HostSystemError(f"cannot write {item.path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise HostSystemError(
                f"cannot write {item.path}: directory {directory} is not writable"
            )
        if os.path.isdir(item.path):
            raise HostSystemError(f"cannot write {item.path}: it is a directory")


def _creation_mode(target: str) -> int:
    """The mode ``open(target, "w")`` would leave: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_special_file(path: str) -> bool:
    """True for an existing target that is not a regular file (a device, FIFO or socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class AtomicFile:
    """A binary file created next to ``target`` and renamed onto it only by ``commit``.

    ``direct=True`` writes through O_DIRECT where the file system allows (large
    captures); ``abort`` discards everything and removes the temporary file, even when
    the disk is full. A device or FIFO target is opened and written in place.
    """

    def __init__(self, target: str, *, direct: bool = False) -> None:
        self.target = target
        self.tmp = ""
        self.file: BinaryIO
        if is_special_file(target):
            try:
                self.file = open(target, "wb", buffering=1 << 20)  # noqa: SIM115
            except OSError as exc:
                raise HostSystemError(f"cannot open {target}: {exc.strerror or exc}") from None
            return
        directory = os.path.dirname(os.path.abspath(target))
        try:
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(target)}.", suffix=".part", dir=directory
            )
        except OSError as exc:
            raise HostSystemError(f"cannot create {target}: {exc.strerror or exc}") from None
        try:
            os.fchmod(fd, _creation_mode(target))
            if direct:
                from diffserv.capture.direct_io import DirectWriter

                self.file = DirectWriter(self.tmp, fd)  # type: ignore[assignment]
            else:
                self.file = os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:
            os.close(fd)
            self._remove_tmp()
            raise

    def commit(self) -> None:
        """Finish the file and put it in place; HostSystemError (and nothing left) if that fails."""
        try:
            self.file.close()
            if self.tmp:
                os.replace(self.tmp, self.target)
                self.tmp = ""
        except OSError as exc:
            self.abort()
            raise HostSystemError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        """Discard the output: nothing is left of it and an existing target is untouched."""
        discard = getattr(self.file, "discard", None)
        with contextlib.suppress(OSError):
            if callable(discard):
                discard()
            elif not self.file.closed:
                self.file.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self.tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = ""


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (HostSystemError naming ``path``)."""
    target = AtomicFile(path)
    try:
        target.file.write(text.encode("utf-8"))
    except OSError as exc:
        target.abort()
        raise HostSystemError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        target.abort()
        raise
    target.commit()


def write_json_atomically(path: str, value: Any) -> None:
    """``value`` as indented JSON, whole or not at all (``-`` = standard output).

    The form of every ``--stats`` file: a reader polling one never sees half of it.
    """
    import json  # only --stats needs it: not loaded at every start-up

    text = json.dumps(value, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    write_text_atomically(path, text)
