"""NetFlow v5 and v9 (RFC 3954) decoding: headers, times, sampling, sequence numbers."""

from __future__ import annotations

from wire_helpers import (
    T0_S,
    FieldSpec,
    col,
    ipfix_message,
    ipfix_set,
    ipfix_template,
    one,
    record,
    v4,
    v5_packet,
    v5_record,
    v9_flowset,
    v9_options_template,
    v9_packet,
    v9_template,
)

from diffserv.flows.wire.decode import Decoder

EXPORTER = ("198.51.100.7", 2055)
KEY = "198.51.100.7:2055"


# -- v5 ----------------------------------------------------------------------------------


def test_v5_record_fields_and_tos() -> None:
    decoder = Decoder()
    records = [
        v5_record(
            "10.1.1.1",
            "10.2.2.2",
            in_if=3,
            out_if=4,
            packets=7,
            octets=700,
            sport=5060,
            dport=5060,
            protocol=17,
            tos=0xB9,
            tcp_flags=0,
        ),
        v5_record(tos=0x48, tcp_flags=0x1B, protocol=6),
    ]
    decoder.feed(v5_packet(records, engine_type=1, engine_id=2), EXPORTER, 0)
    batch = one(decoder.flush())
    assert (batch.source, batch.exporter, batch.domain) == ("netflow5", "198.51.100.7", 0x0102)
    assert (col(batch, "saddr_hi")[0], col(batch, "saddr_lo")[0]) == v4("10.1.1.1")
    assert col(batch, "daddr_lo")[0] == v4("10.2.2.2")[1]
    assert col(batch, "ip_version") == [4, 4]
    assert col(batch, "in_if") == [3, 1]
    assert col(batch, "out_if") == [4, 2]
    assert (col(batch, "packets")[0], col(batch, "bytes")[0]) == (7, 700)
    assert (col(batch, "sport")[0], col(batch, "dport")[0], col(batch, "protocol")) == (
        5060,
        5060,
        [17, 6],
    )
    assert col(batch, "ds_in") == [185, 72]
    assert col(batch, "dscp_in") == [46, 18]
    assert col(batch, "ecn_in") == [1, 0]
    assert col(batch, "prec_in") == [5, 2]
    assert col(batch, "tcp_flags") == [0, 0x1B]
    assert col(batch, "ds_out") == [-1, -1]
    assert col(batch, "sampling") == [1, 1]  # header interval 0: every packet


def test_v5_times_are_relative_to_the_header_uptime() -> None:
    decoder = Decoder()
    # exported at T0 + 0.250 s, uptime 1 000 000 ms: First 990 000 is 10 s before export
    packet = v5_packet(
        [v5_record(first=990_000, last=999_500)], uptime_ms=1_000_000, unix_nsecs=250_999_999
    )
    decoder.feed(packet, EXPORTER, 0)
    batch = one(decoder.flush())
    export_ms = T0_S * 1000 + 250
    assert col(batch, "first_ns") == [(export_ms - 10_000) * 10**6]
    assert col(batch, "last_ns") == [(export_ms - 500) * 10**6]


def test_v5_uptime_wrap() -> None:
    decoder = Decoder()
    # uptime wrapped past 2**32 ms after the flow started
    packet = v5_packet([v5_record(first=2**32 - 1_000, last=500)], uptime_ms=1_000)
    decoder.feed(packet, EXPORTER, 0)
    batch = one(decoder.flush())
    assert col(batch, "first_ns") == [(T0_S * 1000 - 2_000) * 10**6]
    assert col(batch, "last_ns") == [(T0_S * 1000 - 500) * 10**6]


def test_v5_sampling_interval_low_14_bits() -> None:
    decoder = Decoder()
    decoder.feed(v5_packet([v5_record()], sampling=(1 << 14) | 100), EXPORTER, 0)
    decoder.feed(v5_packet([v5_record()], sampling=(2 << 14) | 0, sequence=1), EXPORTER, 0)
    batch = one(decoder.flush())
    assert col(batch, "sampling") == [100, 1]


def test_v5_sequence_counts_flows_and_truncation() -> None:
    decoder = Decoder()
    decoder.feed(v5_packet([v5_record()] * 3, sequence=10), EXPORTER, 0)
    decoder.feed(v5_packet([v5_record()] * 2, sequence=13), EXPORTER, 0)
    decoder.feed(v5_packet([v5_record()], sequence=20), EXPORTER, 0)  # 5 lost
    decoder.feed(v5_packet([v5_record()] * 2, sequence=21, count=3), EXPORTER, 0)
    decoder.feed(v5_packet([], sequence=24)[:20], EXPORTER, 0)
    assert one(decoder.flush()).n == 8
    stats = decoder.stats[KEY]
    assert (stats.records, stats.lost_records, stats.truncated) == (8, 5, 2)
    assert stats.last_error == "datagram 5: NetFlow v5 header needs 24 bytes, got 20"


# -- v9 ----------------------------------------------------------------------------------

FIELDS: list[FieldSpec] = [
    (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (55, 1), (2, 4), (1, 4), (22, 4), (21, 4),
    (10, 2), (14, 2), (61, 1),
]  # fmt: skip


def v9_row(**over: int | str) -> list[int | str]:
    row: dict[str, int | str] = {
        "src": "10.0.0.1", "dst": "10.0.0.2", "sport": 1, "dport": 2, "proto": 17, "tos": 0,
        "post": 0, "packets": 1, "octets": 64, "first": 990_000, "last": 995_000, "in": 1,
        "out": 2, "dir": 0,
    }  # fmt: skip
    row.update(over)
    return list(row.values())


def test_v9_template_and_data_with_uptime_times() -> None:
    decoder = Decoder()
    rows = [v9_row(tos=0xB8, post=0x28, dir=1), v9_row(sport=7, first=999_000, last=1_000_000)]
    packet = v9_packet(
        [
            v9_flowset(0, v9_template(256, FIELDS)),
            v9_flowset(256, b"".join(record(FIELDS, r) for r in rows)),
        ],
        count=3,
        source_id=42,
    )
    decoder.feed(packet, EXPORTER, 0)
    batch = one(decoder.flush())
    assert (batch.source, batch.domain, batch.n) == ("netflow9", 42, 2)
    assert col(batch, "ds_in") == [0xB8, 0]
    assert col(batch, "ds_out") == [0x28, 0]
    assert col(batch, "dscp_out") == [10, 0]
    assert col(batch, "ecn_out") == [0, 0]
    assert col(batch, "prec_out") == [1, 0]
    assert col(batch, "direction") == [1, 0]
    assert col(batch, "sport") == [1, 7]
    export_ms = T0_S * 1000  # v9 headers carry whole seconds
    assert col(batch, "first_ns") == [(export_ms - 10_000) * 10**6, (export_ms - 1_000) * 10**6]
    assert col(batch, "last_ns") == [(export_ms - 5_000) * 10**6, export_ms * 10**6]
    stats = decoder.stats[KEY]
    assert (stats.records, stats.templates, stats.no_template_records) == (2, 1, 0)


def test_v9_options_sampling_by_sampler_id() -> None:
    decoder = Decoder()
    # scope: System (type 1, 4 bytes); options: FLOW_SAMPLER_ID, FLOW_SAMPLER_RANDOM_INTERVAL
    options = v9_options_template(300, [(1, 4)], [(48, 1), (50, 4)])
    fields = [*FIELDS, (48, 1)]
    packet = v9_packet(
        [
            v9_flowset(1, options),
            v9_flowset(300, record([(1, 4), (48, 1), (50, 4)], [0, 3, 512])),
            v9_flowset(0, v9_template(256, fields)),
            v9_flowset(256, record(fields, [*v9_row(), 3]) + record(fields, [*v9_row(), 4])),
        ],
        count=4,
    )
    decoder.feed(packet, EXPORTER, 0)
    batch = one(decoder.flush())
    assert col(batch, "sampling") == [512, -1]
    # the scope field "System" (type 1) is not read as octetDeltaCount
    stats = decoder.stats[KEY]
    assert (stats.options_records, stats.records, stats.templates, stats.malformed) == (1, 2, 2, 0)


def test_v9_sequence_counts_lost_packets() -> None:
    decoder = Decoder()
    template = v9_flowset(0, v9_template(256, FIELDS))
    data = v9_flowset(256, record(FIELDS, v9_row()) * 2)
    decoder.feed(v9_packet([template, data], count=3, sequence=7), EXPORTER, 0)
    decoder.feed(v9_packet([data], count=2, sequence=8), EXPORTER, 0)
    decoder.feed(v9_packet([data], count=2, sequence=11), EXPORTER, 0)  # 2 packets lost
    decoder.feed(v9_packet([data], count=2, sequence=3), EXPORTER, 0)  # restart: not counted
    decoder.feed(v9_packet([data], count=2, sequence=4, source_id=9), EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert stats.lost_records == 2
    assert stats.no_template == 1  # source id 9 has no template 256


def test_v9_template_less_records_counted_from_the_header_count() -> None:
    decoder = Decoder()
    data = v9_flowset(256, record(FIELDS, v9_row()) * 3)
    other = v9_flowset(0, v9_template(257, FIELDS))
    decoder.feed(v9_packet([other, data], count=4), EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert (stats.no_template, stats.no_template_records, stats.templates) == (1, 3, 1)


def test_v9_malformed_templates() -> None:
    decoder = Decoder()
    bad = [
        v9_template(256, [(1, 0)]),  # zero-length field
        v9_template(257, [(1, 65535)]),  # variable length: IPFIX only
    ]
    decoder.feed(v9_packet([v9_flowset(0, b"".join(bad))], count=2), EXPORTER, 0)
    truncated = v9_template(258, FIELDS)[:-8]
    decoder.feed(v9_packet([v9_flowset(0, truncated)], count=1, sequence=1), EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert (stats.malformed, stats.templates) == (3, 0)
    assert "too big for the flowset" in stats.last_error


def test_v9_and_ipfix_templates_do_not_mix() -> None:
    decoder = Decoder()
    decoder.feed(v9_packet([v9_flowset(0, v9_template(256, FIELDS))], count=1), EXPORTER, 0)
    data = ipfix_set(256, record(FIELDS, v9_row()))
    decoder.feed(ipfix_message([data]), EXPORTER, 0)
    assert decoder.flush() == []
    assert decoder.stats[KEY].no_template == 1
    # ... but an IPFIX template of the same id lives beside the v9 one
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(256, FIELDS)), data]), EXPORTER, 0)
    assert one(decoder.flush()).source == "ipfix"
    assert decoder.stats[KEY].templates == 2
