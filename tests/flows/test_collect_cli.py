"""`diffserv collect` as a user runs it: its command-line contract and its hardening.

Every test here runs the real command in a child process on 127.0.0.1 (or in process
for the exits that happen before any socket is read), sends datagrams built byte by
byte (support.exports, not diffserv's encoder) and reads what the user reads: the exit
status and its one line, the --stats file, the flow store.
"""

from __future__ import annotations

import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffserv.cli.main import main
from diffserv.errors import UsageError
from diffserv.flows.listen import parse_endpoint
from diffserv.flows.store import read_store
from support import exports
from support.collecting import Collect, free_udp_port, run_diffserv, wait_for

BASE_MS = 1_767_225_600_000


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def bound_sockets(n: int) -> list[socket.socket]:
    """Sender sockets bound to 127.0.0.1 (so that their exporter key is known before sending)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    return socks


def exporter_key(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def store_rows(store: Path) -> list[dict[str, Any]]:
    if not any(store.glob("**/*.parquet")):
        return []
    rows: list[dict[str, Any]] = read_store(str(store)).to_pylist()
    return rows


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["saddr"], row["daddr"], row["sport"], row["dport"], row["protocol"])


def first_last_ms(row: dict[str, Any]) -> tuple[int, int]:
    return (
        int(row["first_seen"].timestamp() * 1000 + 0.5),
        int(row["last_seen"].timestamp() * 1000 + 0.5),
    )


# ------------------------------------------------------------------- the contract


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("tcp://127.0.0.1:4739", "want udp://ADDR:PORT"),
        ("127.0.0.1:4739", "want udp://ADDR:PORT"),
        ("udp://localhost:4739", "not an IP address"),
        ("udp://127.0.0.1:0", "port must be 1..65535"),
        ("udp://127.0.0.1:70000", "port must be 1..65535"),
        ("udp://127.0.0.1:", "port must be 1..65535"),
        ("udp://[::1:4739", "want udp://[IPV6]:PORT"),
    ],
)
def test_a_bad_listen_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listen: str, expected: str
) -> None:
    status = main(["collect", "--listen", listen, "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert status == 2
    assert expected in one_error_line(err)
    assert listen in err
    assert not (tmp_path / "s").exists()


def test_no_listen_and_no_capture_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collect", "--store", str(tmp_path / "s")]) == 2
    assert "--listen" in one_error_line(capsys.readouterr().err)


def test_a_port_in_use_is_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sender: socket.socket
) -> None:
    taken = sender.getsockname()[1]
    free = free_udp_port()
    store = tmp_path / "s"
    argv = ["collect", "--listen", f"udp://127.0.0.1:{free}", "--listen"]
    status = main([*argv, f"udp://127.0.0.1:{taken}", "--store", str(store)])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert f"udp://127.0.0.1:{taken}" in line and "in use" in line
    assert not store.exists()
    # the socket opened before the refusal was closed again
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", free))


def test_the_same_listen_twice_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listen = f"udp://127.0.0.1:{free_udp_port()}"
    status = main(["collect", "--listen", listen, "--listen", listen, "--store", str(tmp_path)])
    assert status == 2
    assert "given twice" in one_error_line(capsys.readouterr().err)


def test_a_missing_capture_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pcap"
    status = main(["collect", "--from-pcap", str(missing), "--store", str(tmp_path / "s")])
    line = one_error_line(capsys.readouterr().err)
    assert status == 2
    assert str(missing) in line and "no such file" in line
    assert not (tmp_path / "s").exists()


def test_a_stats_file_in_a_missing_directory_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = tmp_path / "no" / "stats.json"
    argv = ["collect", "--listen", "udp://127.0.0.1:4739", "--store", str(tmp_path / "s")]
    assert main([*argv, "--stats", str(stats)]) == 2
    assert "no such directory" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("option", ["--rotate", "--status-interval", "--run-for"])
def test_a_bad_number_of_seconds_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    argv = ["collect", "--listen", "udp://127.0.0.1:4739", "--store", str(tmp_path)]
    assert main([*argv, option, "soon"]) == 2
    assert "not a number of seconds" in one_error_line(capsys.readouterr().err)


@given(st.text(max_size=40))
def test_parse_endpoint_takes_or_refuses_any_text(text: str) -> None:
    try:
        endpoint = parse_endpoint(text)
    except UsageError as exc:
        assert str(exc).startswith(f"--listen {text}:")
    else:
        assert 0 < endpoint.port < 65536
        assert parse_endpoint(str(endpoint)) == endpoint


# ------------------------------------------------------------------- hardening


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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stores_everything_received(
    tmp_path: Path, sender: socket.socket, signum: int
) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--rotate", "0", "-q")
    try:
        ipfix = exports.IpfixExporter()
        flows = exports.flows(6000)
        for i in range(0, len(flows), 30):
            sender.sendto(
                ipfix.message(flows[i : i + 30], template=i % 900 == 0), ("127.0.0.1", port)
            )
        # no waiting: what sits in the socket's queue at the signal was received too
        status, err = collect.stop(signum)
        assert status == 0, err
        assert collect.stats()["total"]["records"] == 6000
        assert collect.stats()["records_stored"] == 6000
        rows = store_rows(collect.store)
        assert len(rows) == 6000
        assert len({row_key(r) for r in rows}) == 6000
    finally:
        collect.kill()


def test_sighup_closes_the_current_files_and_collection_goes_on(
    tmp_path: Path, sender: socket.socket
) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--rotate", "0")
    try:
        ipfix = exports.IpfixExporter()
        sender.sendto(ipfix.message(exports.flows(30)), ("127.0.0.1", port))
        collect.wait_records(30)
        assert not list(collect.store.glob("**/*.parquet"))  # buffered, not yet written
        collect.send(signal.SIGHUP)
        wait_for("a file after SIGHUP", lambda: bool(list(collect.store.glob("**/*.parquet"))))
        assert len(store_rows(collect.store)) == 30
        first_files = set(collect.store.glob("**/*.parquet"))
        sender.sendto(ipfix.message(exports.flows(20, salt=4)), ("127.0.0.1", port))
        collect.wait_records(50)
        assert collect.proc.poll() is None
        status, err = collect.stop()
        assert status == 0, err
        files = set(collect.store.glob("**/*.parquet"))
        assert first_files < files
        assert len(store_rows(collect.store)) == 50
        assert collect.stats()["exporters"][exporter_key(sender)]["lost_records"] == 0
    finally:
        collect.kill()


def test_a_crash_loses_only_the_records_since_the_last_rotation(
    tmp_path: Path, sender: socket.socket
) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--rotate", "0")
    try:
        ipfix = exports.IpfixExporter()
        sender.sendto(ipfix.message(exports.flows(30)), ("127.0.0.1", port))
        collect.wait_records(30)
        collect.send(signal.SIGHUP)
        wait_for("the rotated file", lambda: bool(list(collect.store.glob("**/*.parquet"))))
        sender.sendto(ipfix.message(exports.flows(20, salt=4)), ("127.0.0.1", port))
        collect.wait_records(50)
        collect.send(signal.SIGKILL)
        collect.proc.communicate(timeout=30)
        rows = store_rows(collect.store)  # readable: no half file is visible
        assert len(rows) == 30
        assert {row_key(r) for r in rows} == {
            (f.src, f.dst, f.sport, f.dport, f.proto) for f in exports.flows(30)
        }
    finally:
        collect.kill()


def test_rotate_closes_files_on_a_timer(tmp_path: Path, sender: socket.socket) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--rotate", "0.3")
    try:
        sender.sendto(exports.IpfixExporter().message(exports.flows(12)), ("127.0.0.1", port))
        wait_for("a file by --rotate", lambda: bool(list(collect.store.glob("**/*.parquet"))))
        assert len(store_rows(collect.store)) == 12
    finally:
        collect.stop()


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


def test_a_store_that_cannot_be_made_is_one_line_and_frees_the_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    port = free_udp_port()
    argv = ["collect", "--listen", f"udp://127.0.0.1:{port}", "--store", str(not_a_dir / "s")]
    assert main(argv) == 2
    assert str(not_a_dir) in one_error_line(capsys.readouterr().err)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))


def test_run_for_stops_by_itself_and_stores_what_came(tmp_path: Path) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--run-for", "1")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(exports.IpfixExporter().message(exports.flows(7)), ("127.0.0.1", port))
        _, err = collect.proc.communicate(timeout=30)
        assert collect.proc.returncode == 0, err
        assert "run time over" in err and "7 records" in err
        assert collect.stats()["state"] == "run time over"
        assert len(store_rows(collect.store)) == 7
    finally:
        collect.kill()


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
