"""IPFIX (RFC 7011) decoding: every DS carrier, field, time encoding and template rule."""

from __future__ import annotations

from typing import Any

import pytest
from wire_helpers import (
    NTP_OFFSET,
    PEN,
    T0_S,
    FieldSpec,
    col,
    ipfix_message,
    ipfix_options_template,
    ipfix_set,
    ipfix_template,
    one,
    record,
    v4,
    v6,
)

from diffserv.flows.wire.decode import Decoder

EXPORTER = ("192.0.2.1", 4739)
KEY = "192.0.2.1:4739"
BASE: list[FieldSpec] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)]
BASE_VALUES = ["10.0.0.1", "10.0.0.2", 1234, 80, 6, 3, 300]
T0_MS = T0_S * 1000


def decode_one(
    fields: list[FieldSpec], values: list[list[Any]], *, domain: int = 0, pad: int = 0
) -> tuple[Decoder, Any]:
    """Template 256 with ``fields`` and one data set of ``values`` rows, in one message."""
    decoder = Decoder()
    body = b"".join(record(fields, row) for row in values)
    message = ipfix_message(
        [ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, body, pad=pad)], domain=domain
    )
    decoder.feed(message, EXPORTER, 0)
    return decoder, one(decoder.flush())


def test_basic_record_lands_in_the_batch_columns() -> None:
    fields = [*BASE, (152, 8), (153, 8)]
    decoder, batch = decode_one(fields, [[*BASE_VALUES, T0_MS + 5, T0_MS + 9]], domain=7)
    assert (batch.source, batch.exporter, batch.domain, batch.n) == ("ipfix", "192.0.2.1", 7, 1)
    assert (col(batch, "saddr_hi")[0], col(batch, "saddr_lo")[0]) == v4("10.0.0.1")
    assert (col(batch, "daddr_hi")[0], col(batch, "daddr_lo")[0]) == v4("10.0.0.2")
    assert col(batch, "ip_version") == [4]
    assert (col(batch, "sport"), col(batch, "dport"), col(batch, "protocol")) == ([1234], [80], [6])
    assert (col(batch, "packets"), col(batch, "bytes")) == ([3], [300])
    assert col(batch, "first_ns") == [(T0_MS + 5) * 1_000_000]
    assert col(batch, "last_ns") == [(T0_MS + 9) * 1_000_000]
    for unknown in ("tcp_flags", "in_if", "out_if", "direction", "vlan", "pcp", "ds_in", "ecn_in"):
        assert col(batch, unknown) == [-1], unknown
    assert col(batch, "sampling") == [-1]  # no options record: unknown, never assumed 1
    stats = decoder.stats[KEY]
    assert (stats.datagrams, stats.records, stats.templates, stats.malformed) == (1, 1, 1, 0)


DS = ("ds_in", "dscp_in", "ecn_in", "prec_in", "ds_out", "dscp_out", "ecn_out", "prec_out")


@pytest.mark.parametrize(
    ("fields", "values", "expected"),
    [
        # IE 5: the whole DS byte, so ECN is known (EF + ECT(1))
        ([(5, 1)], [0xB9], (185, 46, 1, 5, -1, -1, -1, -1)),
        # IE 195: DSCP only, ECN stays unknown
        ([(195, 1)], [46], (-1, 46, -1, 5, -1, -1, -1, -1)),
        # IE 196: precedence only
        ([(196, 1)], [5], (-1, -1, -1, 5, -1, -1, -1, -1)),
        ([(195, 1), (196, 1)], [10, 1], (-1, 10, -1, 1, -1, -1, -1, -1)),
        # 195 wins over the DSCP bits of 5 (the exporter said so explicitly)
        ([(5, 1), (195, 1)], [0x48, 46], (72, 46, 0, 5, -1, -1, -1, -1)),
        # IE 55: post (egress) DS byte
        ([(5, 1), (55, 1)], [0, 0x48], (0, 0, 0, 0, 72, 18, 0, 2)),
        # IE 98: post DSCP
        ([(98, 1)], [46], (-1, -1, -1, -1, -1, 46, -1, 5)),
        # a DS byte exported in 2 bytes still reads as the byte
        ([(5, 2)], [0xB8], (184, 46, 0, 5, -1, -1, -1, -1)),
    ],
)
def test_every_ds_carrier(fields: list[FieldSpec], values: list[Any], expected: tuple[int]) -> None:
    _, batch = decode_one([*BASE, *fields], [[*BASE_VALUES, *values]])
    assert tuple(col(batch, name)[0] for name in DS) == expected


def test_vlan_pcp_interfaces_direction_and_tcp_flags() -> None:
    fields = [*BASE, (243, 2), (244, 1), (10, 4), (14, 2), (61, 1), (6, 2)]
    rows = [
        [*BASE_VALUES, 100, 5, 7, 9, 0, 0x0112],
        [*BASE_VALUES, 4095, 7, 2**32 - 1, 65535, 1, 0x02],
        [*BASE_VALUES, 1, 0, 0, 0, 3, 0],  # direction 3 is not a direction
    ]
    _, batch = decode_one(fields, rows)
    assert col(batch, "vlan") == [100, 4095, 1]
    assert col(batch, "pcp") == [5, 7, 0]
    assert col(batch, "in_if") == [7, 2**32 - 1, 0]
    assert col(batch, "out_if") == [9, 65535, 0]
    assert col(batch, "direction") == [0, 1, -1]
    assert col(batch, "tcp_flags") == [0x12, 0x02, 0]  # the low 8 bits of tcpControlBits


def test_v9_vlan_id_is_used_without_dot1q() -> None:
    _, batch = decode_one([*BASE, (58, 2)], [[*BASE_VALUES, 42]])
    assert col(batch, "vlan") == [42]
    _, batch = decode_one([*BASE, (58, 2), (243, 2)], [[*BASE_VALUES, 42, 43]])
    assert col(batch, "vlan") == [43]


def test_ipv6_addresses_and_ip_version() -> None:
    fields: list[FieldSpec] = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)]
    _, batch = decode_one(fields, [["2001:db8::1", "2001:db8::ff", 1, 2, 17, 1, 60]])
    assert col(batch, "ip_version") == [6]
    assert (col(batch, "saddr_hi")[0], col(batch, "saddr_lo")[0]) == v6("2001:db8::1")
    assert (col(batch, "daddr_hi")[0], col(batch, "daddr_lo")[0]) == v6("2001:db8::ff")


def test_mixed_family_template_follows_ip_version() -> None:
    fields: list[FieldSpec] = [(60, 1), (8, 4), (12, 4), (27, 16), (28, 16)]
    rows = [
        [4, "10.0.0.1", "10.0.0.2", "::", "::"],
        [6, "0.0.0.0", "0.0.0.0", "2001:db8::1", "2001:db8::2"],
    ]
    _, batch = decode_one(fields, rows)
    assert col(batch, "ip_version") == [4, 6]
    assert col(batch, "saddr_lo")[0] == v4("10.0.0.1")[1]
    assert (col(batch, "daddr_hi")[1], col(batch, "daddr_lo")[1]) == v6("2001:db8::2")


def ntp(ns: int, unit_ns: int) -> int:
    """NTP timestamp of ``ns`` since the epoch, fraction rounded up so it reads back exactly."""
    seconds, rest = divmod(ns, 1_000_000_000)
    units = rest // unit_ns
    fraction = -(-(units << 32) // (1_000_000_000 // unit_ns))
    return (seconds + NTP_OFFSET) << 32 | fraction


START_NS = T0_S * 1_000_000_000 + 123_456_789
END_NS = START_NS + 2_000_000_001


@pytest.mark.parametrize(
    ("fields", "values", "first", "last"),
    [
        ([(150, 4), (151, 4)], [T0_S + 1, T0_S + 3], (T0_S + 1) * 10**9, (T0_S + 3) * 10**9),
        ([(152, 8), (153, 8)], [START_NS // 10**6, END_NS // 10**6], 1767225600123 * 10**6, None),
        (
            [(154, 8), (155, 8)],
            [ntp(START_NS, 1000), ntp(END_NS, 1000)],
            START_NS // 1000 * 1000,
            END_NS // 1000 * 1000,
        ),
        ([(156, 8), (157, 8)], [ntp(START_NS, 1), ntp(END_NS, 1)], START_NS, END_NS),
        # delta microseconds before the message's export time
        ([(158, 4), (159, 4)], [5_000_000, 1_000], (T0_S - 5) * 10**9, T0_S * 10**9 - 10**6),
        # sysUpTime-relative with systemInitTimeMilliseconds in the record itself
        (
            [(160, 8), (22, 4), (21, 4)],
            [T0_MS - 60_000, 1_000, 2_500],
            (T0_MS - 59_000) * 10**6,
            None,
        ),
        # only an end time: the start is the same
        ([(153, 8)], [T0_MS + 7], (T0_MS + 7) * 10**6, (T0_MS + 7) * 10**6),
    ],
)
def test_every_time_encoding(
    fields: list[FieldSpec], values: list[int], first: int, last: int | None
) -> None:
    _, batch = decode_one([*BASE, *fields], [[*BASE_VALUES, *values]])
    assert col(batch, "first_ns") == [first]
    if last is not None:
        assert col(batch, "last_ns") == [last]
    if fields[0][0] == 152:
        assert col(batch, "last_ns") == [END_NS // 10**6 * 10**6]
    if fields[0][0] == 160:
        assert col(batch, "last_ns") == [(T0_MS - 57_500) * 10**6]


def test_finest_time_element_wins() -> None:
    fields = [*BASE, (150, 4), (156, 8), (151, 4), (153, 8)]
    _, batch = decode_one(fields, [[*BASE_VALUES, T0_S, ntp(START_NS, 1), T0_S + 9, T0_MS + 50]])
    assert col(batch, "first_ns") == [START_NS]
    assert col(batch, "last_ns") == [(T0_MS + 50) * 10**6]


def test_records_without_time_get_the_export_time_and_are_counted() -> None:
    decoder, batch = decode_one(BASE, [BASE_VALUES, BASE_VALUES])
    assert col(batch, "first_ns") == [T0_S * 10**9] * 2
    assert col(batch, "last_ns") == [T0_S * 10**9] * 2
    assert decoder.stats[KEY].untimed_records == 2


def test_uptime_times_use_the_options_init_time() -> None:
    decoder = Decoder()
    options = ipfix_options_template(300, [(149, 4)], [(160, 8)])
    fields = [*BASE, (22, 4), (21, 4)]
    sets = [
        ipfix_set(3, options),
        ipfix_set(2, ipfix_template(256, fields)),
        ipfix_set(300, record([(149, 4), (160, 8)], [0, T0_MS - 10_000])),
        ipfix_set(256, record(fields, [*BASE_VALUES, 1_000, 4_000])),
    ]
    decoder.feed(ipfix_message(sets), EXPORTER, 0)
    batch = one(decoder.flush())
    assert col(batch, "first_ns") == [(T0_MS - 9_000) * 10**6]
    assert col(batch, "last_ns") == [(T0_MS - 6_000) * 10**6]
    assert decoder.stats[KEY].options_records == 1
    assert decoder.stats[KEY].untimed_records == 0


@pytest.mark.parametrize(
    ("bytes_len", "packets_len", "in_if_len"),
    [(3, 5, 3), (7, 4, 1), (8, 8, 8), (5, 6, 2), (1, 2, 4)],
)
def test_reduced_size_fields(bytes_len: int, packets_len: int, in_if_len: int) -> None:
    octets = (1 << (8 * bytes_len)) - 2
    packets = (1 << (8 * packets_len)) - 3
    in_if = (1 << (8 * min(in_if_len, 4))) - 1
    fields = [(8, 4), (12, 4), (1, bytes_len), (2, packets_len), (10, in_if_len), (7, 2)]
    _, batch = decode_one(fields, [["10.0.0.1", "10.0.0.2", octets, packets, in_if, 53]] * 3)
    assert col(batch, "bytes") == [octets] * 3
    assert col(batch, "packets") == [packets] * 3
    assert col(batch, "in_if") == [in_if] * 3
    assert col(batch, "sport") == [53] * 3


def test_variable_length_fields_take_the_slow_path_and_decode() -> None:
    # interfaceName (82) is not in the element table; a variable-length field between fixed ones
    fields: list[FieldSpec] = [(8, 4), (82, 65535), (12, 4), (2, 4), (4, 65535, PEN), (1, 8)]
    rows = [
        ["10.0.0.1", b"eth0", "10.0.0.2", 5, b"ef", 500],
        ["10.0.0.3", b"x" * 300, "10.0.0.4", 6, b"", 600],  # 255 + 2-byte length
        ["10.0.0.5", b"", "10.0.0.6", 7, b"af11" * 70, 700],
    ]
    decoder, batch = decode_one(fields, rows, pad=2)
    assert col(batch, "packets") == [5, 6, 7]
    assert col(batch, "bytes") == [500, 600, 700]
    assert col(batch, "daddr_lo") == [v4(a)[1] for a in ("10.0.0.2", "10.0.0.4", "10.0.0.6")]
    assert decoder.stats[KEY].records == 3
    assert decoder.stats[KEY].malformed == 0


def test_variable_length_record_running_past_the_set_is_malformed() -> None:
    fields: list[FieldSpec] = [(2, 4), (82, 65535)]
    good = record(fields, [1, b"abc"])
    bad = (2).to_bytes(4, "big") + bytes([200]) + b"short"
    decoder = Decoder()
    message = ipfix_message([ipfix_set(2, ipfix_template(256, fields)), ipfix_set(256, good + bad)])
    decoder.feed(message, EXPORTER, 0)
    assert col(one(decoder.flush()), "packets") == [1]
    stats = decoder.stats[KEY]
    assert stats.malformed == 1
    assert "runs past" in stats.last_error
    assert stats.last_error.startswith("datagram 1:")


def test_enterprise_fields_are_skipped_and_counted() -> None:
    fields = [*BASE, (77, 4, 9), (5, 1), (1, 2, 12345)]
    decoder, batch = decode_one(fields, [[*BASE_VALUES, 0xDEADBEEF, 0x28, 1]] * 2)
    assert col(batch, "ds_in") == [0x28, 0x28]
    assert col(batch, "bytes") == [300, 300]  # the enterprise (12345, 1) is not octetDeltaCount
    assert decoder.stats[KEY].enterprise_fields == 4  # 2 fields x 2 records


def test_diffserv_enterprise_uid_and_projid() -> None:
    fields = [*BASE, (5, 4, PEN), (6, 4, PEN)]
    decoder, batch = decode_one(fields, [[*BASE_VALUES, 1000, 3]])
    assert (col(batch, "uid"), col(batch, "projid")) == ([1000], [3])
    assert decoder.stats[KEY].enterprise_fields == 0


def test_padding_after_records_is_ignored() -> None:
    fields = [*BASE, (5, 1)]
    template_set = ipfix_set(2, ipfix_template(256, fields), pad=3)
    body = record(fields, [*BASE_VALUES, 4]) * 2
    decoder = Decoder()
    decoder.feed(ipfix_message([template_set, ipfix_set(256, body, pad=19)]), EXPORTER, 0)
    assert one(decoder.flush()).n == 2
    stats = decoder.stats[KEY]
    assert (stats.records, stats.malformed, stats.truncated) == (2, 0, 0)


# -- options -----------------------------------------------------------------------------


def _options_then_data(
    options: list[tuple[list[FieldSpec], list[FieldSpec], list[Any]]],
    fields: list[FieldSpec],
    rows: list[list[Any]],
) -> tuple[Decoder, Any]:
    decoder = Decoder()
    sets = []
    for i, (scope, opt_fields, values) in enumerate(options):
        sets.append(ipfix_set(3, ipfix_options_template(300 + i, scope, opt_fields)))
        sets.append(ipfix_set(300 + i, record([*scope, *opt_fields], values)))
    sets.append(ipfix_set(2, ipfix_template(256, fields)))
    sets.append(ipfix_set(256, b"".join(record(fields, r) for r in rows)))
    decoder.feed(ipfix_message(sets), EXPORTER, 0)
    return decoder, one(decoder.flush())


def test_sampling_interval_of_the_domain() -> None:
    decoder, batch = _options_then_data([([(149, 4)], [(34, 4)], [0, 100])], BASE, [BASE_VALUES])
    assert col(batch, "sampling") == [100]
    assert col(batch, "packets") == [3]  # as exported: never scaled
    assert decoder.stats[KEY].options_records == 1


def test_sampling_per_sampler_id() -> None:
    options = [
        ([(48, 1)], [(50, 4)], [1, 10]),
        ([(48, 1)], [(50, 4)], [2, 1000]),
    ]
    fields = [*BASE, (48, 1)]
    rows = [[*BASE_VALUES, 1], [*BASE_VALUES, 2], [*BASE_VALUES, 3]]
    _, batch = _options_then_data(options, fields, rows)
    assert col(batch, "sampling") == [10, 1000, -1]  # sampler 3 is unknown


def test_sampling_per_selector_id_with_packet_interval_and_space() -> None:
    options = [([(302, 8)], [(305, 4), (306, 4)], [7, 1, 9])]
    fields = [*BASE, (302, 8)]
    _, batch = _options_then_data(options, fields, [[*BASE_VALUES, 7]])
    assert col(batch, "sampling") == [10]  # 1 taken, 9 skipped: 1 in 10


def test_sampling_interval_inside_data_records() -> None:
    _, batch = decode_one([*BASE, (34, 4)], [[*BASE_VALUES, 64], [*BASE_VALUES, 0]])
    assert col(batch, "sampling") == [64, 1]


def test_diffserv_action_and_class_names() -> None:
    options = [
        ([(1, 2, PEN)], [(2, 65535, PEN)], [1, "acct_ef"]),
        ([(1, 2, PEN)], [(2, 65535, PEN)], [2, "acct_be"]),
        ([(3, 2, PEN)], [(4, 65535, PEN)], [5, "voice"]),
    ]
    fields = [*BASE, (1, 2, PEN), (3, 2, PEN)]
    rows = [[*BASE_VALUES, 2, 5], [*BASE_VALUES, 1, 9], [*BASE_VALUES, 4, 5]]
    _, batch = _options_then_data(options, fields, rows)
    actions = [batch.actions[c] if c >= 0 else None for c in col(batch, "action_code")]
    classes = [batch.classes[c] if c >= 0 else None for c in col(batch, "class_code")]
    assert actions == ["acct_be", "acct_ef", None]
    assert classes == ["voice", None, "voice"]


def test_data_before_options_keep_what_was_known_then() -> None:
    decoder = Decoder()
    template = ipfix_set(2, ipfix_template(256, BASE))
    data = ipfix_set(256, record(BASE, BASE_VALUES))
    options = [
        ipfix_set(3, ipfix_options_template(300, [(149, 4)], [(34, 4)])),
        ipfix_set(300, record([(149, 4), (34, 4)], [0, 8])),
    ]
    decoder.feed(ipfix_message([template, data]), EXPORTER, 0)
    decoder.feed(ipfix_message([*options, data], sequence=1), EXPORTER, 0)
    assert col(one(decoder.flush()), "sampling") == [-1, 8]


# -- template life cycle -----------------------------------------------------------------


def test_template_withdrawal() -> None:
    decoder = Decoder()
    data = ipfix_set(256, record(BASE, BASE_VALUES))
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(256, BASE)), data]), EXPORTER, 0)
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(256, [])), data]), EXPORTER, 0)
    assert one(decoder.flush()).n == 1
    stats = decoder.stats[KEY]
    assert (stats.template_withdrawals, stats.templates, stats.no_template) == (1, 0, 1)


def test_withdraw_all_templates_keeps_options_templates() -> None:
    decoder = Decoder()
    sets = [
        ipfix_set(2, ipfix_template(256, BASE) + ipfix_template(257, BASE)),
        ipfix_set(3, ipfix_options_template(300, [(149, 4)], [(34, 4)])),
    ]
    decoder.feed(ipfix_message(sets), EXPORTER, 0)
    assert decoder.stats[KEY].templates == 3
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(2, []))]), EXPORTER, 0)
    assert decoder.stats[KEY].templates == 1
    decoder.feed(ipfix_message([ipfix_set(3, ipfix_template(3, []))]), EXPORTER, 0)
    assert decoder.stats[KEY].templates == 0
    assert decoder.stats[KEY].template_withdrawals == 2


def test_template_refresh_replaces_the_layout() -> None:
    decoder = Decoder()
    old = [(2, 4), (1, 4)]
    new = [(1, 4), (2, 4), (5, 1)]
    decoder.feed(
        ipfix_message(
            [ipfix_set(2, ipfix_template(256, old)), ipfix_set(256, record(old, [1, 100]))]
        ),
        EXPORTER,
        0,
    )
    decoder.feed(
        ipfix_message(
            [ipfix_set(2, ipfix_template(256, new)), ipfix_set(256, record(new, [200, 2, 8]))],
            sequence=1,
        ),
        EXPORTER,
        0,
    )
    batch = one(decoder.flush())  # queued records keep the template they arrived with
    assert col(batch, "packets") == [1, 2]
    assert col(batch, "bytes") == [100, 200]
    assert col(batch, "ds_in") == [-1, 8]
    assert decoder.stats[KEY].templates == 1


def test_templates_are_per_domain_and_per_exporter() -> None:
    decoder = Decoder()
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(256, BASE))], domain=1), EXPORTER, 0)
    data = ipfix_set(256, record(BASE, BASE_VALUES))
    decoder.feed(ipfix_message([data], domain=2), EXPORTER, 0)
    decoder.feed(ipfix_message([data], domain=1), ("192.0.2.1", 4740), 0)
    assert decoder.flush() == []
    assert decoder.stats[KEY].no_template == 1
    assert decoder.stats["192.0.2.1:4740"].no_template == 1


def test_template_flood_is_bounded_and_counted() -> None:
    decoder = Decoder(max_templates_per_exporter=10, max_templates=15)
    flood = b"".join(ipfix_template(256 + i, BASE) for i in range(50))
    decoder.feed(ipfix_message([ipfix_set(2, flood)]), EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert (stats.templates, stats.templates_refused) == (10, 40)
    assert "template memory is full" in stats.last_error
    other = ("192.0.2.2", 4739)
    decoder.feed(ipfix_message([ipfix_set(2, flood)]), other, 0)
    assert decoder.stats["192.0.2.2:4739"].templates == 5  # the total bound
    # refreshing a known template is not refused
    decoder.feed(ipfix_message([ipfix_set(2, ipfix_template(256, BASE))]), EXPORTER, 0)
    assert stats.templates_refused == 40
    total = decoder.stats_total()
    assert (total.templates, total.templates_refused) == (15, 85)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (ipfix_template(256, [(2, 0), (1, 4)]), "length 0"),
        (ipfix_template(255, BASE), "below 256"),
        (ipfix_template(256, BASE)[:-6], "too big for the set"),
        (ipfix_options_template(300, [], [(34, 4)]), "no scope field"),
    ],
)
def test_malformed_templates_are_refused(template: bytes, message: str) -> None:
    decoder = Decoder()
    decoder.feed(
        ipfix_message([ipfix_set(3 if b"\x00\x22" in template[:8] else 2, template)]), EXPORTER, 0
    )
    stats = decoder.stats[KEY]
    assert (stats.malformed, stats.templates) == (1, 0)
    assert message in stats.last_error


# -- sequence numbers and errors ---------------------------------------------------------


def test_sequence_gaps_count_lost_records() -> None:
    decoder = Decoder()
    template = ipfix_set(2, ipfix_template(256, BASE))
    three = ipfix_set(256, record(BASE, BASE_VALUES) * 3)
    decoder.feed(ipfix_message([template, three], sequence=2**32 - 2), EXPORTER, 0)
    decoder.feed(ipfix_message([three], sequence=1), EXPORTER, 0)  # wraps: expected
    decoder.feed(ipfix_message([three], sequence=8), EXPORTER, 0)  # 4 lost
    decoder.feed(ipfix_message([three], sequence=2), EXPORTER, 0)  # backwards: a reset
    decoder.feed(ipfix_message([three], sequence=5), EXPORTER, 0)
    decoder.feed(ipfix_message([three], sequence=5, domain=3), EXPORTER, 0)  # own baseline
    assert decoder.stats[KEY].lost_records == 4


def test_template_less_records_are_told_from_the_next_sequence_number() -> None:
    decoder = Decoder()
    data = ipfix_set(256, record(BASE, BASE_VALUES) * 3)
    decoder.feed(ipfix_message([data], sequence=100), EXPORTER, 0)
    decoder.feed(
        ipfix_message([ipfix_set(2, ipfix_template(256, BASE)), data], sequence=103), EXPORTER, 0
    )
    decoder.feed(ipfix_message([data], sequence=106), EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert (stats.no_template, stats.no_template_records, stats.lost_records) == (1, 3, 0)
    assert stats.records == 6


def test_errors_are_counted_and_named() -> None:
    decoder = Decoder()
    good = ipfix_message([ipfix_set(2, ipfix_template(256, BASE))])
    decoder.feed(good, EXPORTER, 0)
    decoder.feed(good[:10], EXPORTER, 0)
    decoder.feed(b"\x00\x07" + good[2:], EXPORTER, 0)
    decoder.feed(good[:-4], EXPORTER, 0)  # the header's length claims 4 more bytes
    decoder.feed(good[:2] + (15).to_bytes(2, "big") + good[4:], EXPORTER, 0)
    decoder.feed(ipfix_message([b"\x01\x00\x00\x02"]), EXPORTER, 0)  # set length 2
    decoder.feed(ipfix_message([ipfix_set(17, b"abcd")]), EXPORTER, 0)  # reserved set id
    decoder.feed(b"", EXPORTER, 0)
    stats = decoder.stats[KEY]
    assert stats.datagrams == 8
    assert (stats.truncated, stats.unknown_version, stats.malformed) == (3, 1, 3)
    assert stats.last_error == "datagram 8: 0 bytes, no version number"
    assert decoder.stats_total().last_error == f"{KEY} datagram 8: 0 bytes, no version number"


def test_a_flood_of_forged_exporters_is_bounded_and_the_busy_exporter_kept() -> None:
    # 5 000 sources, each with a template and a record (a scan or spoofed flood), among
    # which one real exporter keeps sending: memory stays at the bound, the least recently
    # heard are forgotten, the real exporter is never among them, and no count is lost
    decoder = Decoder(max_exporters=100, max_templates=1000)
    message = ipfix_message(
        [ipfix_set(2, ipfix_template(256, BASE)), ipfix_set(256, record(BASE, BASE_VALUES))]
    )
    for i in range(5000):
        decoder.feed(message, (f"198.51.{i >> 8}.{i & 255}", 2055), 0)
        if i % 50 == 0:
            decoder.feed(message, EXPORTER, 0)
    assert len(decoder.stats) <= 100 and KEY in decoder.stats
    assert decoder.exporters_forgotten == 5001 - 100  # 5 000 forged and the real one
    assert decoder.stats[KEY].records == 100
    total = decoder.stats_total()
    assert total.datagrams == total.records == 5100
    assert total.templates == sum(s.templates for s in decoder.stats.values()) <= 100
    rows = sum(b.n for b in decoder.flush())
    assert rows == 5100  # what was queued before an exporter was forgotten is decoded too


def test_a_reordered_message_is_not_lost() -> None:
    """One exporter's messages reach two collector sockets and are read out of order."""
    decoder = Decoder()
    template = ipfix_set(2, ipfix_template(256, BASE))
    three = ipfix_set(256, record(BASE, BASE_VALUES) * 3)
    decoder.feed(ipfix_message([template, three], sequence=0), EXPORTER, 0)
    decoder.feed(ipfix_message([three], sequence=6), EXPORTER, 0)  # opens a gap of 3
    assert decoder.stats[KEY].lost_records == 3
    decoder.feed(ipfix_message([three], sequence=3), EXPORTER, 0)  # late: fills it
    decoder.feed(ipfix_message([three], sequence=9), EXPORTER, 0)  # in order after all
    stats = decoder.stats[KEY]
    assert (stats.records, stats.lost_records) == (12, 0)
    decoder.feed(ipfix_message([three], sequence=1), EXPORTER, 0)  # outside any gap: a restart
    decoder.feed(ipfix_message([three], sequence=4), EXPORTER, 0)
    assert decoder.stats[KEY].lost_records == 0
