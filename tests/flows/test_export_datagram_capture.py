"""UDP datagrams out of captures (for collect --from-pcap) and into file:// export files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.errors import InputDataError
from diffserv.flows.datagram_capture import (
    FILE_SOURCE_PORT,
    DatagramCounts,
    DatagramFileWriter,
    iter_datagrams,
)
from diffserv.packet.checksum import internet_checksum
from diffserv.packet.linktypes import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
)
from support import synth

T = 1_767_225_600_000_000_123


def v4(payload: bytes, *, sport: int = 5000, dport: int = 4739, **kw: object) -> bytes:
    return synth.ipv4("192.0.2.9", "198.51.100.1", synth.udp(sport, dport, payload), **kw)  # type: ignore[arg-type]


def v6(payload: bytes, *, sport: int = 5001, dport: int = 4739, **kw: object) -> bytes:
    return synth.ipv6("2001:db8::9", "2001:db8::1", synth.udp(sport, dport, payload), **kw)  # type: ignore[arg-type]


def mixed(link: int) -> list[synth.Packet]:
    """Wanted datagrams and everything that must be skipped, on one link type."""
    tagged = {"vlans": [synth.Vlan(vid=7), synth.Vlan(vid=9)]} if link == LINKTYPE_ETHERNET else {}
    frames = [
        synth.link_frame(v4(b"first"), link, **tagged),  # type: ignore[arg-type]
        synth.link_frame(v6(b"second"), link),
        synth.link_frame(v6(b"third", extensions=[synth.destination_options()]), link),
        synth.link_frame(v4(b"other port", dport=53), link),
        synth.link_frame(v4(b"fragment", mf=True), link),
        synth.link_frame(synth.ipv4(payload=synth.tcp(1, 4739)), link),
        synth.link_frame(v4(b"cut off" * 10), link),
    ]
    packets = [synth.Packet(f, ts_ns=T + i) for i, f in enumerate(frames)]
    last = packets[-1]
    packets[-1] = synth.Packet(last.data, ts_ns=last.ts_ns, caplen=len(last.data) - 20)
    if link == LINKTYPE_ETHERNET:
        packets.append(synth.Packet(b"\xff" * 14 + b"not ip", ts_ns=T + 9))
    return packets


EXPECTED = [
    (b"first", ("192.0.2.9", 5000), T),
    (b"second", ("2001:db8::9", 5001), T + 1),
    (b"third", ("2001:db8::9", 5001), T + 2),
]


@pytest.mark.parametrize(
    "link", [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2]
)
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_udp_payloads_to_the_ports_asked_for(tmp_path: Path, link: int, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    if kind == "pcap":
        synth.write_pcap(path, mixed(link), linktype=link, nanosecond=True)
    else:
        synth.write_pcapng(path, mixed(link), linktype=link, tsresol=9)
    counts = DatagramCounts()
    got = list(iter_datagrams(str(path), [4739, 2055], counts=counts))
    assert got == EXPECTED
    assert counts.datagrams == 3
    assert counts.other_ports == 1
    assert counts.fragments == 1
    assert counts.truncated == 1
    assert counts.not_udp == (2 if link == LINKTYPE_ETHERNET else 1)
    assert counts.packets == len(mixed(link))


def test_no_ports_means_every_udp_datagram(tmp_path: Path) -> None:
    path = synth.write_pcap(tmp_path / "c.pcap", mixed(LINKTYPE_ETHERNET), nanosecond=True)
    assert [d[0] for d in iter_datagrams(path)] == [
        b"first",
        b"second",
        b"third",
        b"other port",
    ]


def test_a_udp_length_beyond_the_packet_is_truncated(tmp_path: Path) -> None:
    udp = synth.udp(5000, 4739, b"abcdefgh")
    packet = bytearray(synth.ipv4("192.0.2.9", "198.51.100.1", udp))
    packet[24:26] = (200).to_bytes(2, "big")  # UDP length says 200 bytes
    path = synth.write_pcap(tmp_path / "c.pcap", [bytes(packet)], linktype=LINKTYPE_RAW)
    counts = DatagramCounts()
    assert list(iter_datagrams(path, counts=counts)) == []
    assert counts.truncated == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "empty file"), (b"this is not a capture at all....", "pcap")],
)
def test_an_unreadable_file_is_one_input_error(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(InputDataError) as info:
        list(iter_datagrams(str(path), [4739]))
    assert words in str(info.value)
    assert str(path) in str(info.value)


@settings(max_examples=30, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=0, max_size=1500), min_size=0, max_size=12),
    ipv6=st.booleans(),
)
def test_written_files_read_back_byte_for_byte(payloads: list[bytes], ipv6: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/x.pcap"
        writer = DatagramFileWriter(path, port=2055, ipv6=ipv6)
        for i, payload in enumerate(payloads):
            writer.write(payload, T + i * 1000)
        writer.close()
        writer.close()
        got = list(iter_datagrams(path, [2055]))
    source = ("::1" if ipv6 else "127.0.0.1", FILE_SOURCE_PORT)
    assert got == [(p, source, T + i * 1000) for i, p in enumerate(payloads)]


def test_written_file_checksums_hold(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    writer = DatagramFileWriter(str(path), port=4739)
    writer.write(b"\x00\x0a hello", T)
    writer.close()
    frame = path.read_bytes()[24 + 16 :]
    ip = frame[14:34]
    assert internet_checksum(ip) == 0
    udp = frame[34:]
    pseudo = ip[12:20] + b"\x00\x11" + len(udp).to_bytes(2, "big")
    assert internet_checksum(pseudo + udp) == 0
