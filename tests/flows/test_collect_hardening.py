"""`diffserv collect` under what exporters really send: bad datagrams, floods, mixes.

The real command runs in a child process on 127.0.0.1 (or ::1) and gets datagrams
built byte by byte (support.exports, not diffserv's encoder); the tests read what a
user reads: the --stats counters, the status lines and the flow store.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import exports
from support.collecting import (
    Collect,
    bound_sockets,
    exporter_key,
    first_last_ms,
    free_udp_port,
    row_key,
    run_diffserv,
    store_rows,
)

BASE_MS = 1_767_225_600_000


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_bad_datagrams_are_counted_per_exporter_and_decoding_goes_on(
    tmp_path: Path, sender: socket.socket
) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port])
    (clean,) = bound_sockets(1)
    try:
        target = ("127.0.0.1", port)
        ipfix = exports.IpfixExporter()
        good = exports.flows(40)
        sender.sendto(ipfix.message(good[:20]), target)
        whole = exports.IpfixExporter(domain=5).message(exports.flows(10, salt=9))
        bad = [
            b"\x00\x0a" + bytes(range(200)),  # IPFIX version, nonsense after it
            whole[: len(whole) // 2],  # cut in the middle of its data set
            struct.pack("!HH", 42, 1) + bytes(40),  # no such version
            b"\x05",  # shorter than any header
            exports.ipfix_message(  # a data set whose template was never sent
                [exports.data_set(999, bytes(48))], sequence=0, domain=77, export_s=1
            ),
        ]
        for datagram in bad:
            sender.sendto(datagram, target)
        sender.sendto(ipfix.message(good[20:], template=False), target)
        clean.sendto(exports.IpfixExporter(domain=3).message(exports.flows(15, salt=1)), target)
        collect.wait_records(55)
        status, err = collect.stop()
        assert status == 0, err
        assert "Traceback" not in err
        stats = collect.stats()["exporters"]
        noisy, quiet = stats[exporter_key(sender)], stats[exporter_key(clean)]
        assert noisy["datagrams"] == 2 + len(bad)
        assert noisy["records"] == 40
        assert noisy["unknown_version"] == 1
        assert noisy["no_template"] >= 1
        assert noisy["malformed"] + noisy["truncated"] >= 3
        assert noisy["last_error"]
        assert quiet["records"] == 15
        assert quiet["malformed"] + quiet["truncated"] + quiet["unknown_version"] == 0
        # the status lines name the exporter and its errors
        assert f"{exporter_key(sender)}:" in err and "errors" in err
        rows = store_rows(collect.store)
        assert len(rows) == 55
        sent = {(f.src, f.dst, f.sport, f.dport, f.proto): f for f in good}
        for row in rows:
            flow = sent.get(row_key(row))
            if flow is not None:
                assert (row["packets"], row["bytes"], row["ds_in"]) == (
                    flow.packets,
                    flow.octets,
                    flow.tos,
                )
                assert first_last_ms(row) == (flow.first_ms, flow.last_ms)
    finally:
        clean.close()
        collect.kill()


def test_a_template_flood_stays_within_the_bounds(tmp_path: Path) -> None:
    port = free_udp_port()
    bounds = ["--max-templates-per-exporter", "100", "--max-templates", "250"]
    collect = Collect(tmp_path, [port], *bounds)
    socks = bound_sockets(4)
    try:
        target = ("127.0.0.1", port)
        honest = exports.IpfixExporter(domain=1)
        socks[3].sendto(honest.message(exports.flows(25)), target)
        collect.wait_records(25)
        fields = exports.SOFTFLOWD_LIKE_V4
        for flooder in socks[:3]:  # 3 exporters x 2000 template ids each
            for first in range(256, 256 + 2000, 50):
                tids = {tid: fields for tid in range(first, first + 50)}
                set_ = exports.ipfix_template_set(tids)
                flooder.sendto(exports.ipfix_message([set_], sequence=0, export_s=1), target)
        # the template it had before the flood still decodes its records
        socks[3].sendto(honest.message(exports.flows(25, salt=3), template=False), target)
        collect.wait_records(50)
        status, err = collect.stop()
        assert status == 0, err
        stats = collect.stats()
        per = [stats["exporters"][exporter_key(s)] for s in socks]
        assert all(p["templates"] <= 100 for p in per)
        assert sum(p["templates"] for p in per) <= 250
        assert sum(p["templates_refused"] for p in per[:3]) >= 3 * 2000 - 249
        assert "templates refused" in err
        assert per[3]["records"] == 50
        assert per[3]["templates_refused"] == 0
        assert len(store_rows(collect.store)) == 50
    finally:
        for sock in socks:
            sock.close()
        collect.kill()


def test_two_exporters_on_two_ports_at_once(tmp_path: Path) -> None:
    ports = [free_udp_port(), free_udp_port()]
    collect = Collect(tmp_path, ports)
    a, b = bound_sockets(2)
    try:
        ipfix_a, ipfix_b = exports.IpfixExporter(domain=1), exports.IpfixExporter(domain=2)
        flows_a, flows_b = exports.flows(300, salt=1), exports.flows(200, salt=2)
        for i in range(0, 300, 30):  # interleaved, each exporter to both ports
            a.sendto(ipfix_a.message(flows_a[i : i + 30]), ("127.0.0.1", ports[i // 30 % 2]))
            if i < 200:
                b.sendto(
                    ipfix_b.message(flows_b[i : i + 30]), ("127.0.0.1", ports[1 - i // 30 % 2])
                )
        collect.wait_records(500)
        status, err = collect.stop()
        assert status == 0, err
        stats = collect.stats()
        assert stats["exporters"][exporter_key(a)]["records"] == 300
        assert stats["exporters"][exporter_key(b)]["records"] == 200
        assert all(s["lost_records"] == 0 for s in stats["exporters"].values())
        assert [s["listen"] for s in stats["sockets"]] == [f"udp://127.0.0.1:{p}" for p in ports]
        assert all(s["receive_buffer"] >= 1 << 20 for s in stats["sockets"])
        rows = store_rows(collect.store)
        by_domain: dict[int, int] = {}
        for row in rows:
            by_domain[row["domain"]] = by_domain.get(row["domain"], 0) + 1
        assert by_domain == {1: 300, 2: 200}
    finally:
        a.close()
        b.close()
        collect.kill()


def mixed_versions(socks: list[socket.socket]) -> list[tuple[bytes, socket.socket, str, int]]:
    """v5, v9 and IPFIX datagrams from three exporters: (payload, sender, source, flows)."""
    boot = BASE_MS - 3_600_000
    v5, v9, ipfix = (
        exports.V5Exporter(boot_ms=boot, engine=(1, 2)),
        exports.V9Exporter(source_id=9, boot_ms=boot),
        exports.IpfixExporter(domain=10),
    )
    out = []
    for i in range(4):
        out.append((v5.packet(exports.flows(30, salt=50 + i)), socks[0], "netflow5", 30))
        out.append((v9.packet(exports.flows(25, salt=60 + i)), socks[1], "netflow9", 25))
        out.append((ipfix.message(exports.flows(20, salt=70 + i)), socks[2], "ipfix", 20))
    return out


def test_v5_v9_and_ipfix_on_the_same_port(tmp_path: Path) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port])
    socks = bound_sockets(3)
    try:
        datagrams = mixed_versions(socks)
        for payload, sock, _, _ in datagrams:
            sock.sendto(payload, ("127.0.0.1", port))
        collect.wait_records(300)
        status, err = collect.stop()
        assert status == 0, err
        rows = store_rows(collect.store)
        by_source: dict[str, int] = {}
        for row in rows:
            by_source[row["source"]] = by_source.get(row["source"], 0) + 1
        assert by_source == {"netflow5": 120, "netflow9": 100, "ipfix": 80}
        expected = {}
        for i in range(4):
            for salt, n in ((50 + i, 30), (60 + i, 25), (70 + i, 20)):
                for f in exports.flows(n, salt=salt):
                    expected[(f.src, f.dst, f.sport, f.dport, f.proto)] = f
        for row in rows:
            f = expected[row_key(row)]
            assert (row["packets"], row["bytes"], row["ds_in"], row["dscp_in"], row["ecn_in"]) == (
                f.packets,
                f.octets,
                f.tos,
                f.tos >> 2,
                f.tos & 3,
            )
            assert first_last_ms(row) == (f.first_ms, f.last_ms)
        domains = {row["source"]: row["domain"] for row in rows}
        assert domains == {"netflow5": 1 << 8 | 2, "netflow9": 9, "ipfix": 10}
        stats = collect.stats()["exporters"]
        assert all(stats[exporter_key(s)]["lost_records"] == 0 for s in socks)
    finally:
        for sock in socks:
            sock.close()
        collect.kill()


def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(sorted(row.items(), key=lambda kv: kv[0])) for row in rows)


def test_from_pcap_gives_the_same_store_as_live_reception(tmp_path: Path) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], name="live")
    socks = bound_sockets(3)
    try:
        datagrams = mixed_versions(socks)
        captured = []
        for n, (payload, sock, _, _) in enumerate(datagrams):
            sock.sendto(payload, ("127.0.0.1", port))
            captured.append((payload, sock.getsockname(), 1_767_225_700_000_000_000 + n * 1000))
        collect.wait_records(300)
        status, err = collect.stop()
        assert status == 0, err
    finally:
        for sock in socks:
            sock.close()
        collect.kill()
    capture = exports.udp_frames_pcap(
        tmp_path / "exports.pcap", captured, collector=("127.0.0.1", port)
    )
    replayed = tmp_path / "replayed"
    stats_file = tmp_path / "replayed.json"
    argv = ["collect", "--from-pcap", capture, "--listen", f"udp://127.0.0.1:{port}"]
    done = run_diffserv([*argv, "--store", str(replayed), "--stats", str(stats_file)])
    assert done.returncode == 0, done.stderr
    assert "300 records" in done.stderr
    live_rows, replayed_rows = store_rows(collect.store), store_rows(replayed)
    assert len(replayed_rows) == 300
    assert comparable(replayed_rows) == comparable(live_rows)
    # only datagrams to the given ports are decoded
    other = run_diffserv(
        [
            "collect",
            "--from-pcap",
            capture,
            "--listen",
            "udp://127.0.0.1:9",
            "--store",
            str(tmp_path / "o"),
        ]
    )
    assert other.returncode == 0, other.stderr
    assert "0 records" in other.stderr


def test_ipv6_listen(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    collect = Collect(tmp_path, [port], host="::1")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
            sock.sendto(exports.IpfixExporter().message(exports.flows(9)), ("::1", port))
            key = f"::1:{sock.getsockname()[1]}"
        collect.wait_records(9)
        status, err = collect.stop()
        assert status == 0, err
        stats = collect.stats()
        assert stats["exporters"][key]["records"] == 9
        assert stats["sockets"][0]["listen"] == f"udp://[::1]:{port}"
        rows = store_rows(collect.store)
        assert len(rows) == 9 and {r["exporter"] for r in rows} == {"::1"}
    finally:
        collect.kill()
