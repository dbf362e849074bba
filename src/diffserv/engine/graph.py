"""Compile a Policy into an ActionGraph and run packet batches through it (docs/engine.md).

Action ids are assigned in a topological order of the reference graph, ``ipgpc.classify``
first, so every action only ever sends packets to a larger id or to a virtual action. One
pass over the ids therefore moves every packet to the end of its chain: each real action
processes the rows currently at it, in ascending row order, and sets their next action.
Sequential state lives inside the operators, so results never depend on batch size.

Offline meaning of the virtual actions: ``continue`` ends the chain and the packet is
written out (with whatever marks it got); ``drop`` removes it from the output; ``defer``
(a module keeps the packet; no IPQoS module defers, and ipqosconf cannot name it) is
treated as removed from the output and counted apart. Non-IP frames never enter the graph
(IPQoS only sees IP packets) and pass unchanged; malformed frames reach ipgpc, which passes
them on unclassified and unmodified and counts them as ``epackets``.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Mapping

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import (
    GRAPH_OUTCOME_SIZE,
    graph_begin,
    graph_markers,
    graph_rows_at,
    graph_scatter,
)
from diffserv.columns import (
    ACTION_CONTINUE,
    ACTION_DEFER,
    ACTION_DROP,
    FLAG_MALFORMED,
    NOT_IP,
    PacketBatch,
)
from diffserv.engine.context import VIRTUAL_ACTION_IDS, BuildContext, EngineOptions
from diffserv.engine.modules import factory_for
from diffserv.engine.operator import MarkerState, MarkingOperator, Operator, TimedOperator
from diffserv.errors import DiffservError, InternalError
from diffserv.policy.diagnostics import LocatedPolicyError
from diffserv.policy.model import CLASSIFIER_ACTION, VIRTUAL_ACTIONS, Action, Policy
from diffserv.policy.refgraph import find_cycles
from diffserv.policy.schema import action_references

OUTCOMES: Mapping[int, str] = {
    ACTION_CONTINUE: "continue",
    ACTION_DROP: "drop",
    ACTION_DEFER: "defer",
}
MALFORMED_KEPT = 10  # packet numbers of malformed packets remembered for messages
COLOUR_NAMES: Mapping[int, str] = {1: "green", 2: "yellow", 4: "red"}


class EngineError(InternalError):
    """An operator broke the action protocol (a bug, never the user's fault)."""


def _address(hi: int, lo: int, version: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def _packet_head(batch: PacketBatch, row: int) -> str:
    """``10.0.0.1:5060 > 10.0.0.2:5060 proto 17`` for a trace line."""
    version = int(batch.cols.ip_version[row])
    src = _address(int(batch.cols.saddr_hi[row]), int(batch.cols.saddr_lo[row]), version)
    dst = _address(int(batch.cols.daddr_hi[row]), int(batch.cols.daddr_lo[row]), version)
    if version == 6:
        src, dst = f"[{src}]", f"[{dst}]"
    sport, dport = int(batch.cols.sport[row]), int(batch.cols.dport[row])
    if sport or dport:
        src, dst = f"{src}:{sport}", f"{dst}:{dport}"
    return f"{src} > {dst} proto {int(batch.cols.protocol[row])}"


def topological_order(policy: Policy) -> list[Action]:
    """Actions so that each one comes before every action it refers to; ipgpc first.

    Ties are broken by file order, so the order (and every action id) is deterministic.
    Raises LocatedPolicyError for an undefined reference or a cycle (the checker's walk,
    ``policy.refgraph.find_cycles``).
    """
    by_name = {action.name: action for action in policy.actions}
    position = {action.name: i for i, action in enumerate(policy.actions)}
    indegree = dict.fromkeys(by_name, 0)
    edges: dict[str, list[str]] = {name: [] for name in by_name}
    for action in policy.actions:
        for ref in dict.fromkeys(action_references(action)):
            if ref in VIRTUAL_ACTIONS:
                continue
            if ref not in by_name:
                raise LocatedPolicyError.of_action(
                    action, f"action {action.name}: undefined action {ref}"
                )
            edges[action.name].append(ref)
            indegree[ref] += 1
    cycles = find_cycles(by_name, edges)
    if cycles:
        stuck = by_name[cycles[0][0]]
        raise LocatedPolicyError.of_action(stuck, f"Action {stuck.name} involved in cycle.")
    ready = [(0 if name == CLASSIFIER_ACTION else 1, position[name], name) for name in by_name]
    ready = [item for item in ready if indegree[item[2]] == 0]
    heapq.heapify(ready)
    order: list[Action] = []
    while ready:
        _, _, name = heapq.heappop(ready)
        order.append(by_name[name])
        for ref in edges[name]:
            indegree[ref] -= 1
            if indegree[ref] == 0:
                heapq.heappush(ready, (1, position[ref], ref))
    assert len(order) == len(by_name)  # acyclic: every action is reached
    if not order or order[0].name != CLASSIFIER_ACTION:
        raise LocatedPolicyError("No ipgpc action defined.", action=None, location=None)
    return order


class Outcome(msgspec.Struct):
    """Packets and bytes that ended at one virtual action (or bypassed the graph)."""

    packets: int = 0
    bytes: int = 0


class ActionGraph(msgspec.Struct):
    """A compiled policy: operators indexed by action id, plus end-of-chain counters."""

    policy: Policy
    operators: list[Operator]
    action_ids: dict[str, int]
    outcomes: dict[str, Outcome] = msgspec.field(default_factory=dict)
    not_ip: Outcome = msgspec.field(default_factory=Outcome)
    malformed_count: int = 0
    malformed_numbers: list[int] = msgspec.field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    # the path of the first ``trace_limit`` packets (by number): number -> steps
    trace_limit: int = 0
    trace: dict[int, list[str]] = msgspec.field(default_factory=dict)
    # first id -> (end id, marker_state()s) of each run of consecutive dscpmk actions,
    # found at the first batch (marker_runs): a policy swap carries state over and a test
    # may replace an operator before that
    marker_runs: dict[int, tuple[int, tuple[MarkerState, ...]]] | None = None
    timed: list[TimedOperator] | None = None  # the operators with a timer, found once

    @property
    def classifier(self) -> Operator:
        return self.operators[0]

    def run(self, batch: PacketBatch) -> NDArray[np.int64]:
        """Classify and process every packet of ``batch``; leaves virtual ids in ``action``.
        Returns the batch's tally: packets and bytes that ended at each of OUTCOMES.

        The masks, gathers and sums around the operators are C passes
        (``diffserv._kernels.graph_*``): one to start the batch, one to write each
        operator's checked verdicts (which also counts what each later action holds and
        what ends at a virtual action), one to gather an action's rows. An action no
        verdict reached is skipped without looking at the batch. A run of dscpmk actions
        with consecutive ids is one pass (``graph_markers``) instead of a Python call and
        three kernel calls per action: on a small batch (a live queue's) that dispatch was
        most of the cost. A traced batch takes the action-by-action way (it records each
        step).
        """
        cols = batch.cols
        n = batch.n
        ip_rows = np.empty(n, np.int64)
        room = max(0, MALFORMED_KEPT - len(self.malformed_numbers))
        first = np.empty(room, np.int64)
        n_ip, nbytes, nmal, not_ip_packets, not_ip_bytes = graph_begin(cols, ip_rows, first)
        self.packets += n
        self.bytes += nbytes
        if nmal:
            self.malformed_count += nmal
            self.malformed_numbers.extend(first[: min(nmal, room)].tolist())
        if not_ip_packets:
            self.not_ip.packets += not_ip_packets
            self.not_ip.bytes += not_ip_bytes
        traced = self.trace_limit > 0 and n > 0 and int(cols.number[0]) <= self.trace_limit
        pending = np.zeros(len(self.operators), np.int64)  # rows each action now holds
        tally = np.zeros(GRAPH_OUTCOME_SIZE, np.int64)  # packets, bytes per outcome
        if n_ip:
            rows = ip_rows[:n_ip]
            self._scatter(
                batch, 0, rows, self.classifier.process(batch, rows), pending=pending, tally=tally
            )
            if traced:
                self._trace_step(batch, 0, rows)
            runs = self.marker_runs
            if runs is None:
                runs = self.marker_runs = marker_runs(self.operators)
            if traced:
                runs = {}
            aid, nops = 1, len(self.operators)
            while aid < nops:
                fused = runs.get(aid)
                if fused is not None:
                    stop, states = fused
                    if pending[aid:stop].any():
                        self._mark(batch, aid, states, pending=pending, tally=tally)
                    aid = stop
                    continue
                held = int(pending[aid])
                if held:
                    rows = np.empty(held, np.int64)
                    if graph_rows_at(cols.action, aid, rows) != held:
                        raise EngineError(f"action {self.operators[aid].name}: rows went astray")
                    self._scatter(
                        batch,
                        aid,
                        rows,
                        self.operators[aid].process(batch, rows),
                        pending=pending,
                        tally=tally,
                    )
                    if traced:
                        self._trace_step(batch, aid, rows)
                aid += 1
        if traced:
            malformed = (cols.flags & FLAG_MALFORMED) != 0
            self._trace_end(batch, (cols.ip_version != NOT_IP) | malformed, malformed)
        counts = tally.tolist()
        for slot, name in enumerate(OUTCOMES.values()):
            outcome = self.outcomes.get(name)
            if outcome is None:
                outcome = self.outcomes[name] = Outcome()
            outcome.packets += counts[2 * slot]
            outcome.bytes += counts[2 * slot + 1]
        return tally

    def _mark(
        self,
        batch: PacketBatch,
        start: int,
        states: tuple[MarkerState, ...],
        *,
        pending: NDArray[np.int64],
        tally: NDArray[np.int64],
    ) -> None:
        """The markers ``start``, ``start + 1``, ... over the rows at them, in one pass."""
        bad = graph_markers(batch.cols, states, pending, tally, start)
        if bad >= 0:
            raise EngineError(
                f"action {self.operators[start + bad].name}: invalid next action {states[bad][3]}"
            )

    def _scatter(
        self,
        batch: PacketBatch,
        aid: int,
        rows: NDArray[np.int64],
        nxt: NDArray[np.int32],
        *,
        pending: NDArray[np.int64],
        tally: NDArray[np.int64],
    ) -> None:
        """Write action ``aid``'s verdicts for ``rows``; EngineError for a bad one."""
        if nxt.shape[0] != rows.shape[0]:
            raise EngineError(f"action {self.operators[aid].name}: wrong number of verdicts")
        if not (isinstance(nxt, np.ndarray) and nxt.dtype == np.int32 and nxt.flags.c_contiguous):
            # not the protocol's dtype: check the values as given, then store as the
            # action column would (numpy's assignment cast)
            nxt = np.ascontiguousarray(self._checked(aid, rows, nxt), dtype=np.int32)
        bad = graph_scatter(batch.cols.action, batch.cols.wire_len, rows, nxt, pending, tally, aid)
        if bad >= 0:
            raise EngineError(
                f"action {self.operators[aid].name}: invalid next action {int(nxt[bad])}"
            )

    def _trace_step(self, batch: PacketBatch, aid: int, rows: NDArray[np.int64]) -> None:
        op = self.operators[aid]
        classes = getattr(op, "classes", None)
        for row in rows[batch.cols.number[rows] <= self.trace_limit]:
            step = op.name
            if aid == 0:
                cid = int(batch.cols.class_id[row])
                step = f"class {classes[cid].name}" if classes and cid >= 0 else "unclassified"
            elif "green_packets" in op.counters():
                step += f" [{COLOUR_NAMES.get(int(batch.cols.colour[row]), 'no colour')}]"
            self.trace.setdefault(int(batch.cols.number[row]), []).append(step)

    def _trace_end(
        self, batch: PacketBatch, is_ip: NDArray[np.bool_], malformed: NDArray[np.bool_]
    ) -> None:
        current = batch.current_ds()
        for row in np.flatnonzero(batch.cols.number <= self.trace_limit):
            steps = self.trace.setdefault(int(batch.cols.number[row]), [])
            if malformed[row]:
                steps.append("malformed: passed unmodified")
                continue
            if not is_ip[row]:
                steps.append("not IP: passed unchanged")
                continue
            steps.insert(0, _packet_head(batch, int(row)))
            steps.append(OUTCOMES.get(int(batch.cols.action[row]), "?"))
            before, after = int(batch.cols.ds_byte[row]), int(current[row])
            marks = [f"DS 0x{before:02x}" + (f" → 0x{after:02x}" if after != before else "")]
            if batch.cols.new_pcp[row] >= 0:
                marks.append(f"PCP {int(batch.cols.new_pcp[row])}")
            steps.append(", ".join(marks))

    def _checked(
        self, aid: int, rows: NDArray[np.int64], nxt: NDArray[np.int32]
    ) -> NDArray[np.int32]:
        if nxt.shape[0] != rows.shape[0]:
            raise EngineError(f"action {self.operators[aid].name}: wrong number of verdicts")
        too_early = (nxt >= 0) & (nxt <= aid)  # ids are topological: only forward moves
        bad = too_early | (nxt >= len(self.operators)) | (nxt < ACTION_DROP) | (nxt == -1)
        if bad.any():
            raise EngineError(
                f"action {self.operators[aid].name}: invalid next action {int(nxt[bad][0])}"
            )
        return nxt

    def advance(self, now_ns: int) -> None:
        """Time passed without packets: every operator with a timer runs it.

        The operators with timers are found once: a protocol isinstance check costs tens
        of microseconds, and a live daemon calls this every 100 ms between two batches.
        """
        timed = self.timed
        if timed is None:
            timed = self.timed = [op for op in self.operators if isinstance(op, TimedOperator)]
        for op in timed:
            op.advance(now_ns)

    def finish(self) -> None:
        """End of input: every operator flushes (flowacct writes its remaining flows)."""
        for op in self.operators:
            op.finish()

    def counters(self) -> dict[str, Mapping[str, int]]:
        """The kstat-named counters of every action, by action name, in action-id order."""
        return {op.name: op.counters() for op in self.operators}


def compile_policy(policy: Policy, options: EngineOptions | None = None) -> ActionGraph:
    """Build every action's operator.

    A policy the engine rejects raises LocatedPolicyError (a PolicyFileError) whose
    ``location`` is the file position of the action to blame.
    """
    opts = options if options is not None else EngineOptions()
    order = topological_order(policy)
    ids = {action.name: i for i, action in enumerate(order)}
    ctx = BuildContext(action_ids=ids, options=opts)
    operators: list[Operator] = []
    for action in order:
        try:
            factory = factory_for(action.module)
        except KeyError:
            raise LocatedPolicyError.of_action(
                action, f"action {action.name}: unknown module {action.module}"
            ) from None
        except ImportError as exc:
            raise DiffservError(
                f"action {action.name}: module {action.module} is not available ({exc})"
            ) from None
        try:
            operators.append(factory(action, ctx))
        except (ValueError, KeyError, TypeError) as exc:
            raise LocatedPolicyError.of_action(action, f"action {action.name}: {exc}") from None
    assert all(name not in VIRTUAL_ACTION_IDS for name in ids)
    return ActionGraph(policy=policy, operators=operators, action_ids=ids)


def marker_runs(operators: list[Operator]) -> dict[int, tuple[int, tuple[MarkerState, ...]]]:
    """First id -> (end id, marker states) of every run of consecutive dscpmk actions
    (never ipgpc, id 0). A single marker is a run too: one pass still replaces its three
    kernel calls and its Python dispatch.
    """
    runs: dict[int, tuple[int, tuple[MarkerState, ...]]] = {}
    states: list[MarkerState] = []
    for aid in range(1, len(operators) + 1):
        op = operators[aid] if aid < len(operators) else None
        if op is not None and op.module == "dscpmk" and isinstance(op, MarkingOperator):
            states.append(op.marker_state())
        elif states:
            runs[aid - len(states)] = (aid, tuple(states))
            states = []
    return runs
