"""The compiled ipgpc kernel at its boundary: the hash, the index it is given, its arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_helpers import classifier_policy, graph_for, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv import _kernels
from diffserv.engine.modules.ipgpc import Ipgpc
from diffserv.engine.modules.ipgpc_index import (
    NKEY,
    FilterIndex,
    Instance,
    build_index,
    classify_rows,
    instance_hashes,
)
from diffserv.policy.model import Filter

U64 = (1 << 64) - 1


def reference_hash(key: list[int], mask: list[int]) -> int:
    """The index hash, written out: masked words of the used fields, mixed in order."""
    h = 0x2545F4914F6CDD1D
    for k in range(NKEY):
        if mask[k]:
            h = ((h ^ (key[k] & mask[k])) * 0x9E3779B97F4A7C15) & U64
            h ^= h >> 31
    return h


words = st.integers(0, U64)
rows = st.lists(words, min_size=NKEY, max_size=NKEY)


@settings(deadline=None)
@given(st.lists(rows, min_size=1, max_size=8), st.lists(rows, min_size=1, max_size=3), st.data())
def test_instance_hashes_is_the_documented_hash(
    values: list[list[int]], masks: list[list[int]], data: st.DataObject
) -> None:
    group = data.draw(st.lists(st.integers(0, len(masks) - 1), min_size=len(values)))
    group = group[: len(values)]
    got = instance_hashes(
        np.array(values, np.uint64), np.array(group, np.int64), np.array(masks, np.uint64)
    )
    assert [int(h) for h in got] == [
        reference_hash(v, masks[g]) for v, g in zip(values, group, strict=True)
    ]


def test_every_instance_hash_is_in_its_groups_bitmap() -> None:
    insts = [
        Instance(0, (0,) * 6 + (0xFFFF,) + (0,) * 4, (0,) * 6 + (port,) + (0,) * 4, 0, 0)
        for port in range(1, 200)
    ]
    index = build_index(insts)
    hashes = instance_hashes(index.i_value, np.zeros(len(insts), np.int64), index.g_mask)
    shift = int(index.g_bits_shift[0])
    for h in hashes:
        bit = int(h) >> shift
        word = int(index.hash_bits[int(index.g_bits_off[0]) + (bit >> 6)])
        assert word >> (bit & 63) & 1


def _classifier(filters: list[Filter]) -> Ipgpc:
    op = graph_for(classifier_policy(filters)).classifier
    assert isinstance(op, Ipgpc)
    return op


def _run(op: Ipgpc, index: FilterIndex, **override: Any) -> tuple[Any, int]:
    batch = make_batch([{"dport": 80}, {"dport": 81}])
    args: dict[str, Any] = {
        "idx": np.arange(2, dtype=np.int64),
        "cols": batch.cols,
        "if_table": None,
        "index": index,
        "default_class": op.default_class,
        "class_next": op.class_next,
        "c_packets": op.c_packets,
        "c_bytes": op.c_bytes,
        "c_last": op.c_last,
    }
    args.update(override)
    return classify_rows(**args)


def test_kernel_classifies_and_counts() -> None:
    op = _classifier([Filter("f", "web", dport=80)])
    nxt, malformed = _run(op, op.index)
    assert malformed == 0
    assert list(nxt) == [-2, -2]
    assert int(op.c_packets.sum()) == 2


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"idx": np.array([0, 2], np.int64)}, IndexError),
        ({"idx": np.array([0, -1], np.int64)}, IndexError),
        ({"idx": np.array([0, 1], np.int32)}, TypeError),
        ({"default_class": 99}, ValueError),
        ({"class_next": np.zeros(1, np.int32)}, ValueError),
        ({"c_bytes": np.zeros(1, np.int64)}, ValueError),
        ({"if_table": np.zeros(2, np.float64)}, TypeError),
    ],
)
def test_kernel_rejects_bad_arguments(override: dict[str, Any], error: type[Exception]) -> None:
    op = _classifier([Filter("f", "web", dport=80), Filter("g", "mail", dport=25)])
    with pytest.raises(error):
        _run(op, op.index, **override)


def test_kernel_rejects_an_index_that_points_outside_its_arrays() -> None:
    op = _classifier([Filter("f", "web", dport=80), Filter("g", "mail", sport=25)])
    x = op.index
    bad_slots = x.slot_start.copy()
    bad_slots[x.slot_len != 0] = 10**6
    bad_cand = np.full_like(x.cand, 10**6)
    bad_class = np.full_like(x.i_class, 99)
    cases = [
        x._replace(g_tab_off=x.g_tab_off + 10**6),
        x._replace(g_tab_mask=x.g_tab_mask * 0 + x.slot_hash.shape[0]),
        x._replace(g_bits_off=x.g_bits_off + 10**6),
        x._replace(g_bits_shift=x.g_bits_shift * 0 + 2),
        x._replace(slot_start=bad_slots),
        x._replace(cand=bad_cand),
        x._replace(i_class=bad_class),
        x._replace(i_dir=x.i_dir[:1]),
        x._replace(g_mask=x.g_mask[:, :3].copy()),
        x._replace(g_min_rank=x.g_min_rank[::-1].copy()),
    ]
    for bad in cases:
        with pytest.raises(ValueError if bad.g_mask.shape[1] == NKEY else TypeError):
            _run(op, bad)


def test_full_table_ends_the_probe() -> None:
    """A table without an empty slot (not build_index's) still ends every probe."""
    op = _classifier([Filter("f", "web", dport=80)])
    x = op.index
    full = x._replace(slot_len=np.ones_like(x.slot_len), slot_start=np.zeros_like(x.slot_start))
    full = full._replace(hash_bits=np.full_like(x.hash_bits, U64))
    nxt, _ = _run(op, full)
    assert nxt.shape == (2,)


def test_constants_are_the_key_layout() -> None:
    assert _kernels.NKEY == NKEY == 11
    names = ["SADDR_HI", "SADDR_LO", "DADDR_HI", "DADDR_LO", "PROTO", "SPORT", "DPORT"]
    names += ["DSFIELD", "IFNAME", "UID", "PROJID"]
    assert [getattr(_kernels, f"F_{name}") for name in names] == list(range(NKEY))
