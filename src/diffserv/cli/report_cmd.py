"""`diffserv report SOURCE...`: DSCP and ToS reports over flow records, any source."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from diffserv.cli.arguments import whole_number
from diffserv.cli.position import set_position
from diffserv.report.choices import ENGINES, FILTER_KEYS, KEYS, METRICS, REPORTS, SIDES

if TYPE_CHECKING:
    from diffserv.report.queries import Engine, Report, ReportRequest


def add_record_options(parser: argparse.ArgumentParser) -> None:
    """Which flow records to read: the time range and ``--filter`` (reports, the audit)."""
    parser.add_argument(
        "--from", dest="start", metavar="T", help="first time (ISO 8601 UTC, epoch s, -2h)"
    )
    parser.add_argument("--to", dest="end", metavar="T", help="end time, not included")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"only matching records (repeatable; a key twice = either value). Keys: {FILTER_KEYS}",
    )


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """The options every report command shares: what to read and how to key it."""
    add_record_options(parser)
    parser.add_argument(
        "--groups", metavar="FILE", help="DSCP groups (`Voice = EF, CS5` lines; default RFC 4594)"
    )
    parser.add_argument(
        "--top", type=whole_number(1), default=10, metavar="N", help="rows per key (10)"
    )
    parser.add_argument("--by", choices=METRICS, default="bytes", help="order by (bytes)")
    parser.add_argument(
        "--key",
        choices=KEYS,
        default="dscp",
        help="key the per-mark reports by DSCP or by DSCP group (dscp)",
    )
    parser.add_argument(
        "--side",
        choices=SIDES,
        default="in",
        help="the mark as received (in) or after re-marking (out, where exported)",
    )
    parser.add_argument(
        "--interval", default="auto", metavar="D", help="time-series step: 1m, 5m, 1h (auto)"
    )
    parser.add_argument("--engine", choices=ENGINES, default="duckdb", help="SQL engine (duckdb)")
    parser.add_argument("--master", metavar="URL", help="Spark master (--engine spark; local[2])")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="DSCP / ToS / ECN reports over a flow store, record files or captures",
        description=(
            "Report which traffic carries which mark: top DSCP, applications and "
            "conversations per DSCP, traffic over time, DSCP groups, the ToS byte, ECN, "
            "re-marking and exporters that never send a ToS. SOURCE is a flow store "
            "directory, a store or record file (.parquet, .jsonl, .csv) or a pcap/pcapng "
            "capture (turned into flows on the fly)."
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="where the records are")
    parser.add_argument("--report", choices=REPORTS, default="top-dscp", help="(top-dscp)")
    add_selection_options(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    output.add_argument("--csv", action="store_true", help="print the report's rows as CSV")
    output.add_argument(
        "--html",
        metavar="FILE",
        help="write every report into one self-contained HTML page with charts (--report unused)",
    )
    parser.set_defaults(func=run)


def request_of(args: argparse.Namespace, report: str) -> ReportRequest:
    """The request the shared options describe, for ``report``."""
    from diffserv.report.filters import build_selection
    from diffserv.report.groups import load_groups
    from diffserv.report.queries import ReportRequest, parse_interval

    groups = load_groups(args.groups)
    selection = build_selection(args.filter, groups, start=args.start, end=args.end)
    return ReportRequest(
        report,
        selection,
        groups,
        top=args.top,
        by=args.by,
        key=args.key,
        side=args.side,
        interval_s=parse_interval(args.interval),
    )


def engine_of(args: argparse.Namespace, request: ReportRequest) -> Engine:
    from diffserv.report.engines import open_engine
    from diffserv.report.sources import SourceSet

    set_position(lambda: ", ".join(args.sources))
    sources = SourceSet(args.sources)
    return open_engine(args.engine, sources, master=args.master, from_ns=request.selection.from_ns)


def print_report(report: Report, args: argparse.Namespace) -> None:
    if args.json:  # no rich tables to load for JSON
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from diffserv.report.render_text import render_csv, render_text

    if args.csv:
        sys.stdout.write(render_csv(report))
    else:
        from rich.console import Console

        render_text(report, Console(highlight=False))


def warn(engine: Engine) -> None:
    for warning in engine.sources.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def write_html(args: argparse.Namespace) -> int:
    """Every report of the page over one engine, then the page, written whole or not at all."""
    from diffserv.report.html import HTML_REPORTS, render_html, write_atomically
    from diffserv.report.queries import run_report

    requests = {name: request_of(args, name) for name in HTML_REPORTS}
    engine = engine_of(args, requests["top-dscp"])
    warn(engine)
    reports = {name: run_report(engine, r).to_json() for name, r in requests.items()}
    write_atomically(args.html, render_html(reports, args.sources))
    return 0


def run(args: argparse.Namespace) -> int:
    from diffserv.report.queries import run_report

    if args.html:
        return write_html(args)
    request = request_of(args, args.report)
    engine = engine_of(args, request)
    warn(engine)
    print_report(run_report(engine, request), args)
    return 0
