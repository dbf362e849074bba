"""`diffserv collect`'s command-line contract: what is refused, with exit 2 and one line.

Everything here is refused before a datagram is read, so it runs in process; the
store directory must not appear when the command is refused.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffserv.cli.main import main
from diffserv.errors import UsageError
from diffserv.flows.listen import parse_endpoint
from support import synth
from support.collecting import free_udp_port


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
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    taken = holder.getsockname()[1]
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
    holder.close()


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


def test_a_capture_that_is_not_one_is_exit_2_and_leaves_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is no capture at all, only words\n")
    store = tmp_path / "s"
    assert main(["collect", "--from-pcap", str(bad), "--store", str(store)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "not a pcap" in line
    assert not store.exists() or not any(store.glob("**/*.parquet"))


def test_a_capture_without_exports_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a capture of ordinary traffic (no UDP to the NetFlow/IPFIX ports): exit 0, one warning
    capture = tmp_path / "web.pcap"
    frames = [synth.simple_frame(proto="tcp", dport=443) for _ in range(3)]
    synth.write_file(capture, synth.pcap_bytes(frames))
    status = main(["collect", "--from-pcap", str(capture), "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert status == 0
    assert (
        "warning: " in err and "no UDP datagram to port 2055, 4739, 9995, 9996 in 3 packets" in err
    )
