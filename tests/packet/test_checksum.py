"""RFC 1624 incremental update equals a full recomputation on every header."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.packet.checksum import (
    incremental_checksum,
    internet_checksum,
    ipv4_header_checksum,
)
from diffserv.packet.decode import decode_frames
from diffserv.packet.rewrite import apply_marks
from support import synth


def test_internet_checksum_of_valid_header_is_zero() -> None:
    header = synth.ipv4("10.0.0.1", "10.0.0.2", synth.udp())[:20]
    assert internet_checksum(header) == 0


def test_rfc1624_avoids_negative_zero() -> None:
    # RFC 1624 section 3 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000
    assert incremental_checksum(0xDD2F, 0x5555, 0x3285) == 0x0000


headers = st.builds(
    lambda opts, tos, ttl, ident, frag, proto, src, dst: (
        opts,
        tos,
        ttl,
        ident,
        frag,
        proto,
        src,
        dst,
    ),
    st.integers(0, 10).map(lambda n: bytes(4 * n)),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0x1FFF),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=200, deadline=None)
@given(headers, st.integers(0, 255))
def test_incremental_equals_full(
    fields: tuple[bytes, int, int, int, int, int, int, int], new_tos: int
) -> None:
    opts, tos, ttl, ident, frag, proto, src, dst = fields
    packet = synth.ipv4(
        src,
        dst,
        bytes(8),
        proto=proto,
        tos=tos,
        ttl=ttl,
        ident=ident,
        frag_offset=frag,
        options=opts,
    )
    header_len = 20 + len(opts)
    old_sum = int.from_bytes(packet[10:12], "big")
    old_word = int.from_bytes(packet[0:2], "big")
    new_word = (old_word & 0xFF00) | new_tos
    rewritten = bytearray(packet)
    rewritten[1] = new_tos
    arr = np.frombuffer(bytes(rewritten), np.uint8).copy()
    assert incremental_checksum(old_sum, old_word, new_word) == ipv4_header_checksum(
        arr, 0, header_len
    )

    batch = decode_frames([synth.ethernet(packet)])
    batch.cols.new_ds[0] = new_tos
    apply_marks(batch)
    out = batch.buf[14 : 14 + header_len].tobytes()
    assert out[1] == new_tos
    assert internet_checksum(out) == 0
    assert out[2:10] + out[12:] == packet[2:10] + packet[12:header_len]
