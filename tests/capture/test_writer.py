"""Writing: byte-identical pass-through, marks checked by tshark, drops, pcapng blocks kept."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffserv.capture import CaptureWriter, open_capture
from diffserv.capture.reader import CaptureReader
from diffserv.columns import ACTION_DROP
from diffserv.packet.rewrite import apply_marks
from support import synth
from support.tools import require_tool


def mixed_packets(n: int = 60) -> list[bytes]:
    out = []
    for i in range(n):
        vlans: list[synth.Vlan] = []
        if i % 3 == 1:
            vlans = [synth.Vlan(100 + i, pcp=i % 8)]
        elif i % 3 == 2:
            vlans = [synth.Vlan(10, pcp=1, tpid=synth.TPID_8021AD), synth.Vlan(20, pcp=2)]
        out.append(
            synth.simple_frame(
                version=4 if i % 2 == 0 else 6,
                proto=("tcp", "udp", "sctp", "icmp")[i % 4],
                dscp=(i * 7) % 64,
                ecn=i % 4,
                payload_len=(i * 53) % 700,
                vlans=vlans,
            )
        )
    out.insert(5, synth.ethernet(bytes(28), ethertype=0x0806))
    out.insert(9, synth.ethernet(synth.ipv4(payload=synth.tcp(), ihl=2)))
    out.append(
        synth.ethernet(synth.pppoe(synth.ipv4(payload=synth.udp(), ecn=3)), ethertype=0x8864)
    )
    out.append(
        synth.ethernet(synth.mpls(synth.ipv6(payload=synth.tcp()), [5, 6]), ethertype=0x8847)
    )
    return out


def write_through(
    src: Path,
    *,
    batch_size: int = 65536,
    mark: bool = False,
    drop_every: int = 0,
    background: bool = True,
    chunk_size: int | None = None,
) -> tuple[bytes, CaptureWriter]:
    out = io.BytesIO()
    kwargs = {} if chunk_size is None else {"chunk_size": chunk_size}
    with CaptureReader(src, batch_size=batch_size, **kwargs) as reader:
        writer = CaptureWriter(out, reader.capture_format, background=background)
        for batch in reader:
            if mark:
                batch.cols.new_ds[:] = ((batch.cols.number * 5) % 64 << 2) | (
                    batch.cols.ds_byte & 3
                )
                batch.cols.new_pcp[:] = (batch.cols.number % 8).astype(np.int8)
                apply_marks(batch)
            if drop_every:
                batch.cols.action[batch.cols.number % drop_every == 0] = ACTION_DROP
            writer.write(batch)
        writer.close()
    return out.getvalue(), writer


@pytest.fixture
def captures(tmp_path: Path) -> dict[str, Path]:
    pkts = mixed_packets()
    ng = synth.pcapng_bytes(
        [
            synth.Section(
                [synth.Interface(name="eth0", tsresol=9)],
                [synth.RawBlock(4, bytes(8))]
                + [
                    synth.Packet(p, ts_ns=10**18 + i, epb_flags=2, options=b"")
                    for i, p in enumerate(pkts[:30])
                ]
                + [synth.RawBlock(0x40000BAD, b"\x00\x00\x7e\x2bnote")],
            ),
            synth.Section(
                [synth.Interface(name="eth1")],
                [
                    synth.Packet(p, block="spb" if i % 5 == 0 else "epb")
                    for i, p in enumerate(pkts[30:])
                ]
                + [synth.RawBlock(5, bytes(16))],
                big_endian=True,
            ),
        ]
    )
    return {
        "pcap": Path(synth.write_file(tmp_path / "in.pcap", synth.pcap_bytes(pkts))),
        "pcap-ns-be": Path(
            synth.write_file(
                tmp_path / "in2.pcap", synth.pcap_bytes(pkts, nanosecond=True, big_endian=True)
            )
        ),
        "pcapng": Path(synth.write_file(tmp_path / "in.pcapng", ng)),
    }


@pytest.mark.parametrize("kind", ["pcap", "pcap-ns-be", "pcapng"])
@pytest.mark.parametrize("batch_size", [1, 7, 65536])
def test_round_trip_is_byte_identical(
    captures: dict[str, Path], kind: str, batch_size: int
) -> None:
    src = captures[kind]
    data, writer = write_through(src, batch_size=batch_size)
    assert data == src.read_bytes()
    assert writer.packets_written == 64 and writer.packets_dropped == 0
    small, _ = write_through(src, batch_size=batch_size, chunk_size=1 << 16, background=False)
    assert small == src.read_bytes()


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_marks_do_not_depend_on_batch_size(captures: dict[str, Path], kind: str) -> None:
    ref, _ = write_through(captures[kind], mark=True, drop_every=4)
    for bs in (1, 7):
        got, _ = write_through(captures[kind], batch_size=bs, mark=True, drop_every=4)
        assert got == ref


def test_dropped_packets_are_removed(captures: dict[str, Path], tmp_path: Path) -> None:
    data, writer = write_through(captures["pcap"], drop_every=3)
    assert writer.packets_dropped == 21 and writer.packets_written == 43
    out = tmp_path / "out.pcap"
    out.write_bytes(data)
    with open_capture(out) as reader:
        kept = [int(x) for b in reader for x in b.cols.sport]
    with open_capture(captures["pcap"]) as reader:
        original = [int(x) for b in reader for x in b.cols.sport]
    assert kept == [s for i, s in enumerate(original, 1) if i % 3]


def test_pcapng_keeps_blocks_and_options_when_dropping(captures: dict[str, Path]) -> None:
    data, _ = write_through(captures["pcapng"], drop_every=2)
    original = captures["pcapng"].read_bytes()
    assert b"\x00\x00\x7e\x2bnote" in data  # custom block kept
    assert data.count(b"eth1") == 1 and data.count(b"eth0") == 1
    assert len(data) < len(original)


def test_pcapng_section_length_becomes_unspecified(tmp_path: Path) -> None:
    sec = synth.Section([synth.Interface()], list(mixed_packets(4)), section_length=4242)
    src = Path(synth.write_file(tmp_path / "a.pcapng", synth.pcapng_bytes([sec])))
    data, _ = write_through(src, drop_every=2)
    assert int.from_bytes(data[16:24], "little", signed=True) == -1


def test_empty_pcap_still_gets_a_header(tmp_path: Path) -> None:
    src = Path(synth.write_file(tmp_path / "e.pcap", synth.pcap_bytes([])))
    data, _ = write_through(src)
    assert data == src.read_bytes() and len(data) == 24


class _PipeLike:
    """A non-seekable sink like stdout's buffer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def test_writes_to_a_non_seekable_sink(captures: dict[str, Path]) -> None:
    sink = _PipeLike()
    with open_capture(captures["pcapng"]) as reader:
        writer = CaptureWriter(sink, reader.capture_format)  # type: ignore[arg-type]
        for batch in reader:
            writer.write(batch)
        writer.close()
    assert b"".join(sink.chunks) == captures["pcapng"].read_bytes()


def test_write_errors_surface(captures: dict[str, Path]) -> None:
    class Broken(_PipeLike):
        def write(self, data: bytes) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with open_capture(captures["pcap"], batch_size=7) as reader:
        writer = CaptureWriter(Broken(), reader.capture_format)  # type: ignore[arg-type]
        with pytest.raises(BrokenPipeError):
            for batch in reader:
                writer.write(batch)
            writer.close()


FIELDS = [
    "frame.number",
    "ip.dsfield.dscp",
    "ip.dsfield.ecn",
    "ip.checksum.status",
    "ipv6.tclass.dscp",
    "ipv6.tclass.ecn",
    "ieee8021ad.priority",
    "vlan.priority",
    "vlan.id",
]


def tshark_fields(tshark: str, path: Path) -> list[dict[str, str]]:
    # "-Y eth" leaves out the pseudo-frames tshark shows for pcapng custom blocks
    cmd = [tshark, "-r", str(path), "-Y", "eth", "-o", "ip.check_checksum:TRUE", "-T", "fields"]
    cmd += [arg for f in FIELDS for arg in ("-e", f)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in result.stdout.splitlines()]


@pytest.mark.tools
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_tshark_confirms_marks_and_checksums(
    captures: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    tshark = require_tool("tshark")
    data, _ = write_through(captures[kind], mark=True)
    out = tmp_path / f"out.{kind}"
    out.write_bytes(data)
    before = tshark_fields(tshark, captures[kind])
    after = tshark_fields(tshark, out)
    assert len(before) == len(after) == 64
    for n, (old, new) in enumerate(zip(before, after, strict=True), 1):
        if n in (6, 10):  # ARP, and the IPv4 header with IHL 2: untouched
            assert new == old
            continue
        if old["ip.dsfield.dscp"]:
            assert int(new["ip.dsfield.dscp"]) == (n * 5) % 64
            assert new["ip.dsfield.ecn"] == old["ip.dsfield.ecn"]
            assert new["ip.checksum.status"] == "1", f"frame {n}"
        else:
            assert int(new["ipv6.tclass.dscp"]) == (n * 5) % 64
            assert new["ipv6.tclass.ecn"] == old["ipv6.tclass.ecn"]
        if old["ieee8021ad.priority"]:  # QinQ: the outer tag is marked, the inner kept
            assert int(new["ieee8021ad.priority"]) == n % 8
            assert new["vlan.priority"] == old["vlan.priority"]
        elif old["vlan.priority"]:
            assert int(new["vlan.priority"]) == n % 8
        assert new["vlan.id"] == old["vlan.id"]


def test_standard_input_to_standard_output(captures: dict[str, Path]) -> None:
    script = (
        "import sys\n"
        "from diffserv.capture import CaptureWriter, open_capture\n"
        "with open_capture('-') as r:\n"
        "    w = CaptureWriter(sys.stdout.buffer, r.capture_format)\n"
        "    for b in r:\n"
        "        w.write(b)\n"
        "    w.close()\n"
    )
    src = captures["pcapng"]
    with open(src, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-c", script], stdin=stdin, capture_output=True, check=True
        )
    assert result.stdout == src.read_bytes()


def test_pcapng_without_packets_round_trips(tmp_path: Path) -> None:
    sec = synth.Section([synth.Interface(name="eth0")], [synth.RawBlock(5, bytes(16))])
    src = Path(synth.write_pcapng(tmp_path / "e.pcapng", sections=[sec]))
    with open_capture(src) as reader:
        batches = list(reader)
        assert [b.n for b in batches] == [0]
    data, writer = write_through(src)
    assert data == src.read_bytes() and writer.packets_written == 0


@pytest.mark.tools
@pytest.mark.parametrize("linktype", [0, 101, 108, 113, 228, 229, 276])
def test_tshark_confirms_marks_on_other_link_types(tmp_path: Path, linktype: int) -> None:
    tshark = require_tool("tshark")
    versions = {228: [4], 229: [6]}.get(linktype, [4, 6])
    frames = [
        synth.link_frame(
            synth.ipv4(payload=synth.udp(), ecn=i % 4, options=bytes(4 * (i % 3)))
            if v == 4
            else synth.ipv6(payload=synth.tcp(), ecn=i % 4, extensions=[synth.hop_by_hop()]),
            linktype,
        )
        for i in range(6)
        for v in versions
    ]
    src = Path(synth.write_pcap(tmp_path / "in.pcap", frames, linktype=linktype))
    data, _ = write_through(src, mark=True)
    out = tmp_path / "out.pcap"
    out.write_bytes(data)
    cmd = [tshark, "-r", str(out), "-o", "ip.check_checksum:TRUE", "-T", "fields"]
    for field in ("ip.dsfield.dscp", "ip.dsfield.ecn", "ip.checksum.status", "ipv6.tclass"):
        cmd += ["-e", field]
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(lines) == len(frames)
    for n, line in enumerate(lines, 1):
        dscp, ecn, status, tclass = line.split("\t")
        want = (n * 5) % 64
        if dscp:
            assert (int(dscp), status) == (want, "1")
            assert int(ecn) == (n - 1) // len(versions) % 4
        else:
            assert int(tclass, 16) >> 2 == want
