"""diffserv's exports read by the real tools: nfcapd + nfdump show the record file's records,
tshark decodes every datagram of a file:// export without a warning."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffserv.cli.main import main
from diffserv.flows.export import Exporter, parse_export_url, table_batches
from diffserv.flows.reader import read_records
from diffserv.flows.schema import FlowBatch
from diffserv.records import iso_time
from support import synth
from support.collecting import Nfcapd, free_udp_port
from support.policies import account_everything
from support.tools import require_tool

POLICY = account_everything(timeout_ms=2000)

T0 = 1_767_225_600_123_456_789  # not on a millisecond: times must be cut, not rounded
DS_BYTES = [0x00, 0x28, 0x48, 0xB8, 0xB9, 0x2A, 0x88]  # BE, AF11, AF21, EF, EF+ECT(1)...


def make_capture(path: Path, *, with_ipv6: bool = True) -> None:
    """Flows of several DS bytes, IPv4 and IPv6, long enough to expire during the run."""
    rng = random.Random(12)
    packets = []
    ts = T0
    for i in range(400):
        ts += rng.randrange(1, 40_000_000) + rng.randrange(0, 1000)
        if i % 50 == 49:
            ts += 3_000_000_000  # every flow idles out: records expire during the run
        host = rng.randrange(14)
        v6 = with_ipv6 and host >= 10
        proto = "tcp" if host % 3 else "udp"
        ds = DS_BYTES[host % len(DS_BYTES)]
        frame = synth.simple_frame(
            version=6 if v6 else 4,
            proto=proto,
            src=f"2001:db8::{host}" if v6 else f"10.1.0.{host}",
            dst="2001:db8::ff" if v6 else "192.168.7.7",
            sport=40000 + host,
            dport=443 if proto == "tcp" else 53,
            dscp=ds >> 2,
            ecn=ds & 3,
            payload_len=rng.randrange(0, 1200),
        )
        packets.append(synth.Packet(frame, ts_ns=ts))
    synth.write_file(path, synth.pcap_bytes(packets, nanosecond=True))


Row = tuple[str, int, str, int, int, int, int, int, str, str]


def record_rows(path: Path, *, ipv4_only: bool = False) -> list[Row]:
    table = read_records(str(path))
    rows = []
    for i in range(table.n):
        if ipv4_only and ":" in table.saddr[i]:
            continue
        rows.append(
            (
                table.saddr[i],
                table.sport[i],
                table.daddr[i],
                table.dport[i],
                table.protocol[i],
                table.npackets[i],
                table.nbytes[i],
                table.dsfield[i],
                _ms(table.first_ns[i]),
                _ms(table.last_ns[i]),
            )
        )
    return sorted(rows)


def _ms(ns: int) -> str:
    return iso_time(ns)[:23]  # 2026-01-01T00:00:00.123


def nfdump_rows(spool: Path) -> list[Row]:
    nfdump = require_tool("nfdump")
    out = subprocess.run(
        [nfdump, "-R", str(spool), "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    records: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return sorted(
        (
            r.get("src4_addr") or r["src6_addr"],
            r["src_port"],
            r.get("dst4_addr") or r["dst6_addr"],
            r["dst_port"],
            r["proto"],
            r["in_packets"],
            r["in_bytes"],
            r["src_tos"],
            r["first"],
            r["last"],
        )
        for r in records
        if r.get("type") == "FLOW"
    )


class Collector:
    """nfcapd on a free port of 127.0.0.1, stopped with SIGTERM so that it writes its file."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_udp_port()
        self.nfcapd = Nfcapd(require_tool("nfcapd"), tmp, self.port)

    def stop(self) -> list[Row]:
        time.sleep(0.3)  # the last datagrams are in its socket buffer
        self.nfcapd.stop()
        return nfdump_rows(self.nfcapd.spool)


def run_with_export(tmp_path: Path, capture: Path, url: str, records: Path) -> int:
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    return main(
        [
            "run",
            str(policy),
            str(capture),
            "-o",
            str(tmp_path / "out.pcap"),
            "-q",
            "--flows",
            str(records),
            "--export",
            url,
        ]
    )


@pytest.mark.tools
@pytest.mark.parametrize("scheme", ["ipfix", "netflow9", "netflow5"])
def test_run_export_reaches_nfcapd_as_the_record_file_says(
    tmp_path: Path, scheme: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    records = tmp_path / "flows.jsonl"
    collector = Collector(tmp_path)
    try:
        status = run_with_export(
            tmp_path, capture, f"{scheme}://127.0.0.1:{collector.port}", records
        )
    finally:
        got = collector.stop()
    assert status == 0
    expected = record_rows(records, ipv4_only=scheme == "netflow5")
    assert len(expected) > 20  # flows expired during the run and at its end
    assert {row[7] for row in expected} >= {0x00, 0xB9, 0x48}
    assert got == expected
    warnings = capsys.readouterr().err
    if scheme == "netflow5":
        assert warnings.count("NetFlow v5 carries IPv4 only") == 1
    else:
        assert "warning" not in warnings


@pytest.mark.tools
def test_export_command_sends_a_record_file_to_nfcapd(tmp_path: Path) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    records = tmp_path / "flows.parquet"
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    out = str(tmp_path / "o.pcap")
    assert main(["run", str(policy), str(capture), "-o", out, "-q", "--flows", str(records)]) == 0
    for scheme in ("ipfix", "netflow9"):
        collector = Collector(tmp_path)
        try:
            url = f"{scheme}://127.0.0.1:{collector.port}"
            status = main(["export", str(records), "--to", url, "-q"])
        finally:
            got = collector.stop()
        assert status == 0
        assert got == record_rows(records)


def tshark_problems(tshark: str, path: Path, port: int) -> tuple[int, str]:
    """Frames tshark decoded as flow exports, and any expert warning or error it raised."""
    decode = ["-d", f"udp.port=={port},cflow"]
    frames = subprocess.run(
        [tshark, "-r", str(path), *decode, "-Y", "cflow", "-T", "fields", "-e", "frame.number"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    expert = subprocess.run(
        [tshark, "-r", str(path), *decode, "-q", "-z", "expert,warn"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    verbose = subprocess.run(
        [tshark, "-r", str(path), *decode, "-V"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    problems = [line for line in expert.splitlines() if line.strip() and "===" not in line]
    problems = [p for p in problems if not p.startswith("Expert Info") and "Errors" not in p]
    if "Malformed" in verbose:
        problems.append("Malformed")
    return len(frames), "\n".join(problems)


@pytest.mark.tools
@pytest.mark.parametrize(("query", "port"), [("", 4739), ("?format=netflow9", 2055),
                                             ("?format=netflow5", 2055)])  # fmt: skip
def test_file_export_decodes_cleanly_in_tshark(tmp_path: Path, query: str, port: int) -> None:
    tshark = require_tool("tshark")
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    exported = tmp_path / "export.pcap"
    status = run_with_export(tmp_path, capture, f"file://{exported}{query}", tmp_path / "f.jsonl")
    assert status == 0
    frames, problems = tshark_problems(tshark, exported, port)
    assert frames >= 2
    assert problems == ""


@pytest.mark.tools
@pytest.mark.parametrize("scheme", ["netflow9", "netflow5"])
def test_uptime_times_hold_for_flows_that_began_before_the_boot(
    tmp_path: Path, scheme: str
) -> None:
    """The boot is the first records' start; a later, older record is sent wrapped mod 2**32."""
    capture = tmp_path / "mix.pcap"
    make_capture(capture, with_ipv6=False)
    records = tmp_path / "flows.jsonl"
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    out = str(tmp_path / "o.pcap")
    assert main(["run", str(policy), str(capture), "-o", out, "-q", "--flows", str(records)]) == 0
    table = read_records(str(records))
    (batch,) = list(table_batches(table))
    late = np.flatnonzero(batch.columns["first_ns"] >= np.median(batch.columns["first_ns"]))
    early = np.flatnonzero(batch.columns["first_ns"] < np.median(batch.columns["first_ns"]))
    collector = Collector(tmp_path)
    try:
        exporter = Exporter(parse_export_url(f"{scheme}://127.0.0.1:{collector.port}"))
        for rows in (late, early):  # the boot is set by the late half
            part = {name: column[rows] for name, column in batch.columns.items()}
            exporter.send(FlowBatch(batch.source, "", 0, part, batch.actions))
        exporter.close()
    finally:
        got = collector.stop()
    assert got == record_rows(records)


@pytest.mark.tools
def test_export_command_sends_a_flow_store_to_nfcapd(tmp_path: Path) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    out = str(tmp_path / "o.pcap")
    records = tmp_path / "flows.jsonl"
    store = f"{tmp_path / 'store'}/"
    for flows in (str(records), store):
        assert main(["run", str(policy), str(capture), "-o", out, "-q", "--flows", flows]) == 0
    collector = Collector(tmp_path)
    try:
        status = main(["export", store, "--to", f"ipfix://127.0.0.1:{collector.port}", "-q"])
    finally:
        got = collector.stop()
    assert status == 0
    assert got == record_rows(records)
