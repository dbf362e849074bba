"""Flow records for the report tests, and the plain-Python sums the reports must match.

A test writes :class:`Rec` values (one per flow record, text addresses, the DS byte or
only the DSCP), stores them as a real flow store, runs a report on the real DuckDB
engine and compares each figure with :func:`sums` over the same values: a second
computation that shares no code with the SQL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from diffserv.flows.schema import UNKNOWN, FlowBatch, make_batch
from diffserv.flows.store_write import StoreWriter
from diffserv.report.engines import open_engine
from diffserv.report.filters import build_selection
from diffserv.report.groups import DscpGroups, default_groups
from diffserv.report.queries import Engine, Report, ReportRequest, run_report
from diffserv.report.sources import SourceSet

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000


class Rec(msgspec.Struct, frozen=True):
    """One flow record as a test means it; None is "not exported"."""

    first_ns: int
    saddr: str = "10.0.0.1"
    daddr: str = "192.0.2.10"
    sport: int = 40000
    dport: int = 443
    protocol: int = 6
    ds: int | None = 0  # the whole DS byte (IE 5); None: not exported
    dscp_only: int | None = None  # IE 195 alone: the DSCP without the byte (ds must be None)
    ds_out: int | None = None
    packets: int = 10
    bytes: int = 1000
    duration_ns: int = 1_000_000
    sampling: int | None = None
    source: str = "ipfix"
    exporter: str = "192.0.2.1"
    domain: int = 0
    in_if: int | None = None
    out_if: int | None = None
    direction: int | None = None
    vlan: int | None = None
    action: str | None = None
    klass: str | None = None

    @property
    def last_ns(self) -> int:
        return self.first_ns + self.duration_ns

    @property
    def dscp(self) -> int | None:
        return self.ds >> 2 if self.ds is not None else self.dscp_only

    @property
    def ecn(self) -> int | None:
        return self.ds & 3 if self.ds is not None else None

    @property
    def dscp_out(self) -> int | None:
        return None if self.ds_out is None else self.ds_out >> 2

    @property
    def scale(self) -> int:
        return self.sampling if self.sampling is not None and self.sampling > 1 else 1

    @property
    def s_packets(self) -> int:
        return self.packets * self.scale

    @property
    def s_bytes(self) -> int:
        return self.bytes * self.scale

    @property
    def ip_version(self) -> int:
        return ipaddress.ip_address(self.saddr).version


def _halves(text: str) -> tuple[int, int]:
    address = ipaddress.ip_address(text)
    value = int(address) | (0xFFFF << 32) if address.version == 4 else int(address)
    return value >> 64, value & (2**64 - 1)


def _known(value: int | None) -> int:
    return UNKNOWN if value is None else value


def batches(recs: Sequence[Rec]) -> list[FlowBatch]:
    """The records as flow batches, one per (source, exporter, domain), in input order."""
    by_origin: dict[tuple[str, str, int], list[Rec]] = {}
    for rec in recs:
        by_origin.setdefault((rec.source, rec.exporter, rec.domain), []).append(rec)
    out = []
    for (source, exporter, domain), group in by_origin.items():
        actions = tuple(sorted({r.action for r in group if r.action is not None}))
        classes = tuple(sorted({r.klass for r in group if r.klass is not None}))
        s = [_halves(r.saddr) for r in group]
        d = [_halves(r.daddr) for r in group]

        def column(values: Iterable[int], dtype: Any) -> Any:
            return np.array(list(values), dtype=dtype)

        given = {
            "first_ns": column((r.first_ns for r in group), np.int64),
            "last_ns": column((r.last_ns for r in group), np.int64),
            "ip_version": column((r.ip_version for r in group), np.uint8),
            "saddr_hi": column((h for h, _ in s), np.uint64),
            "saddr_lo": column((lo for _, lo in s), np.uint64),
            "daddr_hi": column((h for h, _ in d), np.uint64),
            "daddr_lo": column((lo for _, lo in d), np.uint64),
            "sport": column((r.sport for r in group), np.uint16),
            "dport": column((r.dport for r in group), np.uint16),
            "protocol": column((r.protocol for r in group), np.uint8),
            "ds_in": column((_known(r.ds) for r in group), np.int16),
            "dscp_in": column((_known(r.dscp) for r in group), np.int16),
            "ecn_in": column((_known(r.ecn) for r in group), np.int16),
            "prec_in": column(
                (_known(None if r.dscp is None else r.dscp >> 3) for r in group), np.int16
            ),
            "ds_out": column((_known(r.ds_out) for r in group), np.int16),
            "dscp_out": column((_known(r.dscp_out) for r in group), np.int16),
            "ecn_out": column(
                (_known(None if r.ds_out is None else r.ds_out & 3) for r in group), np.int16
            ),
            "packets": column((r.packets for r in group), np.uint64),
            "bytes": column((r.bytes for r in group), np.uint64),
            "sampling": column((_known(r.sampling) for r in group), np.int64),
            "in_if": column((_known(r.in_if) for r in group), np.int64),
            "out_if": column((_known(r.out_if) for r in group), np.int64),
            "direction": column((_known(r.direction) for r in group), np.int8),
            "vlan": column((_known(r.vlan) for r in group), np.int32),
            "action_code": column(
                (-1 if r.action is None else actions.index(r.action) for r in group), np.int32
            ),
            "class_code": column(
                (-1 if r.klass is None else classes.index(r.klass) for r in group), np.int32
            ),
        }
        out.append(
            make_batch(
                source, exporter, domain, len(group), given, actions=actions, classes=classes
            )
        )
    return out


def write_store(root: Path, recs: Sequence[Rec]) -> Path:
    """A real flow store (hour partitions, finished files) holding ``recs``."""
    writer = StoreWriter(str(root))
    for batch in batches(recs):
        writer.add(batch)
    writer.close()
    return root


def engine_over(*paths: Path | str) -> Engine:
    return open_engine("duckdb", SourceSet([str(p) for p in paths]))


def report(
    engine: Engine,
    name: str,
    *,
    filters: Sequence[str] = (),
    groups: DscpGroups | None = None,
    start: str | None = None,
    end: str | None = None,
    now_ns: int | None = None,
    **options: Any,
) -> Report:
    """One report over ``engine``, as `diffserv report` would ask for it."""
    groups = groups or default_groups()
    selection = build_selection(filters, groups, start=start, end=end, now_ns=now_ns)
    return run_report(engine, ReportRequest(name, selection, groups, **options))


Counters = dict[str, int]


def sums(recs: Iterable[Rec], key: Callable[[Rec], Hashable]) -> dict[Any, Counters]:
    """flows / packets / bytes (scaled by sampling) of the records per ``key``."""
    out: dict[Any, Counters] = {}
    for rec in recs:
        entry = out.setdefault(key(rec), {"flows": 0, "packets": 0, "bytes": 0})
        entry["flows"] += 1
        entry["packets"] += rec.s_packets
        entry["bytes"] += rec.s_bytes
    return out


def counters(row: dict[str, Any]) -> Counters:
    return {"flows": row["flows"], "packets": row["packets"], "bytes": row["bytes"]}


def share(part: int, total: int) -> float:
    return round(100 * part / total, 2) if total else 0.0


def service_port(rec: Rec) -> int | None:
    """The documented rule, written again: lower non-zero port of TCP/UDP/SCTP."""
    if rec.protocol not in (6, 17, 132):
        return None
    ports = [p for p in (rec.sport, rec.dport) if p]
    return min(ports) if ports else 0
