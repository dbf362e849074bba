"""`diffserv export SRC --to URL`: send flow records already written to a collector or a file.

SRC is a record file of ``diffserv run --flows`` (extended group) or a flow-store
directory; the records go out as IPFIX, NetFlow v9 or v5 exactly as ``run --export``
would have sent them, in the file's order.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from diffserv.cli.arguments import whole_number
from diffserv.cli.position import set_position
from diffserv.errors import UsageError
from diffserv.flows.export import (
    MAX_MTU,
    MIN_MTU,
    Exporter,
    parse_export_url,
    table_batches,
)
from diffserv.flows.reader import read_records
from diffserv.flows.schema import FlowBatch


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="send flow records (a record file or a flow store) as IPFIX / NetFlow",
        description=(
            "Encode the flow records of SRC (.jsonl, .csv or .parquet written by "
            "`diffserv run --flows`, extended group, or a flow-store directory) and send "
            "them to URL: ipfix://HOST:PORT, netflow9://HOST:PORT, netflow5://HOST:PORT, "
            "or file://PATH.pcap (IPFIX; ?format=netflow9 or netflow5)."
        ),
        epilog="example: diffserv export flows.jsonl --to ipfix://127.0.0.1:4739",
    )
    parser.add_argument("source", metavar="SRC", help="record file or flow-store directory")
    parser.add_argument("--to", required=True, metavar="URL", help="where to send the records")
    parser.add_argument(
        "--mtu",
        type=whole_number(MIN_MTU, MAX_MTU),
        default=None,
        metavar="N",
        help="link MTU the datagrams must fit (default 1500)",
    )
    parser.add_argument(
        "--domain",
        type=whole_number(0, 2**32 - 1),
        default=None,
        metavar="N",
        help="IPFIX observation domain / v9 source id / v5 engine (default 0)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = parse_export_url(args.to)
    source: str = args.source
    if not source:
        raise UsageError("export: SRC must not be empty")
    if target.path is not None and os.path.abspath(target.path) == os.path.abspath(source):
        raise UsageError(f"export: {source} is both SRC and the --to file")
    set_position(lambda: source)
    batches, start_ns = _batches(source)
    exporter = Exporter(target, mtu=args.mtu, domain=args.domain, start_ns=start_ns)
    try:
        for batch in batches:
            exporter.send(batch)
    except BaseException:
        exporter.abort()
        raise
    exporter.close()
    for warning in export_warnings(exporter):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        counts = exporter.counts
        print(
            f"exported {counts.records:,} flow records in {counts.datagrams:,} datagrams "
            f"to {target.url}",
            file=sys.stderr,
        )
    return 0


def _batches(source: str) -> tuple[Iterator[FlowBatch], int | None]:
    """The batches of SRC and, where known up front, the earliest first_seen in it."""
    if os.path.isdir(source):
        try:  # the flow store's reader, where this diffserv has one
            store = importlib.import_module("diffserv.flows.store")
        except ImportError:
            store = None
        if store is None or not hasattr(store, "iter_store_batches"):
            raise UsageError(f"{source}: is a directory, and this diffserv reads no flow stores")
        batches: Iterator[FlowBatch] = store.iter_store_batches(source)
        return batches, None
    table = read_records(source)
    start_ns = min(table.first_ns) if table.first_ns else None
    return table_batches(table), start_ns


def export_warnings(exporter: Exporter) -> list[str]:
    """What the user should hear about once an export is over (each said once)."""
    counts = exporter.counts
    url = exporter.target.url
    out = []
    if counts.skipped_ipv6:
        out.append(
            f"{url}: NetFlow v5 carries IPv4 only; {counts.skipped_ipv6:,} IPv6 flow "
            "records were not exported (use ipfix:// or netflow9://)"
        )
    if counts.skipped:
        out.append(f"{url}: {counts.skipped:,} flow records without an IP version were not sent")
    if counts.send_errors:
        out.append(
            f"{url}: {counts.send_errors:,} "
            f"{'datagram was' if counts.send_errors == 1 else 'datagrams were'} refused "
            "(is a collector listening there?)"
        )
    return out
