"""The daemon's control socket: line-delimited JSON over a root-only Unix stream socket.

`diffserv stat` and `ipqosconf` talk to a running `diffserv live` through this socket, so it
is the daemon's only way in besides signals. It is therefore defensive: the socket is mode
0600 (created under a umask that never lets anyone else in, even for an instant); a
directory anyone may write to without the sticky bit is refused, since another user could
swap the socket for their own; a stale socket file is removed only when nothing answers on
it, so a second daemon never steals a running one's socket. Requests are one JSON object a
line, at most ``MAX_REQUEST_BYTES`` each; garbage gets an error reply and the server carries
on; at most ``MAX_CLIENTS`` connections are served at once, each on its own thread, and an
idle one is dropped after ``CLIENT_IDLE_S``.

Requests (``op``) and their replies (always ``ok``; ``error`` when it is false):

* ``ping`` → ``pid``
* ``stat`` → ``stats`` (the ``diffserv run --stats`` document)
* ``policy`` → ``name``, ``text`` (as applied) and ``canonical`` (the ``fmt`` form)
* ``apply`` with ``text`` and ``name`` → ``swap`` (kept / fresh / removed action names);
  the text is checked here again (never trust the client), ``kind`` is ``"policy"`` when it
  is rejected
* ``stop`` → replied to first, then the daemon is asked to stop
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import msgspec

from diffserv.engine.carry import Swap
from diffserv.engine.stats import SessionStats
from diffserv.errors import DiffservError, HostSystemError, PolicyFileError
from diffserv.policy.build import check
from diffserv.policy.diagnostics import format_diagnostic
from diffserv.policy.model import Policy
from diffserv.policy.printer import format_policy

DEFAULT_SOCKET: Final = "/run/diffserv/live.sock"
SOCKET_ENV: Final = "DIFFSERV_STATS_SOCKET"  # overrides the default path (tests, packaging)
MAX_REQUEST_BYTES: Final = 4 << 20  # one request line (a policy text travels in ``apply``)
MAX_REPLY_BYTES: Final = 256 << 20  # what a client accepts as one reply line
MAX_CLIENTS: Final = 16
CLIENT_IDLE_S: Final = 10.0
CLIENT_TIMEOUT_S: Final = 30.0
DRAIN_S: Final = 2.0  # how long a refused oversized request is read on, to be discarded
DRAIN_BYTES: Final = 64 << 20
OPS: Final = ("ping", "stat", "policy", "apply", "stop")


class Controlled(Protocol):
    """What the control socket drives: the live daemon (every method thread-safe)."""

    def snapshot(self) -> SessionStats: ...

    def running_policy(self) -> tuple[Policy, str]: ...

    def replace_policy(self, policy: Policy, text: str) -> object:
        """Swap the policy atomically; may return an ``engine.carry.Swap`` (else None)."""
        ...

    def stop(self) -> None: ...


class NoDaemonError(HostSystemError):
    """Nothing answers on the control socket: no daemon is running there."""


class ControlError(DiffservError):
    """The daemon answered with an error (``kind`` says whose fault: "policy" or "request")."""

    def __init__(self, message: str, kind: str = "request") -> None:
        super().__init__(message)
        self.kind = kind


def socket_path(option: str | None = None) -> str:
    """The control socket: the option, else ``$DIFFSERV_STATS_SOCKET``, else the default."""
    return option or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


# --- the server -----------------------------------------------------------------------


def _check_directory(directory: str) -> None:
    """Refuse a directory where another user could replace the socket."""
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise HostSystemError(f"{directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise HostSystemError(f"{directory}: not a directory")
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise HostSystemError(
            f"{directory}: writable by every user and not sticky; refusing to put the "
            "control socket there"
        )
    if info.st_uid not in {0, os.geteuid()}:
        raise HostSystemError(f"{directory}: owned by uid {info.st_uid}, neither root nor us")


def _answers(path: str) -> bool:
    """Whether a server accepts connections on ``path`` (a stale socket refuses them)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


def _clear_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise HostSystemError(f"{path}: exists and is not a socket; not replacing it")
    if _answers(path):
        raise HostSystemError(f"{path}: a daemon already answers on this control socket")
    os.unlink(path)


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)


class ControlServer:
    """The listening socket and its accept thread; ``close`` stops both and unlinks the file."""

    def __init__(self, target: Controlled, path: str) -> None:
        self.target = target
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise HostSystemError(f"{directory}: {exc.strerror or exc}") from None
        _check_directory(directory)
        _clear_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _private_umask():
                listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(MAX_CLIENTS)
            listener.settimeout(0.2)  # the accept loop looks at the stop flag this often
        except OSError as exc:
            listener.close()
            raise HostSystemError(f"{path}: {exc.strerror or exc}") from None
        self._inode = os.stat(path).st_ino
        self._listener = listener
        self._closed = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.served = 0  # requests answered (garbage included): for tests and logs
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    conn.sendall(_reply_bytes({"ok": False, "error": "too many clients"}))
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        after: Callable[[], None] | None = None
        try:
            conn.settimeout(CLIENT_IDLE_S)
            for line in _lines(conn, MAX_REQUEST_BYTES):
                if line is None:
                    conn.sendall(_reply_bytes({"ok": False, "error": "request too large"}))
                    _drain(conn)
                    return
                reply, after = self.handle(line)
                self.served += 1
                conn.sendall(_reply_bytes(reply))
                if after is not None:
                    return
        except OSError:
            return
        finally:
            conn.close()
            self._slots.release()
            if after is not None:
                after()

    def handle(self, line: bytes) -> tuple[dict[str, Any], Callable[[], None] | None]:
        """The reply to one request line, and what to do once it is sent (``stop``)."""
        try:
            request = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return {"ok": False, "error": "not a JSON request"}, None
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": 'a request is a JSON object with an "op"'}, None
        op = request["op"]
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid()}, None
            if op == "stat":
                return {"ok": True, "stats": self.target.snapshot().to_json()}, None
            if op == "policy":
                return self._policy(), None
            if op == "apply":
                return self._apply(request), None
            if op == "stop":
                return {"ok": True}, self.target.stop
        except PolicyFileError as exc:
            return {"ok": False, "kind": "policy", "error": str(exc)}, None
        except DiffservError as exc:
            return {"ok": False, "error": str(exc)}, None
        return {"ok": False, "error": f"unknown op {op!r} (known: {', '.join(OPS)})"}, None

    def _policy(self) -> dict[str, Any]:
        policy, text = self.target.running_policy()
        name = policy.actions[0].location.filename if policy.actions[0].location else ""
        return {"ok": True, "name": name, "text": text, "canonical": format_policy(policy)}

    def _apply(self, request: dict[str, Any]) -> dict[str, Any]:
        text, name = request.get("text"), request.get("name", "<control>")
        if not isinstance(text, str) or not isinstance(name, str):
            return {"ok": False, "error": 'apply needs "text" (and "name") strings'}
        result = check(text, name)
        if result.policy is None:
            errors = [format_diagnostic(d) for d in result.diagnostics if d.severity == "error"]
            return {"ok": False, "kind": "policy", "error": "\n".join(errors)}
        swap = _swap_of(self.target, result.policy, text)
        return {"ok": True, "swap": msgspec.to_builtins(swap) if swap else None}

    def close(self) -> None:
        """Stop accepting, and remove the socket file if it is still ours."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _swap_of(target: Controlled, policy: Policy, text: str) -> Swap | None:
    """Replace the policy; a target that reports its swap (a Session-based one) says how."""
    result: object = target.replace_policy(policy, text)
    return result if isinstance(result, Swap) else None


def serve_control(target: Controlled, path: str | None = None) -> ControlServer:
    """Serve ``target`` on the control socket ``path`` (default: ``socket_path()``)."""
    return ControlServer(target, socket_path(path))


# --- the wire -------------------------------------------------------------------------


def _reply_bytes(reply: dict[str, Any]) -> bytes:
    return msgspec.json.encode(reply) + b"\n"


def _drain(conn: socket.socket) -> None:
    """Read and discard what the peer still sends (for a while, up to a bound) before closing.

    Closing with unread input makes the kernel reset the connection, and the peer may
    then lose the reply it has not read yet; draining first lets it see the error.
    """
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(DRAIN_S)
    deadline = time.monotonic() + DRAIN_S
    left = DRAIN_BYTES
    with contextlib.suppress(OSError):
        while left > 0 and time.monotonic() < deadline:
            chunk = conn.recv(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)


def _lines(conn: socket.socket, limit: int) -> Iterator[bytes | None]:
    """Each line the peer sends (without its newline); None once one exceeds ``limit``."""
    buffer = bytearray()
    while True:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            return
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if len(line) > limit:
                yield None
                return
            if line.strip():
                yield line
        if len(buffer) > limit:
            yield None
            return


# --- the client -----------------------------------------------------------------------


def request(
    path: str, message: dict[str, Any], *, timeout: float = CLIENT_TIMEOUT_S
) -> dict[str, Any]:
    """Send one request to the daemon on ``path``; its reply (``ok`` true).

    NoDaemonError when nothing answers there, HostSystemError for a socket we may not use,
    ControlError for an error reply.
    """
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        try:
            conn.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoDaemonError(
                f"{path}: no diffserv live daemon is running (nothing answers on its "
                "control socket)"
            ) from None
        except PermissionError:
            raise HostSystemError(
                f"{path}: permission denied (the control socket is root's only)"
            ) from None
        except OSError as exc:
            raise HostSystemError(f"{path}: {exc.strerror or exc}") from None
        try:
            conn.sendall(msgspec.json.encode(message) + b"\n")
            for line in _lines(conn, MAX_REPLY_BYTES):
                if line is None:
                    break
                return _checked_reply(path, line)
        except TimeoutError:
            raise HostSystemError(f"{path}: the daemon did not answer in {timeout:g} s") from None
        except OSError as exc:
            if exc.errno in {errno.ECONNRESET, errno.EPIPE}:
                raise HostSystemError(f"{path}: the daemon closed the connection") from None
            raise HostSystemError(f"{path}: {exc.strerror or exc}") from None
        raise HostSystemError(f"{path}: the daemon closed the connection without a reply")
    finally:
        conn.close()


def _checked_reply(path: str, line: bytes) -> dict[str, Any]:
    try:
        reply = msgspec.json.decode(line)
    except msgspec.DecodeError:
        raise HostSystemError(f"{path}: the daemon's reply is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise HostSystemError(f"{path}: the daemon's reply is not a control reply")
    if not reply["ok"]:
        raise ControlError(str(reply.get("error", "unknown error")), str(reply.get("kind", "")))
    return reply


def daemon_answers(path: str) -> bool:
    """Whether a daemon answers ``ping`` on ``path`` (no error if none does)."""
    try:
        request(path, {"op": "ping"}, timeout=2.0)
    except DiffservError:
        return False
    return True
