"""The engine session: one compiled policy running over batches from any packet source.

Every packet source — a capture file, the NFQUEUE socket, a test — drives the same
object: it makes :class:`~diffserv.columns.PacketBatch` es and calls
:meth:`Session.process` for each, :meth:`Session.advance` when time passes without
packets (a quiet live link: flowacct's timer must still expire flows), and
:meth:`Session.close` at the end, which flushes every flow and returns the typed
:class:`~diffserv.engine.stats.SessionStats`. The session owns the action graph, its two
sinks (processed packets; flow records) and its statistics; it never knows where packets
come from. :func:`drive` is the loop for sources that are iterables of batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol

import msgspec

from diffserv._kernels import batch_end
from diffserv.columns import ACTION_DEFER, ACTION_DROP, PacketBatch
from diffserv.engine.carry import Swap, carry_state, plan
from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import ActionGraph, compile_policy
from diffserv.engine.operator import ClassifyingOperator, DetailedOperator, Operator
from diffserv.engine.stats import (
    ActionStats,
    ClassStats,
    DscpTransitions,
    PacketConditions,
    SessionStats,
    Volume,
)
from diffserv.errors import InputDataError
from diffserv.policy.interpret import has_marker
from diffserv.policy.model import Policy

# progress(packets_done, elapsed_seconds)
ProgressCallback = Callable[[int, float], None]


class BatchSink(Protocol):
    """Where processed batches go: a capture writer, NFQUEUE verdicts.

    ``write`` gets each batch as soon as the session has processed it (a source may
    reuse its buffer for the next batch). ``abort`` is called instead of ``close`` when
    the session fails or is interrupted: it must stop promptly and release every buffer
    it holds of the source.
    """

    def write(self, batch: PacketBatch) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Labels(msgspec.Struct, frozen=True):
    """What the statistics call the policy, the packet source and the output."""

    policy: str = ""
    input: str = ""
    output: str = ""


class Session:
    """A policy compiled with its options, processing batches into its sinks.

    Compiling raises PolicyFileError for a policy the engine rejects. Use it as a context
    manager, or call :meth:`close` (success) or :meth:`abort` (failure) exactly once.
    """

    def __init__(
        self,
        policy: Policy,
        options: EngineOptions | None = None,
        *,
        packet_sink: BatchSink | None = None,
        labels: Labels | None = None,
    ) -> None:
        self.options = options if options is not None else EngineOptions()
        self.graph: ActionGraph = compile_policy(policy, self.options)
        self.graph.trace_limit = self.options.trace_limit
        # a policy without a marker never changes a byte: no pass over the packets for it
        self._rewrites = self.options.rewrite_packets and has_marker(policy)
        self.packet_sink = packet_sink
        self.labels = labels if labels is not None else Labels()
        self.input_error: InputDataError | None = None
        self._transitions = DscpTransitions()
        self._conditions = PacketConditions()
        self._written = 0
        self._start = time.perf_counter()
        self._ended = False

    @property
    def packets(self) -> int:
        """Packets processed so far."""
        return self.graph.packets

    def process(self, batch: PacketBatch) -> None:
        """Classify, meter, mark and account ``batch``, then hand it to the packet sink.

        On return the ``action`` column holds each packet's verdict: ACTION_CONTINUE
        (written out, with its marks) or ACTION_DROP; deferred packets leave the output
        like dropped ones (no IPQoS module re-injects them) but are counted apart.
        """
        n = batch.n
        if n:
            # the graph's tally says how many rows ended dropped or deferred: no pass over
            # the action column unless some did
            _, _, dropped, _, deferred, _ = self.graph.run(batch).tolist()
            if deferred:  # (neither is counted as a transition: only ACTION_CONTINUE is)
                action = batch.cols.action
                action[action == ACTION_DEFER] = ACTION_DROP
            # the statistics and the marks in one pass (stats.update + apply_marks)
            batch_end(
                batch.buf,
                batch.cols,
                self._transitions.counts,
                self._conditions.counts,
                self._rewrites,
            )
            self._written += n - dropped - deferred
        if self.packet_sink is not None:
            self.packet_sink.write(batch)

    def advance(self, now_ns: int) -> None:
        """Time is ``now_ns`` and no packet came: operators with timers run them."""
        self.graph.advance(now_ns)

    def replace_policy(self, policy: Policy) -> Swap:
        """Run ``policy`` from the next batch on, keeping the state of unchanged actions.

        Call it between batches (a live daemon does, on its own thread). The new policy is
        compiled first: if the engine rejects it (PolicyFileError) nothing has changed. An
        action whose definition is unchanged (``engine.carry``) keeps its state and its
        counters; a new or changed one starts afresh; a flowacct action that does not
        carry over writes all its flows to the record sink first, so no record is lost.
        The session's own totals (packets, outcomes, DSCP transitions) run on.
        """
        if self._ended:
            raise RuntimeError("the session has already been closed or aborted")
        new_graph = compile_policy(policy, self.options)
        old_graph = self.graph
        old = {op.name: (old_graph.policy.action(op.name), op) for op in old_graph.operators}
        new = {op.name: (policy.action(op.name), op) for op in new_graph.operators}
        swap = plan(old, new)
        kept = set(swap.kept)
        for name, (_, op) in new.items():
            if name in kept:
                carry_state(old[name][1], op)
        dropped: list[Operator] = [op for name, (_, op) in old.items() if name not in kept]
        for op in dropped:
            if op.module == "flowacct":
                op.finish()  # its flows go to the record sink before the table is dropped
        for name in ("outcomes", "not_ip", "malformed_count", "malformed_numbers"):
            setattr(new_graph, name, getattr(old_graph, name))
        new_graph.packets, new_graph.bytes = old_graph.packets, old_graph.bytes
        new_graph.trace_limit, new_graph.trace = old_graph.trace_limit, old_graph.trace
        self._rewrites = self.options.rewrite_packets and has_marker(policy)
        self.graph = new_graph
        return swap

    def cut_short(self, error: InputDataError) -> None:
        """The source broke off at damaged input: what came before it is kept and written.

        The statistics carry the error, and a command reports the run as failed.
        """
        if self.input_error is None:
            self.input_error = error

    def close(self) -> SessionStats:
        """End of input: flush every operator (flowacct writes its flows), close the sinks.

        The packet sink is closed before the record sink, so a record sink that fails to
        close cannot cost the packets already complete. A failure on the way aborts
        whatever sink is not closed yet, then propagates.
        """
        self._end()
        try:
            self.graph.finish()
        except BaseException:
            self._abort_sinks(packets=True)
            raise
        if self.packet_sink is not None:
            try:
                self.packet_sink.close()
            except BaseException:
                self._abort_sinks(packets=True)
                raise
        if self.options.record_sink is not None:
            try:
                self.options.record_sink.close()
            except BaseException:
                self._abort_sinks(packets=False)
                raise
        return self.stats()

    def abort(self) -> None:
        """The session failed or was interrupted: stop the sinks, keeping what they can."""
        self._end()
        self._abort_sinks(packets=True)

    def _abort_sinks(self, *, packets: bool) -> None:
        """The packet sink goes first: it may hold buffers the source is waiting for."""
        try:
            if packets and self.packet_sink is not None:
                self.packet_sink.abort()
        finally:
            if self.options.record_sink is not None:
                self.options.record_sink.abort()

    @property
    def ended(self) -> bool:
        """Closed or aborted."""
        return self._ended

    def _end(self) -> None:
        if self._ended:
            raise RuntimeError("the session has already been closed or aborted")
        self._ended = True

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self._ended:
            self.abort()
        elif not self._ended:
            self.close()

    def stats(self) -> SessionStats:
        """What the session has counted so far (the final figures once closed)."""
        graph = self.graph
        actions: dict[str, ActionStats] = {}
        classes: dict[str, ClassStats] = {}
        for op in graph.operators:
            per_class = op.class_counters() if isinstance(op, ClassifyingOperator) else None
            if per_class is not None:
                action = graph.policy.action(op.name)
                next_of = {cls.name: cls.next_action for cls in action.classes}
                for name, counts in per_class.items():
                    classes[name] = ClassStats(
                        packets=counts["npackets"],
                        bytes=counts["nbytes"],
                        last_match_ns=counts["last_match"],
                        next_action=next_of.get(name, "ipp.continue").removeprefix("ipp."),
                    )
            actions[op.name] = ActionStats(
                module=op.module,
                counters=dict(op.counters()),
                classes=per_class,
                detailed=op.detailed_counters() if isinstance(op, DetailedOperator) else None,
            )
        outcomes = {
            name: Volume(graph.outcomes[name].packets, graph.outcomes[name].bytes)
            if name in graph.outcomes
            else Volume()
            for name in ("continue", "drop", "defer")
        }
        conditions = self._conditions
        return SessionStats(
            policy=self.labels.policy,
            input=self.labels.input,
            output=self.labels.output,
            elapsed_s=time.perf_counter() - self._start,
            packets=graph.packets,
            bytes=graph.bytes,
            written=self._written,
            not_ip=Volume(graph.not_ip.packets, graph.not_ip.bytes),
            malformed=graph.malformed_count,
            malformed_first=tuple(graph.malformed_numbers),
            truncated=conditions.truncated,
            header_cut=conditions.header_cut,
            length_from_frame=conditions.length_from_frame,
            outcomes=outcomes,
            actions=actions,
            classes=classes,
            dscp_transitions=self._transitions.rows(),
            input_error=str(self.input_error) if self.input_error is not None else None,
            trace={number: tuple(steps) for number, steps in sorted(graph.trace.items())},
        )


def drive(
    session: Session,
    source: Iterable[PacketBatch],
    *,
    progress: ProgressCallback | None = None,
) -> SessionStats:
    """Run every batch of ``source`` through ``session``, then close it; return the stats.

    Damaged input (InputDataError from the source) ends the input there: everything
    before it is processed and written, and the statistics carry the error. Any other
    failure, or an interrupt, aborts the session (its sinks first: they may hold
    buffers the source waits for) and then closes the source, so no helper thread of
    either is left waiting.
    """
    start = time.perf_counter()
    try:
        try:
            for batch in source:
                session.process(batch)
                if progress is not None:
                    progress(session.packets, time.perf_counter() - start)
        except InputDataError as exc:
            session.cut_short(exc)
        return session.close()
    except BaseException:
        if not session.ended:  # a close that failed part-way has aborted its sinks
            session.abort()
        raise
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
