"""In-place DS byte and PCP marking: only the marker's bits change, malformed frames never."""

from __future__ import annotations

from diffserv.packet.checksum import internet_checksum
from diffserv.packet.decode import decode_frames
from diffserv.packet.rewrite import apply_marks
from support import synth


def test_ipv4_tos_rewrite_keeps_checksum_valid() -> None:
    frame = synth.ethernet(synth.ipv4(payload=synth.tcp(), dscp=10, ecn=2))
    b = decode_frames([frame])
    b.cols.new_ds[0] = 46 << 2 | 2
    assert apply_marks(b) == 1
    out = b.buf.tobytes()
    assert out[15] == 46 << 2 | 2
    assert internet_checksum(out[14:34]) == 0
    assert out[:15] + out[16:24] + out[26:] == frame[:15] + frame[16:24] + frame[26:]


def test_ipv6_traffic_class_rewrite_keeps_version_and_flow_label() -> None:
    frame = synth.ethernet(synth.ipv6(payload=synth.udp(), dscp=0, ecn=1, flow_label=0xABCDE))
    b = decode_frames([frame])
    b.cols.new_ds[0] = 0xB9
    apply_marks(b)
    word = int.from_bytes(b.buf[14:18].tobytes(), "big")
    assert (word >> 28, (word >> 20) & 0xFF, word & 0xFFFFF) == (6, 0xB9, 0xABCDE)
    assert b.buf[18:].tobytes() == frame[18:]


def test_pcp_rewrite_keeps_dei_and_vid() -> None:
    frame = synth.ethernet(synth.ipv4(), vlans=[synth.Vlan(0xABC, pcp=1, dei=1), synth.Vlan(7)])
    b = decode_frames([frame])
    b.cols.new_pcp[0] = 6
    apply_marks(b)
    tci = int.from_bytes(b.buf[14:16].tobytes(), "big")
    assert (tci >> 13, (tci >> 12) & 1, tci & 0xFFF) == (6, 1, 0xABC)
    assert b.buf[16:].tobytes() == frame[16:]


def test_unchanged_values_and_unmarked_rows_write_nothing() -> None:
    frames = [
        synth.simple_frame(dscp=8),
        synth.simple_frame(version=6, dscp=8),
        synth.simple_frame(),
    ]
    b = decode_frames(frames)
    before = b.buf.tobytes()
    b.cols.new_ds[0] = 8 << 2
    b.cols.new_ds[1] = 8 << 2
    b.cols.new_pcp[2] = 5  # no VLAN tag
    assert apply_marks(b) == 0
    assert b.buf.tobytes() == before


def test_malformed_and_non_ip_frames_are_never_modified() -> None:
    bad = synth.ethernet(synth.ipv4(payload=synth.tcp(), total_length=999), vlans=[synth.Vlan(5)])
    arp = synth.ethernet(bytes(28), ethertype=0x0806, vlans=[synth.Vlan(5)])
    b = decode_frames([bad, arp])
    before = b.buf.tobytes()
    b.cols.new_ds[:] = 184
    b.cols.new_pcp[0] = 7
    apply_marks(b)
    assert b.buf[: len(bad)].tobytes() == before[: len(bad)]
    assert b.buf[len(bad) :].tobytes() == before[len(bad) :]


def _marked(frame: bytes, ds: int, cut: int | None = None) -> bytes:
    stored = frame if cut is None else frame[:cut]
    b = decode_frames([stored], wire_lens=[len(frame)])
    b.cols.new_ds[0] = ds
    apply_marks(b)
    return b.buf.tobytes()


def test_header_cut_ipv4_is_marked_inside_the_capture_only() -> None:
    frame = synth.ethernet(synth.ipv4(payload=synth.udp(1, 2, bytes(40)), dscp=10, ecn=1))
    whole = _marked(frame, 46 << 2 | 1)
    for cut in range(14 + 2, 14 + 20):
        got = _marked(frame, 46 << 2 | 1, cut)
        assert len(got) == cut  # nothing written past the captured bytes
        assert got[15] == 46 << 2 | 1
        if cut >= 14 + 12:  # the whole checksum is there: it is updated (RFC 1624)
            assert got == whole[:cut], cut
        else:  # a checksum not (wholly) in the capture is left as it was
            assert got == frame[:15] + whole[15:16] + frame[16:cut], cut


def test_header_cut_ipv6_is_marked() -> None:
    frame = synth.ethernet(synth.ipv6(payload=synth.udp(1, 2), dscp=10, flow_label=0x12345))
    whole = _marked(frame, 0xB8)
    for cut in range(14 + 2, 14 + 40):
        assert _marked(frame, 0xB8, cut) == whole[:cut], cut


def test_offload_and_jumbogram_marks_keep_the_checksum_valid() -> None:
    v4 = synth.ipv4(payload=synth.tcp(payload=bytes(70_000)), total_length=0, dscp=0)
    v6 = synth.ipv6(payload=synth.tcp(payload=bytes(70_000)), jumbo=True)
    b = decode_frames([synth.ethernet(v4), synth.ethernet(v6)])
    b.cols.new_ds[:] = 0xB8
    assert apply_marks(b) == 2
    out = b.buf.tobytes()
    assert out[15] == 0xB8 and internet_checksum(out[14:34]) == 0
    start = 14 + len(v4)
    assert (int.from_bytes(out[start + 14 : start + 16], "big") >> 4) & 0xFF == 0xB8
