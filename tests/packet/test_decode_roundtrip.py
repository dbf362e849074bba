"""Whatever the builder puts in a header, the decoder reads back (property test)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.packet.decode import decode_frames
from support import synth

LINKS = [1, 0, 101, 108, 113, 276]


@st.composite
def packets(draw: st.DrawFn) -> tuple[bytes, int, dict[str, int]]:
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from(["tcp", "udp", "sctp"]))
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    ds = draw(st.integers(0, 255))
    builder = {"tcp": synth.tcp, "udp": synth.udp, "sctp": synth.sctp}[proto]
    l4 = builder(sport, dport, bytes(draw(st.integers(0, 64))))
    if version == 4:
        src, dst = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
        options = bytes(4 * draw(st.integers(0, 10)))
        ip = synth.ipv4(src, dst, l4, tos=ds, options=options)
        src_hi, src_lo = 0, (0xFFFF << 32) | src
        dst_hi, dst_lo = 0, (0xFFFF << 32) | dst
    else:
        src, dst = draw(st.integers(0, 2**128 - 1)), draw(st.integers(0, 2**128 - 1))
        ext_kinds = draw(st.lists(st.sampled_from(["hbh", "dst", "rt"]), max_size=3))
        exts = [
            {
                "hbh": synth.hop_by_hop(8 * draw(st.integers(1, 4))),
                "dst": synth.destination_options(),
                "rt": synth.routing([str(ipaddress.IPv6Address(dst))]),
            }[k]
            for k in ext_kinds
        ]
        ip = synth.ipv6(src, dst, l4, tclass=ds, extensions=exts)
        src_hi, src_lo = src >> 64, src & (2**64 - 1)
        dst_hi, dst_lo = dst >> 64, dst & (2**64 - 1)
    link = draw(st.sampled_from(LINKS))
    vlans = []
    if link == 1:
        vlans = [synth.Vlan(draw(st.integers(0, 4095)), draw(st.integers(0, 7)))] * draw(
            st.integers(0, 3)
        )
    frame = synth.link_frame(ip, link, vlans=vlans)
    expect = {
        "ip_version": version,
        "ds_byte": ds,
        "protocol": l4.proto,
        "sport": sport,
        "dport": dport,
        "ip_len": len(ip),
        "saddr_hi": src_hi,
        "saddr_lo": src_lo,
        "daddr_hi": dst_hi,
        "daddr_lo": dst_lo,
        "flags": 0,
        "l3_off": len(frame) - len(ip),
    }
    return frame, link, expect


@settings(max_examples=300, deadline=None)
@given(packets())
def test_decoder_reads_back_what_the_builder_wrote(case: tuple[bytes, int, dict[str, int]]) -> None:
    frame, link, expect = case
    batch = decode_frames([frame], link)
    got = {name: int(getattr(batch.cols, name)[0]) for name in expect}
    assert got == expect
