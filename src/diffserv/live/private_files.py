"""The files ipqosconf keeps beside the control socket (root's run directory).

Each is written through a temporary file created exclusively (never a planted link)
and renamed over the old one, mode 0600, so a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os


def write_private(path: str, text: str) -> None:
    """``text`` into ``path`` (mode 0600, root's run directory) through a temporary file
    that is never a planted link, renamed over it: ipqosconf's files beside the socket."""
    temporary = f"{path}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
