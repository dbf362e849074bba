"""The action graph: ids in topological order, virtual actions, batch-size independence."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import classifier_policy, make_batch

from diffserv.columns import ACTION_CONTINUE, ACTION_DROP, PacketBatch, columns_of
from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import EngineError, compile_policy, topological_order
from diffserv.engine.session import Session, drive
from diffserv.errors import PolicyFileError
from diffserv.policy.model import Action, Class, Filter, Policy


def _policy() -> Policy:
    return classifier_policy(
        [Filter("w", "web", dport=80), Filter("d", "bad", dport=666)],
        extra=(
            Action("tail", "dscpmk", params=(("next_action", "ipp.continue"),)),
            Action("head", "dscpmk", params=(("next_action", "tail"), ("dscp_map", (18,) * 64))),
        ),
        classes=[Class("web", "head"), Class("bad", "ipp.drop")],
    )


def test_topological_ids_classifier_first() -> None:
    order = [a.name for a in topological_order(_policy())]
    assert order == ["ipgpc.classify", "head", "tail"]


def test_cycle_is_reported() -> None:
    policy = classifier_policy(
        [Filter("w", "web", dport=80)],
        extra=(
            Action("a", "dscpmk", params=(("next_action", "b"),)),
            Action("b", "dscpmk", params=(("next_action", "a"),)),
        ),
        classes=[Class("web", "a")],
    )
    with pytest.raises(PolicyFileError, match="involved in cycle"):
        compile_policy(policy)


def test_drop_continue_and_non_ip() -> None:
    graph = compile_policy(_policy())
    batch = make_batch([{"dport": 80}, {"dport": 666}, {"dport": 1}, {"ip": False}])
    graph.run(batch)
    assert list(batch.cols.action) == [
        ACTION_CONTINUE,
        ACTION_DROP,
        ACTION_CONTINUE,
        ACTION_CONTINUE,
    ]
    assert graph.outcomes["drop"].packets == 1
    assert graph.outcomes["continue"].packets == 2
    assert graph.not_ip.packets == 1
    assert dict(graph.counters()["tail"])["npackets"] == 1


def _split(batch: PacketBatch, size: int) -> list[PacketBatch]:
    out = []
    for start in range(0, batch.n, size):
        cols = columns_of(array[start : start + size].copy() for array in batch.cols)
        out.append(PacketBatch(buf=batch.buf, cols=cols, interfaces=batch.interfaces))
    return out


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_results_do_not_depend_on_batch_size(size: int) -> None:
    rng = np.random.default_rng(5)
    packets = [
        {"dport": int(rng.choice([80, 666, 1])), "ds": int(rng.integers(0, 256)), "ts": i}
        for i in range(300)
    ]
    whole = make_batch(packets)
    columns_only = EngineOptions(rewrite_packets=False)  # make_batch has no packet bytes
    ref = drive(Session(_policy(), columns_only), [whole]).to_json()
    parts = _split(make_batch(packets), size)
    got = drive(Session(_policy(), columns_only), parts).to_json()
    assert np.array_equal(np.concatenate([p.cols.new_ds for p in parts]), whole.cols.new_ds)
    assert np.array_equal(np.concatenate([p.cols.action for p in parts]), whole.cols.action)
    for key in ("actions", "classes", "dscp_transitions", "written", "dropped"):
        assert got[key] == ref[key]


class _Broken:
    name = "broken"
    module = "dscpmk"

    def __init__(self, verdict: int) -> None:
        self.verdict = verdict

    def process(self, batch: PacketBatch, idx: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return np.full(idx.shape[0], self.verdict, np.int32)

    def finish(self) -> None:
        return None

    def counters(self) -> dict[str, int]:
        return {}


@pytest.mark.parametrize("verdict", [-1, 0, 1, 3, -5])
def test_operator_protocol_violations_are_engine_errors(verdict: int) -> None:

    graph = compile_policy(_policy())
    graph.operators[1] = _Broken(verdict)
    with pytest.raises(EngineError, match="broken"):
        graph.run(make_batch([{"dport": 80}]))
