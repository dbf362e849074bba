"""Capture hardening: jumbograms, offload length 0, header-cut packets, PPP, link-type
messages, time stamp limits, many interfaces, and the capture fuzz targets.

Each test reproduces one finding of the capture review; tshark checks what we write
wherever it can read the packets.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from harness import FuzzTarget, check_one
from mutations import mutated
from targets_capture import TARGETS

from diffserv.capture import CaptureWriter, open_capture
from diffserv.capture.reader import CaptureReader
from diffserv.cli.main import main
from diffserv.columns import FLAG_HEADER_CUT, FLAG_LENGTH_FROM_FRAME, FLAG_MALFORMED
from diffserv.errors import InputDataError
from diffserv.packet.rewrite import apply_marks
from support import synth
from support.tools import require_tool

EF = 46 << 2


def _mark_all(src: Path, dst: Path, ds: int = EF, **kw: Any) -> CaptureReader:
    """Read ``src``, set every IP packet's DS byte to ``ds``, write ``dst``."""
    with open_capture(src, **kw) as reader, dst.open("wb") as out:
        writer = CaptureWriter(out, reader.capture_format, background=False)
        for batch in reader:
            batch.cols.new_ds[batch.cols.ip_version != 0] = ds
            apply_marks(batch)
            writer.write(batch)
        writer.close()
    return reader


def _tshark(path: Path, *fields: str) -> list[list[str]]:
    cmd = [require_tool("tshark"), "-r", str(path), "-o", "ip.check_checksum:TRUE", "-T", "fields"]
    cmd += ["-E", "separator=|"]
    for name in fields:
        cmd += ["-e", name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("|") for line in done.stdout.splitlines()]


# --- findings 1-3: jumbograms, offload length 0, header cut --------------------------------------

JUMBO = synth.ipv6(payload=synth.tcp(4000, 443, bytes(70_000)), jumbo=True, dscp=10)
TSO_V4 = synth.ipv4("10.0.0.1", "10.0.0.2", synth.tcp(1, 2, bytes(80_000)), total_length=0)
TSO_V6 = synth.ipv6(payload=synth.tcp(3, 4, bytes(80_000)), payload_length=0, dscp=12)
SMALL_V4 = synth.ipv4(payload=synth.udp(5, 6, bytes(50)), dscp=8)
SMALL_V6 = synth.ipv6(payload=synth.udp(5, 6, bytes(50)), dscp=8)


def _odd_packets() -> list[synth.Packet]:
    """Jumbogram, two offload packets, four header cuts, then an ordinary packet."""
    e = synth.ethernet
    return [
        synth.Packet(e(JUMBO)),
        synth.Packet(e(TSO_V4)),
        synth.Packet(e(TSO_V6), caplen=200),  # snap length and offload together
        synth.Packet(e(SMALL_V6), caplen=14 + 39),
        synth.Packet(e(SMALL_V6), caplen=14 + 2),
        synth.Packet(e(SMALL_V4), caplen=14 + 11),
        synth.Packet(e(SMALL_V4), caplen=14 + 2),
        synth.Packet(e(SMALL_V4)),
    ]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_jumbogram_offload_and_header_cut_are_classified_and_counted(
    tmp_path: Path, fmt: str
) -> None:
    items = _odd_packets()
    data = synth.pcap_bytes(items) if fmt == "pcap" else synth.simple_pcapng(items)
    path = Path(synth.write_file(tmp_path / f"a.{fmt}", data))
    ip_len: list[int] = []
    flags: list[int] = []
    ds: list[int] = []
    with open_capture(path, batch_size=3) as reader:
        for batch in reader:
            ip_len += batch.cols.ip_len.tolist()
            flags += batch.cols.flags.tolist()
            ds += batch.cols.ds_byte.tolist()
    assert reader.packets == 8
    assert not any(f & FLAG_MALFORMED for f in flags)
    assert (
        ip_len == [len(JUMBO), len(TSO_V4), len(TSO_V6)] + [len(SMALL_V6)] * 2 + [len(SMALL_V4)] * 3
    )
    assert [f & FLAG_LENGTH_FROM_FRAME != 0 for f in flags] == [0, 1, 1, 0, 0, 0, 0, 0]
    assert [f & FLAG_HEADER_CUT != 0 for f in flags] == [0, 0, 0, 1, 1, 1, 1, 0]
    assert ds == [40, 0, 48, 32, 32, 32, 32, 32]


@pytest.mark.tools
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tshark_reads_our_marks_on_jumbo_offload_and_cut_packets(tmp_path: Path, fmt: str) -> None:
    items = _odd_packets()
    data = synth.pcap_bytes(items) if fmt == "pcap" else synth.simple_pcapng(items)
    src = Path(synth.write_file(tmp_path / f"in.{fmt}", data))
    out = tmp_path / f"out.{fmt}"
    _mark_all(src, out, EF | 1)
    rows = _tshark(out, "ip.dsfield", "ipv6.tclass", "ip.checksum.status", "ip.len", "tcp.srcport")
    assert len(rows) == 8
    v6 = [r[1] for r in rows]
    v4 = [r[0] for r in rows]
    # jumbogram, offload IPv6 and the IPv6 cut after 39 bytes: tshark shows the new class
    assert [int(v6[i], 16) for i in (0, 2, 3)] == [EF | 1] * 3
    # offload IPv4, the IPv4 cut after 11 bytes and the whole one: new DS byte
    assert [int(v4[i], 16) for i in (1, 5, 6, 7)] == [EF | 1] * 4
    # an IPv4 checksum tshark can see is still right after the RFC 1624 update
    assert rows[1][2] in {"1", "Good"} and rows[7][2] in {"1", "Good"}
    assert rows[1][3] == str(len(TSO_V4))  # tshark takes the length from the frame too
    assert rows[0][4] == "4000"
    # the bytes of the output are the input's but for the marks (and nothing past a cut)
    before, after = src.read_bytes(), out.read_bytes()
    assert len(before) == len(after)


POLICY = """\
fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class {
		name udp
		next_action markEF
	}
	class {
		name cs1
		next_action markAF11
	}
	filter {
		name udpf
		class udp
		protocol udp
	}
	filter {
		name cs1f
		class cs1
		dsfield 0x20
		dsfield_mask 0xfc
	}
}
action {
	module dscpmk
	name markEF
	params {
		dscp_map {0-63:46}
		next_action continue
	}
}
action {
	module dscpmk
	name markAF11
	params {
		dscp_map {0-63:10}
		next_action continue
	}
}
"""


def test_run_classifies_cut_packets_on_the_ds_byte_and_reports_the_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY)
    path = synth.write_pcap(tmp_path / "in.pcap", _odd_packets())
    stats_path = tmp_path / "s.json"
    out = tmp_path / "o.pcap"
    assert main(["run", str(policy), path, "-o", str(out), "--stats", str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert (stats["truncated"], stats["header_cut"], stats["length_from_frame"]) == (5, 4, 2)
    assert stats["malformed"]["count"] == 0
    # a header-cut packet has no protocol: the UDP filter cannot match it, the DS one does
    classes = {name: c["packets"] for name, c in stats["classes"].items()}
    assert classes == {"udp": 1, "cs1": 4, "default": 3}
    # offload and jumbo packets count with their real lengths, not 40 bytes
    assert stats["classes"]["default"]["bytes"] == len(JUMBO) + len(TSO_V4) + len(TSO_V6)
    err = capsys.readouterr().err
    assert "cut by the snap length: 5 (classified), 4 of them inside the IP header" in err
    assert "IP length 0 (segmentation offload): 2, length taken from the frame" in err
    with open_capture(out) as reader:
        ds = [d for batch in reader for d in batch.cols.ds_byte.tolist()]
    assert ds == [40, 0, 48, 40, 40, 40, 40, EF]


ADDRESS_POLICY = """\
fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class {
		name narrow
		next_action continue
	}
	filter {
		name low4
		class narrow
		daddr 0.0.0.0/1
	}
	filter {
		name low6
		class narrow
		saddr ::/8
	}
}
"""


def test_header_cut_packets_never_match_address_filters(tmp_path: Path) -> None:
    """Their addresses were not captured; 0.0.0.0/1 and ::/8 would cover zeros."""
    policy = tmp_path / "p.conf"
    policy.write_text(ADDRESS_POLICY)
    e = synth.ethernet
    items = [
        synth.Packet(e(SMALL_V4), caplen=14 + 11),
        synth.Packet(e(SMALL_V6), caplen=14 + 30),
        synth.Packet(e(synth.ipv4(dst="10.0.0.1"))),
        synth.Packet(e(SMALL_V6)),
    ]
    path = synth.write_pcap(tmp_path / "in.pcap", items)
    stats_path = tmp_path / "s.json"
    out = tmp_path / "o.pcap"
    assert main(["run", str(policy), path, "-o", str(out), "--stats", str(stats_path), "-q"]) == 0
    classes = {n: c["packets"] for n, c in json.loads(stats_path.read_text())["classes"].items()}
    assert classes == {"narrow": 1, "default": 3}


def test_header_cut_ipv4_never_matches_ipv4_address_filters(tmp_path: Path) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(ADDRESS_POLICY)
    e = synth.ethernet
    items = [synth.Packet(e(SMALL_V4), caplen=14 + c) for c in (2, 11, 16, 19)]
    path = synth.write_pcap(tmp_path / "in.pcap", items)
    stats_path = tmp_path / "s.json"
    out = tmp_path / "o.pcap"
    assert main(["run", str(policy), path, "-o", str(out), "--stats", str(stats_path), "-q"]) == 0
    classes = {n: c["packets"] for n, c in json.loads(stats_path.read_text())["classes"].items()}
    assert classes == {"narrow": 0, "default": 4}


# --- finding 4: PPP and link-type messages ------------------------------------------------------


PPP_CASES = [
    (9, [synth.ppp(SMALL_V4), synth.ppp(SMALL_V6, address_control=False)]),
    (9, [synth.ppp(SMALL_V4, short_protocol=True), synth.ppp(SMALL_V6, short_protocol=True)]),
    (50, [synth.ppp(SMALL_V4), synth.cisco_hdlc(SMALL_V6)]),
    (104, [synth.cisco_hdlc(SMALL_V4), synth.cisco_hdlc(SMALL_V6)]),
    (204, [synth.ppp_with_direction(SMALL_V4), synth.ppp_with_direction(SMALL_V6)]),
]


@pytest.mark.tools
@pytest.mark.parametrize(("linktype", "frames"), PPP_CASES)
def test_ppp_captures_are_marked_as_tshark_reads_them(
    tmp_path: Path, linktype: int, frames: list[bytes]
) -> None:
    src = Path(synth.write_pcap(tmp_path / "in.pcap", frames, linktype=linktype))
    out = tmp_path / "out.pcap"
    reader = _mark_all(src, out)
    assert reader.packets == 2
    rows = _tshark(out, "ip.dsfield", "ipv6.tclass", "ip.checksum.status", "udp.srcport")
    assert int(rows[0][0], 16) == EF and rows[0][2] in {"1", "Good"}
    assert int(rows[1][1], 16) == EF
    assert [r[3] for r in rows] == ["5", "5"]


def test_ppp_in_pcapng_with_direction(tmp_path: Path) -> None:
    sec = synth.Section(
        [synth.Interface(9, name="ppp0"), synth.Interface(204, name="ppp1")],
        [
            synth.Packet(synth.ppp(SMALL_V4), interface=0),
            synth.Packet(synth.ppp_with_direction(SMALL_V6, outbound=False), interface=1),
        ],
    )
    path = synth.write_pcapng(tmp_path / "a.pcapng", sections=[sec])
    with open_capture(path) as reader:
        batch = next(iter(reader))
        assert batch.cols.ip_version.tolist() == [4, 6]
        assert batch.cols.direction.tolist() == [2, 1]
        assert [batch.interfaces[i] for i in batch.cols.ifindex] == ["ppp0", "ppp1"]
    assert reader.warnings == []


@pytest.mark.parametrize(
    ("linktype", "text"),
    [(105, "105 (IEEE 802.11)"), (127, "127 (IEEE 802.11 with radiotap header)"), (4242, "4242")],
)
def test_unsupported_pcap_link_type_is_named(tmp_path: Path, linktype: int, text: str) -> None:
    path = synth.write_pcap(tmp_path / "w.pcap", [bytes(30)], linktype=linktype)
    with pytest.raises(InputDataError) as info:
        open_capture(path)
    assert str(info.value).startswith(f"{path}: link-layer type {text} is not supported")
    assert "9 PPP" in str(info.value)  # the supported ones are listed


def test_unsupported_pcapng_interfaces_are_named_once_per_link_type(tmp_path: Path) -> None:
    sec = synth.Section(
        [synth.Interface(name="eth0"), synth.Interface(105, name="wlan0")]
        + [synth.Interface(105, name=f"wlan{i}") for i in range(1, 4)]
        + [synth.Interface(127)],
        [synth.Packet(bytes(40), interface=i) for i in range(6)],
    )
    path = synth.write_pcapng(tmp_path / "w.pcapng", sections=[sec])
    out = tmp_path / "o.pcapng"
    reader = _mark_all(Path(path), out)
    with open_capture(path) as again:
        versions = [int(v) for batch in again for v in batch.cols.ip_version]
    assert versions == [0] * 6  # no frame of an unsupported link type is taken for IP
    assert reader.warnings == [
        f"{path}: interface 'wlan0' (section 1, interface 1) has link-layer type 105 "
        "(IEEE 802.11), which is not decoded (and 3 more interfaces of that type); "
        "its packets pass through as non-IP",
        f"{path}: an unnamed interface (section 1, interface 5) has link-layer type 127 "
        "(IEEE 802.11 with radiotap header), which is not decoded; its packets pass "
        "through as non-IP",
    ]
    assert out.read_bytes() == Path(path).read_bytes()


# --- finding 5: time stamps ----------------------------------------------------------------------


def _epb(units: int, interface: int = 0) -> bytes:
    data = synth.ethernet(SMALL_V4)
    data += bytes((4 - len(data) % 4) % 4)
    body = struct.pack("<IIIII", interface, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
    body += data
    return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _pcapng_times(
    tmp_path: Path, units: list[int], tsresol: int | None = 9, tsoffset: int | None = None
) -> str:
    head = synth.pcapng_bytes(
        [synth.Section([synth.Interface(tsresol=tsresol, tsoffset=tsoffset)], [])]
    )
    return synth.write_file(tmp_path / "t.pcapng", head + b"".join(_epb(u) for u in units))


def _times(path: str) -> list[int]:
    with open_capture(path, batch_size=1) as reader:
        return [t for batch in reader for t in batch.cols.ts_ns.tolist()]


@pytest.mark.parametrize(
    ("units", "tsresol", "tsoffset"),
    [
        (5, 9, 2**62),  # if_tsoffset far beyond 2262 (was an OverflowError traceback)
        (5, 9, 9_300_000_000),
        (5, 9, -(2**63)),
        (2**63, 9, None),  # raw ns past int64 (silently wrapped to 1677 before)
        (2**64 - 1, 9, None),
        (2**64 - 1, 0x80, None),  # binary resolution 2^0: 1.8e19 seconds
        (2**64 - 1, 0, None),
        (9_223_372_037 * 10**6, 6, None),
        (0, 9, -9_223_372_037),
        (2**63 - 1, 9, 1),  # one second later than the last representable one
    ],
)
def test_time_stamps_beyond_int64_ns_stop_with_the_packet_named(
    tmp_path: Path, units: int, tsresol: int, tsoffset: int | None
) -> None:
    path = _pcapng_times(tmp_path, [1_000, units], tsresol=tsresol, tsoffset=tsoffset)
    seen: list[int] = []
    with pytest.raises(InputDataError) as info, open_capture(path, batch_size=1) as reader:
        for batch in reader:
            seen += batch.cols.number.tolist()
    message = str(info.value)
    if tsoffset is None or abs(tsoffset) < 10**9:  # the first packet is fine, not the second
        assert seen == [1] and message.startswith(f"{path}: packet 2: the time stamp")
    else:
        assert seen == [] and message.startswith(f"{path}: packet 1: the time stamp")
    assert "1677-09-22 to 2262-04-11" in message


@pytest.mark.parametrize(
    ("units", "tsresol", "tsoffset", "expect"),
    [
        (2**63 - 1, 9, None, 2**63 - 1),  # the last representable nanosecond
        (854_775_807, 9, 9_223_372_036, 2**63 - 1),
        (0, 9, -9_223_372_036, -9_223_372_036 * 10**9),
        (2**64 - 1, 19, None, 1_844_674_407),  # 10^-19 s units
        (2**64 - 1, 0x80 | 63, None, 1_999_999_999),  # 2^-63 s units
        (3 << 40, 0x80 | 40, -1, 2 * 10**9),
        (1_700_000_000_123_456, 6, 100, 1_700_000_100_123_456_000),
    ],
)
def test_time_stamps_at_the_limits_are_exact(
    tmp_path: Path, units: int, tsresol: int, tsoffset: int | None, expect: int
) -> None:
    path = _pcapng_times(tmp_path, [units], tsresol=tsresol, tsoffset=tsoffset)
    assert _times(path) == [expect]


def test_interface_with_huge_offset_but_no_packets_is_harmless(tmp_path: Path) -> None:
    sec = synth.Section(
        [synth.Interface(name="a"), synth.Interface(name="b", tsoffset=2**62)],
        [synth.Packet(synth.ethernet(SMALL_V4), ts_ns=1_000_000)],
    )
    path = synth.write_pcapng(tmp_path / "a.pcapng", sections=[sec])
    assert _times(path) == [1_000_000]


def test_classic_pcap_time_stamps_cannot_overflow(tmp_path: Path) -> None:
    last = (2**32 - 1) * 10**9 + 999_999_999
    pkts = [synth.Packet(synth.ethernet(SMALL_V4), ts_ns=last)]
    path = synth.write_pcap(tmp_path / "a.pcap", pkts, nanosecond=True)
    assert _times(path) == [last]


# --- finding 6: many interfaces, sections and options --------------------------------------------


def _timed_read(path: str, **kw: Any) -> tuple[float, CaptureReader, list[Any]]:
    start = time.perf_counter()
    batches = []
    with CaptureReader(path, **kw) as reader:
        for batch in reader:
            batches.append((batch.n, batch.interfaces))
    return time.perf_counter() - start, reader, batches


@pytest.fixture(scope="module", autouse=True)
def _warm_kernels(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Load the compiled kernels once, so the timed tests time the reader alone."""
    path = tmp_path_factory.mktemp("warm") / "w.pcapng"
    synth.write_file(path, synth.simple_pcapng([synth.ethernet(SMALL_V4)]))
    _timed_read(str(path))


def test_twenty_thousand_interfaces_read_in_well_under_a_second(tmp_path: Path) -> None:
    ifaces = [synth.Interface(name=f"if{i}") for i in range(20_000)]
    sec = synth.Section(ifaces, [synth.Packet(synth.ethernet(SMALL_V4), interface=19_999)])
    path = synth.write_pcapng(tmp_path / "many.pcapng", sections=[sec])
    elapsed, reader, _ = _timed_read(path)
    assert elapsed < 1.0, elapsed  # 33 s before
    assert reader.packets == 1
    assert len(reader.interfaces) == 20_001 and reader.interfaces[-1] == "if19999"


def test_interfaces_between_packets_and_many_sections_stay_linear(tmp_path: Path) -> None:
    frame = synth.ethernet(SMALL_V4)
    blocks: list[Any] = []
    for i in range(3000):
        blocks += [synth.Interface(name=f"if{i}"), synth.Packet(frame, interface=i + 1)]
    sections = [synth.Section([synth.Interface(name="if0")], blocks)]
    sections += [synth.Section([synth.Interface(name=f"s{i}")], [frame]) for i in range(3000)]
    path = synth.write_pcapng(tmp_path / "mixed.pcapng", sections=sections)
    elapsed, reader, batches = _timed_read(path, batch_size=1)
    assert reader.packets == 6000
    assert elapsed < 5.0, elapsed
    # a batch's interface names are one shared tuple until an interface is added
    tuples = {id(names) for _, names in batches}
    assert len(tuples) <= len({len(names) for _, names in batches})
    assert batches[-1][1][-1] == "s2999"


def test_an_interface_with_a_million_options_is_read_quickly(tmp_path: Path) -> None:
    data = synth.pcapng_bytes([synth.Section([synth.Interface()], [synth.ethernet(SMALL_V4)])])
    shb_len = int.from_bytes(data[4:8], "little")
    idb_len = int.from_bytes(data[shb_len + 4 : shb_len + 8], "little")
    options = struct.pack("<HH", 3, 0) * 1_000_000 + struct.pack("<HH8s", 2, 8, b"far-away")
    options += struct.pack("<HH", 9, 1) + b"\x09\x00\x00\x00" + struct.pack("<HH", 0, 0)
    body = data[shb_len + 8 : shb_len + idb_len - 4] + options
    idb = struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path = synth.write_file(
        tmp_path / "opts.pcapng", data[:shb_len] + idb + data[shb_len + idb_len :]
    )
    elapsed, reader, batches = _timed_read(path)
    assert elapsed < 1.0, elapsed
    assert reader.interfaces == ["", "far-away"] and batches[-1][0] == 1


@pytest.mark.parametrize("tail", [b"\x01\x00\x00\x00", b"\x01\x00\x00\x00\x20\x00", b"\x01\x00"])
@pytest.mark.parametrize("use_mmap", [False, True])
def test_file_ending_inside_an_interface_header_is_reported(
    tmp_path: Path, tail: bytes, use_mmap: bool
) -> None:
    """Found by fuzzing: 4 to 7 bytes of an IDB at the end of the file looped for ever."""
    data = synth.pcapng_bytes([synth.Section([synth.Interface()], [synth.ethernet(SMALL_V4)])])
    path = synth.write_file(tmp_path / "cut.pcapng", data + tail)
    outcome: list[BaseException | int] = []

    def read() -> None:
        try:
            with CaptureReader(path, use_mmap=use_mmap, prefetch=False) as reader:
                outcome.append(sum(batch.n for batch in reader))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert outcome, "the reader did not finish"
    assert isinstance(outcome[0], InputDataError), outcome
    assert f"byte offset {len(data)}: capture ends inside a block" in str(outcome[0])


# --- finding 7: the fuzz targets -----------------------------------------------------------------


@functools.cache
def seeds_of(name: str) -> tuple[bytes, ...]:
    return tuple(target(name).seeds())


def target(name: str) -> FuzzTarget:
    return next(t for t in TARGETS if t.name == name)


def test_targets_are_pcap_pcapng_and_decode() -> None:
    assert [t.name for t in TARGETS] == ["pcap", "pcapng", "decode"]


@pytest.mark.parametrize("name", ["pcap", "pcapng", "decode"])
def test_every_seed_runs_cleanly(name: str) -> None:
    seeds = seeds_of(name)
    assert len(seeds) >= 10
    for seed in seeds:
        assert len(seed) <= target(name).max_len
        check_one(target(name), seed)


@pytest.mark.parametrize("name", ["pcap", "pcapng", "decode"])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_mutated_seeds_fail_cleanly(name: str, data: st.DataObject) -> None:
    check_one(target(name), data.draw(mutated(seeds_of(name), target(name).max_len)))


@pytest.mark.parametrize(
    ("damage", "kept_control"),
    [
        (struct.pack("<II", 6, 0xFFFFFFF0), True),  # a packet block, impossible length
        # an IDB too short to be one: the run of control blocks it ends is not written
        (struct.pack("<III", 1, 12, 0) + struct.pack("<I", 12), False),
    ],
)
def test_damage_after_interface_blocks_keeps_them_whatever_the_batch_size(
    tmp_path: Path, damage: bytes, kept_control: bool
) -> None:
    """Found by `make fuzz`: the blocks before the damage were written only by some batch
    sizes (the section header and interfaces between the last full batch and the damage
    were dropped, or the packets before a bad IDB)."""
    frames = [synth.simple_frame(dport=80 + i) for i in range(3)]
    first = synth.pcapng_bytes([synth.Section(blocks=frames)])
    data = synth.pcapng_bytes([synth.Section(blocks=frames), synth.Section(blocks=[])]) + damage
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(data)
    outputs = set()
    for batch_size in (1, 2, 3, 4, 61):
        for use_mmap in (False, True):
            out = io.BytesIO()
            with (
                pytest.raises(InputDataError),
                CaptureReader(path, batch_size=batch_size, use_mmap=use_mmap) as reader,
            ):
                writer = CaptureWriter(out, reader.capture_format, background=False)
                try:
                    for batch in reader:
                        writer.write(batch)
                finally:
                    writer.close()
            outputs.add(out.getvalue())
    assert outputs == {data[: len(data) - len(damage)] if kept_control else first}
