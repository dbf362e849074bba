"""A run of dscpmk actions in one compiled pass (``graph_markers``) against the
action-by-action walk, which a traced batch still takes.

The two must leave every column, counter and per-DSCP statistic the same, for chains of
markers, markers split by a meter, and batches of every size (a live queue's are small).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_helpers import classifier_policy
from test_engine_kernels import random_batch

from diffserv import _kernels
from diffserv.columns import PacketBatch, columns_of
from diffserv.engine.graph import ActionGraph, EngineError, compile_policy, marker_runs
from diffserv.policy.model import Action, Class, Filter, Policy


def _map(seed: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.random.default_rng(seed).integers(0, 64, 64))


def _policy() -> Policy:
    """ipgpc → m1 → m2 → continue, ipgpc → meter → m3 (green) / drop (red), dns → m2."""
    m1 = Action("m1", "dscpmk", params=(("next_action", "m2"), ("dscp_map", _map(1))))
    m2 = Action("m2", "dscpmk", params=(("next_action", "ipp.continue"), ("dscp_map", _map(2))))
    meter = Action(
        "meter",
        "tokenmt",
        params=(
            ("red_action_name", "ipp.drop"),
            ("green_action_name", "m3"),
            ("committed_rate", 300_000),
            ("committed_burst", 6_000),
        ),
    )
    m3 = Action("m3", "dscpmk", params=(("next_action", "ipp.continue"), ("dscp_map", _map(3))))
    return classifier_policy(
        [Filter("w", "web", dport=80), Filter("d", "dns", dport=53), Filter("s", "ssh", dport=22)],
        extra=(m1, m2, meter, m3),
        classes=[Class("web", "m1"), Class("dns", "m2"), Class("ssh", "meter")],
    )


def _state(graph: ActionGraph) -> dict[str, Any]:
    return {
        "outcomes": {k: (v.packets, v.bytes) for k, v in graph.outcomes.items()},
        "counters": {k: dict(v) for k, v in graph.counters().items()},
        "per_dscp": {
            op.name: op.detailed_counters() for op in graph.operators[1:] if op.module == "dscpmk"
        },  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("seed", range(4))
def test_one_pass_over_a_run_of_markers_is_the_action_by_action_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fused, walked = compile_policy(_policy()), compile_policy(_policy())
    walked.trace_limit = 10**12  # every packet traced: the graph walks action by action
    first = 1
    for n in (1, 2, 3, 90, 700, 1, 0, 33):
        batch = random_batch(rng, n, first)
        batch.cols.dport[:] = rng.choice(np.array([80, 53, 22, 9], np.uint16), n)
        twin = PacketBatch(buf=batch.buf, cols=columns_of(a.copy() for a in batch.cols))
        fused.run(batch)
        walked.run(twin)
        for name, a, b in zip(batch.cols._fields, batch.cols, twin.cols, strict=True):
            assert np.array_equal(a, b), name
        first += n
    assert _state(fused) == _state(walked)
    assert fused.marker_runs is not None and sorted(
        (start, stop) for start, (stop, _) in fused.marker_runs.items()
    ) == [(1, 3), (4, 5)]  # m1, m2 | meter | m3
    assert fused.counters()["m2"]["dscp_changed"] > 0 and fused.outcomes["drop"].packets > 0


def test_an_operator_replaced_before_the_first_batch_is_not_fused() -> None:
    graph = compile_policy(_policy())
    graph.operators[1] = graph.operators[3]  # a meter where m1 was: no marker state
    assert sorted(marker_runs(graph.operators)) == [2, 4]


def test_graph_markers_refuses_a_backward_next_action_and_a_bad_map() -> None:
    batch = random_batch(np.random.default_rng(9), 8)
    batch.cols.action[:] = 1
    before = [a.copy() for a in batch.cols]
    pending, tally = np.zeros(3, np.int64), np.zeros(_kernels.GRAPH_OUTCOME_SIZE, np.int64)
    counts, per_dscp = np.zeros(_kernels.DSCPMK_COUNTERS, np.int64), np.zeros(64, np.int64)
    good_map = np.zeros(64, np.uint8)
    assert (
        _kernels.graph_markers(batch.cols, ((good_map, per_dscp, counts, 1),), pending, tally, 1)
        == 0
    )
    for a, b in zip(batch.cols, before, strict=True):
        assert np.array_equal(a, b)  # refused: nothing written
    assert not counts.any() and not pending.any() and not tally.any()
    with pytest.raises(ValueError, match="not a DSCP"):
        _kernels.graph_markers(
            batch.cols, ((np.full(64, 64, np.uint8), per_dscp, counts, -2),), pending, tally, 1
        )
    with pytest.raises(ValueError, match="actions"):
        _kernels.graph_markers(
            batch.cols, ((good_map, per_dscp, counts, -2),) * 3, pending, tally, 1
        )
    assert (
        _kernels.graph_markers(batch.cols, ((good_map, per_dscp, counts, -2),), pending, tally, 1)
        == -1
    )
    assert counts[0] == 8 and tally[0] + tally[2] + tally[4] == 8


def test_an_invalid_next_action_of_a_marker_is_an_engine_error() -> None:
    graph = compile_policy(_policy())
    m1 = graph.operators[1]
    m1.next_action = 1  # type: ignore[attr-defined]  # to itself: a defect
    batch = random_batch(np.random.default_rng(2), 40)
    batch.cols.ip_version[:] = 4
    batch.cols.flags[:] = 0
    batch.cols.dport[:] = 80
    with pytest.raises(EngineError, match="action m1: invalid next action 1"):
        graph.run(batch)
