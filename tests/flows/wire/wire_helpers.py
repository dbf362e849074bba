"""A tiny struct-based NetFlow v5 / v9 / IPFIX writer for the decoder tests.

Deliberately independent of diffserv's codecs: every byte is laid out here with
``struct`` from the RFC formats, so a decoder bug cannot hide behind a matching
encoder bug.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from diffserv.flows.schema import FlowBatch

PEN = 32473  # diffserv's enterprise number (the documentation PEN)
T0_S = 1_767_225_600  # 2026-01-01T00:00:00Z
NTP_OFFSET = 2_208_988_800

# (element id, length) or (element id, length, enterprise)
FieldSpec = tuple[int, ...]


def value_bytes(value: Any, length: int) -> bytes:
    """One field value: ints big-endian in ``length`` bytes, text/bytes as given (fixed
    length fields are padded/cut); addresses as 4 or 16 bytes."""
    if isinstance(value, str) and length in (4, 16) and (":" in value or value.count(".") == 3):
        return ipaddress.ip_address(value).packed
    if isinstance(value, int):
        return value.to_bytes(length, "big")
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if length == 65535:
        if len(raw) < 255:
            return bytes([len(raw)]) + raw
        return b"\xff" + struct.pack("!H", len(raw)) + raw
    return raw[:length].ljust(length, b"\0")


def record(fields: Sequence[FieldSpec], values: Sequence[Any]) -> bytes:
    return b"".join(value_bytes(v, f[1]) for f, v in zip(fields, values, strict=True))


def field_specs(fields: Sequence[FieldSpec]) -> bytes:
    out = b""
    for f in fields:
        if len(f) > 2 and f[2]:
            out += struct.pack("!HHI", f[0] | 0x8000, f[1], f[2])
        else:
            out += struct.pack("!HH", f[0], f[1])
    return out


# -- IPFIX -----------------------------------------------------------------------------


def ipfix_set(set_id: int, body: bytes, pad: int = 0) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body) + pad) + body + b"\0" * pad


def ipfix_template(template_id: int, fields: Sequence[FieldSpec]) -> bytes:
    """One template record (field count 0 = a withdrawal)."""
    return struct.pack("!HH", template_id, len(fields)) + field_specs(fields)


def ipfix_options_template(
    template_id: int, scope: Sequence[FieldSpec], fields: Sequence[FieldSpec]
) -> bytes:
    head = struct.pack("!HHH", template_id, len(scope) + len(fields), len(scope))
    return head + field_specs([*scope, *fields])


def ipfix_message(
    sets: Iterable[bytes], *, sequence: int = 0, domain: int = 0, export_s: int = T0_S
) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, sequence, domain) + body


# -- NetFlow v9 ------------------------------------------------------------------------


def v9_template(template_id: int, fields: Sequence[FieldSpec]) -> bytes:
    return struct.pack("!HH", template_id, len(fields)) + field_specs(fields)


def v9_options_template(
    template_id: int, scope: Sequence[FieldSpec], fields: Sequence[FieldSpec]
) -> bytes:
    head = struct.pack("!HHH", template_id, 4 * len(scope), 4 * len(fields))
    return head + field_specs([*scope, *fields])


def v9_flowset(set_id: int, body: bytes) -> bytes:
    pad = -(4 + len(body)) % 4
    return struct.pack("!HH", set_id, 4 + len(body) + pad) + body + b"\0" * pad


def v9_packet(
    flowsets: Iterable[bytes],
    *,
    count: int,
    sequence: int = 0,
    source_id: int = 0,
    uptime_ms: int = 1_000_000,
    unix_secs: int = T0_S,
) -> bytes:
    head = struct.pack("!HHIIII", 9, count, uptime_ms, unix_secs, sequence, source_id)
    return head + b"".join(flowsets)


# -- NetFlow v5 ------------------------------------------------------------------------

V5_RECORD = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")


def v5_record(
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    *,
    nexthop: str = "0.0.0.0",
    in_if: int = 1,
    out_if: int = 2,
    packets: int = 1,
    octets: int = 100,
    first: int = 0,
    last: int = 0,
    sport: int = 1000,
    dport: int = 80,
    tcp_flags: int = 0,
    protocol: int = 6,
    tos: int = 0,
) -> bytes:
    return V5_RECORD.pack(
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
        ipaddress.ip_address(nexthop).packed,
        in_if,
        out_if,
        packets,
        octets,
        first,
        last,
        sport,
        dport,
        tcp_flags,
        protocol,
        tos,
        0,
        0,
        24,
        24,
    )


def v5_packet(
    records: Sequence[bytes],
    *,
    sequence: int = 0,
    uptime_ms: int = 1_000_000,
    unix_secs: int = T0_S,
    unix_nsecs: int = 0,
    engine_type: int = 0,
    engine_id: int = 0,
    sampling: int = 0,
    count: int | None = None,
) -> bytes:
    head = struct.pack(
        "!HHIIIIBBH",
        5,
        len(records) if count is None else count,
        uptime_ms,
        unix_secs,
        unix_nsecs,
        sequence,
        engine_type,
        engine_id,
        sampling,
    )
    return head + b"".join(records)


# -- reading batches back --------------------------------------------------------------


def v4(text: str) -> tuple[int, int]:
    """The (hi, lo) of an IPv4 address, v4-mapped."""
    return 0, (0xFFFF << 32) | int(ipaddress.IPv4Address(text))


def v6(text: str) -> tuple[int, int]:
    value = int(ipaddress.IPv6Address(text))
    return value >> 64, value & ((1 << 64) - 1)


def one(batches: list[FlowBatch]) -> FlowBatch:
    assert len(batches) == 1, [(b.source, b.exporter, b.domain, b.n) for b in batches]
    return batches[0]


def col(batch: FlowBatch, name: str) -> list[int]:
    return [int(x) for x in batch.columns[name]]


def rows(batches: Iterable[FlowBatch]) -> list[tuple[Any, ...]]:
    """Every record of the batches as a tuple (source, exporter, domain, columns..., names)."""
    out: list[tuple[Any, ...]] = []
    for b in batches:
        names = list(b.columns)
        for i in range(b.n):
            action = int(b.columns["action_code"][i])
            klass = int(b.columns["class_code"][i])
            cells = tuple(int(b.columns[name][i]) for name in names if not name.endswith("_code"))
            out.append(
                (
                    b.source,
                    b.exporter,
                    b.domain,
                    *cells,
                    b.actions[action] if action >= 0 else None,
                    b.classes[klass] if klass >= 0 else None,
                )
            )
    return out


def as_u64(values: Sequence[int]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    return np.array(values, dtype=np.uint64)
