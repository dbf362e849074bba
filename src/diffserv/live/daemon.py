"""``diffserv live``: one engine session over the packets of a netfilter queue.

The main loop receives a batch (waiting at most ``idle_ms`` for one), runs it through the
session (whose packet sink sends its verdicts) and, when the queue is quiet, tells the
session the time so flowacct expires flows on real time. Other threads (the control
socket, the metrics endpoint) read counters and swap the policy through the methods
below; they take the same lock as a batch, so a swap happens only between batches.

Start-up order keeps traffic flowing: the queue is bound first (so a queue another daemon
holds is refused before anything is touched), then leftover rules of a daemon that could
not clean up are replaced by ours. Shutting down
(SIGTERM, SIGINT, SIGHUP or :meth:`stop`) goes the other way: the rules go first, the
packets already queued get their verdicts, the queue is unbound, and the session closes
(the last flow records are written). A batch the engine fails on is accepted unchanged
and counted: a live link is never held hostage to one bad batch.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from typing import Any, Final

import msgspec

from diffserv._kernels import (
    NFQ_BAD,
    NFQ_BATCHES,
    NFQ_DROPPED,
    NFQ_ERRORS,
    NFQ_LAST_ERROR,
    NFQ_OTHER,
    NFQ_OVERFLOW,
    NFQ_PRIORITY,
    NFQ_REWRITTEN,
    NFQ_UNWRITABLE,
)
from diffserv.engine.carry import Swap
from diffserv.engine.context import DEFAULT_SEED, EngineOptions
from diffserv.engine.session import Labels, Session
from diffserv.engine.stats import SessionStats
from diffserv.errors import DiffservError
from diffserv.flows.writers import open_record_writer
from diffserv.live import rules
from diffserv.live.netlink import QueueSocket
from diffserv.live.source import (
    DEFAULT_SLOT_BYTES,
    DEFAULT_SLOTS,
    SLOT_OVERHEAD,
    LiveSource,
    now_ns,
)
from diffserv.live.verdicts import VerdictSink
from diffserv.policy.interpret import DEFAULT_COS_MODE
from diffserv.policy.model import Policy
from diffserv.records import RecordSink

IDLE_MS: Final = 100  # the longest wait for a packet: stop requests and flow expiry
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class QueueStats(msgspec.Struct, frozen=True):
    """What the data plane itself counted (beyond the engine's SessionStats)."""

    queue: int
    packets: int
    receives: int
    datagrams: int
    malformed_messages: int
    kernel_errors: int
    last_kernel_error: int
    overflow: int
    other_messages: int
    dropped: int
    rewritten: int
    priority_set: int
    unwritable: int
    batch_verdicts: int
    verdict_messages: int
    verdict_send_errors: int
    socket_overflows: int
    engine_failures: int


class LiveDaemon:
    """``policy`` (parsed from ``policy_text``) on the traffic of netfilter queue ``queue``.

    ``flows_dir`` (a flow store directory or record file) and ``export_url`` (an IPFIX /
    NetFlow collector) receive flowacct's records as flows expire. ``metrics`` and
    ``stats_socket`` start the optional servers (live/metrics.py, live/control.py) when
    those modules are present. ``install_rules=False`` leaves the iptables rules to the
    caller (a test, ipqosconf); ``queue_mark`` queues only the packets whose firewall mark
    carries it (the hybrid setup with a compiled nftables table, docs/compile.md).
    """

    def __init__(
        self,
        policy: Policy,
        policy_text: str,
        *,
        queue: int = 0,
        flows_dir: str | None = None,
        export_url: str | None = None,
        metrics: str | None = None,
        stats_socket: str | None = None,
        policy_name: str = "",
        acct: str = "extended",
        cos_mode: str = DEFAULT_COS_MODE,
        seed: int = DEFAULT_SEED,
        install_rules: bool = True,
        queue_mark: int | None = None,
        idle_ms: int = IDLE_MS,
        slots: int = DEFAULT_SLOTS,
        classes: dict[str, str] | None = None,
    ) -> None:
        self.queue = queue
        self.flows_dir = flows_dir
        self.export_url = export_url
        self.metrics = metrics
        self.stats_socket = stats_socket
        self.install_rules = install_rules
        self.queue_mark = queue_mark
        self.idle_ms = idle_ms
        self.slots = slots
        self._policy = policy
        self._text = policy_text
        self._name = policy_name
        self._acct = acct
        self._cos_mode = cos_mode
        self._seed = seed
        self._classes = classes or {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self.session: Session | None = None
        self.source: LiveSource | None = None
        self.sink: VerdictSink | None = None
        self.rules: rules.InstalledRules | None = None
        self.engine_failures = 0
        self.final_stats: SessionStats | None = None
        self.last_queue_stats: QueueStats | None = None
        self._servers: list[Any] = []

    # ------------------------------------------------------------ for other threads

    def snapshot(self) -> SessionStats:
        """The engine's counters now (the final ones once the daemon has stopped)."""
        with self._lock:
            if self.session is None or self.session.ended:
                if self.final_stats is not None:
                    return self.final_stats
                raise DiffservError("the live daemon is not running")
            return self.session.stats()

    def queue_stats(self) -> QueueStats:
        """The data plane's own counters (receives, verdicts, what was skipped)."""
        with self._lock:
            source, sink = self.source, self.sink
            if source is None or sink is None:
                raise DiffservError("the live daemon is not running")
            c = source.counters
            return QueueStats(
                queue=self.queue,
                packets=source.packets,
                receives=source.receives,
                datagrams=source.datagrams,
                malformed_messages=int(c[NFQ_BAD]),
                kernel_errors=int(c[NFQ_ERRORS]),
                last_kernel_error=int(c[NFQ_LAST_ERROR]),
                overflow=int(c[NFQ_OVERFLOW]),
                other_messages=int(c[NFQ_OTHER]),
                dropped=int(c[NFQ_DROPPED]),
                rewritten=int(c[NFQ_REWRITTEN]),
                priority_set=int(c[NFQ_PRIORITY]),
                unwritable=int(c[NFQ_UNWRITABLE]),
                batch_verdicts=int(c[NFQ_BATCHES]),
                verdict_messages=sink.messages,
                verdict_send_errors=sink.send_errors,
                socket_overflows=source.enobufs,
                engine_failures=self.engine_failures,
            )

    def running_policy(self) -> tuple[Policy, str]:
        """The policy in force and its source text."""
        with self._lock:
            return self._policy, self._text

    def replace_policy(self, policy: Policy, text: str) -> Swap:
        """Swap the policy between two batches (the engine keeps the state of unchanged
        actions). Raises DiffservError when the engine cannot do it."""
        with self._lock:
            session = self.session
            if session is None or session.ended:
                raise DiffservError("the live daemon is not running")
            swap = session.replace_policy(policy)
            self._policy, self._text = policy, text
            return swap

    def stop(self) -> None:
        """Ask the main loop to finish (it does within ``idle_ms``)."""
        self._stop.set()

    def wait_running(self, timeout: float) -> bool:
        """Whether the daemon got to its main loop (rules in place) within ``timeout``."""
        return self._running.wait(timeout)

    # ------------------------------------------------------------ the main loop

    def run(self) -> SessionStats:
        """Run until stopped; the final statistics. Raises DiffservError if the queue,
        the rules or an output cannot be set up (then nothing is left installed)."""
        records = self._open_records()
        try:
            options = EngineOptions(
                seed=self._seed, cos_mode=self._cos_mode, record_sink=records, cos_untagged=True
            )
            labels = Labels(policy=self._name, input=f"nfqueue:{self.queue}", output="verdicts")
            session = Session(self._policy, options, labels=labels)
        except BaseException:
            if records is not None:
                records.abort()
            raise
        queue: QueueSocket | None = None
        previous = self._take_signals()
        try:
            # the queue first: a queue another daemon holds fails here, before any rule of
            # its is touched; install() then replaces leftovers of one that died
            # a packet larger than a slot is copied in part (and accepted unchanged), so
            # every queued packet's message fits its slot
            queue = QueueSocket(self.queue, copy_range=DEFAULT_SLOT_BYTES - SLOT_OVERHEAD)
            source = LiveSource(queue, slots=self.slots)
            sink = VerdictSink(source)
            session.packet_sink = sink
            with self._lock:
                self.session, self.source, self.sink = session, source, sink
            # the servers (and the modules they import) before the rules: once packets are
            # queued to us, nothing but the loop stands between them and their verdicts
            self._start_servers()
            # everything built so far lives as long as the daemon: out of the collector's
            # way, so a full collection in the loop (tens of ms over the start-up heap,
            # with packets waiting) only ever scans what the loop itself made
            gc.collect()
            gc.freeze()
            if self.install_rules:
                self.rules = rules.install(self.queue, self.queue_mark)
            self._running.set()
            self._loop(session, source, sink)
            self._shut_down(session, source, sink)
        except BaseException:
            self._remove_rules()
            if queue is not None:
                queue.close()
            with self._lock:
                if not session.ended:
                    session.abort()
            raise
        finally:
            self._stop_servers()
            self._restore_signals(previous)
        queue.close()
        assert self.final_stats is not None
        return self.final_stats

    def _loop(self, session: Session, source: LiveSource, sink: VerdictSink) -> None:
        last_advance = time.monotonic()
        while not self._stop.is_set():
            batch = source.receive(self.idle_ms)
            with self._lock:
                if batch is not None:
                    self._process(session, sink, batch)
                if batch is None or time.monotonic() - last_advance >= self.idle_ms / 1000:
                    session.advance(now_ns())
                    last_advance = time.monotonic()
                    self._tick_records()

    def _process(self, session: Session, sink: VerdictSink, batch: Any) -> None:
        try:
            session.process(batch)
        except DiffservError as exc:
            self._engine_failed(sink, exc)
        except Exception as exc:  # a defect must not black-hole the link: say it, go on
            self._engine_failed(sink, exc)

    def _engine_failed(self, sink: VerdictSink, exc: BaseException) -> None:
        self.engine_failures += 1
        if self.engine_failures <= 3:
            print(f"diffserv live: error: batch accepted unprocessed: {exc}", file=sys.stderr)
        sink.release(None)

    def _shut_down(self, session: Session, source: LiveSource, sink: VerdictSink) -> None:
        """Rules out, queued packets released, then the session closes."""
        self._remove_rules()
        while True:  # what was queued before the rules went still needs its verdicts
            batch = source.receive(0)
            if batch is None:
                break
            with self._lock:
                self._process(session, sink, batch)
        with self._lock:
            self.final_stats = session.close()
            self.last_queue_stats = self.queue_stats()

    def _remove_rules(self) -> None:
        installed, self.rules = self.rules, None
        if installed is not None:
            installed.remove()

    def _open_records(self) -> RecordSink | None:
        sinks: list[RecordSink] = []
        if self.flows_dir:
            sinks.append(open_record_writer(self.flows_dir, self._acct, classes=self._classes))
        if self.export_url:
            from diffserv.flows.export import Exporter, FanOut, parse_export_url

            try:
                sinks.append(Exporter(parse_export_url(self.export_url), classes=self._classes))
            except BaseException:
                for sink in sinks:
                    sink.abort()
                raise
            if len(sinks) > 1:
                return FanOut(sinks)
        return sinks[0] if sinks else None

    def _tick_records(self) -> None:
        """A quiet queue still finishes flow-store files on their interval."""
        sink = self.session.options.record_sink if self.session is not None else None
        for each in getattr(sink, "sinks", None) or [sink]:
            store = getattr(each, "store", None)
            tick = getattr(store, "tick", None)
            if callable(tick):
                tick()

    # ------------------------------------------------------------ signals and servers

    def _take_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, lambda *_: self._stop.set())
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _start_servers(self) -> None:
        """The control socket (always: ``diffserv stat`` and ``ipqosconf`` talk to it, at
        ``--stats-socket``, ``$DIFFSERV_STATS_SOCKET`` or the default path) and the
        metrics endpoint when asked for."""
        from diffserv.live.control import serve_control
        from diffserv.live.metrics import serve_metrics

        self._servers.append(serve_control(self, self.stats_socket))
        if self.metrics:
            self._servers.append(serve_metrics(self, self.metrics))

    def _stop_servers(self) -> None:
        while self._servers:
            server = self._servers.pop()
            close = getattr(server, "close", None) or getattr(server, "stop", None)
            if callable(close):
                close()
