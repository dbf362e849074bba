"""The control socket: protocol, garbage, size bounds, concurrency, permissions, stale files."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from ctl_support import POLICY, CaptureTarget, private_dir, write_traffic
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.errors import HostSystemError
from diffserv.live.control import (
    MAX_REQUEST_BYTES,
    ControlError,
    ControlServer,
    NoDaemonError,
    daemon_answers,
    request,
    serve_control,
)


@pytest.fixture
def target(tmp_path: Path) -> CaptureTarget:
    policy = tmp_path / "edge.conf"
    policy.write_text(POLICY)
    return CaptureTarget(str(policy), write_traffic(tmp_path / "traffic.pcap"))


@pytest.fixture
def sock(tmp_path: Path) -> str:
    return str(private_dir(tmp_path) / "live.sock")


def _raw(path: str, data: bytes) -> list[dict[str, object]]:
    """Send raw bytes, half-close, and decode every reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(path)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return [msgspec.json.decode(line) for line in received.splitlines() if line]


def test_stat_and_policy_requests_answer_from_the_running_session(
    target: CaptureTarget, sock: str
) -> None:
    with serve_control(target, sock):
        stats = request(sock, {"op": "stat"})["stats"]
        assert stats["packets"] == 200
        assert stats["actions"]["ef"]["counters"]["npackets"] == 50
        policy = request(sock, {"op": "policy"})
        assert policy["text"] == POLICY
        assert policy["canonical"].startswith("fmt_version 1.0\n")
        assert isinstance(request(sock, {"op": "ping"})["pid"], int)


def test_the_socket_is_root_only(target: CaptureTarget, sock: str) -> None:
    with serve_control(target, sock):
        info = os.stat(sock)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.geteuid()
    assert not os.path.exists(sock)  # closing removes exactly its own socket


def test_garbage_gets_error_replies_and_the_server_carries_on(
    target: CaptureTarget, sock: str
) -> None:
    with serve_control(target, sock):
        replies = _raw(sock, b'\x00\xff garbage\n[1,2]\n{"op": 7}\n{"op": "explode"}\n\n')
        assert [r["ok"] for r in replies] == [False, False, False, False]
        assert replies[0]["error"] == "not a JSON request"
        assert "unknown op 'explode'" in str(replies[3]["error"])
        assert request(sock, {"op": "stat"})["stats"]["packets"] == 200


def test_an_oversized_request_is_refused_without_harm(target: CaptureTarget, sock: str) -> None:
    with serve_control(target, sock):
        replies = _raw(sock, b"{" + b" " * (MAX_REQUEST_BYTES + 10))
        assert replies == [{"ok": False, "error": "request too large"}]
        assert request(sock, {"op": "ping"})["ok"] is True


def test_concurrent_clients_all_get_their_answer(target: CaptureTarget, sock: str) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(5):
                results.append(request(sock, {"op": "stat"})["stats"]["packets"])
        except BaseException as exc:  # collected: a thread cannot fail the test itself
            errors.append(exc)

    with serve_control(target, sock):
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert results == [200] * 40


def test_apply_swaps_the_policy_and_rejects_a_bad_one(target: CaptureTarget, sock: str) -> None:
    changed = POLICY.replace("0-63:46", "0-63:34")
    with serve_control(target, sock):
        swap = request(sock, {"op": "apply", "text": changed, "name": "new.conf"})["swap"]
        assert swap == {"kept": ["af", "ipgpc.classify", "meter"], "fresh": ["ef"], "removed": []}
        assert request(sock, {"op": "policy"})["text"] == changed
        with pytest.raises(ControlError, match=r"bad\.conf:.*error") as info:
            request(sock, {"op": "apply", "text": "fmt_version 1.0\naction {", "name": "bad.conf"})
        assert info.value.kind == "policy"
        assert request(sock, {"op": "policy"})["text"] == changed  # unchanged by the failure


def test_stop_answers_then_stops_the_target(target: CaptureTarget, sock: str) -> None:
    with serve_control(target, sock):
        assert request(sock, {"op": "stop"}) == {"ok": True}
        assert target.stopped.wait(5)


def test_no_daemon_is_one_clear_error(sock: str) -> None:
    with pytest.raises(NoDaemonError, match="no diffserv live daemon is running"):
        request(sock, {"op": "stat"})
    assert not daemon_answers(sock)


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(target: CaptureTarget, sock: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)  # bound, never listening: what a killed daemon leaves behind
    stale.close()
    with pytest.raises(NoDaemonError):
        request(sock, {"op": "ping"})
    with serve_control(target, sock):
        assert daemon_answers(sock)
        with pytest.raises(HostSystemError, match="already answers"):
            serve_control(target, sock)
        assert daemon_answers(sock)  # the refused second server left the first one alone


def test_a_regular_file_in_the_way_is_not_removed(target: CaptureTarget, sock: str) -> None:
    Path(sock).write_text("precious")
    with pytest.raises(HostSystemError, match="not a socket"):
        serve_control(target, sock)
    assert Path(sock).read_text() == "precious"


def test_a_world_writable_directory_is_refused(target: CaptureTarget, tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(HostSystemError, match="writable by every user and not sticky"):
        serve_control(target, str(open_dir / "live.sock"))
    os.chmod(open_dir, 0o1777)  # sticky, like /tmp: others cannot remove our socket
    serve_control(target, str(open_dir / "live.sock")).close()


def test_a_non_root_user_cannot_connect(target: CaptureTarget, sock: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to try the socket as another user")
    os.chmod(os.path.dirname(sock), 0o755)
    with serve_control(target, sock):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit status
            try:
                os.setgid(65534)
                os.setuid(65534)
                request(sock, {"op": "ping"})
            except HostSystemError as exc:
                os._exit(3 if "permission denied" in str(exc) else 4)
            except BaseException:
                os._exit(5)
            os._exit(0)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    """One real server for the parser property (hypothesis reuses it for every example)."""
    base = tmp_path_factory.mktemp("parser")
    policy = base / "edge.conf"
    policy.write_text(POLICY)
    target = CaptureTarget(str(policy), write_traffic(base / "traffic.pcap", count=8))
    with serve_control(target, str(private_dir(base) / "live.sock")) as server:
        yield server


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    line=st.binary(max_size=200)
    | json_values.map(msgspec.json.encode)
    | st.dictionaries(st.sampled_from(["op", "text", "name"]), json_values, max_size=3).map(
        msgspec.json.encode
    )
)
def test_any_request_line_gets_a_reply_never_an_exception(
    served: ControlServer, line: bytes
) -> None:
    """The request parser on arbitrary input: always a well-formed reply, nothing raised."""
    reply, after = served.handle(line)
    assert isinstance(reply["ok"], bool)
    assert reply["ok"] or isinstance(reply["error"], str)
    if after is not None:  # only a well-formed stop asks for anything afterwards
        assert msgspec.json.decode(line)["op"] == "stop"


def test_a_socket_path_too_long_is_one_clear_error(target: CaptureTarget, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    with pytest.raises(HostSystemError, match=r"live\.sock: .*too long"):
        serve_control(target, str(directory / ("x" * 120) / ".." / "live.sock"))
