"""The IPFIX / NetFlow v9 / v5 encoders read back with struct: sizes, sequences, templates."""

from __future__ import annotations

import ipaddress
import itertools
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.flows.schema import UNKNOWN, FlowBatch, make_batch
from diffserv.flows.wire.elements import DIFFSERV_PEN, element
from diffserv.flows.wire.encode import (
    BOOT_LEAD_MS,
    IpfixEncoder,
    Netflow5Encoder,
    Netflow9Encoder,
)
from diffserv.records import format_addresses, parse_address

T0 = 1_767_225_600_000_000_000
V4 = ["10.0.0.1", "192.0.2.77", "198.51.100.9"]
V6 = ["2001:db8::1", "2001:db8:ffff::abcd", "fe80::1"]


# ------------------------------------------------------------------ batches
@st.composite
def batches(draw: Any, max_records: int = 80) -> FlowBatch:
    n = draw(st.integers(1, max_records))
    rows = draw(
        st.lists(
            st.tuples(
                st.booleans(),  # ipv6
                st.integers(0, 2),  # address pick
                st.integers(0, 65535),
                st.integers(0, 65535),
                st.sampled_from([6, 17, 1, 58, 132]),
                st.integers(-1, 255),  # ds byte (-1 unknown)
                st.integers(-1, 1),  # direction
                st.integers(0, 2**40),  # packets
                st.integers(0, 2**50),  # bytes
                st.integers(0, 10**12),  # first offset ns
                st.integers(0, 10**11),  # duration ns
                st.integers(-1, 2),  # action code
                st.integers(-1, 70000),  # uid
            ),
            min_size=n,
            max_size=n,
        )
    )
    saddr = [parse_address((V6 if r[0] else V4)[r[1]]) for r in rows]
    daddr = [parse_address((V6 if r[0] else V4)[2 - r[1]]) for r in rows]
    first = np.array([T0 + r[9] for r in rows], np.int64)
    ds = np.array([r[5] for r in rows], np.int16)
    given_columns = {
        "first_ns": first,
        "last_ns": first + np.array([r[10] for r in rows], np.int64),
        "ip_version": np.array([6 if r[0] else 4 for r in rows], np.uint8),
        "saddr_hi": np.array([a[0] for a in saddr], np.uint64),
        "saddr_lo": np.array([a[1] for a in saddr], np.uint64),
        "daddr_hi": np.array([a[0] for a in daddr], np.uint64),
        "daddr_lo": np.array([a[1] for a in daddr], np.uint64),
        "sport": np.array([r[2] for r in rows], np.uint16),
        "dport": np.array([r[3] for r in rows], np.uint16),
        "protocol": np.array([r[4] for r in rows], np.uint8),
        "ds_in": ds,
        "dscp_in": np.where(ds >= 0, ds >> 2, UNKNOWN),
        "direction": np.array([r[6] for r in rows], np.int8),
        "packets": np.array([r[7] for r in rows], np.uint64),
        "bytes": np.array([r[8] for r in rows], np.uint64),
        "action_code": np.array([r[11] for r in rows], np.int32),
        "uid": np.array([r[12] for r in rows], np.int64),
    }
    return make_batch("flowacct", "", 0, n, given_columns, actions=("acct", "edge", "ünïcode"))


# ------------------------------------------------------------------ a reader for the tests
class Reader:
    """Just enough of IPFIX / v9 to check what the encoders write (not the project's decoder)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.templates: dict[int, list[tuple[int, int, int]]] = {}  # id -> (pen, id, length)
        self.options: dict[int, list[tuple[int, int, int]]] = {}
        self.records: list[dict[tuple[int, int], int | bytes]] = []
        self.names: dict[tuple[int, int], str] = {}  # (scope element id, id) -> name
        self.template_datagrams: list[int] = []
        self.headers: list[tuple[int, ...]] = []

    def feed(self, index: int, datagram: bytes) -> None:
        if self.version == 10:
            version, length, export, sequence, domain = struct.unpack_from("!HHIII", datagram)
            assert length == len(datagram)
            header = (export, sequence, domain)
            at = 16
        else:
            version, count, uptime, secs, sequence, source = struct.unpack_from("!HHIIII", datagram)
            header = (uptime, secs, sequence, source, count)
            at = 20
        assert version == self.version
        self.headers.append(header)
        v9_count = 0
        while at < len(datagram):
            set_id, set_length = struct.unpack_from("!HH", datagram, at)
            assert set_length >= 4
            assert at + set_length <= len(datagram), "a set runs past its datagram"
            body = datagram[at + 4 : at + set_length]
            if set_id in (0, 2):
                v9_count += self._templates(body)
                self.template_datagrams.append(index)
            elif set_id == 3:
                self._options_templates(body)
            else:
                v9_count += self._data(set_id, body)
            at += set_length
        assert at == len(datagram)
        if self.version == 9:
            assert header[4] == v9_count

    def _fields(self, body: bytes, at: int, count: int) -> tuple[list[tuple[int, int, int]], int]:
        fields = []
        for _ in range(count):
            fid, flen = struct.unpack_from("!HH", body, at)
            at += 4
            pen = 0
            if fid & 0x8000:
                assert self.version == 10, "v9 has no enterprise fields"
                (pen,) = struct.unpack_from("!I", body, at)
                at += 4
            fields.append((pen, fid & 0x7FFF, flen))
        return fields, at

    def _templates(self, body: bytes) -> int:
        at = n = 0
        while at + 4 <= len(body):
            tid, count = struct.unpack_from("!HH", body, at)
            self.templates[tid], at = self._fields(body, at + 4, count)
            n += 1
        return n

    def _options_templates(self, body: bytes) -> None:
        at = 0
        while at + 6 <= len(body):
            tid, count, scope = struct.unpack_from("!HHH", body, at)
            assert scope == 1
            self.options[tid], at = self._fields(body, at + 6, count)

    def _data(self, set_id: int, body: bytes) -> int:
        if set_id in self.options:
            fields = self.options[set_id]
            at = n = 0
            while at < len(body):
                (ident,) = struct.unpack_from("!H", body, at)
                size = body[at + 2]
                self.names[(fields[0][1], ident)] = body[at + 3 : at + 3 + size].decode()
                at += 3 + size
                n += 1
            return n
        assert set_id in self.templates, "data before its template"
        fields = self.templates[set_id]
        size = sum(f[2] for f in fields)
        n = len(body) // size
        assert len(body) - n * size < 4, "padding of a whole record or more"
        for i in range(n):
            at = i * size
            record: dict[tuple[int, int], int | bytes] = {}
            for pen, fid, flen in fields:
                value = body[at : at + flen]
                record[(pen, fid)] = value if flen == 16 else int.from_bytes(value, "big")
                at += flen
            if (DIFFSERV_PEN, 1) in record:
                name = self.names.get((1, int(record[(DIFFSERV_PEN, 1)])))  # type: ignore[arg-type]
                assert name is not None, "an action id before its name"
            self.records.append(record)
        return n


def read_all(version: int, datagrams: list[bytes]) -> Reader:
    reader = Reader(version)
    for i, datagram in enumerate(datagrams):
        reader.feed(i, datagram)
    return reader


def address_text(value: int | bytes) -> str:
    if isinstance(value, bytes):
        return str(ipaddress.IPv6Address(value))
    return str(ipaddress.IPv4Address(value))


def expected_rows(batch: FlowBatch) -> list[tuple[Any, ...]]:
    c = batch.columns
    src = format_addresses(c["saddr_hi"], c["saddr_lo"])
    dst = format_addresses(c["daddr_hi"], c["daddr_lo"])
    return sorted(
        zip(
            src,
            dst,
            c["sport"].tolist(),
            c["dport"].tolist(),
            c["protocol"].tolist(),
            c["packets"].tolist(),
            c["bytes"].tolist(),
            (c["first_ns"] // 1_000_000).tolist(),
            (c["last_ns"] // 1_000_000).tolist(),
            strict=True,
        )
    )


def ie(name_id: int) -> tuple[int, int]:
    return (0, name_id)


PAYLOADS = st.sampled_from([508, 1000, 1452, 1472, 8972])


# ------------------------------------------------------------------ IPFIX
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(batches(), min_size=1, max_size=4), payload=PAYLOADS)
def test_ipfix_datagrams_fit_count_and_carry_every_record(
    parts: list[FlowBatch], payload: int
) -> None:
    encoder = IpfixEncoder(domain=7, max_payload=payload, refresh_datagrams=5)
    datagrams = [d for batch in parts for d in encoder.encode(batch)]
    assert all(len(d) <= payload for d in datagrams)
    reader = read_all(10, datagrams)
    assert 0 in reader.template_datagrams  # templates in the first datagram
    # sequence = Data Records (flows and name options) sent before the message
    sent = 0
    for datagram, header in zip(datagrams, reader.headers, strict=True):
        assert header[1] == sent % 2**32
        assert header[2] == 7
        sent += count_data_records(reader, datagram)
    assert sent == encoder.data_records + encoder.option_records
    n = sum(b.n for b in parts)
    assert len(reader.records) == n == encoder.data_records
    got = sorted(
        (
            address_text(r.get(ie(8), r.get(ie(27), b""))),
            address_text(r.get(ie(12), r.get(ie(28), b""))),
            r[ie(7)],
            r[ie(11)],
            r[ie(4)],
            r[ie(2)],
            r[ie(1)],
            r[ie(152)],
            r[ie(153)],
        )
        for r in reader.records
    )
    expected = []
    for batch in parts:
        expected += expected_rows(batch)
    assert got == sorted(expected)
    # refresh: every 5 datagrams at most between two sendings of the templates
    marks = [*sorted(set(reader.template_datagrams)), len(datagrams)]
    assert all(b - a <= 5 for a, b in itertools.pairwise(marks))


def count_data_records(reader: Reader, datagram: bytes) -> int:
    at, count = 16, 0
    while at < len(datagram):
        set_id, set_length = struct.unpack_from("!HH", datagram, at)
        body = datagram[at + 4 : at + set_length]
        if set_id in reader.options:
            i = 0
            while i < len(body):
                i += 3 + body[i + 2]
                count += 1
        elif set_id >= 256:
            count += len(body) // sum(f[2] for f in reader.templates[set_id])
        at += set_length
    return count


@settings(max_examples=20, deadline=None)
@given(batch=batches())
def test_ipfix_unknown_values_are_left_out_not_invented(batch: FlowBatch) -> None:
    reader = read_all(10, IpfixEncoder().encode(batch))
    c = batch.columns
    by_key: dict[tuple[int, ...], list[dict[tuple[int, int], int | bytes]]] = {}
    for r in reader.records:
        by_key.setdefault((int(r[ie(7)]), int(r[ie(11)]), int(r[ie(2)])), []).append(r)  # type: ignore[arg-type]
    for i in range(batch.n):
        options = by_key[(int(c["sport"][i]), int(c["dport"][i]), int(c["packets"][i]))]
        ds, direction, uid = int(c["ds_in"][i]), int(c["direction"][i]), int(c["uid"][i])
        assert any(
            r.get(ie(5), -1) == ds
            and r.get(ie(195), -1) == (ds >> 2 if ds >= 0 else -1)
            and r.get(ie(61), -1) == direction
            and r.get((DIFFSERV_PEN, 5), -1) == uid
            for r in options
        )
    for r in reader.records:
        if (DIFFSERV_PEN, 1) in r:
            assert reader.names[(1, int(r[(DIFFSERV_PEN, 1)]))] in ("acct", "edge", "ünïcode")  # type: ignore[arg-type]


def test_ipfix_template_elements_come_from_the_table() -> None:
    batch = next(iter([make_one(ipv6=True)]))
    reader = read_all(10, IpfixEncoder().encode(batch))
    for fields in [*reader.templates.values(), *reader.options.values()]:
        for pen, fid, length in fields:
            known = element(pen, fid)
            assert known is not None
            assert length == known.length
    ids = {(pen, fid) for pen, fid, _ in next(iter(reader.templates.values()))}
    assert {(0, 27), (0, 28), (0, 5), (0, 195), (0, 61), (0, 152), (0, 153)} <= ids
    assert (DIFFSERV_PEN, 1) in ids


def make_one(*, ipv6: bool = False, n: int = 1, action: int = 0, spread_ns: int = 0) -> FlowBatch:
    addr = parse_address("2001:db8::5" if ipv6 else "10.9.8.7")
    first = T0 + np.arange(n, dtype=np.int64) * spread_ns
    return make_batch(
        "flowacct",
        "",
        0,
        n,
        {
            "first_ns": first,
            "last_ns": first + 1_000_000,
            "ip_version": np.full(n, 6 if ipv6 else 4, np.uint8),
            "saddr_hi": np.full(n, addr[0], np.uint64),
            "saddr_lo": np.full(n, addr[1], np.uint64),
            "daddr_hi": np.full(n, addr[0], np.uint64),
            "daddr_lo": np.full(n, addr[1], np.uint64),
            "sport": np.arange(n, dtype=np.uint16),
            "dport": np.full(n, 80, np.uint16),
            "protocol": np.full(n, 6, np.uint8),
            "ds_in": np.full(n, 0xB9, np.int16),
            "direction": np.zeros(n, np.int8),
            "packets": np.ones(n, np.uint64),
            "bytes": np.full(n, 100, np.uint64),
            "action_code": np.full(n, action, np.int32),
        },
        actions=("acct",),
    )


def test_templates_are_refreshed_every_n_datagrams_and_t_seconds() -> None:
    encoder = IpfixEncoder(refresh_datagrams=3, refresh_ns=10**12)
    datagrams = encoder.encode(make_one(n=400))  # ~13 datagrams of 30 records
    reader = read_all(10, datagrams)
    assert sorted(set(reader.template_datagrams)) == list(range(0, len(datagrams), 3))
    # by record time: one datagram per batch, batches 30 s apart, refresh every 60 s
    encoder = IpfixEncoder(refresh_datagrams=1000, refresh_ns=60 * 10**9)
    sent = []
    for k in range(6):
        batch = make_one()
        moved = {**batch.columns}
        moved["first_ns"] = moved["first_ns"] + k * 30 * 10**9
        moved["last_ns"] = moved["last_ns"] + k * 30 * 10**9
        sent += encoder.encode(FlowBatch("flowacct", "", 0, moved, ("acct",)))
    reader = read_all(10, sent)
    assert sorted(set(reader.template_datagrams)) == [0, 2, 4]
    # the names go out again with the templates
    assert count_name_sets(sent) == [0, 2, 4]


def count_name_sets(datagrams: list[bytes]) -> list[int]:
    out = []
    for i, datagram in enumerate(datagrams):
        at = 16
        while at < len(datagram):
            set_id, set_length = struct.unpack_from("!HH", datagram, at)
            if set_id == 256:  # the action names' options template
                out.append(i)
                break
            at += set_length
    return out


def test_a_new_action_name_is_announced_before_its_first_record() -> None:
    encoder = IpfixEncoder()
    first = encoder.encode(make_one())
    later = make_one()
    renamed = FlowBatch("flowacct", "", 0, later.columns, ("other",))
    second = encoder.encode(renamed)
    reader = read_all(10, first + second)
    assert reader.names == {(1, 0): "acct", (1, 1): "other"}
    ids = [r[(DIFFSERV_PEN, 1)] for r in reader.records]
    assert ids == [0, 1]


# ------------------------------------------------------------------ NetFlow v9
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(batches(), min_size=1, max_size=4), payload=PAYLOADS)
def test_netflow9_packets_fit_count_and_keep_times(parts: list[FlowBatch], payload: int) -> None:
    encoder = Netflow9Encoder(domain=3, max_payload=payload)
    datagrams = [d for batch in parts for d in encoder.encode(batch)]
    assert all(len(d) <= payload for d in datagrams)
    reader = read_all(9, datagrams)
    assert [h[2] for h in reader.headers] == list(range(len(datagrams)))  # packets before
    assert {h[3] for h in reader.headers} == {3}
    assert len(reader.records) == sum(b.n for b in parts)
    boot_ms = int(parts[0].columns["first_ns"].min()) // 1_000_000 - BOOT_LEAD_MS
    times = []
    for i, datagram in enumerate(datagrams):
        uptime, secs = reader.headers[i][:2]
        assert (secs * 1000 - uptime) % 2**32 == boot_ms % 2**32  # one boot for the stream
        del datagram
    for r in reader.records:
        assert all(f[0] == 0 for f in r)
        times.append((boot_ms + int(r[ie(22)]), boot_ms + int(r[ie(21)])))  # type: ignore[call-overload]
    expected = sorted(
        (f, la)
        for b in parts
        for f, la in zip(
            (b.columns["first_ns"] // 1_000_000).tolist(),
            (b.columns["last_ns"] // 1_000_000).tolist(),
            strict=True,
        )
    )
    assert sorted(times) == expected


def test_netflow9_has_no_dscp_only_or_enterprise_fields() -> None:
    reader = read_all(9, Netflow9Encoder().encode(make_one()))
    (fields,) = reader.templates.values()
    ids = [fid for _pen, fid, _len in fields]
    assert 5 in ids and 195 not in ids and 61 in ids and 22 in ids and 21 in ids


# ------------------------------------------------------------------ NetFlow v5
@settings(max_examples=25, deadline=None)
@given(parts=st.lists(batches(), min_size=1, max_size=4), payload=PAYLOADS)
def test_netflow5_packets_sequence_by_flows_and_skip_ipv6(
    parts: list[FlowBatch], payload: int
) -> None:
    encoder = Netflow5Encoder(domain=0x0102, max_payload=payload)
    datagrams = [d for batch in parts for d in encoder.encode(batch)]
    flows = 0
    v4 = [b.columns["ip_version"] == 4 for b in parts]
    boot_ms = None
    for datagram in datagrams:
        assert len(datagram) <= payload
        version, count, uptime, secs, nsecs, sequence, etype, eid, _s = struct.unpack_from(
            "!HHIIIIBBH", datagram
        )
        assert (version, etype, eid) == (5, 1, 2)
        assert 1 <= count <= 30
        assert len(datagram) == 24 + 48 * count
        assert sequence == flows
        boot = secs * 1000 + nsecs // 1_000_000 - uptime
        boot_ms = boot if boot_ms is None else boot_ms
        assert boot == boot_ms
        flows += count
    assert flows == sum(int(m.sum()) for m in v4)
    assert encoder.skipped_ipv6 == sum(int((~m).sum()) for m in v4)


def test_netflow5_record_layout_and_whole_tos_byte() -> None:
    (datagram,) = Netflow5Encoder().encode(make_one(n=2, spread_ns=5_000_000))
    record = datagram[24 : 24 + 48]
    src, _dst, _hop, _i, _o, pkts, octets, first, last = struct.unpack_from("!IIIHHIIII", record)
    sport, dport, _pad, _flags, proto, tos = struct.unpack_from("!HHBBBB", record, 32)
    assert (src, pkts, octets, sport, dport, proto, tos) == (0x0A090807, 1, 100, 0, 80, 6, 0xB9)
    assert last - first == 1


def test_netflow5_counters_saturate_and_are_counted() -> None:
    batch = make_one()
    big = {**batch.columns, "bytes": np.array([2**40], np.uint64)}
    encoder = Netflow5Encoder()
    (datagram,) = encoder.encode(FlowBatch("flowacct", "", 0, big, ("acct",)))
    assert struct.unpack_from("!I", datagram, 24 + 20)[0] == 2**32 - 1
    assert encoder.saturated == 1


@pytest.mark.parametrize("payload", [100, 507])
def test_a_payload_too_small_for_a_template_is_refused(payload: int) -> None:
    with pytest.raises(ValueError):
        IpfixEncoder(max_payload=payload)


@pytest.mark.parametrize("kind", [IpfixEncoder, Netflow9Encoder, Netflow5Encoder])
def test_rows_without_an_ip_version_are_skipped_and_counted(kind: Any) -> None:
    batch = make_one(n=3)
    versions = np.array([4, 0, 4], np.uint8)
    encoder = kind()
    datagrams = encoder.encode(FlowBatch("x", "", 0, {**batch.columns, "ip_version": versions}))
    assert encoder.skipped == 1
    assert encoder.data_records == 2
    assert datagrams
