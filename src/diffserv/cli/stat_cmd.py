"""`diffserv stat`: the running daemon's counters, as `diffserv run --stats` counts them.

The daemon answers over its control socket with the very statistics document a capture
run writes with ``--stats``; ``--json`` prints it (limited to the selected actions), the
default prints one kstat-named row per counter (``module:action:name:statistic value``,
as ``kstat -p`` does), selected like kstat(1M) with ``MODULE[:ACTION[:NAME]]`` patterns.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from diffserv.cli.outputs import write_json_atomically
from diffserv.live.control import request, socket_path
from diffserv.live.kstat import Selector


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stat",
        help="print the counters of the running `diffserv live` daemon",
        description=(
            "Print every counter of the running daemon under its kstat name "
            "(module:action:name:statistic), or with --json the statistics document of "
            "`diffserv run --stats`. SELECTOR picks rows like kstat(1M): "
            "MODULE[:ACTION[:NAME[:STATISTIC]]], each part a shell pattern, empty = any."
        ),
        epilog=(
            "examples: diffserv stat tokenmt; diffserv stat ipgpc:ipgpc.classify:web; "
            "diffserv stat ::'* statistics':red_packets.  Exit status: 0 success, "
            "1 nothing matched or the daemon answered with an error, 2 no daemon or a usage error."
        ),
    )
    parser.add_argument("selector", nargs="?", metavar="SELECTOR", help="kstat-style selector")
    parser.add_argument("--json", action="store_true", help="the --stats JSON document")
    parser.add_argument(
        "--stats-socket",
        metavar="PATH",
        help="the daemon's control socket (default $DIFFSERV_STATS_SOCKET or "
        "/run/diffserv/live.sock)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    selector = Selector.parse(args.selector)
    doc = request(socket_path(args.stats_socket), {"op": "stat"})["stats"]
    selected = selector.select(doc)
    if not selected:
        # as kstat(1M): nothing matched is a status of its own
        print(f"diffserv stat: no counter matches {args.selector!r}", file=sys.stderr)
        return 1
    if args.json:
        write_json_atomically("-", selector.filter_document(doc))
    else:
        sys.stdout.write("".join(f"{row}\n" for row in selected))
    return 0
