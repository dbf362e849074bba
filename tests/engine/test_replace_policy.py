"""Session.replace_policy: a swap between batches keeps the state of unchanged actions."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from engine_helpers import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.columns import PacketBatch
from diffserv.engine.context import EngineOptions
from diffserv.engine.session import Session
from diffserv.errors import PolicyFileError
from diffserv.policy.build import parse
from diffserv.policy.model import Policy
from diffserv.records import FlowRecords

NS_PER_MS = 1_000_000

POLICY = """fmt_version 1.0
action {
    module ipgpc
    name ipgpc.classify
    class { name web next_action meter }
    class { name voice next_action tsw }
    filter { name www class web dport 80 }
    filter { name rtp class voice protocol udp dport 5004 }
}
action {
    module tokenmt
    name meter
    params {
        committed_rate 80000
        committed_burst 8000
        red_action_name drop
        green_action_name mark
    }
}
action {
    module tswtclmt
    name tsw
    params {
        committed_rate 40000
        peak_rate 80000
        window 100
        red_action_name drop
        yellow_action_name acct
        green_action_name acct
    }
}
action {
    module dscpmk
    name mark
    params { next_action acct dscp_map { 0-63:46 } }
}
action {
    module flowacct
    name acct
    params { next_action continue timer 50 timeout 100 max_limit 1000 }
}
"""


class Records:
    """A RecordSink that keeps every flow record it is given, as comparable tuples."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def write(self, records: FlowRecords) -> None:
        for i in range(records.n):
            self.rows.append(
                (
                    records.action,
                    int(records.sport[i]),
                    int(records.dport[i]),
                    int(records.dsfield[i]),
                    int(records.npackets[i]),
                    int(records.nbytes[i]),
                    int(records.first_ns[i]),
                    int(records.last_ns[i]),
                )
            )

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


def _policy(text: str = POLICY) -> Policy:
    return parse(text, "<replace-test>")


def _packets(spec: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """(gap in µs, kind, length) → packets: kind 0 web, 1 voice, 2 unclassified."""
    out: list[dict[str, Any]] = []
    ts = 1_000 * NS_PER_MS
    for gap_us, kind, length in spec:
        ts += gap_us * 1000
        dport, proto = ((80, 6), (5004, 17), (22, 6))[kind]
        out.append({"ts": ts, "dport": dport, "proto": proto, "sport": 1000 + kind, "len": length})
    return out


def _batch(packets: list[dict[str, Any]], first_number: int) -> PacketBatch:
    batch = make_batch(packets)
    batch.cols.number[:] = np.arange(first_number, first_number + batch.n)
    return batch


def _run(
    packets: list[dict[str, Any]], split: int | None, second: Policy | None = None
) -> tuple[list[tuple[int, int, int]], dict[str, Any], list[tuple[Any, ...]]]:
    """Verdicts/marks/colours per packet, the statistics and the flow records of a run."""
    records = Records()
    session = Session(_policy(), EngineOptions(record_sink=records, rewrite_packets=False))
    marks: list[tuple[int, int, int]] = []
    parts = [packets] if split is None else [packets[:split], packets[split:]]
    number = 1
    for i, part in enumerate(parts):
        if i == 1:
            session.replace_policy(second if second is not None else _policy())
        batch = _batch(part, number)
        number += len(part)
        session.process(batch)
        cols = batch.cols
        marks.extend(
            zip(cols.action.tolist(), cols.new_ds.tolist(), cols.colour.tolist(), strict=True)
        )
    stats = session.close().to_json()
    stats.pop("elapsed_s")
    return marks, stats, records.rows


traffic = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(0, 2), st.integers(40, 1500)),
    min_size=2,
    max_size=120,
)


@settings(max_examples=40, deadline=None)
@given(spec=traffic, data=st.data())
def test_swapping_in_the_same_policy_changes_nothing(
    spec: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    """Half the traffic, a swap to an identical policy, the rest == one uninterrupted run."""
    packets = _packets(spec)
    split = data.draw(st.integers(1, len(packets) - 1))
    assert _run(packets, split) == _run(packets, None)


def _heavy_web(count: int) -> list[dict[str, Any]]:
    """Web packets well above tokenmt's committed rate, 1 ms apart."""
    return _packets([(1000, 0, 1000)] * count)


def test_a_changed_meter_restarts_and_the_others_keep_their_state() -> None:
    packets = _heavy_web(40) + _packets([(1000, 1, 200)] * 10)
    changed = _policy(POLICY.replace("committed_burst 8000", "committed_burst 16000"))
    records = Records()
    session = Session(_policy(), EngineOptions(record_sink=records, rewrite_packets=False))
    session.process(_batch(packets[:30], 1))
    before = session.stats()
    swap = session.replace_policy(changed)
    assert swap.fresh == ("meter",)
    assert swap.kept == ("acct", "ipgpc.classify", "mark", "tsw")
    assert swap.removed == ()
    after = session.stats()
    # the changed meter starts from nothing; everything else runs on
    assert set(after.actions["meter"].counters.values()) == {0}
    for name in ("ipgpc.classify", "mark", "acct", "tsw"):
        assert after.actions[name].counters == before.actions[name].counters
    assert after.packets == before.packets == 30
    # a fresh bucket is full again: the next web packet is green although the old one was red
    batch = _batch(packets[30:31], 31)
    session.process(batch)
    assert int(batch.cols.colour[0]) == 1  # green
    assert before.actions["meter"].counters["red_packets"] > 0
    session.close()


def test_rerouting_keeps_the_meter_buckets() -> None:
    """Pointing a meter elsewhere is routing, not state: its buckets carry over."""
    rerouted = _policy(
        POLICY.replace("red_action_name drop\n        green", "red_action_name acct\n        green")
    )
    session = Session(_policy(), EngineOptions(rewrite_packets=False))
    session.process(_batch(_heavy_web(30), 1))
    swap = session.replace_policy(rerouted)
    assert "meter" in swap.kept
    batch = _batch(_heavy_web(1), 31)
    session.process(batch)
    assert int(batch.cols.colour[0]) == 4  # still red: the bucket is the old, empty one
    session.close()


def test_a_removed_flowacct_writes_its_flows_before_it_goes() -> None:
    without_acct = _policy(
        POLICY.replace("next_action acct dscp_map", "next_action continue dscp_map")
        .replace("yellow_action_name acct", "yellow_action_name continue")
        .replace("green_action_name acct", "green_action_name continue")
        .split("action {\n    module flowacct")[0]
    )
    records = Records()
    session = Session(_policy(), EngineOptions(record_sink=records, rewrite_packets=False))
    session.process(_batch(_packets([(10, 0, 100), (10, 1, 100)]), 1))
    assert records.rows == []
    swap = session.replace_policy(without_acct)
    assert swap.removed == ("acct",)
    assert sorted(row[1] for row in records.rows) == [1000, 1001]
    stats = session.close()
    assert "acct" not in stats.actions
    assert stats.packets == 2


def test_a_policy_the_engine_rejects_leaves_the_running_one() -> None:
    good = _policy()
    meter = good.action("meter")
    params = tuple((k, 0 if k == "committed_rate" else v) for k, v in meter.params)
    actions = tuple(
        msgspec.structs.replace(a, params=params) if a.name == "meter" else a for a in good.actions
    )
    bad = msgspec.structs.replace(good, actions=actions)  # past the checker: the engine says no
    session = Session(_policy(), EngineOptions(rewrite_packets=False))
    session.process(_batch(_heavy_web(5), 1))
    graph = session.graph
    with pytest.raises(PolicyFileError, match="meter"):
        session.replace_policy(bad)
    assert session.graph is graph
    counters = session.stats().actions["meter"].counters
    assert counters["green_packets"] + counters["red_packets"] == 5
    session.close()
