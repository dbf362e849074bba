"""Real exports: softflowd reads a capture and exports v5 / v9 / IPFIX to a socket of ours;
the decoder must give back, flow by flow, what the capture holds."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from diffserv.flows.schema import FlowBatch
from diffserv.flows.wire.decode import Decoder
from diffserv.records import format_addresses
from support import synth
from support.tools import require_tool

T0_NS = 1_767_225_600_000_000_000
LONG = "86400"
TIMEOUTS = [
    f"-t{name}={LONG}"
    for name in ("maxlife", "general", "tcp", "udp", "tcp.fin", "tcp.rst", "icmp")
]
# (version, src, proto, sport, dscp, ecn): one flow each towards a fixed destination
FLOWS = [
    (4, "10.1.0.1", "udp", 5004, 46, 1),  # EF with ECT(1): ToS 185
    (4, "10.1.0.2", "tcp", 40002, 34, 0),  # AF41: 136
    (4, "10.1.0.3", "udp", 40003, 10, 2),  # AF11 with ECT(0): 42
    (4, "10.1.0.4", "tcp", 40004, 0, 0),
    (4, "10.1.0.5", "udp", 40005, 8, 3),  # CS1 with CE: 35
    (6, "2001:db8::5", "udp", 40006, 18, 0),
]
Key = tuple[str, str, int, int, int]


class Expected:
    """What the capture says about one flow."""

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0
        self.tos = 0
        self.first_ns = 0
        self.last_ns = 0


def make_capture(path: Path) -> dict[Key, Expected]:
    rng = random.Random(5)
    expected: dict[Key, Expected] = defaultdict(Expected)
    packets = []
    ts = T0_NS
    for _ in range(300):
        ts += rng.randrange(1, 20_000) * 1000  # the pcap holds microseconds
        version, src, proto, sport, dscp, ecn = rng.choice(FLOWS)
        dst = "2001:db8::ff" if version == 6 else "192.168.7.7"
        dport = 443 if proto == "tcp" else 53
        frame = synth.simple_frame(
            version=version,
            proto=proto,
            src=src,
            dst=dst,
            sport=sport,
            dport=dport,
            dscp=dscp,
            ecn=ecn,
            payload_len=rng.randrange(0, 1200),
        )
        packets.append(synth.Packet(frame, ts_ns=ts))
        ip = frame[14:]
        length = struct.unpack_from("!H", ip, 2)[0] if version == 4 else len(ip)
        flow = expected[(src, dst, sport, dport, 6 if proto == "tcp" else 17)]
        if not flow.packets:
            flow.first_ns = ts
        flow.packets += 1
        flow.octets += length
        flow.tos = dscp << 2 | ecn
        flow.last_ns = ts
    synth.write_file(path, synth.pcap_bytes(packets, nanosecond=False))
    return dict(expected)


def export(capture: Path, args: list[str]) -> list[tuple[bytes, tuple[str, int]]]:
    """Run softflowd over ``capture`` into a UDP socket of ours; the datagrams received."""
    softflowd = require_tool("softflowd")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        port = sock.getsockname()[1]
        # -r: no control socket, everything exported at the end of the file (never add -c)
        subprocess.run(
            [softflowd, "-r", str(capture), "-n", f"127.0.0.1:{port}", *args, *TIMEOUTS],
            check=True,
            capture_output=True,
            timeout=60,
        )
        sock.settimeout(1.0)
        received = []
        try:
            while True:
                data, peer = sock.recvfrom(65535)
                received.append((data, (peer[0], peer[1])))
        except TimeoutError:
            pass
    return received


def flows_of(batches: list[FlowBatch]) -> dict[Key, dict[str, int]]:
    out: dict[Key, dict[str, int]] = {}
    for batch in batches:
        c = batch.columns
        saddr = format_addresses(c["saddr_hi"], c["saddr_lo"])
        daddr = format_addresses(c["daddr_hi"], c["daddr_lo"])
        for i in range(batch.n):
            key = (
                saddr[i],
                daddr[i],
                int(c["sport"][i]),
                int(c["dport"][i]),
                int(c["protocol"][i]),
            )
            assert key not in out, key
            out[key] = {name: int(c[name][i]) for name in c}
    return out


@pytest.mark.tools
@pytest.mark.parametrize(
    ("version", "args"),
    [
        ("ipfix", ["-v", "10", "-6", "-A", "milli"]),
        ("ipfix", ["-v", "10", "-6", "-A", "micro"]),
        ("ipfix", ["-v", "10", "-6", "-A", "nano"]),
        ("netflow9", ["-v", "9", "-6", "-a"]),
        ("netflow5", ["-v", "5", "-a"]),
    ],
)
def test_softflowd_export_decodes_to_the_capture(
    tmp_path: Path, version: str, args: list[str]
) -> None:
    capture = tmp_path / "mix.pcap"
    expected = make_capture(capture)
    datagrams = export(capture, args)
    assert datagrams
    decoder = Decoder()
    for data, peer in datagrams:
        decoder.feed(data, peer, 0)
    batches = decoder.flush()
    assert {b.source for b in batches} == {version}
    got = flows_of(batches)
    if version == "netflow5":  # v5 carries IPv4 only
        expected = {k: v for k, v in expected.items() if ":" not in k[0]}
    assert set(got) == set(expected)
    for key, want in expected.items():
        flow = got[key]
        assert (flow["packets"], flow["bytes"]) == (want.packets, want.octets), key
        v6 = ":" in key[0]
        # softflowd 1.1.0 exports ToS 0 for IPv6 flows
        assert flow["ds_in"] == (0 if v6 else want.tos), key
        assert flow["ip_version"] == (6 if v6 else 4)
        assert flow["sampling"] == 1  # v9/IPFIX: from softflowd's options record
        if "-A" in args:  # absolute times: the capture's, to the exported precision
            unit = {"milli": 1_000_000, "micro": 1000, "nano": 1000}[args[-1]]
            assert abs(flow["first_ns"] - want.first_ns) < unit, key
            assert abs(flow["last_ns"] - want.last_ns) < unit, key
        else:  # uptime-relative: within the second the v5/v9 header rounds to
            assert abs(flow["first_ns"] - want.first_ns) < 1_000_000_000, key
            assert flow["last_ns"] - flow["first_ns"] >= 0
    stats = decoder.stats_total()
    assert stats.records == len(expected)
    assert (stats.malformed, stats.truncated, stats.no_template, stats.lost_records) == (0, 0, 0, 0)


@pytest.mark.tools
@pytest.mark.parametrize("args", [["-v", "10", "-A", "milli"], ["-v", "9", "-a"]])
def test_softflowd_sampling_rate_comes_from_its_options(tmp_path: Path, args: list[str]) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    decoder = Decoder()
    for data, peer in export(capture, [*args, "-s", "4"]):
        decoder.feed(data, peer, 0)
    batches = decoder.flush()
    assert batches
    for batch in batches:
        assert {int(s) for s in batch.columns["sampling"]} == {4}
    assert decoder.stats_total().options_records >= 1
