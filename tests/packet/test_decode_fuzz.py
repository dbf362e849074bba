"""Arbitrary bytes never crash the decoder, and what it reports stays inside the frame."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.columns import FLAG_HEADER_CUT, FLAG_MALFORMED
from diffserv.packet.decode import decode_frames
from diffserv.packet.linktypes import SUPPORTED_LINKTYPES
from diffserv.packet.rewrite import apply_marks
from support import synth

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
        synth.ethernet(synth.ipv6(payload=synth.tcp(payload=bytes(65_600)), jumbo=True)[:120]),
        synth.ethernet(synth.ipv6(payload=synth.tcp(), extensions=[synth.jumbo_payload(70_000)])),
        synth.ethernet(synth.ipv4(payload=synth.tcp(), total_length=0)),
        synth.ethernet(synth.ipv6(payload=synth.udp(), payload_length=0)),
        synth.ppp(synth.ipv4(payload=synth.udp()), short_protocol=True),
        synth.ppp_with_direction(synth.ipv6(payload=synth.tcp())),
        synth.cisco_hdlc(synth.mpls(synth.ipv4(payload=synth.udp())), ethertype=0x8847),
        synth.ethernet(synth.pppoe(synth.ipv6(payload=synth.udp())), ethertype=0x8864),
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
        start = int(batch.cols.pkt_off[i])
        end = start + len(frame)
        if batch.cols.ip_version[i]:
            assert not batch.cols.flags[i] & FLAG_MALFORMED
            need = 2 if batch.cols.flags[i] & FLAG_HEADER_CUT else 20
            assert start <= batch.cols.l3_off[i] and batch.cols.l3_off[i] + need <= end
            assert batch.cols.ip_len[i] <= len(frame) + 7 - (batch.cols.l3_off[i] - start)
        else:
            assert batch.cols.l3_off[i] == -1
        if batch.cols.vlan_off[i] >= 0:
            assert start <= batch.cols.vlan_off[i] and batch.cols.vlan_off[i] + 2 <= end
    before = batch.buf.tobytes()
    batch.cols.new_ds[:] = 0xB8
    batch.cols.new_pcp[:] = 5
    apply_marks(batch)
    after = batch.buf.tobytes()
    # only the marker's bytes change, each inside its own frame; malformed frames never
    allowed: set[int] = set()
    for i, frame in enumerate(frames):
        if batch.cols.flags[i] & FLAG_MALFORMED:
            continue
        l3 = int(batch.cols.l3_off[i])
        if batch.cols.ip_version[i] == 4:
            end = int(batch.cols.pkt_off[i]) + len(frame)
            allowed |= {p for p in (l3 + 1, l3 + 10, l3 + 11) if p < end}
        elif batch.cols.ip_version[i] == 6:
            allowed |= {l3, l3 + 1}
        if batch.cols.vlan_off[i] >= 0:
            allowed.add(int(batch.cols.vlan_off[i]))
    changed = {p for p in range(len(before)) if before[p] != after[p]}
    assert changed <= allowed
