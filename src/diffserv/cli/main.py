"""The `diffserv` command: one sub-command per job, errors as one line, no tracebacks."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from diffserv import __version__
from diffserv.cli.position import current_position, set_position
from diffserv.errors import (
    DiffservError,
    HostSystemError,
    InputDataError,
    Interrupted,
    PolicyFileError,
    UsageError,
)

# diffserv never calls BLAS: numpy's OpenBLAS need not start a thread per core at import
# (and spin them) in a command that is over in a tenth of a second
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

EXIT_INTERNAL = 70  # sysexits EX_SOFTWARE: a defect of diffserv, not of its input

# Each module defines register(subparsers) and sets `func(args) -> int` as default.
# A command line naming one sub-command imports only the module that implements it:
# `check` never pays for numpy, `run` not for the policy explainer (a test holds this
# table to what each module registers).
COMMAND_MODULES: dict[str, str] = {
    "dscp": "diffserv.cli.dscp_cmd",
    "check": "diffserv.cli.policy_cmd",
    "fmt": "diffserv.cli.policy_cmd",
    "explain": "diffserv.cli.policy_cmd",
    "run": "diffserv.cli.run_cmd",
    "flows": "diffserv.cli.flows_cmd",
    "collect": "diffserv.cli.collect_cmd",
    "import": "diffserv.cli.import_cmd",
    "export": "diffserv.cli.export_cmd",
    "report": "diffserv.cli.report_cmd",
    "serve": "diffserv.cli.serve_cmd",
    "audit": "diffserv.cli.audit_cmd",
    "live": "diffserv.cli.live_cmd",
    "stat": "diffserv.cli.stat_cmd",
    "compile": "diffserv.cli.compile_cmd",
}
SUBCOMMAND_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only ``command``'s part of it when that is all it needs."""
    parser = _Parser(
        prog="diffserv",
        description="DiffServ QoS for Linux with IPQoS (ipqosconf) policies.",
    )
    parser.add_argument("--version", action="version", version=f"diffserv {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an internal error (for bug reports)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = COMMAND_MODULES.get(command or "")
    for module_name in (wanted,) if wanted else SUBCOMMAND_MODULES:
        import_module(module_name).register(subparsers)
    return parser


def _command_of(arguments: Sequence[str]) -> str | None:
    """The sub-command a command line names: its first word that is not an option."""
    for word in arguments:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _with_notes(exc: BaseException) -> str:
    """The exception's message plus what the command added about its outputs."""
    notes = getattr(exc, "__notes__", None)
    text = str(exc)
    return f"{text} ({'; '.join(notes)})" if notes else text


def _take_debug_flag(arguments: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is accepted anywhere before ``--`` (it is read before parsing)."""
    end = arguments.index("--") if "--" in arguments else len(arguments)
    head = [a for a in arguments[:end] if a != "--debug"]
    return head + arguments[end:], len(head) < end


def _internal_error(exc: BaseException, debug: bool) -> int:
    """The last line of defence: one line, a distinct status, a traceback only on request."""
    if debug:
        import traceback  # only --debug needs it: not loaded at every start-up

        traceback.print_exception(exc)
    where = current_position()
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    print(
        f"diffserv: internal error: {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + (f" (at {where})" if where else "")
        + "; this is a bug in diffserv, please report it with the command line"
        + ("" if debug else " (--debug shows the traceback)"),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    arguments, debug = _take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    set_position(None)
    # Starting makes modules, classes and tables that live as long as the process: the
    # collector finds no garbage in them, and its passes over them were 8 % of a short
    # run (61 collections, 24 ms). It is off until the command's work begins: at once
    # for most commands; `run` (still importing and loading the policy when its function
    # starts) switches it back on itself, once started (``settles_itself``).
    collecting = gc.isenabled()
    gc.disable()
    try:
        parser = build_parser(_command_of(arguments))
        args = parser.parse_args(arguments)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        if collecting and not getattr(args, "settles_itself", False):
            gc.enable()
        status: int = args.func(args)
        return status
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PolicyFileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except (InputDataError, HostSystemError) as exc:
        print(f"error: {_with_notes(exc)}", file=sys.stderr)
        return 2
    except DiffservError as exc:
        print(f"error: {_with_notes(exc)}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(_with_notes(exc), file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        where = current_position()
        print(f"error: out of memory{f' at {where}' if where else ''}", file=sys.stderr)
        return 2
    except Exception as exc:
        return _internal_error(exc, debug)
    finally:  # as it was: main may be called again in the same process
        if collecting:
            gc.enable()
        else:
            gc.disable()


if __name__ == "__main__":
    sys.exit(main())
