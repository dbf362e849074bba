"""Vectorised decoding of data records: template bytes to numbers, numbers to FlowBatch columns.

All records of one template are one numpy structured array over the joined record bytes
(a big-endian dtype with the template's offsets, built once per template), so the cost
per record is a few numpy passes, never Python. Fields of any exported length work: 1,
2, 4 and 8 bytes are read in place, the odd sizes of RFC 7011 reduced-size encoding (3,
5, 6, 7) are assembled from their bytes, longer unsigned fields keep their last 8 bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from diffserv.flows.schema import UNKNOWN
from diffserv.flows.wire.elements import (
    ELEMENTS,
    IPV4,
    IPV6,
    MICROSECONDS,
    MILLISECONDS,
    NANOSECONDS,
    SECONDS,
    SIGNED,
    UNSIGNED,
    element,
    named,
)
from diffserv.flows.wire.templates import Field

Key = tuple[int, int]  # (enterprise, element id)
U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
Num = NDArray[Any]  # an unsigned column of any width


def key(name: str) -> Key:
    """The (enterprise, id) of element ``name`` in the element table."""
    found = named(name)
    return (found.enterprise, found.id)


K_BYTES: Final = key("octetDeltaCount")
K_PACKETS: Final = key("packetDeltaCount")
K_BYTES_TOTAL: Final = key("octetTotalCount")
K_PACKETS_TOTAL: Final = key("packetTotalCount")
K_PROTOCOL: Final = key("protocolIdentifier")
K_TOS: Final = key("ipClassOfService")
K_POST_TOS: Final = key("postIpClassOfService")
K_DSCP: Final = key("ipDiffServCodePoint")
K_POST_DSCP: Final = key("postIpDiffServCodePoint")
K_PRECEDENCE: Final = key("ipPrecedence")
K_TCP_FLAGS: Final = key("tcpControlBits")
K_SPORT: Final = key("sourceTransportPort")
K_DPORT: Final = key("destinationTransportPort")
K_SRC4: Final = key("sourceIPv4Address")
K_DST4: Final = key("destinationIPv4Address")
K_SRC6: Final = key("sourceIPv6Address")
K_DST6: Final = key("destinationIPv6Address")
K_IN_IF: Final = key("ingressInterface")
K_OUT_IF: Final = key("egressInterface")
K_VLAN_V9: Final = key("vlanId")
K_VLAN: Final = key("dot1qVlanId")
K_PCP: Final = key("dot1qPriority")
K_IP_VERSION: Final = key("ipVersion")
K_DIRECTION: Final = key("flowDirection")
K_INIT_MS: Final = key("systemInitTimeMilliseconds")
K_SAMPLING_INTERVAL: Final = key("samplingInterval")
K_SAMPLER_RANDOM: Final = key("samplerRandomInterval")
K_PACKET_INTERVAL: Final = key("samplingPacketInterval")
K_PACKET_SPACE: Final = key("samplingPacketSpace")
K_SAMPLER_ID: Final = key("samplerId")
K_SELECTOR_ID: Final = key("selectorId")
K_ACTION_ID: Final = key("diffservActionId")
K_ACTION_NAME: Final = key("diffservActionName")
K_CLASS_ID: Final = key("diffservClassId")
K_CLASS_NAME: Final = key("diffservClassName")
K_UID: Final = key("diffservUserId")
K_PROJID: Final = key("diffservProjectId")
K_START_UPTIME: Final = key("flowStartSysUpTime")
K_END_UPTIME: Final = key("flowEndSysUpTime")
K_START_DELTA: Final = key("flowStartDeltaMicroseconds")
K_END_DELTA: Final = key("flowEndDeltaMicroseconds")

# Time elements in order of preference (finest absolute first), each side on its own.
_UNITS: Final = ("Nanoseconds", "Microseconds", "Milliseconds", "Seconds", "DeltaMicroseconds")
START_TIMES: Final = (*(key(f"flowStart{unit}") for unit in _UNITS), K_START_UPTIME)
END_TIMES: Final = (*(key(f"flowEnd{unit}") for unit in _UNITS), K_END_UPTIME)

# What a data record is decoded for: every element with a column, and those the times
# and the sampling rate are computed from. Everything else is skipped by the dtype.
NEEDED: Final = frozenset(
    {(e.enterprise, e.id) for e in ELEMENTS if e.column is not None}
    | set(START_TIMES)
    | set(END_TIMES)
    | {K_BYTES_TOTAL, K_PACKETS_TOTAL, K_INIT_MS, K_SAMPLER_ID, K_SELECTOR_ID}
    | {K_SAMPLING_INTERVAL, K_SAMPLER_RANDOM, K_PACKET_INTERVAL, K_PACKET_SPACE}
)
_NUMERIC: Final = frozenset({UNSIGNED, SIGNED, SECONDS, MILLISECONDS, MICROSECONDS, NANOSECONDS})

NTP_TO_UNIX_S: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
NS_PER_MS: Final = 1_000_000
_V4_MAPPED: Final = np.uint64(0xFFFF << 32)
_LOW32: Final = np.uint64(0xFFFFFFFF)


# Records decoded per numpy pass: a block of joined records stays in the CPU cache while
# every field is read out of it (one pass per field over a whole flush's bytes would
# read them from memory once per field).
BLOCK_BYTES: Final = 1 << 19
_NATIVE: Final[Mapping[int, np.dtype[Any]]] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
}


class Plan:
    """How to read the needed fields of one template's records: a dtype and field names.

    Fields of length 1/2/4/8 (and each half of a 16-byte IPv6 address) are dtype
    fields read in place into an unsigned array of their own width; odd lengths are
    byte sub-arrays combined into uint64 in :func:`decode`.
    """

    __slots__ = ("dtype", "odd", "plain", "record_length", "v6")

    def __init__(self, fields: tuple[Field, ...]) -> None:
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        self.plain: list[tuple[Key, str, np.dtype[Any]]] = []
        self.odd: list[tuple[Key, str, int]] = []
        self.v6: list[tuple[Key, str, str]] = []
        seen: set[Key] = set()
        offset = 0
        for enterprise, element_id, length in fields:
            here, offset = offset, offset + length
            k = (enterprise, element_id)
            if k not in NEEDED or k in seen:
                continue
            known = element(enterprise, element_id)
            if known is None:
                continue
            name = f"f{len(names)}"
            if known.kind == IPV6:
                if length != 16:
                    continue
                names += [name + "h", name + "l"]
                formats += [">u8", ">u8"]
                offsets += [here, here + 8]
                self.v6.append((k, name + "h", name + "l"))
            elif (known.kind == IPV4 and length == 4) or known.kind in _NUMERIC:
                if length in (1, 2, 4, 8):
                    formats.append(f">u{length}")
                    offsets.append(here)
                    self.plain.append((k, name, _NATIVE.get(length, np.dtype(np.uint64))))
                elif length < 8:
                    formats.append(("u1", (length,)))
                    offsets.append(here)
                    self.odd.append((k, name, length))
                else:  # longer than 8 bytes: the low 64 bits
                    formats.append(">u8")
                    offsets.append(here + length - 8)
                    self.plain.append((k, name, np.dtype(np.uint64)))
                names.append(name)
            else:
                continue
            seen.add(k)
        self.record_length = offset
        self.dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": max(offset, 1)}
        )


class Values:
    """The needed fields of ``n`` records as unsigned columns (IPv6 addresses as two
    uint64 halves); each column is as wide as the field was on the wire (odd sizes uint64)."""

    __slots__ = ("n", "num", "v6")

    def __init__(
        self, n: int, num: dict[Key, NDArray[Any]], v6: dict[Key, tuple[U64, U64]]
    ) -> None:
        self.n = n
        self.num = num
        self.v6 = v6


def _blocks(chunks: list[bytes | memoryview], counts: list[int], length: int) -> list[int]:
    """Chunk indices where the blocks of about BLOCK_BYTES of records start (and the end)."""
    per_block = max(1, BLOCK_BYTES // max(length, 1))
    ends = np.cumsum(np.array(counts, np.int64))
    marks = np.arange(per_block, int(ends[-1]), per_block)
    starts = np.unique(np.searchsorted(ends, marks, side="left") + 1)
    return [0, *(int(s) for s in starts if s < len(chunks)), len(chunks)]


def decode(chunks: list[bytes | memoryview], counts: list[int], plan: Plan) -> Values:
    """The fields of the fixed-length records in ``chunks`` (chunk i holds counts[i] records)."""
    n = sum(counts)
    num: dict[Key, NDArray[Any]] = {k: np.empty(n, dtype) for k, _, dtype in plan.plain}
    num.update({k: np.zeros(n, np.uint64) for k, _, _ in plan.odd})
    v6 = {k: (np.empty(n, np.uint64), np.empty(n, np.uint64)) for k, _, _ in plan.v6}
    if plan.record_length == 0:
        return Values(n, num, v6)
    pos = 0
    marks = _blocks(chunks, counts, plan.record_length)
    for a, b in itertools.pairwise(marks):
        data = chunks[a] if b == a + 1 else b"".join(chunks[a:b])
        m = sum(counts[a:b])
        records = np.frombuffer(data, dtype=plan.dtype, count=m)
        here = slice(pos, pos + m)
        for k, name, _ in plan.plain:
            np.copyto(num[k][here], records[name], casting="unsafe")
        for k, name, length in plan.odd:
            raw = records[name]
            total = raw[:, 0].astype(np.uint64)
            for i in range(1, length):
                total = (total << np.uint64(8)) | raw[:, i]
            num[k][here] = total
        for k, hi, lo in plan.v6:
            np.copyto(v6[k][0][here], records[hi], casting="unsafe")
            np.copyto(v6[k][1][here], records[lo], casting="unsafe")
        pos += m
    return Values(n, num, v6)


def _full(n: int, value: int, dtype: Any) -> NDArray[Any]:
    return np.full(n, value, dtype=dtype)


def _bounded(values: Num | None, n: int, limit: int, dtype: Any) -> NDArray[Any]:
    """``values`` as ``dtype`` where at most ``limit``, unknown elsewhere (and when absent)."""
    if values is None:
        return _full(n, UNKNOWN, dtype)
    if np.iinfo(values.dtype).max <= limit:
        return values.astype(dtype)
    return np.where(values <= limit, values.astype(np.int64), UNKNOWN).astype(dtype)


def _masked(values: Num | None, n: int, mask: int, dtype: Any) -> NDArray[Any]:
    """The low bits of ``values`` as ``dtype`` (unknown when absent)."""
    if values is None:
        return _full(n, UNKNOWN, dtype)
    if np.iinfo(values.dtype).max <= mask:
        return values.astype(dtype)
    low: NDArray[Any] = values & values.dtype.type(mask)
    return low.astype(dtype)


def ds_columns(
    whole: Num | None, dscp: Num | None, precedence: Num | None, n: int, suffix: str
) -> dict[str, NDArray[np.int16]]:
    """ds/dscp/ecn/prec of one side: ECN is known only from the whole DS byte."""
    ds = _masked(whole, n, 0xFF, np.int16)
    if dscp is not None:
        dscp_col = _masked(dscp, n, 0x3F, np.int16)
    elif whole is not None:
        dscp_col = ds >> 2
    else:
        dscp_col = _full(n, UNKNOWN, np.int16)
    ecn = ds & 3 if whole is not None else _full(n, UNKNOWN, np.int16)
    if precedence is not None:
        prec = _masked(precedence, n, 7, np.int16)
    elif dscp is not None or whole is not None:
        prec = dscp_col >> 3
    else:
        prec = _full(n, UNKNOWN, np.int16)
    return {
        f"ds_{suffix}": ds,
        f"dscp_{suffix}": dscp_col,
        f"ecn_{suffix}": ecn,
        f"prec_{suffix}": prec,
    }


def _ntp_ns(raw: Num, fraction_scale: int, unit_ns: int) -> I64:
    """NTP-format timestamps (s since 1900 << 32 | fraction) as ns since the epoch."""
    values = raw.astype(np.uint64, copy=False)
    seconds = (values >> np.uint64(32)).astype(np.int64) - NTP_TO_UNIX_S
    fraction = values & _LOW32
    sub = ((fraction * np.uint64(fraction_scale)) >> np.uint64(32)).astype(np.int64) * unit_ns
    return seconds * 1_000_000_000 + sub


class Header:
    """Per-record header values (export time, v5/v9 sysUpTime), expanded only when used.

    Each queued data set carries its header's scalars; a record needs them only for
    relative times, so the per-record arrays are built on first use.
    """

    __slots__ = ("_counts", "_export", "_export_ns", "_uptime", "_uptime_ms")

    def __init__(self, counts: list[int], export_ns: list[int], uptime_ms: list[int] | None):
        self._counts = counts
        self._export = export_ns
        self._uptime = uptime_ms
        self._export_ns: I64 | None = None
        self._uptime_ms: I64 | None = None

    def _expand(self, scalars: list[int]) -> I64:
        if len(scalars) == 1 or min(scalars) == max(scalars):
            return np.full(sum(self._counts), scalars[0], np.int64)
        return np.repeat(np.array(scalars, np.int64), self._counts)

    @property
    def has_uptime(self) -> bool:
        return self._uptime is not None

    def export_ns(self) -> I64:
        if self._export_ns is None:
            self._export_ns = self._expand(self._export)
        return self._export_ns

    def uptime_ms(self) -> I64:
        if self._uptime_ms is None:
            assert self._uptime is not None
            self._uptime_ms = self._expand(self._uptime)
        return self._uptime_ms


def _time(values: Values, candidates: tuple[Key, ...], header: Header, init_ms: int) -> I64 | None:
    """The first of ``candidates`` present, as int64 ns since the epoch (None: none)."""
    for k in candidates:
        v = values.num.get(k)
        if v is None:
            continue
        kind = element(*k).kind  # type: ignore[union-attr]
        if kind == NANOSECONDS:
            return _ntp_ns(v, 1_000_000_000, 1)
        if kind == MICROSECONDS:
            return _ntp_ns(v, 1_000_000, 1000)
        if kind == MILLISECONDS:
            return v.astype(np.int64) * NS_PER_MS
        if kind == SECONDS:
            return v.astype(np.int64) * 1_000_000_000
        if k in (K_START_DELTA, K_END_DELTA):
            return header.export_ns() - v.astype(np.int64) * 1000
        # sysUpTime: v5/v9 against the header's uptime, IPFIX against the init time
        if header.has_uptime:
            age_ms = (header.uptime_ms() - v.astype(np.int64)) & 0xFFFFFFFF
            return (header.export_ns() // NS_PER_MS - age_ms) * NS_PER_MS
        init = values.num.get(K_INIT_MS)
        if init is not None:
            return (init.astype(np.int64) + v.astype(np.int64)) * NS_PER_MS
        if init_ms >= 0:
            return (v.astype(np.int64) + init_ms) * NS_PER_MS
    return None


def times(values: Values, header: Header, init_ms: int) -> tuple[I64, I64, int]:
    """first_ns, last_ns and how many records had no time at all (they get the export time).

    A record with only a start (or only an end) uses it for both.
    """
    first = _time(values, START_TIMES, header, init_ms)
    last = _time(values, END_TIMES, header, init_ms)
    if first is None and last is None:
        export_ns = header.export_ns()
        return export_ns, export_ns.copy(), values.n
    if first is None:
        first = last
    if last is None:
        last = first
    assert first is not None and last is not None
    return first, last, 0


def _address(values: Values, v4key: Key, v6key: Key, version: NDArray[np.uint8]) -> tuple[U64, U64]:
    n = values.n
    v4 = values.num.get(v4key)
    v6 = values.v6.get(v6key)
    zero = np.zeros(n, np.uint64)
    if v4 is None and v6 is None:
        return zero, zero.copy()
    if v6 is None:
        assert v4 is not None
        return zero, v4.astype(np.uint64) | _V4_MAPPED
    if v4 is None:
        return v6
    six = version == 6
    return np.where(six, v6[0], zero), np.where(six, v6[1], v4.astype(np.uint64) | _V4_MAPPED)


def _ip_version(values: Values) -> NDArray[np.uint8]:
    n = values.n
    ver = values.num.get(K_IP_VERSION)
    if ver is not None:
        return np.where((ver == 4) | (ver == 6), ver, 0).astype(np.uint8)
    has4 = K_SRC4 in values.num or K_DST4 in values.num
    has6 = K_SRC6 in values.v6 or K_DST6 in values.v6
    if has4 and has6:
        v4 = values.num.get(K_SRC4, values.num.get(K_DST4))
        assert v4 is not None
        return np.where(v4 != 0, 4, 6).astype(np.uint8)
    return _full(n, 4 if has4 else 6 if has6 else 0, np.uint8)


def _either(values: Values, first: Key, second: Key) -> Num | None:
    found = values.num.get(first)
    return found if found is not None else values.num.get(second)


def sampling_rate(
    interval: Num | None, random: Num | None, packets: Num | None, space: Num | None, n: int
) -> NDArray[np.int64] | None:
    """ "1 in N" from whichever sampling elements are there (None: none of them).

    samplingInterval and samplerRandomInterval are N (0 reads as 1: not sampled); a
    count-based selector taking ``packets`` then skipping ``space`` samples 1 in
    (packets + space) / packets, rounded to the nearest integer; packets without a
    space, or 0 packets, is unknown.
    """
    rate = interval if interval is not None else random
    if rate is not None:
        rate = rate.astype(np.uint64, copy=False)
        return np.maximum(np.minimum(rate, _LOW32), np.uint64(1)).astype(np.int64)
    if packets is None:
        return None
    if space is None:
        return _full(n, UNKNOWN, np.int64)
    p = np.minimum(packets.astype(np.uint64, copy=False), _LOW32).astype(np.int64)
    s = np.minimum(space.astype(np.uint64, copy=False), _LOW32).astype(np.int64)
    safe = np.maximum(p, 1)
    return np.where(p > 0, (2 * (p + s) + safe) // (2 * safe), UNKNOWN).astype(np.int64)


def record_sampling(values: Values) -> NDArray[np.int64] | None:
    """The sampling rate carried in the data records themselves (None: not carried)."""
    num = values.num
    return sampling_rate(
        num.get(K_SAMPLING_INTERVAL),
        num.get(K_SAMPLER_RANDOM),
        num.get(K_PACKET_INTERVAL),
        num.get(K_PACKET_SPACE),
        values.n,
    )


def flow_columns(
    values: Values, header: Header, init_ms: int
) -> tuple[dict[str, NDArray[Any]], int]:
    """The FlowBatch columns the records carry (sampling and action/class codes excepted)
    and how many records had no time element."""
    n = values.n
    num = values.num
    version = _ip_version(values)
    saddr = _address(values, K_SRC4, K_SRC6, version)
    daddr = _address(values, K_DST4, K_DST6, version)
    first, last, untimed = times(values, header, init_ms)
    packets = _either(values, K_PACKETS, K_PACKETS_TOTAL)
    octets = _either(values, K_BYTES, K_BYTES_TOTAL)
    sport, dport, proto = num.get(K_SPORT), num.get(K_DPORT), num.get(K_PROTOCOL)
    cols: dict[str, NDArray[Any]] = {
        "first_ns": first,
        "last_ns": last,
        "ip_version": version,
        "saddr_hi": saddr[0],
        "saddr_lo": saddr[1],
        "daddr_hi": daddr[0],
        "daddr_lo": daddr[1],
        "sport": np.zeros(n, np.uint16) if sport is None else sport.astype(np.uint16, copy=False),
        "dport": np.zeros(n, np.uint16) if dport is None else dport.astype(np.uint16, copy=False),
        "protocol": np.zeros(n, np.uint8) if proto is None else proto.astype(np.uint8, copy=False),
        "tcp_flags": _masked(num.get(K_TCP_FLAGS), n, 0xFF, np.int16),
        "in_if": _bounded(num.get(K_IN_IF), n, 0xFFFFFFFF, np.int64),
        "out_if": _bounded(num.get(K_OUT_IF), n, 0xFFFFFFFF, np.int64),
        "direction": _bounded(num.get(K_DIRECTION), n, 1, np.int8),
        "vlan": _masked(_either(values, K_VLAN, K_VLAN_V9), n, 0xFFF, np.int32),
        "pcp": _masked(num.get(K_PCP), n, 7, np.int16),
        "packets": np.zeros(n, np.uint64) if packets is None else packets.astype(np.uint64),
        "bytes": np.zeros(n, np.uint64) if octets is None else octets.astype(np.uint64),
        "uid": _bounded(num.get(K_UID), n, 0xFFFFFFFF, np.int64),
        "projid": _bounded(num.get(K_PROJID), n, 0xFFFFFFFF, np.int64),
    }
    cols.update(ds_columns(num.get(K_TOS), num.get(K_DSCP), num.get(K_PRECEDENCE), n, "in"))
    cols.update(ds_columns(num.get(K_POST_TOS), num.get(K_POST_DSCP), None, n, "out"))
    return cols, untimed


def code_lookup(
    ids: Num | None, names: Mapping[int, str], index: Mapping[str, int], n: int
) -> NDArray[np.int32]:
    """Ids mapped to positions in a batch's name tuple (-1: no id, or no name known for it)."""
    if ids is None or not names:
        return _full(n, UNKNOWN, np.int32)
    known = np.array(sorted(names), dtype=np.uint64)
    position = np.array([index[names[int(i)]] for i in known], dtype=np.int32)
    at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return np.where(known[at] == ids, position[at], UNKNOWN).astype(np.int32)
