"""`diffserv collect`: receive NetFlow v5 / v9 and IPFIX from any exporter into the flow store."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, Final

from diffserv.cli.arguments import whole_number
from diffserv.cli.outputs import write_json_atomically
from diffserv.errors import UsageError
from diffserv.flows.collector import Collector, stderr_status
from diffserv.flows.datagram_capture import DatagramCounts, iter_datagrams
from diffserv.flows.listen import (
    RECEIVE_BUFFER_BYTES,
    close_sockets,
    open_sockets,
    parse_endpoint,
)
from diffserv.flows.store import StoreWriter
from diffserv.flows.store_thread import StoreThread
from diffserv.flows.wire.decode import Decoder

# The ports exports are sent to by convention (NetFlow 2055 and 9995/9996, IPFIX 4739):
# what --from-pcap decodes when no --listen names the ports.
CAPTURE_PORTS: Final = (2055, 4739, 9995, 9996)
NEVER_NS: Final = 1 << 62  # --rotate 0: files close on SIGHUP, at the row bound and at the end


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


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
        "the ports whose datagrams are decoded (default 2055, 4739, 9995, 9996)",
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
        help="close the store's files this often (default 60; 0 = only on SIGHUP and at the "
        "end; a crash loses at most the records of the last interval)",
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
        type=whole_number(),
        default=65536,
        metavar="N",
        help="templates kept for all exporters together (default 65536)",
    )
    parser.add_argument(
        "--max-templates-per-exporter",
        type=whole_number(),
        default=1024,
        metavar="N",
        help="templates kept per exporter (default 1024); more are refused and counted",
    )
    parser.add_argument(
        "--max-exporters",
        type=whole_number(),
        default=4096,
        metavar="N",
        help="exporters remembered (default 4096); beyond, the one heard from least "
        "recently is forgotten (its counters stay in the totals)",
    )
    parser.add_argument(
        "--receive-buffer",
        type=whole_number(),
        default=RECEIVE_BUFFER_BYTES,
        metavar="BYTES",
        help="socket receive buffer asked for (default 64 MiB: a burst waits there while a "
        "batch is decoded; the kernel doubles it, and caps it at net.core.rmem_max unless "
        "run as root)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    endpoints = [parse_endpoint(text) for text in args.listen]
    if not endpoints and not args.from_pcap:
        raise UsageError("collect: give --listen udp://ADDR:PORT (or --from-pcap FILE)")
    if not args.store:
        raise UsageError("collect: --store DIR must not be empty")
    if args.from_pcap and not os.path.isfile(args.from_pcap):
        raise UsageError(f"--from-pcap {args.from_pcap}: no such file")
    if args.stats and not os.path.isdir(os.path.dirname(os.path.abspath(args.stats))):
        raise UsageError(f"--stats {args.stats}: no such directory")
    decoder = Decoder(
        max_templates_per_exporter=args.max_templates_per_exporter,
        max_templates=args.max_templates,
        max_exporters=args.max_exporters,
    )
    # a port in use is refused before the store directory is made
    sockets = [] if args.from_pcap else open_sockets(endpoints, args.receive_buffer)
    try:
        writer = StoreWriter(args.store, rotate_ns=int(args.rotate * 1e9) or NEVER_NS)
    except BaseException:
        close_sockets(sockets)
        raise
    store = StoreThread(writer)
    collector = Collector(
        store,
        decoder,
        sockets=sockets,
        status=None if args.quiet else stderr_status,
        status_interval_s=args.status_interval,
        rotate_interval_s=args.rotate,
        publish_stats=functools.partial(write_json_atomically, args.stats) if args.stats else None,
    )
    try:
        if args.from_pcap:
            ports = sorted({endpoint.port for endpoint in endpoints}) or list(CAPTURE_PORTS)
            counts = DatagramCounts()
            collector.replay(iter_datagrams(args.from_pcap, ports, counts=counts))
            why = f"read {args.from_pcap}"
            if not counts.datagrams:
                print(
                    f"warning: {args.from_pcap}: no UDP datagram to port "
                    f"{', '.join(map(str, ports))} in {counts.packets:,} packets (exports "
                    "sent elsewhere need --listen udp://ADDR:PORT naming their port)",
                    file=sys.stderr,
                )
            if counts.fragments:
                print(
                    f"warning: {args.from_pcap}: {counts.fragments:,} IP fragments skipped "
                    "(exports larger than the path MTU; fragments are not reassembled)",
                    file=sys.stderr,
                )
        else:
            why = collector.serve(run_for_s=args.run_for)
    except BaseException:
        store.abort()
        raise
    total = decoder.stats_total()
    if not args.quiet:
        exporters = len(decoder.stats)
        print(
            f"collect: {why}: {total.datagrams:,} datagrams from {exporters} "
            f"exporter{'' if exporters == 1 else 's'}, {collector.records_stored:,} records "
            f"in {writer.files_written} file{'' if writer.files_written == 1 else 's'} "
            f"under {args.store}",
            file=sys.stderr,
        )
    return 0
