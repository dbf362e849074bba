"""`diffserv collect`: receive NetFlow v5 / v9 and IPFIX from any exporter into the flow store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from diffserv.errors import UsageError
from diffserv.flows.collector import Collector, stderr_status
from diffserv.flows.datagram_capture import iter_datagrams
from diffserv.flows.listen import parse_endpoint
from diffserv.flows.store import StoreWriter
from diffserv.flows.wire.decode import Decoder


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="receive NetFlow v5/v9 and IPFIX exports into the flow store",
        description=(
            "Receive NetFlow v5, NetFlow v9 and IPFIX datagrams from any number of "
            "exporters (routers, softflowd, nfprobe, `diffserv run --export`) and write "
            "them to the flow store, a directory of Parquet files partitioned by hour. "
            "SIGTERM or Ctrl-C stops after storing everything received; SIGHUP closes "
            "the current files. Malformed datagrams are counted per exporter, never fatal."
        ),
        epilog=(
            "example: diffserv collect --listen udp://127.0.0.1:4739 "
            "--listen udp://127.0.0.1:2055 --store /var/lib/diffserv/flows"
        ),
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="udp://ADDR:PORT",
        help="where to receive (repeatable; any version on any port); with --from-pcap, "
        "the ports whose datagrams are decoded",
    )
    parser.add_argument("--store", required=True, metavar="DIR", help="flow store directory")
    parser.add_argument(
        "--from-pcap",
        metavar="FILE",
        help="decode exports captured with tcpdump (pcap/pcapng) instead of listening",
    )
    parser.add_argument(
        "--stats",
        metavar="FILE.json",
        help="counters per exporter, rewritten at every status and at the end",
    )
    parser.add_argument(
        "--rotate",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="close the store's files this often (default 60; a crash loses at most this)",
    )
    parser.add_argument(
        "--status-interval",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="print a status line per exporter this often (default 10; 0 = only at the end)",
    )
    parser.add_argument(
        "--run-for", type=_seconds, metavar="SECONDS", help="stop by itself after this long"
    )
    parser.add_argument(
        "--max-templates",
        type=_count,
        default=65536,
        metavar="N",
        help="templates kept for all exporters together (default 65536)",
    )
    parser.add_argument(
        "--max-templates-per-exporter",
        type=_count,
        default=1024,
        metavar="N",
        help="templates kept per exporter (default 1024); more are refused and counted",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    endpoints = [parse_endpoint(text) for text in args.listen]
    if not endpoints and not args.from_pcap:
        raise UsageError("collect: give --listen udp://ADDR:PORT (or --from-pcap FILE)")
    if not args.store:
        raise UsageError("collect: --store DIR must not be empty")
    decoder = Decoder(
        max_templates_per_exporter=args.max_templates_per_exporter,
        max_templates=args.max_templates,
    )
    store = StoreWriter(args.store, rotate_ns=int(args.rotate * 1e9) if args.rotate else None)
    collector = Collector(
        store,
        decoder,
        status=None if args.quiet else stderr_status,
        status_interval_s=args.status_interval or float("inf"),
        rotate_interval_s=args.rotate or None,
        stats_path=args.stats,
    )
    try:
        if args.from_pcap:
            ports = {endpoint.port for endpoint in endpoints}
            collector.replay(iter_datagrams(args.from_pcap, ports))
            collector.files += store.close()
            why = f"read {args.from_pcap}"
            collector.report()
        else:
            why = collector.serve(endpoints, run_for_s=args.run_for)
    except BaseException:
        store.abort()
        raise
    total = decoder.stats_total()
    if not args.quiet:
        print(
            f"collect: {why}: {total.datagrams:,} datagrams from {len(decoder.stats)} "
            f"exporters, {collector.records_stored:,} records in {len(collector.files)} "
            f"files under {args.store}",
            file=sys.stderr,
        )
    return 0
