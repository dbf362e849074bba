"""flowacct totals per 5-tuple agree with softflowd → nfcapd → nfdump on the same capture."""

from __future__ import annotations

import random
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from diffserv.cli.main import main
from diffserv.flows.reader import read_records
from support import synth
from support.collecting import Nfcapd, free_udp_port
from support.policies import account_everything
from support.tools import require_tool

POLICY = account_everything(timeout_ms=3_600_000)

T0 = 1_767_225_600_000_000_000
Key = tuple[int, str, int, str, int]


def make_capture(path: Path) -> None:
    rng = random.Random(11)
    packets = []
    ts = T0
    for _ in range(600):
        ts += rng.randrange(1, 50_000_000)
        host = rng.randrange(12)
        v6 = host >= 9
        proto = "tcp" if host % 3 else "udp"
        frame = synth.simple_frame(
            version=6 if v6 else 4,
            proto=proto,
            src=f"2001:db8::{host}" if v6 else f"10.1.0.{host}",
            dst="2001:db8::ff" if v6 else "192.168.7.7",
            sport=40000 + host,
            dport=443 if proto == "tcp" else 53,
            dscp=rng.choice([0, 10, 46]),
            payload_len=rng.randrange(0, 1400),
        )
        packets.append(synth.Packet(frame, ts_ns=ts))
    synth.write_file(path, synth.pcap_bytes(packets, nanosecond=False))


def ours(tmp_path: Path, capture: Path) -> dict[Key, list[int]]:
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    records = tmp_path / "flows.csv"
    status = main(
        [
            "run",
            str(policy),
            str(capture),
            "-o",
            str(tmp_path / "out.pcap"),
            "-q",
            "--flows",
            str(records),
        ]
    )
    assert status == 0
    table = read_records(str(records))
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for i in range(table.n):
        key = (
            table.protocol[i],
            table.saddr[i],
            table.sport[i],
            table.daddr[i],
            table.dport[i],
        )
        totals[key][0] += table.npackets[i]
        totals[key][1] += table.nbytes[i]
    return dict(totals)


def theirs(tmp_path: Path, capture: Path) -> dict[Key, list[int]]:
    softflowd, nfcapd, nfdump = (
        require_tool("softflowd"),
        require_tool("nfcapd"),
        require_tool("nfdump"),
    )
    port = free_udp_port()
    collector = Nfcapd(nfcapd, tmp_path, port)
    try:
        long = "86400"
        timeouts = [
            f"-t{name}={long}"
            for name in ("maxlife", "general", "tcp", "udp", "tcp.fin", "tcp.rst", "icmp")
        ]
        # -r: no control socket (never add -c), exports everything at end of file
        export = ["-n", f"127.0.0.1:{port}", "-v", "10", "-6", "-A", "milli"]
        subprocess.run(
            [softflowd, "-r", str(capture), *export, *timeouts],
            check=True,
            capture_output=True,
            timeout=60,
        )
        time.sleep(1.0)
    finally:
        collector.stop()  # nfcapd writes its file on SIGTERM
    out = subprocess.run(
        [nfdump, "-R", str(collector.spool), "-q", "-N", "-o", "fmt:%pr,%sa,%sp,%da,%dp,%pkt,%byt"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 7:
            continue
        proto = {"TCP": 6, "UDP": 17}.get(cells[0].upper())
        key = (
            proto if proto is not None else int(cells[0]),
            cells[1],
            int(cells[2]),
            cells[3],
            int(cells[4]),
        )
        totals[key][0] += int(cells[5])
        totals[key][1] += int(cells[6])
    return dict(totals)


@pytest.mark.tools
def test_per_flow_totals_match_softflowd_and_nfdump(tmp_path: Path) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    expected = theirs(tmp_path, capture)
    got = ours(tmp_path, capture)
    assert len(got) == 12
    assert got == expected
    assert sum(v[0] for v in got.values()) == 600
