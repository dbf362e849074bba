"""`ipqosconf`: apply, list, flush and commit the live daemon's configuration (docs/ipqosconf.md).

The command line and messages are Solaris ipqosconf's: option string ``sca:vflL``, one
command option, no arguments meaning ``-l``; ``Error:`` lines on stderr (syslog with
``-s``), ``Notice:`` lines always to syslog and with ``-v`` to stderr too, ``Warning:``
lines only with ``-v``; exit 0 success, 1 error (or usage), 2 the rollback of a failed
apply failed too and the configuration was flushed. Two long options name the files a
test or a package moves: ``--stats-socket PATH`` (the daemon's control socket) and
``--init-file PATH`` (the boot file, by default /etc/inet/ipqosinit.conf).
"""

from __future__ import annotations

import getopt
import os
import sys
import syslog
from collections.abc import Sequence
from typing import Final

from diffserv.errors import DiffservError
from diffserv.live import apply
from diffserv.live.control import socket_path
from diffserv.policy.build import UnreadablePolicyError, read_policy
from diffserv.policy.diagnostics import format_diagnostic
from diffserv.policy.model import Diagnostic

USAGE: Final = """usage:
\tipqosconf [-sv] [--engine nfqueue|nft|auto] -a file|-
\tipqosconf -c
\tipqosconf -l
\tipqosconf -L
\tipqosconf -f
"""
COMMANDS: Final = frozenset("aclLf")
EXIT_INTERNAL: Final = 70


class Messages:
    """ipqosconf's message rules (spec §4, "Messages")."""

    def __init__(self, *, verbose: bool, use_syslog: bool) -> None:
        self.verbose = verbose
        self.use_syslog = use_syslog

    def _syslog(self, priority: int, text: str) -> None:
        syslog.openlog("ipqosconf", 0, syslog.LOG_USER)
        syslog.syslog(priority, text)

    def error(self, text: str) -> None:
        if self.use_syslog:
            self._syslog(syslog.LOG_ERR, text)
        if not self.use_syslog or self.verbose:
            print(f"Error: {text}", file=sys.stderr)

    def notice(self, text: str) -> None:
        self._syslog(syslog.LOG_INFO, text)
        if self.verbose:
            print(f"Notice: {text}", file=sys.stderr)

    def warning(self, text: str) -> None:
        if self.verbose:
            print(f"Warning: {text}", file=sys.stderr)

    def diagnostic(self, diagnostic: Diagnostic) -> None:
        """`diffserv check`'s own lines; warnings, as ipqosconf's, only with -v."""
        if diagnostic.severity == "error" or self.verbose:
            print(format_diagnostic(diagnostic), file=sys.stderr)


def _usage() -> int:
    sys.stderr.write(USAGE)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        options, rest = getopt.getopt(
            arguments, "sca:vflL", ["stats-socket=", "init-file=", "engine="]
        )
    except getopt.GetoptError:
        return _usage()
    flags = [flag.lstrip("-") for flag, _ in options]
    commands = [flag for flag in flags if flag in COMMANDS]
    values = dict(options)
    if rest or len(commands) > 1:
        return _usage()
    command = commands[0] if commands else "l"
    if command != "a" and ("s" in flags or "v" in flags or "engine" in flags):
        return _usage()
    messages = Messages(verbose="v" in flags, use_syslog="s" in flags)
    control = socket_path(values.get("--stats-socket"))
    try:
        engine = apply.engine_choice(values.get("--engine"))
        return _run(
            command,
            values.get("-a", ""),
            control,
            messages,
            init_file=values.get("--init-file"),
            engine=engine,
        )
    except DiffservError as exc:
        messages.error(str(exc))
        return 1
    except KeyboardInterrupt:
        messages.error("interrupted")
        return 1
    except Exception as exc:  # the last line of defence: one line, never a traceback
        print(
            f"ipqosconf: internal error: {type(exc).__name__}: {str(exc)[:200]}; "
            "this is a bug in diffserv, please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _run(
    command: str,
    source: str,
    control: str,
    messages: Messages,
    *,
    init_file: str | None,
    engine: str,
) -> int:
    if command in {"l", "L"}:
        sys.stdout.write(apply.list_configuration(control, statistics=command == "L"))
        return 0
    run_dir = os.path.dirname(os.path.abspath(control))
    with apply.config_lock(run_dir):
        if command == "a":
            try:
                name, text = read_policy(source, stdin_dash=True)
            except UnreadablePolicyError as exc:
                messages.error(str(exc))
                return 1
            return apply.apply_policy(text, name, control, messages, engine=engine)
        if command == "f":
            apply.flush(control, messages)
            return 0
        return apply.commit(control, apply.init_file(init_file), messages)


if __name__ == "__main__":
    sys.exit(main())
