"""`diffserv flows FILE`: read flowacct records back and report totals, DSCP mix and top talkers."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

from diffserv.cli.arguments import whole_number
from diffserv.cli.position import set_position
from diffserv.errors import UsageError
from diffserv.flows.reader import merge_tables, read_records
from diffserv.flows.summary import SORT_KEYS, render_text, select_actions, summarize


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "flows",
        help="summarise flow records written by `diffserv run --flows`",
        description=(
            "Read flow records (.jsonl, .csv or .parquet, as written by "
            "`diffserv run --flows FILE`) and print totals, the traffic per DSCP, per "
            "protocol/port and per conversation, and the top flows by bytes."
        ),
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="record files (.jsonl, .csv, .parquet; '-' = JSON Lines on stdin), summed",
    )
    parser.add_argument(
        "--top", type=whole_number(), default=10, metavar="N", help="rows per top-N table (10)"
    )
    parser.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="bytes",
        help="order of the top-N tables (default bytes)",
    )
    parser.add_argument(
        "--action",
        action="append",
        metavar="NAME",
        help="only records of this flowacct action (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths: list[str] = args.files
    if any(not path for path in paths):
        raise UsageError("flows: FILE must not be empty")
    tables = []
    for path in paths:
        set_position(functools.partial(str, path))  # for the report of an internal error
        tables.append(read_records(path))
    set_position(lambda: ", ".join(paths))
    table = merge_tables(tables)
    if args.action:
        table = select_actions(table, args.action)
    summary = summarize(table, top=args.top, sort=args.sort)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(summary))
    return 0
