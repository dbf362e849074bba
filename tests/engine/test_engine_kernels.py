"""The engine's C passes (src/kernels/engine.c) against the numpy code they replaced.

The references below are the graph dispatch, dscpmk and statistics updates as they were
written in numpy; random batches (malformed, non-IP, inbound, already marked rows, drops
by a meter) must leave every column, counter and total exactly as they leave them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from engine_helpers import classifier_policy

from diffserv import _kernels
from diffserv.columns import (
    ACTION_CONTINUE,
    ACTION_DEFER,
    ACTION_DROP,
    FLAG_HEADER_CUT,
    FLAG_LENGTH_FROM_FRAME,
    FLAG_MALFORMED,
    FLAG_TRUNCATED,
    NOT_IP,
    PacketBatch,
    columns_of,
)
from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.engine.context import BuildContext, EngineOptions
from diffserv.engine.graph import (
    MALFORMED_KEPT,
    OUTCOMES,
    ActionGraph,
    EngineError,
    Outcome,
    compile_policy,
)
from diffserv.engine.modules.dlcosmk import Dlcosmk
from diffserv.engine.modules.dscpmk import Dscpmk
from diffserv.engine.stats import DscpTransitions, PacketConditions
from diffserv.policy.model import Action, Class, Filter, Policy

# --- the numpy code the kernels replaced ----------------------------------------------


def _reference_checked(graph: ActionGraph, aid: int, nxt: Any) -> Any:
    too_early = (nxt >= 0) & (nxt <= aid)
    bad = too_early | (nxt >= len(graph.operators)) | (nxt < ACTION_DROP) | (nxt == -1)
    if bad.any():
        raise EngineError(
            f"action {graph.operators[aid].name}: invalid next action {int(nxt[bad][0])}"
        )
    return nxt


def reference_run(graph: ActionGraph, batch: PacketBatch) -> None:
    """ActionGraph.run as numpy passes (without the trace)."""
    n = batch.n
    graph.packets += n
    graph.bytes += int(batch.cols.wire_len.sum())
    action = batch.cols.action
    action[:] = ACTION_CONTINUE
    malformed = (batch.cols.flags & FLAG_MALFORMED) != 0
    nmal = int(malformed.sum())
    if nmal:
        graph.malformed_count += nmal
        room = MALFORMED_KEPT - len(graph.malformed_numbers)
        if room > 0:
            graph.malformed_numbers.extend(int(x) for x in batch.cols.number[malformed][:room])
    is_ip = (batch.cols.ip_version != NOT_IP) | malformed
    non_ip = ~is_ip
    if non_ip.any():
        graph.not_ip.packets += int(non_ip.sum())
        graph.not_ip.bytes += int(batch.cols.wire_len[non_ip].sum())
    rows = np.flatnonzero(is_ip).astype(np.int64)
    if rows.shape[0]:
        action[rows] = _reference_checked(graph, 0, graph.classifier.process(batch, rows))
        for aid in range(1, len(graph.operators)):
            rows = np.flatnonzero(action == aid).astype(np.int64)
            if rows.shape[0]:
                nxt = graph.operators[aid].process(batch, rows)
                action[rows] = _reference_checked(graph, aid, nxt)
    for vid, name in OUTCOMES.items():
        at = (action == vid) & is_ip
        outcome = graph.outcomes.setdefault(name, Outcome())
        outcome.packets += int(at.sum())
        outcome.bytes += int(batch.cols.wire_len[at].sum())


@dataclass
class ReferenceDscpmk:
    """Dscpmk.process's counters and writes, as numpy."""

    dscp_map: Any
    next_action: int
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("npackets", "dscp_changed", "dscp_unchanged", "ipackets", "epackets"), 0
        )
    )
    per_dscp: Any = field(default_factory=lambda: np.zeros(64, np.int64))

    def process(self, batch: PacketBatch, idx: Any) -> Any:
        n = idx.shape[0]
        self.counts["npackets"] += n
        direction = batch.cols.direction[idx]
        inbound = (direction == LOCAL_IN) | (direction == FWD_IN)
        not_ip = batch.cols.ip_version[idx] == 0
        self.counts["ipackets"] += int(inbound.sum())
        self.counts["epackets"] += int((not_ip & ~inbound).sum())
        rows = idx[~(inbound | not_ip)]
        if rows.shape[0]:
            new_ds = batch.cols.new_ds[rows]
            old = np.where(new_ds >= 0, new_ds, batch.cols.ds_byte[rows]).astype(np.uint8)
            old6 = old >> 2
            new6 = self.dscp_map[old6]
            self.per_dscp += np.bincount(new6, minlength=64).astype(np.int64)
            changed = new6 != old6
            nchanged = int(changed.sum())
            self.counts["dscp_changed"] += nchanged
            self.counts["dscp_unchanged"] += rows.shape[0] - nchanged
            if nchanged:
                marked = (new6[changed].astype(np.int16) << 2) | (old[changed] & 3)
                batch.cols.new_ds[rows[changed]] = marked
        return np.full(n, self.next_action, np.int32)


@dataclass
class ReferenceDlcosmk:
    """Dlcosmk.process as numpy."""

    pcp: int
    next_action: int
    npackets: int = 0
    ipackets: int = 0

    def process(self, batch: PacketBatch, idx: Any) -> Any:
        n = idx.shape[0]
        self.npackets += n
        direction = batch.cols.direction[idx]
        inbound = (direction == LOCAL_IN) | (direction == FWD_IN)
        passed = inbound | (batch.cols.vlan_off[idx] < 0)
        self.ipackets += int(passed.sum())
        batch.cols.new_pcp[idx[~passed]] = self.pcp
        return np.full(n, self.next_action, np.int32)


def reference_transitions(batch: PacketBatch) -> Any:
    cols = batch.cols
    keep = (cols.action == ACTION_CONTINUE) & (cols.ip_version != NOT_IP)
    before = cols.ds_byte[keep] >> 2
    after = batch.current_ds()[keep] >> 2
    pair = before.astype(np.int64) * 64 + after.astype(np.int64)
    return np.bincount(pair, minlength=64 * 64)


def reference_conditions(batch: PacketBatch) -> tuple[int, int, int]:
    flags = batch.cols.flags.astype(np.int64)
    sound = (flags & FLAG_MALFORMED) == 0
    return (
        int(((flags & FLAG_TRUNCATED) != 0).sum()),
        int((((flags & FLAG_HEADER_CUT) != 0) & sound).sum()),
        int((((flags & FLAG_LENGTH_FROM_FRAME) != 0) & sound).sum()),
    )


# --- random batches -------------------------------------------------------------------


def random_batch(rng: np.random.Generator, n: int, first: int = 1) -> PacketBatch:
    """Rows of every kind: IPv4/6, non-IP, malformed, inbound, already marked."""
    batch = PacketBatch.allocate(np.zeros(16, np.uint8), n)
    batch.interfaces = ("",)
    c = batch.cols
    c.number[:] = np.arange(first, first + n)
    c.ts_ns[:] = np.cumsum(rng.integers(0, 2_000_000, n)) + first * 1000
    c.ip_version[:] = rng.choice([NOT_IP, 4, 6], n, p=[0.1, 0.6, 0.3])
    c.saddr_lo[:] = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    c.daddr_lo[:] = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    c.protocol[:] = rng.choice([6, 17], n)
    c.sport[:] = rng.integers(1, 65536, n)
    c.dport[:] = rng.choice([80, 53, 666, 443, 1], n)
    c.ds_byte[:] = rng.integers(0, 256, n)
    c.direction[:] = rng.choice([LOCAL_IN, LOCAL_OUT, FWD_IN, FWD_OUT, 0], n)
    c.uid[:] = -1
    c.projid[:] = -1
    c.flags[:] = rng.integers(0, 64, n) & rng.choice([0, 0xFF], n, p=[0.7, 0.3])
    c.ip_len[:] = rng.integers(20, 1500, n)
    c.wire_len[:] = c.ip_len + rng.integers(0, 40, n)
    c.l3_off[:] = np.where(c.ip_version != NOT_IP, 14, -1)
    c.vlan_off[:] = -1
    c.new_ds[:] = np.where(rng.random(n) < 0.2, rng.integers(0, 256, n), -1)
    c.new_pcp[:] = -1
    return batch


def _policy() -> Policy:
    """ipgpc → meter (green → a → b, yellow → b, red → drop), dns → b, 666 → drop."""
    meter = Action(
        "meter",
        "tokenmt",
        params=(
            ("red_action_name", "ipp.drop"),
            ("yellow_action_name", "b"),
            ("green_action_name", "a"),
            ("committed_rate", 400_000),
            ("committed_burst", 12_000),
            ("peak_rate", 800_000),
            ("peak_burst", 24_000),
        ),
    )
    shuffled = tuple(int(v) for v in np.random.default_rng(3).integers(0, 64, 64))
    mark_a = Action("a", "dscpmk", params=(("next_action", "b"), ("dscp_map", shuffled)))
    mark_b = Action(
        "b", "dscpmk", params=(("next_action", "ipp.continue"), ("dscp_map", (46,) * 64))
    )
    return classifier_policy(
        [Filter("w", "web", dport=80), Filter("d", "dns", dport=53), Filter("x", "bad", dport=666)],
        extra=(meter, mark_a, mark_b),
        classes=[Class("web", "meter"), Class("dns", "b"), Class("bad", "ipp.drop")],
    )


def _graph_state(graph: ActionGraph) -> dict[str, Any]:
    return {
        "packets": graph.packets,
        "bytes": graph.bytes,
        "not_ip": (graph.not_ip.packets, graph.not_ip.bytes),
        "malformed": (graph.malformed_count, list(graph.malformed_numbers)),
        "outcomes": {k: (v.packets, v.bytes) for k, v in graph.outcomes.items()},
        "counters": {k: dict(v) for k, v in graph.counters().items()},
    }


@pytest.mark.parametrize("seed", range(6))
def test_graph_run_matches_the_numpy_dispatch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    got, ref = compile_policy(_policy()), compile_policy(_policy())
    first = 1
    for n in (0, 1, 17, 600, 2000, 5):
        batch = random_batch(rng, n, first)
        twin = PacketBatch(buf=batch.buf, cols=columns_of(a.copy() for a in batch.cols))
        got.run(batch)
        reference_run(ref, twin)
        for name, a, b in zip(batch.cols._fields, batch.cols, twin.cols, strict=True):
            assert np.array_equal(a, b), name
        first += n
    assert _graph_state(got) == _graph_state(ref)
    assert got.outcomes["drop"].packets > 0 and got.malformed_count > MALFORMED_KEPT


@pytest.mark.parametrize("seed", range(4))
def test_dscpmk_rows_matches_the_numpy_marker(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    dscp_map = rng.integers(0, 64, 64).astype(np.uint8)
    dscp_map[rng.integers(0, 64, 8)] = np.arange(8)  # some DSCPs unchanged
    action = Action("m", "dscpmk", params=(("dscp_map", tuple(int(v) for v in dscp_map)),))
    op = Dscpmk(action, BuildContext(action_ids={"m": 0}, options=EngineOptions()))
    ref = ReferenceDscpmk(dscp_map, op.next_action)
    for n in (0, 1, 300, 3000):
        batch = random_batch(rng, n)
        twin = PacketBatch(buf=batch.buf, cols=columns_of(a.copy() for a in batch.cols))
        idx = np.flatnonzero(rng.random(n) < 0.7).astype(np.int64)
        assert np.array_equal(op.process(batch, idx), ref.process(twin, idx))
        assert np.array_equal(batch.cols.new_ds, twin.cols.new_ds)
    assert dict(op.counters()) == ref.counts
    assert np.array_equal(op.per_dscp, ref.per_dscp)


@pytest.mark.parametrize(("cos", "mode"), [(5, "illumos"), (1, "illumos"), (7, "plain")])
def test_dlcosmk_rows_matches_the_numpy_marker(cos: int, mode: str) -> None:
    rng = np.random.default_rng(cos)
    action = Action("c", "dlcosmk", params=(("cos", cos),))
    ctx = BuildContext(action_ids={"c": 0}, options=EngineOptions(cos_mode=mode))
    op = Dlcosmk(action, ctx)
    ref = ReferenceDlcosmk(op.pcp, op.next_action)
    for n in (0, 1, 300, 3000):
        batch = random_batch(rng, n)
        batch.cols.vlan_off[:] = np.where(rng.random(n) < 0.6, 12, -1)
        twin = PacketBatch(buf=batch.buf, cols=columns_of(a.copy() for a in batch.cols))
        idx = np.flatnonzero(rng.random(n) < 0.7).astype(np.int64)
        assert np.array_equal(op.process(batch, idx), ref.process(twin, idx))
        assert np.array_equal(batch.cols.new_pcp, twin.cols.new_pcp)
    assert (op.npackets, op.ipackets, op.epackets) == (ref.npackets, ref.ipackets, 0)
    with pytest.raises(IndexError):
        op.process(batch, np.array([n], np.int64))


@pytest.mark.parametrize("seed", range(3))
def test_statistics_passes_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    transitions, conditions = DscpTransitions(), PacketConditions()
    want_counts = np.zeros(64 * 64, np.int64)
    want_conditions = np.zeros(3, np.int64)
    for n in (0, 1, 500, 4000):
        batch = random_batch(rng, n)
        batch.cols.action[:] = rng.choice([ACTION_CONTINUE, ACTION_DROP, ACTION_DEFER, 3], n)
        batch.cols.flags[:] = rng.integers(0, 256, n)
        transitions.update(batch)
        conditions.update(batch)
        want_counts += reference_transitions(batch)
        want_conditions += reference_conditions(batch)
    assert np.array_equal(transitions.counts, want_counts)
    got = (conditions.truncated, conditions.header_cut, conditions.length_from_frame)
    assert got == tuple(int(v) for v in want_conditions)


# --- the dispatch helpers' rules --------------------------------------------------------


def _scatter_args(nxt: list[int], nops: int = 4) -> tuple[Any, ...]:
    action = np.full(8, ACTION_CONTINUE, np.int32)
    wire_len = np.arange(100, 108, dtype=np.uint32)
    rows = np.arange(1, 1 + len(nxt), dtype=np.int64)
    return (
        action,
        wire_len,
        rows,
        np.array(nxt, np.int32),
        np.zeros(nops, np.int64),
        np.zeros(_kernels.GRAPH_OUTCOME_SIZE, np.int64),
    )


def test_scatter_writes_counts_and_tallies() -> None:
    args = _scatter_args([2, ACTION_DROP, 3, ACTION_CONTINUE, ACTION_DEFER, 2])
    assert _kernels.graph_scatter(*args, 1) == -1
    action, _, _, _, pending, tally = args
    assert action.tolist() == [-2, 2, ACTION_DROP, 3, -2, ACTION_DEFER, 2, -2]
    assert pending.tolist() == [0, 0, 2, 1]
    assert tally.tolist() == [1, 104, 1, 102, 1, 105]


@pytest.mark.parametrize(
    ("nxt", "bad"),
    [([2, 1], 1), ([0], 0), ([4], 0), ([-1], 0), ([-5], 0), ([3, ACTION_DROP, -7], 2)],
)
def test_scatter_refuses_a_bad_verdict_and_writes_nothing(nxt: list[int], bad: int) -> None:
    args = _scatter_args(nxt)
    assert _kernels.graph_scatter(*args, 1) == bad
    assert (args[0] == ACTION_CONTINUE).all() and not args[4].any() and not args[5].any()


def test_scatter_checks_its_arguments() -> None:
    args = list(_scatter_args([2]))
    with pytest.raises(IndexError):
        _kernels.graph_scatter(*args[:2], np.array([8], np.int64), *args[3:], 1)
    with pytest.raises(TypeError):
        _kernels.graph_scatter(*args[:3], np.array([2], np.int64), *args[4:], 1)
    with pytest.raises(ValueError, match="aid"):
        _kernels.graph_scatter(*args, 4)
    with pytest.raises(ValueError, match="nxt"):
        _kernels.graph_scatter(*args[:3], np.array([2, 2], np.int32), *args[4:], 1)


def test_rows_at_lists_ascending_rows_and_counts_the_rest() -> None:
    action = np.array([3, 1, 3, 3, -2, 3], np.int32)
    out = np.full(4, -9, np.int64)
    assert _kernels.graph_rows_at(action, 3, out) == 4
    assert out.tolist() == [0, 2, 3, 5]
    short = np.full(2, -9, np.int64)
    assert _kernels.graph_rows_at(action, 3, short) == 4
    assert short.tolist() == [0, 2]
    assert _kernels.graph_rows_at(action, 7, np.empty(0, np.int64)) == 0


def test_begin_checks_its_arguments() -> None:
    batch = random_batch(np.random.default_rng(1), 10)
    with pytest.raises(ValueError, match="ip_rows"):
        _kernels.graph_begin(batch.cols, np.empty(9, np.int64), np.empty(0, np.int64))
    with pytest.raises(TypeError):
        _kernels.graph_begin(batch.cols, np.empty(10, np.int32), np.empty(0, np.int64))


def test_dscpmk_rows_refuses_bad_maps_and_rows() -> None:
    batch = random_batch(np.random.default_rng(2), 10)
    c = batch.cols
    before = c.new_ds.copy()

    def call(rows: Any, dscp_map: Any) -> None:
        _kernels.dscpmk_rows(
            rows, c.direction, c.ip_version, c.ds_byte, c.new_ds, dscp_map,
            np.zeros(64, np.int64), np.zeros(_kernels.DSCPMK_COUNTERS, np.int64),
            np.empty(len(rows), np.int32), ACTION_CONTINUE,
        )  # fmt: skip

    with pytest.raises(ValueError, match="dscp_map"):
        call(np.arange(10, dtype=np.int64), np.full(64, 64, np.uint8))
    with pytest.raises(ValueError, match="dscp_map"):
        call(np.arange(10, dtype=np.int64), np.zeros(63, np.uint8))
    with pytest.raises(IndexError):
        call(np.array([0, 10], np.int64), np.zeros(64, np.uint8))
    with pytest.raises(IndexError):
        call(np.array([-1], np.int64), np.zeros(64, np.uint8))
    assert np.array_equal(c.new_ds, before)


# --- the graph around the helpers ------------------------------------------------------


class _Verdicts:
    """An operator returning fixed verdicts of any dtype."""

    name = "odd"
    module = "dscpmk"

    def __init__(self, verdict: int, dtype: Any) -> None:
        self.verdict, self.dtype = verdict, dtype

    def process(self, batch: PacketBatch, idx: Any) -> Any:
        return np.full(idx.shape[0], self.verdict, self.dtype)

    def finish(self) -> None:
        return None

    def counters(self) -> dict[str, int]:
        return {}


def _two_step_graph(op: Any) -> tuple[ActionGraph, PacketBatch]:
    policy = classifier_policy(
        [Filter("w", "web", dport=80)],
        extra=(Action("odd", "dscpmk", params=(("next_action", "ipp.continue"),)),),
        classes=[Class("web", "odd")],
    )
    graph = compile_policy(policy)
    graph.operators[1] = op
    batch = random_batch(np.random.default_rng(4), 50)
    batch.cols.ip_version[:] = 4
    batch.cols.flags[:] = 0
    batch.cols.dport[:] = 80
    return graph, batch


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint8])
def test_verdicts_of_another_dtype_are_checked_as_given(dtype: Any) -> None:
    graph, batch = _two_step_graph(_Verdicts(ACTION_DROP if dtype != np.uint8 else 0, dtype))
    if dtype == np.uint8:
        with pytest.raises(EngineError, match="action odd: invalid next action 0"):
            graph.run(batch)
        return
    graph.run(batch)
    assert (batch.cols.action == ACTION_DROP).all() and graph.outcomes["drop"].packets == 50


def test_a_verdict_outside_int32_is_refused_not_wrapped() -> None:
    graph, batch = _two_step_graph(_Verdicts(2**32 + 2, np.int64))
    with pytest.raises(EngineError, match=f"invalid next action {2**32 + 2}"):
        graph.run(batch)


def test_a_wrong_number_of_verdicts_is_an_engine_error() -> None:
    class Short(_Verdicts):
        def process(self, batch: PacketBatch, idx: Any) -> Any:
            return np.full(idx.shape[0] - 1, ACTION_CONTINUE, np.int32)

    graph, batch = _two_step_graph(Short(0, np.int32))
    with pytest.raises(EngineError, match="wrong number of verdicts"):
        graph.run(batch)
