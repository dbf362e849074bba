"""The `diffserv` command: one sub-command per job, errors as one line, no tracebacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from diffserv import __version__
from diffserv.errors import (
    DiffservError,
    HostSystemError,
    InputDataError,
    PolicyFileError,
    UsageError,
)

# Each module defines register(subparsers) and sets `func(args) -> int` as default.
SUBCOMMAND_MODULES = (
    "diffserv.cli.dscp_cmd",
    "diffserv.cli.policy_cmd",
    "diffserv.cli.run_cmd",
    "diffserv.cli.flows_cmd",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffserv",
        description="DiffServ QoS for Linux with IPQoS (ipqosconf) policies.",
    )
    parser.add_argument("--version", action="version", version=f"diffserv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in SUBCOMMAND_MODULES:
        import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        status: int = args.func(args)
        return status
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PolicyFileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except (InputDataError, HostSystemError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DiffservError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
