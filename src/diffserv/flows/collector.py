"""The collector's loop: UDP sockets (or a capture of exports) → decoder → flow store.

Everything the collector decides about bytes lives in the sans-I/O decoder; this shell
only moves datagrams. It drains every ready socket (up to ``DRAIN_PER_WAKEUP``
datagrams a wake-up), feeds the decoder, and hands the decoded columns to the store
once a batch is full or ``FLUSH_INTERVAL_NS`` has passed, so the per-record work is
vectorised over many datagrams. Signals only set flags (the loop wakes through the
signal wake-up fd): SIGTERM and SIGINT stop after a final drain and flush, SIGHUP
rotates the store's files. Memory is bounded by the batch limits here, the template
bounds of the decoder and the store's row buffer.
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Protocol

import msgspec

from diffserv.flows.listen import Endpoint, close_sockets, kernel_drops, receive_buffer
from diffserv.flows.schema import FlowBatch
from diffserv.flows.wire.decode import Decoder, ExporterStats

DRAIN_PER_WAKEUP: Final = 512  # datagrams read from one socket before the others get a turn
BATCH_DATAGRAMS: Final = 2048  # decoded and stored together
BATCH_BYTES: Final = 16 * 1024 * 1024
FLUSH_INTERVAL_NS: Final = 200_000_000  # a quiet exporter's records reach the store this soon
# At a stop the sockets are read dry before the last flush (what the kernel holds was
# received too), but never for longer than this: a sender that does not stop must not
# keep a stopping collector alive.
FINAL_DRAIN_NS: Final = 2_000_000_000
_MAX_DATAGRAM: Final = 65535


class Store(Protocol):
    """What the collector needs of the flow store."""

    def add(self, batch: FlowBatch) -> None: ...

    def rotate(self) -> list[str]: ...

    def close(self) -> list[str]: ...

    @property
    def files_written(self) -> int: ...


Datagrams = Iterable[tuple[bytes, tuple[str, int], int]]


class Collector:
    """One decoder and one store, fed from sockets (:meth:`serve`) or a capture (:meth:`replay`).

    The sockets are opened by the caller (:func:`~diffserv.flows.listen.open_sockets`)
    before the store, so that a port in use is refused before anything is written.
    """

    def __init__(
        self,
        store: Store,
        decoder: Decoder | None = None,
        *,
        status: Callable[[str], None] | None = None,
        status_interval_s: float | None = 10.0,
        rotate_interval_s: float | None = None,
        publish_stats: Callable[[dict[str, Any]], None] | None = None,
        sockets: Sequence[tuple[Endpoint, socket.socket]] = (),
    ) -> None:
        self.store = store
        self.decoder = decoder or Decoder()
        self._status = status
        self._status_interval_ns = _interval_ns(status_interval_s)
        self._rotate_interval_ns = _interval_ns(rotate_interval_s)
        self._publish_stats = publish_stats
        self._pending_datagrams = 0
        self._pending_bytes = 0
        self.records_stored = 0
        self.sockets = list(sockets)
        self.started_ns = time.time_ns()
        self.state = "starting"

    # -- the two sources -------------------------------------------------------------

    def serve(self, *, run_for_s: float | None = None) -> str:
        """Receive on the sockets until SIGTERM/SIGINT (or ``run_for_s``).

        Returns why it stopped; the store is closed and the last status reported.
        """
        selector = selectors.DefaultSelector()
        try:
            for _, sock in self.sockets:
                selector.register(sock, selectors.EVENT_READ)
            with _signal_flags() as flags:
                selector.register(flags.wakeup, selectors.EVENT_READ)
                self.state = "receiving"
                if self._publish_stats:  # a supervisor can see from here on that it listens
                    self._publish_stats(self.stats())
                return self._loop(selector, flags, run_for_s)
        finally:
            selector.close()
            close_sockets(self.sockets)

    def replay(self, datagrams: Datagrams) -> None:
        """Decode captured exports (payload, exporter, capture time) through the same path."""
        self.state = "replaying"
        for payload, exporter, arrival_ns in datagrams:
            self._take(payload, exporter, arrival_ns)
        self._finish("capture read")

    # -- the loop ----------------------------------------------------------------------

    def _loop(
        self, selector: selectors.BaseSelector, flags: _Flags, run_for_s: float | None
    ) -> str:
        now = time.monotonic_ns()
        deadline = now + int(run_for_s * 1e9) if run_for_s is not None else None
        next_flush = now + FLUSH_INTERVAL_NS
        next_status = now + self._status_interval_ns if self._status_interval_ns else None
        next_rotate = now + self._rotate_interval_ns if self._rotate_interval_ns else None
        view = memoryview(bytearray(_MAX_DATAGRAM))
        while True:
            wake = min(t for t in (next_flush, deadline, next_status, next_rotate) if t is not None)
            timeout_ns = max(wake - time.monotonic_ns(), 0)
            for key, _ in selector.select(timeout_ns / 1e9):
                if key.fileobj is flags.wakeup:
                    flags.drain()
                    continue
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                self._drain(sock, view, DRAIN_PER_WAKEUP)
            if flags.stop is not None:
                self._drain_all(view)
                why = f"stopped by {signal.Signals(flags.stop).name}"
                self._finish(why)
                return why
            now = time.monotonic_ns()
            if now >= next_flush:  # a full batch was stored as it filled (_take)
                self.flush()
                next_flush = now + FLUSH_INTERVAL_NS
            if flags.rotate or (next_rotate is not None and now >= next_rotate):
                flags.rotate = False
                self.flush()
                self.store.rotate()
                if next_rotate is not None:
                    next_rotate = now + self._rotate_interval_ns
            if next_status is not None and now >= next_status:
                self.report()
                next_status = now + self._status_interval_ns
            if deadline is not None and now >= deadline:
                self._drain_all(view)
                self._finish("run time over")
                return "run time over"

    def _drain(self, sock: socket.socket, view: memoryview, most: int) -> int:
        """Read up to ``most`` datagrams that are waiting; how many were read."""
        arrival_ns = time.time_ns()  # one clock read per wake-up: the datagrams arrived together
        take = self._take
        receive = sock.recvfrom_into
        v4 = sock.family == socket.AF_INET  # its peers are (address, port) already
        received = 0
        for _ in range(most):
            try:
                size, peer = receive(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ECONNREFUSED reported for an earlier send: not ours
                continue
            take(view[:size].tobytes(), peer if v4 else (peer[0], peer[1]), arrival_ns)
            received += 1
        return received

    def _drain_all(self, view: memoryview) -> None:
        """Read every socket dry (bounded in time): the kernel's queue was received too."""
        until = time.monotonic_ns() + FINAL_DRAIN_NS
        busy = True
        while busy and time.monotonic_ns() < until:
            busy = False
            for _, sock in self.sockets:
                if self._drain(sock, view, DRAIN_PER_WAKEUP):
                    busy = True

    def _take(self, payload: bytes, exporter: tuple[str, int], arrival_ns: int) -> None:
        """Feed one datagram to the decoder; decode and store once a batch is full."""
        self.decoder.feed(payload, exporter, arrival_ns)
        self._pending_datagrams += 1
        self._pending_bytes += len(payload)
        if self._pending_datagrams >= BATCH_DATAGRAMS or self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Decode what was fed and give it to the store."""
        if not self._pending_datagrams:
            return
        self._pending_datagrams = self._pending_bytes = 0
        for batch in self.decoder.flush():
            if batch.n:
                self.store.add(batch)
                self.records_stored += batch.n

    def _finish(self, why: str) -> None:
        self.flush()
        self.store.close()
        self.state = why
        self.report()

    # -- what it tells -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Every counter, as the `--stats` file holds them."""
        sockets = [
            {
                "listen": str(endpoint),
                "receive_buffer": receive_buffer(sock),
                "kernel_drops": kernel_drops(sock),
            }
            for endpoint, sock in self.sockets
            if sock.fileno() >= 0
        ]
        return {
            "state": self.state,
            "started_ns": self.started_ns,
            "updated_ns": time.time_ns(),
            "exporters": {
                key: msgspec.structs.asdict(value) for key, value in self.decoder.stats.items()
            },
            "total": msgspec.structs.asdict(self.decoder.stats_total()),
            "exporters_forgotten": self.decoder.exporters_forgotten,
            "records_stored": self.records_stored,
            "files_written": self.store.files_written,
            "sockets": sockets,
        }

    def report(self) -> None:
        if self._status is not None:
            for key, value in self.decoder.stats.items():
                self._status(status_line(key, value))
        if self._publish_stats:
            self._publish_stats(self.stats())


def _interval_ns(seconds: float | None) -> int:
    """An interval option in ns; 0 (never) for None, 0 and infinity."""
    if not seconds or seconds == float("inf"):
        return 0
    return max(int(seconds * 1e9), 1)


def status_line(exporter: str, stats: ExporterStats) -> str:
    """One line per exporter: what arrived, what was kept, what went wrong."""
    errors = stats.malformed + stats.truncated + stats.unknown_version + stats.no_template
    line = (
        f"collect: {exporter}: {stats.datagrams:,} datagrams, {stats.records:,} records, "
        f"{stats.templates} templates, {errors:,} errors, {stats.lost_records:,} lost"
    )
    if stats.templates_refused:
        line += f", {stats.templates_refused:,} templates refused"
    if stats.last_error:
        line += f" (last error: {stats.last_error})"
    return line


class _Flags:
    """What the signal handlers asked for, and the fd that wakes the loop."""

    def __init__(self) -> None:
        self.stop: int | None = None
        self.rotate = False
        self.wakeup, self.wakeup_writer = socket.socketpair()
        self.wakeup.setblocking(False)
        self.wakeup_writer.setblocking(False)

    def drain(self) -> None:
        try:
            while self.wakeup.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.wakeup.close()
        self.wakeup_writer.close()


@contextmanager
def _signal_flags() -> Iterator[_Flags]:
    flags = _Flags()
    if threading.current_thread() is not threading.main_thread():
        try:
            yield flags  # embedded in another thread: the caller stops it with run_for_s
        finally:
            flags.close()
        return

    def on_stop(signum: int, frame: object) -> None:
        flags.stop = signum

    def on_hup(signum: int, frame: object) -> None:
        flags.rotate = True

    previous: dict[int, Any] = {}
    old_fd = signal.set_wakeup_fd(flags.wakeup_writer.fileno(), warn_on_full_buffer=False)
    try:
        for signum, handler in (
            (signal.SIGTERM, on_stop),
            (signal.SIGINT, on_stop),
            (signal.SIGHUP, on_hup),
        ):
            previous[signum] = signal.signal(signum, handler)
        yield flags
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
        signal.set_wakeup_fd(old_fd)
        flags.close()


def stderr_status(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
