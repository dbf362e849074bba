"""`diffserv import nfdump SRC --store DIR`: bring an existing nfcapd archive into the flow store.

An import is all or nothing: a failure (nfdump complaining about a file, a record that
does not parse, Ctrl-C) removes every file this import wrote, so running it again after
fixing the cause never stores a record twice.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from diffserv.cli.interrupts import interrupts_unwind
from diffserv.errors import DiffservError, Interrupted, UsageError

KINDS = ("nfdump",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="bring flow records of other tools (an nfcapd archive) into a flow store",
        description=(
            "Read an nfcapd file, or a directory of them, with the installed nfdump "
            "(nfdump -o json) and add its flow records to the flow store DIR."
        ),
        epilog=(
            "example: diffserv import nfdump /var/cache/nfdump --store flows/.  "
            "Exit status: 0 success, 2 usage error, unreadable archive or nfdump missing."
        ),
    )
    parser.add_argument("kind", choices=KINDS, help="what made the records: nfdump (nfcapd files)")
    parser.add_argument("source", metavar="DIR|FILE", help="an nfcapd file or a directory of them")
    parser.add_argument("--store", required=True, metavar="DIR", help="the flow store to add to")
    parser.add_argument(
        "--filter", metavar="EXPR", help="an nfdump filter: only the records it matches"
    )
    parser.add_argument("--nfdump", metavar="PROGRAM", help="the nfdump to run (default: PATH)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    parser.set_defaults(func=run)


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def run(args: argparse.Namespace) -> int:
    from diffserv.flows.nfdump_import import find_nfdump, import_nfdump
    from diffserv.flows.store_write import StoreWriter

    program = find_nfdump(args.nfdump)  # before the store is created
    if os.path.isdir(args.source) and _inside(args.store, args.source):
        raise UsageError(
            f"--store {args.store} is inside {args.source}: nfdump would read the store's "
            "files as nfcapd files"
        )
    writer = StoreWriter(args.store)
    try:
        with interrupts_unwind():
            result = import_nfdump(
                args.source, writer.add, program=program, nfdump_filter=args.filter
            )
            writer.close()
    except (DiffservError, Interrupted) as exc:
        removed = writer.discard()
        exc.add_note(
            f"nothing imported into {args.store}"
            + (f" (removed the {removed} files this import wrote)" if removed else "")
        )
        raise
    except BaseException:
        writer.discard()
        raise
    if not args.quiet:
        events = f"; skipped {result.events:,} NSEL/NEL events" if result.events else ""
        files = writer.files_written
        print(
            f"imported {result.records:,} flow records into {args.store} "
            f"({files:,} file{'s' if files != 1 else ''}){events}",
            file=sys.stderr,
        )
    return 0
