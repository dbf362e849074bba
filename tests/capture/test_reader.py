"""Reading pcap and pcapng: framing variants, metadata, streaming and error reporting."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffserv.capture import open_capture
from diffserv.capture.reader import CaptureReader
from diffserv.engine.session import Session, drive
from diffserv.errors import InputDataError
from diffserv.policy import parse
from support import synth

T0 = 1_767_225_600_123_456_789


def frames(n: int = 5) -> list[bytes]:
    return [
        synth.simple_frame(version=4 if i % 2 == 0 else 6, dscp=i, sport=1000 + i) for i in range(n)
    ]


def collect(path: Path, **kw: Any) -> tuple[dict[str, list[Any]], CaptureReader]:
    out: dict[str, list[Any]] = {}
    names = ("number", "ts_ns", "sport", "ds_byte", "direction", "ifindex", "ip_version", "cap_len")
    with open_capture(path, **kw) as reader:
        for batch in reader:
            for name in names:
                out.setdefault(name, []).extend(getattr(batch.cols, name).tolist())
            out.setdefault("interfaces", []).append(batch.interfaces)
    return out, reader


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_classic_pcap_variants(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    pkts = [synth.Packet(f, ts_ns=T0 + i * 1001) for i, f in enumerate(frames())]
    path = tmp_path / "a.pcap"
    synth.write_file(path, synth.pcap_bytes(pkts, nanosecond=nanosecond, big_endian=big_endian))
    cols, reader = collect(path)
    assert reader.format == "pcap"
    assert cols["number"] == [1, 2, 3, 4, 5]
    assert cols["sport"] == [1000, 1001, 1002, 1003, 1004]
    expect = [p.ts_ns if nanosecond else p.ts_ns // 1000 * 1000 for p in pkts]
    assert cols["ts_ns"] == expect
    assert cols["direction"] == [2] * 5
    assert cols["ifindex"] == [0] * 5
    assert reader.packets == 5


def test_classic_pcap_interface_and_direction_options(tmp_path: Path) -> None:
    path = synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(frames(3)))
    cols, _ = collect(Path(path), interface="eth7", direction=1)
    assert cols["ifindex"] == [1, 1, 1]
    assert cols["interfaces"][0] == ("", "eth7")
    assert cols["direction"] == [1, 1, 1]


def test_sll_direction_in_pcap(tmp_path: Path) -> None:
    data = [synth.sll(synth.ipv4(), packet_type=t) for t in (0, 4, 3)]
    path = synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(data, linktype=113))
    cols, _ = collect(Path(path))
    assert cols["direction"] == [1, 2, 1]
    cols, _ = collect(Path(path), direction=8)
    assert cols["direction"] == [8, 8, 8]


def test_pcapng_sections_interfaces_and_blocks(tmp_path: Path) -> None:
    f = frames(6)
    sec1 = synth.Section(
        interfaces=[synth.Interface(name="eth0"), synth.Interface(name="wlan0", tsresol=9)],
        blocks=[
            synth.Packet(f[0], ts_ns=T0, interface=0, epb_flags=synth.EPB_INBOUND),
            synth.RawBlock(4, bytes(8)),  # name resolution block
            synth.Packet(f[1], ts_ns=T0 + 7, interface=1, epb_flags=synth.EPB_OUTBOUND),
            synth.Packet(f[2], block="spb"),
            synth.Interface(linktype=101, name="tun0", tsresol=0x80 | 20),
            synth.Packet(f[3][14:], ts_ns=T0 + 1_000_000, interface=2),
            synth.RawBlock(5, bytes(20)),  # interface statistics
        ],
    )
    sec2 = synth.Section(
        interfaces=[synth.Interface(name="wlan0", tsresol=3)],
        blocks=[
            synth.Packet(f[4], ts_ns=T0 + 5_000_000, block="opb", epb_flags=synth.EPB_INBOUND),
            synth.Packet(f[5], ts_ns=T0 + 6_000_000),
        ],
        big_endian=True,
        section_length=12345,
    )
    path = Path(synth.write_file(tmp_path / "a.pcapng", synth.pcapng_bytes([sec1, sec2])))
    cols, reader = collect(path)
    assert reader.format == "pcapng"
    assert cols["sport"] == [1000, 1001, 1002, 1003, 1004, 1005]
    assert cols["interfaces"][-1] == ("", "eth0", "wlan0", "tun0")
    assert cols["ifindex"] == [1, 2, 1, 3, 2, 2]
    assert cols["direction"] == [1, 2, 2, 2, 1, 2]
    us = T0 // 1000 * 1000
    ms = (T0 + 5_000_000) // 1_000_000 * 1_000_000
    ms2 = (T0 + 6_000_000) // 1_000_000 * 1_000_000
    binary = ((T0 + 1_000_000) << 20) // 10**9
    assert cols["ts_ns"][:2] == [us, T0 + 7]
    assert cols["ts_ns"][2] == T0 + 7  # SPB: time of the previous packet
    assert abs(cols["ts_ns"][3] - (binary * 10**9 >> 20)) <= 1
    assert cols["ts_ns"][4:] == [ms, ms2]


@pytest.mark.parametrize("batch_size", [1, 7, 65536])
def test_results_do_not_depend_on_batch_or_chunk_size(tmp_path: Path, batch_size: int) -> None:
    pkts = [synth.simple_frame(payload_len=(i * 37) % 1400, sport=i) for i in range(300)]
    pcap = Path(synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(pkts)))
    ng = Path(synth.write_file(tmp_path / "a.pcapng", synth.simple_pcapng(pkts)))
    for path in (pcap, ng):
        ref, _ = collect(path)
        got, _ = collect(path, batch_size=batch_size)
        assert got == ref | {"interfaces": got["interfaces"]}
        assert got["sport"] == list(range(300))
        sports: list[int] = []
        with CaptureReader(path, batch_size=batch_size, chunk_size=1 << 16) as small:
            for batch in small:
                sports.extend(batch.cols.sport.tolist())
        assert sports == ref["sport"]


def test_record_bigger_than_chunk_grows_buffer(tmp_path: Path) -> None:
    big = synth.ethernet(bytes(200_000), ethertype=0x88B5)
    path = Path(synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes([big, big, frames(1)[0]])))
    reader = CaptureReader(path, chunk_size=1 << 16)
    with reader:
        lens = [int(x) for b in reader for x in b.cols.cap_len]
    assert lens == [len(big), len(big), len(frames(1)[0])]


def test_counters_and_malformed_numbers(tmp_path: Path) -> None:
    bad = synth.ethernet(synth.ipv4(payload=synth.tcp(), ihl=3))
    arp = synth.ethernet(bytes(28), ethertype=0x0806)
    cut = synth.Packet(synth.simple_frame(payload_len=100), caplen=60)
    items: list[synth.Packet | bytes] = [frames(1)[0], bad, arp, cut, bad]
    path = Path(synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(items)))
    policy = parse("fmt_version 1.0\naction {\n module ipgpc\n name ipgpc.classify\n}\n")
    with open_capture(path) as reader:
        stats = drive(Session(policy), reader)
    assert reader.packets == stats.packets == 5
    assert (stats.malformed, stats.not_ip.packets, stats.truncated) == (2, 1, 1)
    assert stats.malformed_first == (2, 5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"GET / HTTP/1.1\r\n", "not a pcap or pcapng capture"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "file header is truncated"),
    ],
)
def test_not_a_capture(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(data)
    with pytest.raises(InputDataError, match=message) as info:
        open_capture(path)
    assert info.value.where == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="cannot open"):
        open_capture(tmp_path / "nope.pcap")


def test_unsupported_linktype(tmp_path: Path) -> None:
    path = synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes([b"x"], linktype=147))
    with pytest.raises(
        InputDataError, match=r"a\.pcap: link-layer type 147 \(user-defined 0\) is not supported"
    ):
        open_capture(path)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_last_record_after_processing_the_rest(tmp_path: Path, fmt: str) -> None:
    pkts = frames(4)
    data = synth.pcap_bytes(pkts) if fmt == "pcap" else synth.simple_pcapng(pkts)
    path = tmp_path / f"a.{fmt}"
    path.write_bytes(data[:-10])
    seen: list[int] = []
    with (
        open_capture(path, batch_size=2) as reader,
        pytest.raises(InputDataError, match="capture ends inside") as info,
    ):
        for batch in reader:
            seen.extend(batch.cols.number.tolist())
    assert seen == [1, 2, 3]
    assert str(path) in str(info.value)
    if fmt == "pcap":
        assert "packet 4" in str(info.value)
    else:
        assert "byte offset" in str(info.value)


def test_corrupt_pcap_record_length(tmp_path: Path) -> None:
    data = bytearray(synth.pcap_bytes(frames(3)))
    first_len = 16 + len(frames(1)[0])
    data[24 + first_len + 8 : 24 + first_len + 12] = (10**8).to_bytes(4, "little")
    path = tmp_path / "a.pcap"
    path.write_bytes(bytes(data))
    with open_capture(path) as reader, pytest.raises(InputDataError, match="packet 2: record"):
        for _ in reader:
            pass


def test_corrupt_pcapng_block(tmp_path: Path) -> None:
    data = bytearray(synth.simple_pcapng(frames(2)))
    shb_len = int.from_bytes(data[4:8], "little")
    idb_len = int.from_bytes(data[shb_len + 4 : shb_len + 8], "little")
    pos = shb_len + idb_len
    data[pos + 4 : pos + 8] = (13).to_bytes(4, "little")
    path = tmp_path / "a.pcapng"
    path.write_bytes(bytes(data))
    with open_capture(path) as reader, pytest.raises(InputDataError, match=f"byte offset {pos}"):
        for _ in reader:
            pass
    # damage after the first packet: that packet is still delivered
    data = bytearray(synth.simple_pcapng(frames(2)))
    first = int.from_bytes(data[pos + 4 : pos + 8], "little")
    data[pos + first + 4 : pos + first + 8] = (13).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    seen: list[int] = []
    with open_capture(path) as reader, pytest.raises(InputDataError, match="corrupt pcapng"):
        for batch in reader:
            seen.extend(batch.cols.number.tolist())
    assert seen == [1]


def test_pcapng_packet_for_unknown_interface(tmp_path: Path) -> None:
    sec = synth.Section(interfaces=[synth.Interface()], blocks=[])
    data = synth.pcapng_bytes([sec])
    # hand an EPB naming interface 3 after the IDB
    epb = synth.pcapng_bytes(
        [synth.Section([synth.Interface()] * 4, [synth.Packet(frames(1)[0], interface=3)])]
    )
    shb_len = int.from_bytes(epb[4:8], "little")
    idb_len = int.from_bytes(epb[shb_len + 4 : shb_len + 8], "little")
    path = tmp_path / "a.pcapng"
    path.write_bytes(data + epb[shb_len + 4 * idb_len :])
    with open_capture(path) as reader, pytest.raises(InputDataError, match="packet 1"):
        for _ in reader:
            pass


def test_batches_view_one_aligned_buffer(tmp_path: Path) -> None:
    path = synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(frames(3)))
    with open_capture(path) as reader:
        for batch in reader:
            assert batch.buf.dtype == np.uint8
            assert batch.buf.ctypes.data % 16 == 0


@pytest.mark.parametrize("prefetch", [True, False])
def test_records_longer_than_the_read_ahead_reserve(tmp_path: Path, prefetch: bool) -> None:
    huge = synth.ethernet(bytes(1_500_000), ethertype=0x88B5)
    small = frames(40)
    items = [*small[:20], huge, *small[20:], huge, small[0]]
    pcap = synth.pcap_bytes(items, snaplen=4 << 20)
    ng = synth.simple_pcapng(items)
    for name, data in (("a.pcap", pcap), ("a.pcapng", ng)):
        path = Path(synth.write_file(tmp_path / name, data))
        with CaptureReader(path, chunk_size=1 << 16, batch_size=7, prefetch=prefetch) as reader:
            lens = [int(x) for b in reader for x in b.cols.cap_len]
        assert lens == [len(f) for f in items]


def test_prefetch_and_plain_reads_agree(tmp_path: Path) -> None:
    pkts = [synth.simple_frame(payload_len=(i * 389) % 1400, sport=i) for i in range(2000)]
    path = Path(synth.write_file(tmp_path / "a.pcap", synth.pcap_bytes(pkts)))
    results = []
    for prefetch in (True, False):
        with CaptureReader(path, chunk_size=1 << 16, prefetch=prefetch) as reader:
            results.append([s for b in reader for s in b.cols.sport.tolist()])
    assert results[0] == results[1] == list(range(2000))


def test_gzip_compressed_capture(tmp_path: Path) -> None:

    data = synth.simple_pcapng(frames(4))
    path = tmp_path / "a.pcapng.gz"
    path.write_bytes(gzip.compress(data))
    cols, reader = collect(path)
    assert reader.format == "pcapng" and cols["sport"] == [1000, 1001, 1002, 1003]
    broken = tmp_path / "b.pcap.gz"
    broken.write_bytes(gzip.compress(synth.pcap_bytes(frames(4)))[:-30])
    with pytest.raises(InputDataError, match="read error"):
        collect(broken)
