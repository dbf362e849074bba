"""A damaged capture file yields packets or one InputDataError, never anything else."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.capture import CaptureWriter, open_capture
from diffserv.errors import InputDataError
from support import synth

FRAMES = [synth.simple_frame(payload_len=i * 11, version=4 + 2 * (i % 2)) for i in range(6)]
ORIGINALS = [
    synth.pcap_bytes(FRAMES),
    synth.pcap_bytes(FRAMES, nanosecond=True, big_endian=True),
    synth.simple_pcapng(FRAMES),
    synth.pcapng_bytes(
        [
            synth.Section(
                [synth.Interface(name="a", tsresol=9)],
                [
                    synth.Packet(f, epb_flags=1, block=("epb", "spb", "opb")[i % 3])
                    for i, f in enumerate(FRAMES)
                ],
                big_endian=True,
            )
        ]
    ),
    synth.pcap_bytes(
        [
            synth.Packet(synth.ppp(synth.ipv4(payload=synth.udp()), short_protocol=True)),
            synth.Packet(synth.ppp(synth.ipv6(payload=synth.tcp(payload=bytes(99)))), caplen=30),
        ],
        linktype=9,
    ),
    synth.pcapng_bytes(
        [
            synth.Section(
                [
                    synth.Interface(name="eth0", tsresol=0x80 | 30, tsoffset=-5),
                    synth.Interface(105, name="wlan0"),
                    synth.Interface(204, tsresol=19, tsoffset=10**9),
                ],
                [
                    synth.Packet(
                        synth.ethernet(
                            synth.ipv6(payload=synth.tcp(payload=bytes(65_600)), jumbo=True)
                        ),
                        caplen=100,
                    ),
                    synth.Packet(bytes(30), interface=1),
                    synth.Packet(synth.ethernet(synth.ipv4(total_length=0)), caplen=16),
                    synth.Interface(9, name="ppp0"),
                    synth.Packet(synth.ppp(synth.ipv4()), interface=3),
                    synth.Packet(synth.ppp_with_direction(synth.ipv4()), interface=2),
                ],
            ),
            synth.Section([synth.Interface(name="eth0")], FRAMES[:2]),
        ]
    ),
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(ORIGINALS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(len(data) // 2, len(data)))
    return bytes(data[:cut])


@settings(max_examples=150, deadline=None)
@given(damaged(), st.sampled_from([1, 3, 100]))
def test_damaged_files_fail_cleanly(data: bytes, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.cap"
        path.write_bytes(data)
        try:
            with open_capture(path, batch_size=batch_size) as reader:
                writer = CaptureWriter(io.BytesIO(), reader.capture_format)
                for batch in reader:
                    writer.write(batch)
                writer.close()
        except InputDataError as exc:
            assert str(path) in str(exc)
