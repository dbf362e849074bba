"""Fuzz target for `diffserv collect`: a stream of NetFlow v5 / v9 / IPFIX datagrams, decoded.

An input is split into datagrams (each led by a 2-byte length) that one decoder takes
in order from two exporters, flushing part-way, as the collector does. The decoder may
raise nothing at all (a bad datagram is a counter), and every batch it returns must be
whole: every column of the schema, all of one length, with the schema's dtype.
Seeds are valid exports of every version (templates, options, data) and near misses.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from harness import FuzzTarget

from diffserv.flows.schema import BATCH_COLUMNS
from diffserv.flows.wire.decode import Decoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "flows" / "wire"))

import wire_helpers as w

_EXPORTERS = (("192.0.2.1", 4739), ("2001:db8::1", 2055))
_IPV4_FIELDS = (
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (5, 1),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
)
_IPV6_FIELDS = ((27, 16), (28, 16), (195, 1), (196, 1), (243, 2), (244, 1), (1, 4), (2, 3))
_NAMES = ((1, 2, w.PEN), (2, 65535, w.PEN))


def datagrams(data: bytes) -> list[bytes]:
    """The datagrams of one input: a 2-byte big-endian length, then that many bytes."""
    out = []
    pos = 0
    while pos + 2 <= len(data):
        (size,) = struct.unpack_from("!H", data, pos)
        out.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return out


def run_decoder(data: bytes) -> None:
    decoder = Decoder(max_templates_per_exporter=8, max_templates=12)
    batches = []
    for i, datagram in enumerate(datagrams(data)):
        decoder.feed(datagram, _EXPORTERS[i % 2], 1_767_225_600_000_000_000 + i)
        if i % 3 == 2:
            batches += decoder.flush()
    batches += decoder.flush()
    for batch in batches:
        for column in BATCH_COLUMNS:
            array = batch.columns[column.name]
            if array.shape != (batch.n,) or array.dtype.name != column.dtype:
                raise AssertionError(f"bad column {column.name}: {array.shape} {array.dtype}")
        codes = batch.columns["action_code"]
        if batch.n and int(codes.max()) >= len(batch.actions):
            raise AssertionError("action code beyond the names")
    decoder.stats_total()


def _stream(*items: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(item)) + item for item in items)


def seeds() -> list[bytes]:
    v4 = [
        ("10.0.0.1", "192.0.2.9", 40000, 53, 17, 0xB9, 3, 300, 1_767_225_600_000, 1_767_225_601_000)
    ]
    v6 = [("2001:db8::1", "2001:db8::2", 46, 5, 100, 7, 2, 3)]
    ipfix = w.ipfix_message(
        [
            w.ipfix_set(
                2, w.ipfix_template(256, _IPV4_FIELDS) + w.ipfix_template(257, _IPV6_FIELDS)
            ),
            w.ipfix_set(3, w.ipfix_options_template(258, _NAMES[:1], _NAMES[1:])),
            w.ipfix_set(258, w.record(_NAMES, (0, "acct_ef"))),
            w.ipfix_set(256, b"".join(w.record(_IPV4_FIELDS, r) for r in v4), pad=3),
            w.ipfix_set(257, b"".join(w.record(_IPV6_FIELDS, r) for r in v6)),
        ],
        sequence=7,
    )
    withdrawal = w.ipfix_message([w.ipfix_set(2, w.ipfix_template(256, ()))], sequence=8)
    v9_fields = (*_IPV4_FIELDS[:6], (2, 4), (1, 4), (22, 4), (21, 4))
    v9 = w.v9_packet(
        [
            w.v9_flowset(0, w.v9_template(300, v9_fields)),
            w.v9_flowset(300, w.record(v9_fields, (*v4[0][:6], 3, 300, 999000, 1000000))),
        ],
        count=2,
    )
    v5 = w.v5_packet([w.v5_record(), w.v5_record(tos=0x48)], sequence=5)
    return [
        _stream(ipfix, v9, v5),
        _stream(ipfix, withdrawal, ipfix),
        _stream(v9, v9[:40], v5[:30]),
        _stream(ipfix[:60], v5, b"\x00\x0a" + b"\xff" * 30),
    ]


TARGETS = [FuzzTarget("wire", run_decoder, seeds, max_len=1 << 14)]
