"""Reports as terminal tables (rich), readable on 80 columns, and as CSV.

The terminal shows what a person reads: names beside numbers, bytes and rates with
units, shares as percentages. CSV and JSON carry the exact integers instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any, Final

from rich import box
from rich.console import Console
from rich.table import Table

from diffserv.policy.diagnostics import printable
from diffserv.report.queries import Report
from diffserv.textfmt import human_bytes

Cell = Callable[[dict[str, Any]], str]


def short_rate(bps: int | None) -> str:
    """bit/s with a decimal unit, short for a table: 1.5 Mb/s, 640 b/s; "-" when unknown."""
    if bps is None:
        return "-"
    value = float(bps)
    for unit in ("b/s", "kb/s", "Mb/s", "Gb/s"):
        if value < 1000 or unit == "Gb/s":
            return f"{bps} b/s" if unit == "b/s" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{bps} b/s"


def _count(name: str) -> Cell:
    return lambda row: f"{row[name]:,}"


def _percent(name: str) -> Cell:
    return lambda row: f"{row[name]:.2f}%"


def _text(name: str) -> Cell:
    return lambda row: "-" if row.get(name) is None else f"{row[name]}"


def _mark(prefix: str = "") -> Cell:
    """``EF (46)``, a group's name, or ``unknown``."""

    def cell(row: dict[str, Any]) -> str:
        if f"{prefix}dscp" not in row:
            return str(row[f"{prefix}group"])
        dscp, name = row[f"{prefix}dscp"], row[f"{prefix}name"]
        if dscp is None or name == str(dscp):
            return str(name)
        return f"{name} ({dscp})"

    return cell


def _service(row: dict[str, Any]) -> str:
    if row["port"] is None:
        return str(row["protocol_name"])
    name = f"/{row['service']}" if row["service"] else ""
    return f"{row['protocol_name']} {row['port']}{name}"


def _byte(name: str) -> Cell:
    return lambda row: human_bytes(row[name])


def _rate(name: str) -> Cell:
    return lambda row: short_rate(row[name])


_RIGHT: Final = "right"
Spec = list[tuple[str, Cell, str]]


def _mark_header(report: Report, prefix: str = "") -> str:
    word = "Group" if report.meta["key"] == "group" else "DSCP"
    return f"{word} {prefix}".strip()


def _spec(report: Report) -> Spec:
    mark = _mark_header(report)
    share = f"share_of_{report.meta['key']}"
    counters: Spec = [
        ("Flows", _count("flows"), _RIGHT),
        ("Packets", _count("packets"), _RIGHT),
        ("Bytes", _byte("bytes"), _RIGHT),
    ]
    name = report.report
    if name in ("top-dscp", "groups"):
        head: Spec = [(mark, _mark(), "left")]
        if report.meta["key"] == "dscp":  # a group's code points are in --json
            head.append(("Class", _text("service_class"), "left"))
        if any(row["side"] == "out" for row in report.rows):
            head.insert(0, ("Mark", _text("side"), "left"))
        return [
            *head,
            *counters,
            ("Share", _percent("share"), _RIGHT),
            ("Avg", _rate("avg_bps"), _RIGHT),
            ("Peak", _rate("peak_bps"), _RIGHT),
        ]
    if name == "apps":
        return [
            (mark, _mark(), "left"),
            ("Application", _service, "left"),
            *counters,
            (f"Of {report.meta['key']}", _percent(share), _RIGHT),
            ("Of all", _percent("share_of_total"), _RIGHT),
        ]
    if name == "conversations":
        return [
            (mark, _mark(), "left"),
            ("Between", lambda r: f"{r['addr_a']} ↔ {r['addr_b']}", "left"),
            *counters,
            (f"Of {report.meta['key']}", _percent(share), _RIGHT),
            ("Of all", _percent("share_of_total"), _RIGHT),
        ]
    if name == "timeline":
        return [
            ("Interval start (UTC)", lambda r: r["start"][:19].replace("T", " "), "left"),
            (mark, _mark(), "left"),
            *counters,
            ("Rate", _rate("bps"), _RIGHT),
        ]
    if name == "tos":
        return [
            ("ToS", lambda r: "-" if r["tos"] is None else f"{r['tos']} {r['tos_hex']}", "left"),
            ("Precedence", lambda r: f"{r['precedence']} {r['precedence_name']}", "left"),
            ("ToS bits", lambda r: " ".join(r["tos_bits"]) or "-", "left"),
            ("DSCP", _mark(), _RIGHT),
            ("ECN", _text("ecn_name"), _RIGHT),
            ("Packets", _count("packets"), _RIGHT),
            ("Bytes", _byte("bytes"), _RIGHT),
            ("Share", _percent("share"), _RIGHT),
        ]
    if name == "ecn":
        return [
            (mark, _mark(), "left"),
            ("ECN", _text("ecn_name"), "left"),
            *counters,
            (f"Of {report.meta['key']}", _percent(share), _RIGHT),
            ("Of all", _percent("share_of_total"), _RIGHT),
        ]
    if name == "remark":
        return [
            (_mark_header(report, "in"), _mark("in_"), "left"),
            (_mark_header(report, "out"), _mark("out_"), "left"),
            ("Changed", lambda r: "yes" if r["changed"] else "", "left"),
            *counters,
            ("Share", _percent("share"), _RIGHT),
        ]
    if name == "silent-exporters":
        return [
            (
                "Exporter",
                lambda r: f"{r['exporter']} ({r['source']}, domain {r['domain']})",
                "left",
            ),
            (
                "Interfaces",
                lambda r: (
                    ("all: " if r["level"] == "exporter" else "")
                    + (" ".join(map(str, r["interfaces"])) or "-")
                ),
                "left",
            ),
            ("Status", _text("status"), "left"),
            ("Flows", _count("flows"), _RIGHT),
            ("Bytes", _byte("bytes"), _RIGHT),
        ]
    if name == "flows":
        return [
            ("First seen (UTC)", lambda r: r["first_seen"][:23].replace("T", " "), "left"),
            ("Source", lambda r: _endpoint(r["saddr"], r["sport"]), "left"),
            ("Destination", lambda r: _endpoint(r["daddr"], r["dport"]), "left"),
            ("Proto", _text("protocol_name"), "left"),
            ("DSCP", _mark(), "left"),
            ("Packets", _count("packets"), _RIGHT),
            ("Bytes", _byte("bytes"), _RIGHT),
        ]
    raise ValueError(f"no text layout for report {name}")


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


TITLES: Final = {
    "top-dscp": "Top DSCP",
    "groups": "DSCP groups",
    "apps": "Applications per {key}",
    "conversations": "Conversations per {key}",
    "timeline": "Traffic over time per {key}",
    "tos": "ToS byte (precedence, RFC 1349 bits) beside the DSCP",
    "ecn": "ECN per {key}",
    "remark": "Re-marking: ingress → egress {key}",
    "silent-exporters": "Exporters and interfaces that never send a non-zero ToS",
    "flows": "Flow records",
}


# what an empty table means, where "no records match" would mislead
_EMPTY: Final = {
    "remark": "no record carries both an ingress and an egress mark (IE 55 or 98)",
    "silent-exporters": "every exporter sends non-zero ToS bytes",
}


def _preamble(report: Report) -> list[str]:
    meta = report.meta
    totals = meta["totals"]
    lines = [
        f"{totals['flows']:,} records, {totals['packets']:,} packets, "
        f"{human_bytes(totals['bytes'])}"
    ]
    if meta["first_seen"]:
        first, last = (meta[k][:19].replace("T", " ") for k in ("first_seen", "last_seen"))
        if first[:10] == last[:10]:  # one day: its date once
            last = last[11:]
        lines[0] += f", {first} to {last} UTC"
    if meta["filters"]:
        lines.append("filters: " + printable(" ".join(meta["filters"])))
    if meta.get("note"):
        lines.append(str(meta["note"]))
    return lines


def render_text(report: Report, console: Console) -> None:
    """``report`` as a titled table (and what it covers) on ``console``."""
    key = "group" if report.meta["key"] == "group" else "DSCP"
    title = TITLES[report.report].format(key=key)
    table = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, padding=(0, 1, 0, 0)
    )
    spec = _spec(report)
    for position, (header, cell, justify) in enumerate(spec):
        # numbers never wrap; the label columns give way on a narrow terminal
        table.add_column(
            header,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            # the mark and every number keep their width; other text gives way
            min_width=max([len(header), *(len(cell(row)) for row in report.rows)])
            if position == 0 or justify == _RIGHT
            else None,
            max_width=None if justify == _RIGHT or position == 0 else 12,
        )
    for row in report.rows:
        table.add_row(*(cell(row) for _, cell, _ in spec))
    for line in _preamble(report):
        console.print(line, highlight=False, markup=False)
    if report.rows:
        console.print(table)
    else:
        console.print(f"{title}: {_EMPTY.get(report.report, 'no records match')}", markup=False)
    if report.report == "remark":
        _render_changes(report, console)
    if report.report == "silent-exporters":
        meta = report.meta
        console.print(
            f"{meta['exporters_checked']} exporters checked, "
            f"{len(report.rows)} never send a non-zero ToS byte",
            highlight=False,
            markup=False,
        )


def _render_changes(report: Report, console: Console) -> None:
    changes = report.extra.get("changed_flows", [])
    if not changes:
        console.print("No flow changed its DSCP between records.", highlight=False)
        return
    table = Table(
        title="Flows whose DSCP changed along their life",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    for header in ("Source", "Destination", "Proto", "DSCPs in time order", "Bytes"):
        table.add_column(header, justify="right" if header == "Bytes" else "left", overflow="fold")
    for row in changes:
        table.add_row(
            _endpoint(row["saddr"], row["sport"]),
            _endpoint(row["daddr"], row["dport"]),
            str(row["protocol"]),
            " → ".join(row["marks"]),
            human_bytes(row["bytes"]),
        )
    console.print(table)


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def render_csv(report: Report) -> str:
    """``report``'s rows as CSV with a header of its columns (lists space-separated)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow([_csv_value(row.get(column)) for column in report.columns])
    return out.getvalue()
