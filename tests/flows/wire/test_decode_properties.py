"""Properties of the decoder: random records round-trip, flush points do not matter, and no
byte sequence makes it raise."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_helpers import (
    PEN,
    T0_S,
    FieldSpec,
    ipfix_message,
    ipfix_options_template,
    ipfix_set,
    ipfix_template,
    record,
    rows,
    v4,
    v5_packet,
    v5_record,
    v9_flowset,
    v9_packet,
    v9_template,
)

from diffserv.flows.schema import BATCH_COLUMNS, FlowBatch
from diffserv.flows.wire.decode import Decoder, ExporterStats

EXPORTER = ("203.0.113.9", 4739)
T0_MS = T0_S * 1000

# optional fields: (element id, lengths allowed, value range, column, how the column reads it)
OPTIONAL: list[tuple[int, tuple[int, ...], int, str]] = [
    (5, (1,), 255, "ds_in"),
    (195, (1,), 63, "dscp_in"),
    (10, (1, 2, 4), 2**8 - 1, "in_if"),
    (14, (2, 4), 2**16 - 1, "out_if"),
    (243, (2,), 4095, "vlan"),
    (244, (1,), 7, "pcp"),
    (61, (1,), 1, "direction"),
    (6, (1, 2), 255, "tcp_flags"),
]


@st.composite
def templates(draw: st.DrawFn) -> tuple[list[FieldSpec], list[str]]:
    """A random data template: addresses, ports, counters of any length, some optional fields."""
    fields: list[FieldSpec] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1)]
    columns = ["saddr", "daddr", "sport", "dport", "protocol"]
    fields += [(1, draw(st.integers(1, 8))), (2, draw(st.integers(1, 8)))]
    columns += ["bytes", "packets"]
    for element_id, lengths, _, column in OPTIONAL:
        if draw(st.booleans()):
            fields.append((element_id, draw(st.sampled_from(lengths))))
            columns.append(column)
    if draw(st.booleans()):
        fields.append((99, draw(st.integers(1, 6)), 777))  # an unknown enterprise field
        columns.append("skip")
    fields += [(152, 8), (153, 8)]
    columns += ["first", "last"]
    order = draw(st.permutations(range(len(fields))))
    return [fields[i] for i in order], [columns[i] for i in order]


def random_row(
    data: st.DataObject, fields: list[FieldSpec], columns: list[str]
) -> tuple[list[Any], dict[str, int]]:
    values: list[Any] = []
    expected: dict[str, int] = {}
    limits = {column: limit for _, _, limit, column in OPTIONAL}
    first = data.draw(st.integers(T0_MS - 10**6, T0_MS))
    for (_, length, *_), column in zip(fields, columns, strict=True):
        if column in ("saddr", "daddr"):
            address = data.draw(st.integers(0, 2**32 - 1))
            values.append(address)
            expected[column] = v4(".".join(str(address >> s & 255) for s in (24, 16, 8, 0)))[1]
            continue
        elif column in ("bytes", "packets", "skip"):
            value: Any = data.draw(st.integers(0, 2 ** (8 * length) - 1))
        elif column == "first":
            value = first
        elif column == "last":
            value = first + data.draw(st.integers(0, 10**6))
        elif column in ("sport", "dport"):
            value = data.draw(st.integers(0, 65535))
        elif column == "protocol":
            value = data.draw(st.integers(0, 255))
        else:
            value = data.draw(st.integers(0, min(limits[column], 2 ** (8 * length) - 1)))
        values.append(value)
        expected[column] = value
    return values, expected


def check_rows(batches: list[FlowBatch], expected: list[dict[str, int]]) -> None:
    assert sum(b.n for b in batches) == len(expected)
    got = {name: np.concatenate([b.columns[name] for b in batches]) for name in batches[0].columns}
    for i, want in enumerate(expected):
        assert int(got["saddr_lo"][i]) == want["saddr"]
        assert int(got["daddr_lo"][i]) == want["daddr"]
        for column in ("sport", "dport", "protocol", "bytes", "packets"):
            assert int(got[column][i]) == want[column], column
        for column in ("in_if", "out_if", "vlan", "pcp", "direction", "tcp_flags"):
            assert int(got[column][i]) == want.get(column, -1), column
        tos = want.get("ds_in")
        assert int(got["ds_in"][i]) == (-1 if tos is None else tos)
        dscp = want.get("dscp_in", -1 if tos is None else tos >> 2)
        assert int(got["dscp_in"][i]) == dscp
        assert int(got["ecn_in"][i]) == (-1 if tos is None else tos & 3)
        assert int(got["prec_in"][i]) == (-1 if dscp < 0 else dscp >> 3)
        assert int(got["first_ns"][i]) == want["first"] * 10**6
        assert int(got["last_ns"][i]) == want["last"] * 10**6


def ipfix_messages(
    fields: list[FieldSpec], records: list[bytes], cuts: list[int], pad: int
) -> list[bytes]:
    """The records in messages split at ``cuts``; the template rides in the first."""
    messages = []
    bounds = [0, *sorted(set(cuts)), len(records)]
    sequence = 0
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        sets = [ipfix_set(2, ipfix_template(256, fields))] if i == 0 else []
        if b > a:
            sets.append(ipfix_set(256, b"".join(records[a:b]), pad=pad))
        messages.append(ipfix_message(sets, sequence=sequence))
        sequence += b - a
    return messages


@settings(max_examples=60, deadline=None)
@given(template=templates(), data=st.data())
def test_random_records_round_trip_whatever_the_flush_points(
    template: tuple[list[FieldSpec], list[str]], data: st.DataObject
) -> None:
    fields, columns = template
    n = data.draw(st.integers(1, 40))
    encoded = [random_row(data, fields, columns) for _ in range(n)]
    records = [record(fields, values) for values, _ in encoded]
    cuts = data.draw(st.lists(st.integers(0, n), max_size=5))
    pad = data.draw(st.integers(0, 3))
    messages = ipfix_messages(fields, records, cuts, pad)

    once = Decoder()
    for m in messages:
        once.feed(m, EXPORTER, 0)
    batches = once.flush()
    check_rows(batches, [want for _, want in encoded])

    each = Decoder()
    split: list[FlowBatch] = []
    for m in messages:
        each.feed(m, EXPORTER, 0)
        split += each.flush()
    assert rows(split) == rows(batches)
    assert once.stats == each.stats
    stats = once.stats_total()
    assert (stats.records, stats.lost_records, stats.malformed) == (n, 0, 0)
    assert stats.enterprise_fields == (n if "skip" in columns else 0)


def mixed_stream() -> list[bytes]:
    """A little of everything: v5, v9, IPFIX with options, names and variable-length fields."""
    fields: list[FieldSpec] = [
        (8, 4),
        (12, 4),
        (2, 4),
        (1, 3),
        (5, 1),
        (152, 8),
        (153, 8),
        (1, 2, PEN),
    ]
    var_fields: list[FieldSpec] = [(8, 4), (82, 65535), (2, 4), (3, 2, PEN)]
    options = ipfix_options_template(300, [(1, 2, PEN)], [(2, 65535, PEN)])
    sampling = ipfix_options_template(301, [(149, 4)], [(34, 4), (160, 8)])
    row = ["10.0.0.1", "10.0.0.2", 5, 900, 0x2E, T0_MS, T0_MS + 1, 1]
    ipfix = ipfix_message(
        [
            ipfix_set(3, options + sampling),
            ipfix_set(300, record([(1, 2, PEN), (2, 65535, PEN)], [1, "acct"])),
            ipfix_set(301, record([(149, 4), (34, 4), (160, 8)], [0, 10, T0_MS])),
            ipfix_set(2, ipfix_template(256, fields) + ipfix_template(257, var_fields)),
            ipfix_set(256, record(fields, row) * 3, pad=1),
            ipfix_set(257, record(var_fields, ["10.9.9.9", b"eth0", 4, 2]) * 2),
        ]
    )
    v9_fields: list[FieldSpec] = [(8, 4), (12, 4), (2, 4), (1, 4), (55, 1), (22, 4), (21, 4)]
    v9 = v9_packet(
        [
            v9_flowset(0, v9_template(260, v9_fields)),
            v9_flowset(260, record(v9_fields, ["10.0.0.3", "10.0.0.4", 1, 2, 3, 4, 5]) * 2),
        ],
        count=3,
    )
    v5 = v5_packet([v5_record(tos=0x48), v5_record(tos=0xB8)])
    return [ipfix, v9, v5]


def assert_consistent(decoder: Decoder, batches: list[FlowBatch], datagrams: int) -> None:
    for batch in batches:
        assert set(batch.columns) == {c.name for c in BATCH_COLUMNS}
        for column in BATCH_COLUMNS:
            array = batch.columns[column.name]
            assert array.dtype == np.dtype(column.dtype) and array.shape == (batch.n,)
        codes = batch.columns["action_code"]
        assert bool(np.all((codes >= -1) & (codes < len(batch.actions))))
    total = decoder.stats_total()
    assert total.datagrams == datagrams
    assert "cannot decode" not in total.last_error, total.last_error  # no internal error
    for name in ExporterStats.__struct_fields__:
        if name != "last_error":
            assert getattr(total, name) >= 0


def test_mixed_stream_decodes_cleanly() -> None:
    decoder = Decoder()
    stream = mixed_stream()
    for d in stream:
        decoder.feed(d, EXPORTER, 0)
    batches = decoder.flush()
    assert_consistent(decoder, batches, len(stream))
    by_source = {b.source: b for b in batches}
    assert (
        by_source["ipfix"].n == 5 and by_source["netflow9"].n == 2 and by_source["netflow5"].n == 2
    )
    ipfix = by_source["ipfix"]
    assert ipfix.actions == ("acct",)
    assert [int(c) for c in ipfix.columns["action_code"]] == [0, 0, 0, -1, -1]
    assert [int(s) for s in ipfix.columns["sampling"]] == [10] * 5
    total = decoder.stats_total()
    assert (total.records, total.options_records, total.malformed, total.truncated) == (9, 2, 0, 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes_never_raise(datagrams: list[bytes]) -> None:
    decoder = Decoder()
    for d in datagrams:
        decoder.feed(d, EXPORTER, 0)
    assert_consistent(decoder, decoder.flush(), len(datagrams))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6), st.sampled_from([5, 9, 10]))
def test_arbitrary_bodies_behind_a_valid_version_never_raise(
    bodies: list[bytes], version: int
) -> None:
    decoder = Decoder()
    for body in bodies:
        decoder.feed(version.to_bytes(2, "big") + body * 4, EXPORTER, 0)
    assert_consistent(decoder, decoder.flush(), len(bodies))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_truncations_and_bit_flips_only_change_counters(data: st.DataObject) -> None:
    stream = mixed_stream()
    damaged = []
    for datagram in stream:
        choice = data.draw(st.sampled_from(["keep", "cut", "flip", "flips"]))
        raw = bytearray(datagram)
        if choice == "cut":
            del raw[data.draw(st.integers(0, len(raw))) :]
        elif choice in ("flip", "flips"):
            for _ in range(1 if choice == "flip" else data.draw(st.integers(2, 20))):
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        damaged.append(bytes(raw))
    decoder = Decoder(max_templates_per_exporter=4, max_templates=6)
    batches: list[FlowBatch] = []
    for d in damaged * 2:
        decoder.feed(d, EXPORTER, 0)
        if data.draw(st.booleans()):
            batches += decoder.flush()
    batches += decoder.flush()
    assert_consistent(decoder, batches, 2 * len(damaged))
    assert decoder.stats_total().templates <= 4
