"""Flow-store batches for tests: a deterministic builder and a hypothesis strategy.

Rows are compared as plain tuples with the action and class decoded, because the store
keeps names, not the codes a batch happened to use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from diffserv.flows.schema import BATCH_COLUMNS, SOURCES, UNKNOWN, FlowBatch, make_batch

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000_000_000
V4 = 0xFFFF << 32

# The largest value each column's store type holds.
_ARROW_MAX = {"uint8": 0xFF, "uint16": 0xFFFF, "uint32": 0xFFFFFFFF, "uint64": 2**64 - 1}


def v4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return V4 | (a << 24) | (b << 16) | (c << 8) | d


def simple_batch(
    n: int,
    *,
    start_ns: int = T0,
    step_ns: int = 60_000_000_000,
    dscp: NDArray[Any] | None = None,
    ecn: NDArray[Any] | None = None,
    source: str = "ipfix",
    exporter: str = "192.0.2.1",
    domain: int = 0,
    seed: int = 0,
) -> FlowBatch:
    """``n`` IPv4 UDP flows one ``step_ns`` apart from ``start_ns``, DS byte from dscp/ecn."""
    rng = np.random.default_rng(seed)
    first = start_ns + np.arange(n, dtype=np.int64) * step_ns
    dscp = np.zeros(n, np.int16) if dscp is None else np.asarray(dscp, np.int16)
    ecn = np.zeros(n, np.int16) if ecn is None else np.asarray(ecn, np.int16)
    ds = np.where(ecn >= 0, (dscp << 2) | np.maximum(ecn, 0), dscp << 2).astype(np.int16)
    given = {
        "first_ns": first,
        "last_ns": first + 1_000_000,
        "ip_version": np.full(n, 4, np.uint8),
        "saddr_hi": np.zeros(n, np.uint64),
        "saddr_lo": np.full(n, v4("10.0.0.1"), np.uint64) + np.arange(n, dtype=np.uint64) % 200,
        "daddr_hi": np.zeros(n, np.uint64),
        "daddr_lo": np.full(n, v4("192.168.1.1"), np.uint64),
        "sport": rng.integers(1024, 65535, n),
        "dport": np.full(n, 53),
        "protocol": np.full(n, 17),
        "ds_in": ds,
        "dscp_in": dscp,
        "ecn_in": ecn,
        "prec_in": dscp >> 3,
        "packets": rng.integers(1, 1000, n).astype(np.uint64),
        "bytes": rng.integers(64, 10**6, n).astype(np.uint64),
    }
    return make_batch(source, exporter, domain, n, given)


def rows_of(batches: list[FlowBatch]) -> list[tuple[Any, ...]]:
    """Every record of ``batches`` as a tuple (origin, columns, action and class names)."""
    rows: list[tuple[Any, ...]] = []
    names = [c.name for c in BATCH_COLUMNS if c.name not in ("action_code", "class_code")]
    for batch in batches:
        cols = [batch.columns[name].tolist() for name in names]
        actions = batch.columns["action_code"].tolist()
        classes = batch.columns["class_code"].tolist()
        for i in range(batch.n):
            action = batch.actions[actions[i]] if actions[i] >= 0 else None
            klass = batch.classes[classes[i]] if classes[i] >= 0 else None
            values = tuple(col[i] for col in cols)
            rows.append((batch.source, batch.exporter, batch.domain, *values, action, klass))
    return sorted(rows, key=repr)


_TIMES = st.one_of(
    # around hour and day boundaries of 2026-01-01 (a few partitions: each file costs fsyncs)
    st.builds(
        lambda k, d: T0 + k * HOUR + d,
        st.integers(-2, 2),
        st.integers(-2_000_000, 2_000_000),
    ),
    st.sampled_from([-(2**63), 2**63 - 1, 0, -1]),
    st.integers(-(2**63), 2**63 - 1),
)
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def flow_batches(draw: st.DrawFn, max_rows: int = 12) -> FlowBatch:
    """A random batch: v4 and v6 addresses, unknowns, times anywhere in int64."""
    n = draw(st.integers(0, max_rows))
    actions = tuple(draw(st.lists(_NAMES, max_size=3, unique=True)))
    classes = tuple(draw(st.lists(_NAMES, max_size=3, unique=True)))
    given: dict[str, NDArray[Any]] = {}
    for column in BATCH_COLUMNS:
        name = column.name
        if name in ("first_ns", "last_ns"):
            values = draw(st.lists(_TIMES, min_size=n, max_size=n))
            given[name] = np.array(values, np.int64)
        elif name == "ip_version":
            given[name] = np.array(
                draw(st.lists(st.sampled_from([0, 4, 6]), min_size=n, max_size=n)), np.uint8
            )
        elif name in ("saddr_hi", "daddr_hi"):
            is_v4 = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
            hi = draw(hnp.arrays(np.uint64, n))
            lo = draw(hnp.arrays(np.uint64, n))
            octets = draw(hnp.arrays(np.uint32, n)).astype(np.uint64)
            given[name] = np.where(is_v4, np.uint64(0), hi).astype(np.uint64)
            given[name[:-3] + "_lo"] = np.where(is_v4, np.uint64(V4) | octets, lo).astype(np.uint64)
        elif name in ("saddr_lo", "daddr_lo"):
            continue
        elif name in ("action_code", "class_code"):
            size = len(actions if name == "action_code" else classes)
            codes = draw(st.lists(st.integers(-1, size - 1), min_size=n, max_size=n))
            given[name] = np.array(codes, np.int32)
        else:
            top = min(_ARROW_MAX[column.arrow], int(np.iinfo(column.dtype).max))
            low = UNKNOWN if column.unknown is not None else 0
            values = draw(st.lists(st.integers(low, top), min_size=n, max_size=n))
            given[name] = np.array(values, dtype=column.dtype)
    source = draw(st.sampled_from(SOURCES))
    exporter = draw(st.sampled_from(["", "192.0.2.7", "2001:db8::9"]))
    domain = draw(st.integers(0, 2**32 - 1))
    return make_batch(source, exporter, domain, n, given, actions=actions, classes=classes)
