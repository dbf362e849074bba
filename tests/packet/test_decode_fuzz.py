"""Arbitrary bytes never crash the decoder, and what it reports stays inside the frame."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.capture import synth
from diffserv.engine.batch import FLAG_MALFORMED
from diffserv.packet.decode import SUPPORTED_LINKTYPES, decode_frames
from diffserv.packet.rewrite import apply_marks

LINKTYPES = sorted(SUPPORTED_LINKTYPES)

seeds = st.sampled_from(
    [
        synth.simple_frame(),
        synth.simple_frame(version=6, proto="udp", vlans=[synth.Vlan(3), synth.Vlan(4)]),
        synth.ethernet(
            synth.ipv6(payload=synth.tcp(), extensions=[synth.hop_by_hop(), synth.routing()])
        ),
        synth.sll(synth.ipv4(payload=synth.udp(), options=bytes(8))),
        synth.sll2(synth.ipv6(payload=synth.icmpv6())),
        synth.null(synth.ipv4(payload=synth.sctp())),
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(seeds))
    for _ in range(draw(st.integers(0, 6))):
        if not frame:
            break
        pos = draw(st.integers(0, len(frame) - 1))
        frame[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(mutated(), st.binary(max_size=120)), min_size=1, max_size=8),
    st.sampled_from(LINKTYPES),
)
def test_decode_never_reads_outside_a_frame(frames: list[bytes], linktype: int) -> None:
    batch = decode_frames(frames, linktype, wire_lens=[len(f) + 7 for f in frames])
    for i, frame in enumerate(frames):
        start = int(batch.pkt_off[i])
        end = start + len(frame)
        if batch.ip_version[i]:
            assert not batch.flags[i] & FLAG_MALFORMED
            assert start <= batch.l3_off[i] and batch.l3_off[i] + 20 <= end
        else:
            assert batch.l3_off[i] == -1
        if batch.vlan_off[i] >= 0:
            assert start <= batch.vlan_off[i] and batch.vlan_off[i] + 2 <= end
    before = batch.buf.tobytes()
    batch.new_ds[:] = 0xB8
    batch.new_pcp[:] = 5
    apply_marks(batch)
    after = batch.buf.tobytes()
    for i, frame in enumerate(frames):
        start = int(batch.pkt_off[i])
        if batch.flags[i] & FLAG_MALFORMED:
            assert after[start : start + len(frame)] == before[start : start + len(frame)]
