"""Flow records as columns: what flowacct emits and what `diffserv flows` reads back.

The field set follows the illumos acctadm flow groups (``basic`` and ``extended``);
one definition here keeps the writers, the reader and the documentation in step.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Final, Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import format_addresses as _format_addresses
from diffserv._kernels import format_addresses_utf8 as _format_addresses_utf8

GROUP_BASIC: Final = "basic"
GROUP_EXTENDED: Final = "extended"
GROUPS: Final = (GROUP_BASIC, GROUP_EXTENDED)

BASIC_FIELDS: Final = (
    "saddr",
    "daddr",
    "sport",
    "dport",
    "protocol",
    "npackets",
    "nbytes",
    "action",
)
EXTENDED_ONLY_FIELDS: Final = (
    "dsfield",
    "dscp",
    "ecn",
    "first_seen",
    "last_seen",
    "projid",
    "uid",
)
EXTENDED_FIELDS: Final = BASIC_FIELDS + EXTENDED_ONLY_FIELDS

_V4_MAPPED_LO_TAG: Final = 0xFFFF


def fields_of(group: str) -> tuple[str, ...]:
    """The record fields of an acctadm group, in file column order."""
    return EXTENDED_FIELDS if group == GROUP_EXTENDED else BASIC_FIELDS


class FlowRecords(msgspec.Struct, frozen=True):
    """Expired flow items of one flowacct action, one row per item (8-tuple).

    Addresses are 128-bit as (hi, lo) halves, IPv4 v4-mapped; projid/uid are -1
    when unknown; times are int64 ns since the epoch (first and last packet).
    """

    action: str
    saddr_hi: NDArray[np.uint64]
    saddr_lo: NDArray[np.uint64]
    daddr_hi: NDArray[np.uint64]
    daddr_lo: NDArray[np.uint64]
    sport: NDArray[np.uint16]
    dport: NDArray[np.uint16]
    protocol: NDArray[np.uint8]
    dsfield: NDArray[np.uint8]
    projid: NDArray[np.int32]
    uid: NDArray[np.int32]
    npackets: NDArray[np.int64]
    nbytes: NDArray[np.int64]
    first_ns: NDArray[np.int64]
    last_ns: NDArray[np.int64]

    @property
    def n(self) -> int:
        return int(self.npackets.shape[0])

    @classmethod
    def from_matrix(cls, action: str, rows: NDArray[np.int64]) -> FlowRecords:
        """Build from the flow table's int64 output rows (see ``RECORD_COLUMNS``)."""
        col = {name: rows[:, i] for i, name in enumerate(RECORD_COLUMNS)}
        return cls(
            action=action,
            saddr_hi=col["saddr_hi"].view(np.uint64).copy(),
            saddr_lo=col["saddr_lo"].view(np.uint64).copy(),
            daddr_hi=col["daddr_hi"].view(np.uint64).copy(),
            daddr_lo=col["daddr_lo"].view(np.uint64).copy(),
            sport=col["sport"].astype(np.uint16),
            dport=col["dport"].astype(np.uint16),
            protocol=col["protocol"].astype(np.uint8),
            dsfield=col["dsfield"].astype(np.uint8),
            projid=col["projid"].astype(np.int32),
            uid=col["uid"].astype(np.int32),
            npackets=col["npackets"].copy(),
            nbytes=col["nbytes"].copy(),
            first_ns=col["first_ns"].copy(),
            last_ns=col["last_ns"].copy(),
        )

    def key(self, i: int) -> tuple[int, ...]:
        """The 8-tuple of row ``i`` as plain ints (for tests and debugging)."""
        return (
            (int(self.saddr_hi[i]) << 64) | int(self.saddr_lo[i]),
            (int(self.daddr_hi[i]) << 64) | int(self.daddr_lo[i]),
            int(self.sport[i]),
            int(self.dport[i]),
            int(self.protocol[i]),
            int(self.dsfield[i]),
            int(self.projid[i]),
            int(self.uid[i]),
        )


# Column order of the int64 matrix the flow-table kernel fills with expired items.
RECORD_COLUMNS: Final = (
    "saddr_hi",
    "saddr_lo",
    "daddr_hi",
    "daddr_lo",
    "sport",
    "dport",
    "protocol",
    "dsfield",
    "projid",
    "uid",
    "npackets",
    "nbytes",
    "first_ns",
    "last_ns",
)


def format_address(hi: int, lo: int) -> str:
    """Text form of a 128-bit address: dotted quad for v4-mapped, RFC 5952 otherwise."""
    (text,) = _format_addresses(np.array([hi], np.uint64), np.array([lo], np.uint64))
    return text


def parse_address(text: str) -> tuple[int, int]:
    """Inverse of :func:`format_address` (raises ValueError on bad text)."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv4Address):
        return 0, (_V4_MAPPED_LO_TAG << 32) | int(addr)
    value = int(addr)
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def format_addresses(hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> list[str]:
    """Text forms of many addresses (compiled: a flow file writes two per record)."""
    return _format_addresses(
        np.ascontiguousarray(hi, np.uint64), np.ascontiguousarray(lo, np.uint64)
    )


def format_addresses_utf8(
    hi: NDArray[np.uint64], lo: NDArray[np.uint64]
) -> tuple[NDArray[np.int32], bytes]:
    """The same texts as :func:`format_addresses`, as an Arrow string column's two buffers.

    (offsets, data): text ``i`` is ``data[offsets[i]:offsets[i + 1]]``. The flow store
    writes a million addresses this way in about 25 ms, with no Python string for any.
    """
    offsets = np.empty(hi.shape[0] + 1, np.int32)
    text = _format_addresses_utf8(
        np.ascontiguousarray(hi, np.uint64), np.ascontiguousarray(lo, np.uint64), offsets
    )
    return offsets, text


# Record times are int64 ns since the epoch: exactly what that type holds, no more.
TIME_MIN_NS: Final = -(2**63)
TIME_MAX_NS: Final = 2**63 - 1
_NS_PER_DAY: Final = 86_400 * 1_000_000_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def iso_time(ns: int) -> str:
    """ISO-8601 UTC text of one time with nanosecond precision, computed on exact ints.

    Works for any year 1..9999, so it also prints the int64 extremes numpy calls NaT.
    """
    days, ns_of_day = divmod(ns, _NS_PER_DAY)
    day = date.fromordinal(_EPOCH_ORDINAL + days)
    seconds, fraction = divmod(ns_of_day, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{day.isoformat()}T{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:09d}Z"


def iso_times(ns: NDArray[np.int64]) -> list[str]:
    """ISO-8601 UTC text with nanosecond precision, e.g. ``2026-01-01T00:00:00.000000001Z``."""
    text = [f"{t}Z" for t in np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ns")]
    # int64 min is numpy's NaT; it is still a time a record can hold
    for i in np.flatnonzero(ns == TIME_MIN_NS).tolist():
        text[i] = iso_time(TIME_MIN_NS)
    return text


_ISO_UTC: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)


_day_numbers: dict[str, int] = {}  # "2026-01-01" -> days since the epoch; records share days


def _day_number(text: str) -> int:
    days = _day_numbers.get(text)
    if days is None:
        try:
            days = date(int(text[:4]), int(text[5:7]), int(text[8:10])).toordinal()
        except ValueError:
            raise ValueError(f"bad time {text!r} (no such date)") from None
        days -= _EPOCH_ORDINAL
        if len(_day_numbers) >= 4096:
            _day_numbers.clear()
        _day_numbers[text] = days
    return days


def parse_iso_time(text: str) -> int:
    """Inverse of :func:`iso_time`: exact ns since the epoch (any year 0001..9999).

    Accepts fewer fraction digits; raises ValueError on bad text. The caller decides
    whether the value fits (see ``TIME_MIN_NS``/``TIME_MAX_NS``).
    """
    match = _ISO_UTC.fullmatch(text)
    if match is None:
        raise ValueError(f"bad time {text!r} (want ISO-8601 UTC like 2026-01-01T00:00:00.5Z)")
    hours, minutes, seconds, fraction = match.group(4, 5, 6, 7)
    day_seconds = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        raise ValueError(f"bad time {text!r} (no such time of day)")
    days = _day_number(text[:10])
    ns = int(fraction.ljust(9, "0")) if fraction else 0
    return (days * 86_400 + day_seconds) * 1_000_000_000 + ns


class RecordSink(Protocol):
    """Where flowacct's expired records go: a record file, the flow store, an exporter.

    ``write`` takes each batch of records as the flows expire. ``close`` ends a session
    that finished; ``abort`` ends one that failed or was interrupted, and keeps every
    record already handed over wherever the medium allows.
    """

    def write(self, records: FlowRecords) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...
