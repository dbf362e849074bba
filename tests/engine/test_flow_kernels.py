"""The C flow-table kernels at their boundary: the hash, the free lists, the index, and
arguments or a damaged table turned into Python exceptions rather than stray memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_flowacct import Pkt, make_batch

from diffserv.columns import PacketBatch
from diffserv.engine.modules import _flow_table as ft
from diffserv.engine.modules.flowacct import FlowTable

M64 = (1 << 64) - 1


def reference_hash(shi: int, slo: int, dhi: int, dlo: int, ports: int) -> int:
    """The documented flow hash, in Python integers modulo 2**64."""

    def mix(x: int) -> int:
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & M64
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & M64
        x ^= x >> 33
        return x

    h = (shi & M64) * 0x9E3779B97F4A7C15 & M64
    h ^= (slo & M64) * 0xC2B2AE3D27D4EB4F & M64
    h ^= (dhi & M64) * 0x165667B19E3779F9 & M64
    h ^= (dlo & M64) * 0x27D4EB2F165667C5 & M64
    h ^= (ports & M64) * 0x85EBCA77C2B2AE63 & M64
    return mix(h) & 0x7FFFFFFFFFFFFFFF


words = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)


@given(words, words, words, words, st.integers(min_value=0, max_value=(1 << 40) - 1))
def test_flow_hash_is_the_documented_hash(
    shi: int, slo: int, dhi: int, dlo: int, ports: int
) -> None:
    assert ft.flow_hash(shi, slo, dhi, dlo, ports) == reference_hash(shi, slo, dhi, dlo, ports)


def test_link_free_rows_chains_the_tail_of_a_pool() -> None:
    pool = ft.new_flow_pool(5)
    assert ft.link_free_rows(pool, 2, ft.F_NEXT) == 2
    assert pool[:, ft.F_NEXT].tolist() == [ft.EMPTY, ft.EMPTY, 3, 4, ft.EMPTY]
    assert ft.link_free_rows(pool, 5, ft.F_NEXT) == ft.EMPTY
    with pytest.raises(ValueError, match="link_col"):
        ft.link_free_rows(pool, 0, ft.F_NCOLS)
    with pytest.raises(TypeError):
        ft.link_free_rows(np.zeros((4, ft.F_NCOLS), np.int32), 0, ft.F_NEXT)


def test_rebuild_index_files_every_listed_flow_under_its_hash() -> None:
    flows = ft.new_flow_pool(4)
    for f, h in enumerate((5, 5, 6, 13)):  # 5, 5 and 13 collide in an index of 8
        flows[f, ft.F_HASH] = h
        flows[f, ft.F_NEXT] = f + 1 if f < 3 else ft.EMPTY
    index = np.full(8, ft.EMPTY, np.int64)
    ft.rebuild_index(flows, index, 0)
    assert index.tolist() == [3, -1, -1, -1, -1, 0, 1, 2]
    with pytest.raises(ValueError, match="power of two"):
        ft.rebuild_index(flows, np.full(6, ft.EMPTY, np.int64), 0)
    flows[3, ft.F_NEXT] = 0  # a loop in the list
    with pytest.raises(RuntimeError, match="damaged"):
        ft.rebuild_index(flows, np.full(8, ft.EMPTY, np.int64), 0)


def _table_with_flows() -> tuple[FlowTable, PacketBatch]:
    pkts = [
        Pkt(ts=i, saddr=1, daddr=2, sport=i, dport=80, proto=6, ds=0, length=40) for i in range(3)
    ]
    batch = make_batch(pkts)
    table = FlowTable("t", 1000, 1000, 100, sink=None)
    table.account(batch, np.arange(batch.n, dtype=np.int64))
    return table, batch


def test_account_checks_its_arguments() -> None:
    table, batch = _table_with_flows()
    t = table
    verdict = np.zeros(batch.n, np.uint8)
    args = (t.flows, t.items, t.index, t.scalars, t.out, t.timer_ns, t.timeout_ns, t.max_limit)
    with pytest.raises(IndexError, match="outside the batch"):
        ft.account(*args, np.array([0, batch.n], np.int64), 0, batch.cols, verdict)
    with pytest.raises(IndexError):
        ft.account(*args, np.array([-1], np.int64), 0, batch.cols, verdict)
    with pytest.raises(ValueError, match="verdict"):
        ft.account(*args, np.arange(batch.n, dtype=np.int64), 0, batch.cols, verdict[:1])
    with pytest.raises(TypeError, match="rows"):
        ft.account(*args, np.arange(batch.n, dtype=np.int32), 0, batch.cols, verdict)
    with pytest.raises(TypeError, match="flows"):
        ft.account(t.flows.T.copy(), *args[1:], np.arange(1), 0, batch.cols, verdict)
    with pytest.raises(TypeError, match="PacketColumns"):
        ft.account(*args, np.arange(1), 0, (1, 2), verdict)
    # a start past the end accounts nothing
    assert ft.account(*args, np.arange(batch.n), batch.n + 5, batch.cols, verdict) == (
        ft.DONE,
        batch.n + 5,
    )


def test_a_damaged_table_raises_instead_of_reading_astray() -> None:
    table, batch = _table_with_flows()
    t = table
    rows = np.arange(batch.n, dtype=np.int64)
    verdict = np.zeros(batch.n, np.uint8)
    head = int(t.scalars[ft.S_HEAD])
    t.flows[head, ft.F_IHEAD] = t.items.shape[0] + 7  # an item link out of its pool
    args = (t.flows, t.items, t.index, t.scalars, t.out, t.timer_ns, t.timeout_ns, t.max_limit)
    with pytest.raises(RuntimeError, match="damaged"):
        ft.account(*args, rows, 0, batch.cols, verdict)
    with pytest.raises(RuntimeError, match="damaged"):
        ft.flush_all(t.flows, t.items, t.index, t.scalars, t.out)
    t.scalars[ft.S_HEAD] = t.flows.shape[0]
    with pytest.raises(ValueError, match="list head"):
        ft.sweep(t.flows, t.items, t.index, t.scalars, t.out, 0, 0)
    t.scalars[ft.S_HEAD] = head
    t.scalars[ft.S_NOUT] = t.out.shape[0] + 1
    with pytest.raises(ValueError, match="record count"):
        ft.flush_all(t.flows, t.items, t.index, t.scalars, t.out)
