"""softflowd's v5, v9 and IPFIX exports: diffserv collect stores what nfcapd + nfdump store.

softflowd runs once per version over a DSCP-mix capture and sends to a relay in the
test, which copies every datagram to both collectors on 127.0.0.1; so both decode the
very same bytes, and the comparison is flow by flow: addresses, ports, protocol,
packets, bytes and the ToS byte (nfdump's src_tos against the store's ds_in).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from diffserv.flows.store import read_store
from support import exports
from support.collecting import Collect, Nfcapd, Relay, free_udp_port, nfdump_json
from support.tools import require_tool

pytestmark = pytest.mark.tools

# softflowd's options per version, as they give correct times (never -c with -r)
VERSIONS = {
    "netflow5": ["-v", "5", "-a"],
    "netflow9": ["-v", "9", "-6", "-a"],
    "ipfix": ["-v", "10", "-6", "-A", "milli"],
}

Key = tuple[str, str, int, int, int]


def address(text: str) -> str:
    return str(ipaddress.ip_address(text))


def nfdump_flows(records: list[dict[str, Any]]) -> dict[Key, tuple[int, int, int, int, int]]:
    out = {}
    for r in records:
        src = r.get("src4_addr") or r["src6_addr"]
        dst = r.get("dst4_addr") or r["dst6_addr"]
        key = (address(src), address(dst), r["src_port"], r["dst_port"], r["proto"])
        assert key not in out
        out[key] = (r["in_packets"], r["in_bytes"], r["src_tos"], *_ms(r))
    return out


def _ms(r: dict[str, Any]) -> tuple[int, int]:
    def ms(text: str) -> int:
        moment = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
        return int(moment.timestamp() * 1000 + 0.5)

    return ms(r["first"]), ms(r["last"])


def store_flows(store: Path) -> dict[Key, tuple[int, int, int, int, int]]:
    out = {}
    for row in read_store(str(store)).to_pylist():
        key = (
            address(row["saddr"]),
            address(row["daddr"]),
            row["sport"],
            row["dport"],
            row["protocol"],
        )
        assert key not in out
        first = int(row["first_seen"].timestamp() * 1000 + 0.5)
        last = int(row["last_seen"].timestamp() * 1000 + 0.5)
        out[key] = (row["packets"], row["bytes"], row["ds_in"], first, last)
    return out


@pytest.mark.parametrize("source", list(VERSIONS))
def test_softflowd_export_is_stored_as_nfcapd_stores_it(tmp_path: Path, source: str) -> None:
    softflowd = require_tool("softflowd")
    nfcapd = require_tool("nfcapd")
    nfdump = require_tool("nfdump")
    capture = exports.dscp_mix_capture(tmp_path / "dscp_mix.pcap")
    ours_port, theirs_port = free_udp_port(), free_udp_port()
    collect = Collect(tmp_path, [ours_port], "-q")
    theirs = Nfcapd(nfcapd, tmp_path, theirs_port)
    relay = Relay([ours_port, theirs_port])
    try:
        exporter = subprocess.Popen(
            [softflowd, "-r", capture, "-n", f"127.0.0.1:{relay.port}", *VERSIONS[source]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        relay.pump(until=lambda: exporter.poll() is not None)
        assert exporter.wait(timeout=30) == 0
        assert relay.datagrams, "softflowd sent nothing"
        expected = len(exports.DSCP_MIX) - (1 if source == "netflow5" else 0)
        collect.wait_records(expected)
        status, err = collect.stop()
        assert status == 0, err
        theirs.stop()
    finally:
        relay.close()
        collect.kill()
        if theirs.proc.poll() is None:
            theirs.proc.kill()
    stats = collect.stats()["exporters"]
    (exporter_stats,) = stats.values()
    assert exporter_stats["datagrams"] == len(relay.datagrams)
    assert exporter_stats["malformed"] + exporter_stats["truncated"] == 0
    assert exporter_stats["no_template"] == 0
    assert exporter_stats["lost_records"] == 0

    ours = store_flows(collect.store)
    their_records = nfdump_json(nfdump, theirs.spool)
    theirs_flows = nfdump_flows(their_records)
    assert len(ours) == expected
    assert set(ours) == set(theirs_flows)
    for key, (packets, octets, tos, first, last) in theirs_flows.items():
        assert ours[key][:3] == (packets, octets, tos), key
        # times: IPFIX carries absolute ms; v5/v9 uptime-relative, both decoders must agree
        assert abs(ours[key][3] - first) <= 1 and abs(ours[key][4] - last) <= 1, key
    # the marks of the capture arrive: EF+ECT(1) 185, AF41 136, AF11 40, CS1 32, LE 4, CS5 160
    tos_seen = {tos for _, _, tos, _, _ in ours.values()}
    assert {185, 136, 40, 32, 4, 0, 160} <= tos_seen
    assert any(":" in key[0] for key in ours) == (source != "netflow5")


def test_relay_keeps_datagrams_whole() -> None:
    """The relay itself: what goes in comes out byte for byte, once per target."""
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sink in sinks:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(2)
    relay = Relay([s.getsockname()[1] for s in sinks])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
            payloads = [bytes([i]) * (100 + i) for i in range(5)]
            for payload in payloads:
                src.sendto(payload, ("127.0.0.1", relay.port))
            relay.pump(until=lambda: True, quiet_s=0.1)
        for sink in sinks:
            assert [sink.recv(65535) for _ in payloads] == payloads
    finally:
        relay.close()
        for sink in sinks:
            sink.close()
