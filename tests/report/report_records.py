"""A flow store with every case a DSCP report must get right, and its records as dicts.

The dicts are the independent side of every check: tests compute what a report must
say from them in plain Python, never through SQL.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import numpy as np

from diffserv.flows.schema import UNKNOWN, make_batch
from diffserv.flows.store_write import StoreWriter

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
MIN = 60 * S


def _halves(text: str) -> tuple[int, int]:
    address = ipaddress.ip_address(text)
    value = int(address) | (0xFFFF << 32) if address.version == 4 else int(address)
    return value >> 64, value & (2**64 - 1)


def record(
    *,
    first: int,
    saddr: str,
    daddr: str,
    sport: int,
    dport: int,
    protocol: int = 6,
    ds_in: int | None = None,
    dscp_in: int | None = None,
    ds_out: int | None = None,
    packets: int = 1,
    nbytes: int = 100,
    sampling: int = 1,
    in_if: int | None = None,
    direction: int | None = None,
    exporter: str = "192.0.2.1",
    source: str = "ipfix",
) -> dict[str, Any]:
    if ds_in is not None:
        dscp_in = ds_in >> 2
    return {
        "first_ns": first,
        "last_ns": first + S // 2,
        "saddr": saddr,
        "daddr": daddr,
        "sport": sport,
        "dport": dport,
        "protocol": protocol,
        "ds_in": ds_in,
        "dscp_in": dscp_in,
        "ecn_in": None if ds_in is None else ds_in & 3,
        "ds_out": ds_out,
        "dscp_out": None if ds_out is None else ds_out >> 2,
        "packets": packets,
        "bytes": nbytes,
        "sampling": sampling,
        "in_if": in_if,
        "direction": direction,
        "exporter": exporter,
        "source": source,
    }


def records() -> list[dict[str, Any]]:
    """Exporter A sends whole bytes (EF as 184 and 185, AF41 with CE, sampled records
    1 in 10, re-marking, one flow whose DSCP changes); B sends IE 195 only (no ECN);
    C sends ToS 0 always; D sends no ToS field; A's interface 9 is always 0."""
    r = []
    for i in range(6):  # EF voice, half of it ECT(1)
        r.append(
            record(
                first=T0 + i * 20 * S,
                saddr="10.0.0.1",
                daddr="10.9.0.1",
                sport=5004 + i,
                dport=16384,
                protocol=17,
                ds_in=184 | (i % 2),
                packets=50,
                nbytes=9_000,
                in_if=1,
                direction=0,
            )
        )
    for i in range(4):  # AF41 video, CE on one, sampled 1 in 10, re-marked to AF42
        r.append(
            record(
                first=T0 + 30 * S + i * MIN,
                saddr="2001:db8::1",
                daddr="2001:db8:1::2",
                sport=40000 + i,
                dport=443,
                ds_in=136 | (3 if i == 0 else 2),
                ds_out=144,
                packets=100,
                nbytes=120_000,
                sampling=10,
                in_if=2,
                direction=0,
            )
        )
    # one flow (same 5-tuple) whose DSCP goes DF -> AF21 -> DF over three records
    for step, ds in enumerate((0, 72, 0)):
        r.append(
            record(
                first=T0 + step * 2 * MIN,
                saddr="10.0.0.7",
                daddr="198.51.100.7",
                sport=51000,
                dport=22,
                ds_in=ds,
                packets=10,
                nbytes=2_000,
                in_if=1,
                direction=0,
            )
        )
    for i in range(3):  # interface 9 of A: ToS always 0
        r.append(
            record(
                first=T0 + i * MIN,
                saddr="10.1.0.9",
                daddr="203.0.113.9",
                sport=33000 + i,
                dport=80,
                ds_in=0,
                packets=3,
                nbytes=400,
                in_if=9,
                direction=0,
            )
        )
    for i in range(5):  # B: IE 195 only
        r.append(
            record(
                first=T0 + i * MIN,
                saddr="10.2.0.1",
                daddr="10.2.0.2",
                sport=1000 + i,
                dport=0,
                protocol=17,
                dscp_in=10 if i < 3 else 46,
                packets=7,
                nbytes=700,
                exporter="192.0.2.2",
                in_if=3,
            )
        )
    for i in range(2):  # C: ToS field present, always 0
        r.append(
            record(
                first=T0 + i * MIN,
                saddr="10.3.0.1",
                daddr="10.3.0.2",
                sport=2000,
                dport=2001,
                ds_in=0,
                nbytes=300,
                exporter="192.0.2.3",
                source="netflow9",
            )
        )
    for i in range(2):  # D: no ToS field at all
        r.append(
            record(
                first=T0 + 3 * MIN + i * S,
                saddr="10.4.0.1",
                daddr="10.4.0.2",
                sport=0,
                dport=0,
                protocol=1,
                nbytes=84,
                exporter="192.0.2.4",
                source="netflow5",
            )
        )
    return r


def _column(rows: list[dict[str, Any]], name: str, dtype: str) -> np.ndarray[Any, Any]:
    return np.array([UNKNOWN if row[name] is None else row[name] for row in rows], dtype)


def write_store(root: Path, rows: list[dict[str, Any]]) -> Path:
    """The records in a flow store at ``root``: one batch per (source, exporter)."""
    writer = StoreWriter(str(root))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["source"], row["exporter"]), []).append(row)
    for (source, exporter), part in groups.items():
        n = len(part)
        s = [_halves(row["saddr"]) for row in part]
        d = [_halves(row["daddr"]) for row in part]
        versions = [ipaddress.ip_address(row["saddr"]).version for row in part]
        given = {
            "first_ns": _column(part, "first_ns", "int64"),
            "last_ns": _column(part, "last_ns", "int64"),
            "ip_version": np.array(versions, np.uint8),
            "saddr_hi": np.array([h for h, _ in s], np.uint64),
            "saddr_lo": np.array([lo for _, lo in s], np.uint64),
            "daddr_hi": np.array([h for h, _ in d], np.uint64),
            "daddr_lo": np.array([lo for _, lo in d], np.uint64),
            "sport": _column(part, "sport", "uint16"),
            "dport": _column(part, "dport", "uint16"),
            "protocol": _column(part, "protocol", "uint8"),
            "in_if": _column(part, "in_if", "int64"),
            "direction": _column(part, "direction", "int8"),
            "packets": _column(part, "packets", "uint64"),
            "bytes": _column(part, "bytes", "uint64"),
            "sampling": _column(part, "sampling", "int64"),
        }
        for side in ("in", "out"):
            ds = _column(part, f"ds_{side}", "int16")
            dscp = _column(part, f"dscp_{side}", "int16")
            given[f"ds_{side}"] = ds
            given[f"dscp_{side}"] = dscp
            given[f"ecn_{side}"] = np.where(ds >= 0, ds & 3, UNKNOWN).astype(np.int16)
            given[f"prec_{side}"] = np.where(dscp >= 0, dscp >> 3, UNKNOWN).astype(np.int16)
        writer.add(make_batch(source, exporter, 0, n, given))
    writer.close()
    return root
