"""Exceptions split by whose fault a failure is.

A user-facing command maps each family to an exit status and a one-line
message; no traceback ever reaches the terminal.
"""

from __future__ import annotations

import signal


class DiffservError(Exception):
    """Base of every error diffserv reports to a user."""


class UsageError(DiffservError):
    """The command line itself is wrong (exit status 2)."""


class PolicyFileError(DiffservError):
    """The policy file is invalid; carries every diagnostic found (exit status 1)."""


class InputDataError(DiffservError):
    """A capture, packet, record or datagram is malformed.

    ``where`` names the place in the data: "file.pcap: packet 17",
    "exporter 192.0.2.1:2055", ...
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message

    def __reduce__(self) -> tuple[type[InputDataError], tuple[str, str]]:
        """Pickled by its two parts (an error of a worker process is raised again here)."""
        return type(self), (self.where, self.message)


class HostSystemError(DiffservError):
    """The operating system refused something (file, socket, netlink, kernel)."""


class InternalError(Exception):
    """diffserv broke one of its own rules: a bug, never the user's fault.

    Deliberately not a DiffservError: the command reports it as an internal error, with
    its own exit status and a request to report it, never as a problem with the input.
    """


class Interrupted(BaseException):
    """A signal asked the command to stop (SIGINT, SIGTERM, SIGHUP); exit 128 + signal.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way
    swallows it; every ``finally`` still runs, which is how outputs are cleaned up.
    """

    def __init__(self, signum: int) -> None:

        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"interrupted by {name}")
        self.signum = signum


def first_line(text: str) -> str:
    """The first non-blank line of a library's message, stripped ("" when there is none).

    Errors from pyarrow, DuckDB and Spark carry stack traces and hints after their first
    line; a one-line diagnostic keeps only what they say first.
    """
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""
