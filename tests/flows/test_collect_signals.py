"""`diffserv collect` and its signals: SIGTERM/SIGINT store everything, SIGHUP rotates.

Also what a crash (SIGKILL) leaves, --rotate on a timer and --run-for: the real command
in a child process on 127.0.0.1, datagrams built by support.exports.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import exports
from support.collecting import (
    Collect,
    exporter_key,
    free_udp_port,
    row_key,
    store_rows,
    wait_for,
)


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


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


def test_a_store_that_cannot_be_written_ends_with_one_line(
    tmp_path: Path, sender: socket.socket
) -> None:
    port = free_udp_port()
    collect = Collect(tmp_path, [port], "--rotate", "0")
    try:
        # the hour's partition directory cannot be made: a file holds its parent's name
        (collect.store / "date=2026-01-01").write_text("in the way")
        sender.sendto(exports.IpfixExporter().message(exports.flows(10)), ("127.0.0.1", port))
        collect.wait_records(10)
        status, err = collect.stop(signal.SIGHUP)
        assert status == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "date=2026-01-01" in lines[0], err
        assert "Traceback" not in err
    finally:
        collect.kill()
