"""`diffserv flows FILE...`: the report engine's overview of flowacct record files.

The command is a fixed set of `diffserv report` reports (top DSCP, applications,
conversations, top flows) over the files given, summed, so its figures are the same
SQL and the same exact integers as every other report; it adds only the options of
its own history (``--sort``, ``--action``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Final

from diffserv.cli.report_cmd import add_selection_options
from diffserv.errors import UsageError

if TYPE_CHECKING:
    from diffserv.report.queries import Engine

FLOW_REPORTS: Final = ("top-dscp", "apps", "conversations", "flows")
SORT_KEYS: Final = ("bytes", "packets")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "flows",
        help="report on flow records written by `diffserv run --flows`",
        description=(
            "Read flow records (.jsonl, .csv or .parquet, as written by "
            "`diffserv run --flows FILE --acct extended`) and print the reports top-dscp, "
            "apps, conversations and flows of `diffserv report` over all of them."
        ),
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="FILE",
        help="record files (.jsonl, .csv, .parquet; '-' = JSON Lines on stdin), summed",
    )
    add_selection_options(parser)
    parser.add_argument(
        "--sort",
        dest="by",
        choices=SORT_KEYS,
        default=argparse.SUPPRESS,  # --by keeps its default
        help="the same as --by (bytes or packets)",
    )
    parser.add_argument(
        "--action",
        action="append",
        default=[],
        metavar="NAME",
        help="only records of this flowacct action (repeatable; = --filter action=NAME)",
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=run)


def _names(paths: list[str]) -> str:
    from diffserv.policy.diagnostics import printable

    return ", ".join("standard input" if p == "-" else printable(p) for p in paths)


def check_actions(engine: Engine, wanted: list[str], paths: list[str]) -> None:
    """A UsageError naming the actions there are when one asked for is not in the files."""
    from diffserv.policy.diagnostics import printable

    present = [str(row[0]) for row in engine.rows("SELECT DISTINCT action FROM flows", [])]
    present.sort()
    unknown = [name for name in wanted if name not in present]
    if unknown:
        files = "file" if len(paths) == 1 else "files"
        raise UsageError(
            f"{_names(paths)}: no records of action {unknown[0]!r} "
            f"(actions in the {files}: {', '.join(map(printable, present)) or 'none'})"
        )


def run(args: argparse.Namespace) -> int:
    from diffserv.cli.report_cmd import engine_of, request_of, warn
    from diffserv.report.queries import run_report

    paths: list[str] = args.sources
    if any(not path for path in paths):
        raise UsageError("flows: FILE must not be empty")
    args.filter = [*args.filter, *(f"action={name}" for name in args.action)]
    requests = [request_of(args, name) for name in FLOW_REPORTS]
    engine = engine_of(args, requests[0])
    warn(engine)
    if args.action:
        check_actions(engine, args.action, paths)
    reports = [run_report(engine, request) for request in requests]
    if args.json:
        document = {"reports": {report.report: report.to_json() for report in reports}}
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    from diffserv.report.render_text import render_text

    console = Console(highlight=False)
    console.print(_names(paths), markup=False, highlight=False, soft_wrap=True)
    for report in reports:
        console.print()
        render_text(report, console)
    return 0
