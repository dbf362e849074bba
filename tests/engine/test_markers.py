"""dscpmk and dlcosmk: marking rules, ECN kept, inbound untouched, counters under kstat names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_helpers import classifier_policy, graph_for, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.columns import ACTION_CONTINUE
from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.errors import PolicyFileError
from diffserv.policy.model import Action, Class, Filter


def _marker_graph(marker: Action, **options: Any) -> Any:
    policy = classifier_policy(
        [Filter("all4", "all", daddr=None, dport=80)],
        extra=(marker,),
        classes=[Class("all", marker.name)],
    )
    return graph_for(policy, **options)


def dscpmk(dscp_map: tuple[int, ...] | None = None, detailed: bool = False) -> Action:
    params: list[tuple[str, Any]] = [("next_action", "ipp.continue")]
    if dscp_map is not None:
        params.append(("dscp_map", dscp_map))
    if detailed:
        params.append(("dscp_detailed_stats", True))
    return Action("mark", "dscpmk", params=tuple(params))


def test_dscpmk_keeps_ecn_and_counts() -> None:
    dscp_map = tuple(46 if d == 0 else d for d in range(64))
    graph = _marker_graph(dscpmk(dscp_map, detailed=True))
    batch = make_batch(
        [
            {"ds": 0x00},
            {"ds": 0x03},  # DSCP 0, ECN CE
            {"ds": 0x29},  # AF11 + ECT(1): unchanged
            {"ds": 0x01, "dir": LOCAL_IN},
            {"ds": 0x02, "dir": FWD_IN},
            {"ds": 0x00, "dir": FWD_OUT},
        ]
    )
    graph.run(batch)
    assert list(batch.cols.new_ds) == [0xB8, 0xBB, -1, -1, -1, 0xB8]
    assert list(batch.current_ds()) == [0xB8, 0xBB, 0x29, 0x01, 0x02, 0xB8]
    assert dict(graph.counters()["mark"]) == {
        "npackets": 6,
        "dscp_changed": 3,
        "dscp_unchanged": 1,
        "ipackets": 2,
        "epackets": 0,
    }
    detailed = graph.operators[1].detailed_counters()
    assert detailed["dscpmk_dscp0x2e"] == {"dscp": 46, "npackets": 3}
    assert detailed["dscpmk_dscp0xa"] == {"dscp": 10, "npackets": 1}
    assert "dscpmk_dscp0x0" not in detailed  # 0 is not an output value of this map


def test_dscpmk_default_map_is_identity() -> None:
    graph = _marker_graph(dscpmk())
    batch = make_batch([{"ds": 0xB9}])
    graph.run(batch)
    assert list(batch.cols.new_ds) == [-1]
    assert graph.counters()["mark"]["dscp_unchanged"] == 1


def test_marker_chain_reads_earlier_marks() -> None:
    first = Action("m1", "dscpmk", params=(("next_action", "m2"), ("dscp_map", (10,) * 64)))
    to_ef = tuple(46 if d == 10 else d for d in range(64))
    second = Action("m2", "dscpmk", params=(("next_action", "ipp.continue"), ("dscp_map", to_ef)))
    policy = classifier_policy(
        [Filter("f", "c", dport=80)], extra=(second, first), classes=[Class("c", "m1")]
    )
    graph = graph_for(policy)
    assert [op.name for op in graph.operators] == ["ipgpc.classify", "m1", "m2"]
    batch = make_batch([{"ds": 0x01}])
    graph.run(batch)
    assert list(batch.cols.new_ds) == [0xB9]
    assert list(batch.cols.action) == [ACTION_CONTINUE]


def dlcosmk(cos: int) -> Action:
    return Action("cos", "dlcosmk", params=(("next_action", "ipp.continue"), ("cos", cos)))


@pytest.mark.parametrize(
    ("cos", "mode", "pcp"),
    [
        (0, "illumos", 0),
        (1, "illumos", 0),
        (2, "illumos", 0),
        (3, "illumos", 3),
        (7, "illumos", 7),
        (1, "plain", 1),
        (2, "plain", 2),
        (5, "plain", 5),
    ],
)
def test_dlcosmk_pcp_by_mode(cos: int, mode: str, pcp: int) -> None:
    graph = _marker_graph(dlcosmk(cos), cos_mode=mode)
    batch = make_batch([{"vlan": True}, {"vlan": False}, {"vlan": True, "dir": LOCAL_IN}])
    graph.run(batch)
    assert list(batch.cols.new_pcp) == [pcp, -1, -1]
    counters = dict(graph.counters()["cos"])
    assert counters["npackets"] == 3 and counters["ipackets"] == 2
    assert counters["usr_pri"] == cos
    assert counters["b_band"] == (0, 0, 0, 96, 128, 160, 192, 224)[cos]
    assert counters["dl_max"] == (0, 0, 0, 3, 4, 5, 6, 7)[cos]


def test_dlcosmk_unknown_cos_mode_is_an_error() -> None:
    with pytest.raises(PolicyFileError, match="cos mode"):
        _marker_graph(dlcosmk(3), cos_mode="weird")


def test_outbound_directions_marked() -> None:
    graph = _marker_graph(dscpmk((8,) * 64))
    batch = make_batch([{"dir": LOCAL_OUT}, {"dir": FWD_OUT}])
    graph.run(batch)
    assert np.all(batch.cols.new_ds == 0x20)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 63), min_size=64, max_size=64),
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from([LOCAL_OUT, FWD_OUT, LOCAL_IN, FWD_IN])),
        min_size=1,
        max_size=40,
    ),
)
def test_dscpmk_matches_the_formula(dscp_map: list[int], packets: list[tuple[int, int]]) -> None:
    graph = _marker_graph(dscpmk(tuple(dscp_map)))
    batch = make_batch([{"ds": ds, "dir": d} for ds, d in packets])
    graph.run(batch)
    for (ds, d), got in zip(packets, batch.current_ds(), strict=True):
        inbound = d in (LOCAL_IN, FWD_IN)
        expected = ds if inbound else (dscp_map[ds >> 2] << 2) | (ds & 3)
        assert int(got) == expected
    counters = graph.counters()["mark"]
    outbound = [ds for ds, d in packets if d not in (LOCAL_IN, FWD_IN)]
    changed = sum(1 for ds in outbound if dscp_map[ds >> 2] != ds >> 2)
    assert counters["dscp_changed"] == changed
    assert counters["dscp_unchanged"] == len(outbound) - changed
    assert counters["ipackets"] == len(packets) - len(outbound)
