"""tswtclmt against the scalar integer model; 128-bit helpers and the random source."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meter_reference import (
    Packet,
    SplitMix64,
    TswModel,
    build,
    expected_nexts,
    run_model,
    run_operator,
    tswtclmt_action,
)

from diffserv.engine.meters.random_source import draw_inclusive, initial_state
from diffserv.engine.meters.time_window import next_avg_rate_wide
from diffserv.engine.meters.wide import divmod_128_by_64, mul_64x64

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
SEC = 1_000_000_000

rates = st.one_of(st.integers(0, U32_MAX), st.sampled_from([0, 1, 1000, 10**9, U32_MAX]))
windows = st.one_of(st.integers(1, U32_MAX), st.sampled_from([1, 2, 100, 1000, U32_MAX]))
gaps = st.one_of(
    st.integers(0, 2_000_000),
    st.integers(-SEC, -1),
    st.integers(0, 100 * SEC),
    st.integers(0, 2**62),
)
sizes = st.one_of(st.integers(0, 1600), st.integers(0, 65_575), st.just(U32_MAX))


@st.composite
def tsw_models(draw: st.DrawFn) -> TswModel:
    cir = draw(rates)
    pir = draw(st.integers(cir, U32_MAX))
    return TswModel(cir, pir, draw(windows), seed=draw(st.integers(0, U64_MAX)))


@st.composite
def traffic(draw: st.DrawFn) -> list[Packet]:
    now = draw(st.integers(-(2**60), 2**61))
    packets = []
    for _ in range(draw(st.integers(1, 60))):
        now = max(-(2**63), min(INT64_MAX, now + draw(gaps)))
        valid = draw(st.integers(0, 15)) != 0
        packets.append(Packet(now, draw(sizes), valid=valid))
    return packets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=tsw_models(), packets=traffic(), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_operator_matches_the_integer_model_packet_by_packet(
    model: TswModel, packets: list[Packet], cuts: list[int]
) -> None:
    op = build(tswtclmt_action(model), seed=model.seed)
    nexts, colours = run_operator(op, packets, cuts)
    expected = run_model(model, packets)
    assert colours == [0 if c is None else c for c in expected]
    assert nexts == expected_nexts(expected)
    assert op.counters()["epackets"] == expected.count(None)


@settings(max_examples=40, deadline=None)
@given(model=tsw_models(), packets=traffic(), cuts=st.lists(st.integers(0, 60), max_size=10))
def test_results_do_not_depend_on_how_the_rows_are_cut_into_batches(
    model: TswModel, packets: list[Packet], cuts: list[int]
) -> None:
    whole = run_operator(build(tswtclmt_action(model), seed=model.seed), packets)
    assert run_operator(build(tswtclmt_action(model), seed=model.seed), packets, cuts) == whole


@settings(max_examples=500, deadline=None)
@given(
    avg=st.integers(0, 2**62),
    window_ms=windows,
    bits=st.integers(0, 2**35),
    elapsed=st.integers(0, U64_MAX),
)
def test_wide_average_is_the_exact_floor(avg: int, window_ms: int, bits: int, elapsed: int) -> None:
    got = next_avg_rate_wide(
        np.int64(avg), np.int64(window_ms), np.int64(bits), np.uint64(elapsed),
        np.int64(window_ms * 1_000_000),
    )  # fmt: skip
    exact = (avg * window_ms // 1000 + bits) * SEC // (min(elapsed, 2**63) + window_ms * 10**6)
    assert got == min(exact, 2**62)


@settings(max_examples=1000, deadline=None)
@given(
    high=st.integers(0, U64_MAX),
    low=st.integers(0, U64_MAX),
    divisor=st.one_of(
        st.integers(1, U64_MAX), st.integers(1, 2**32), st.sampled_from([1, 3, 1000])
    ),
)
def test_divmod_128_by_64_matches_python_ints(high: int, low: int, divisor: int) -> None:
    q_high, q_low, rem = divmod_128_by_64(np.uint64(high), np.uint64(low), np.uint64(divisor))
    assert ((int(q_high) << 64) | int(q_low), int(rem)) == divmod((high << 64) | low, divisor)


@settings(max_examples=500, deadline=None)
@given(a=st.integers(0, U64_MAX), b=st.integers(0, U64_MAX))
def test_mul_64x64_matches_python_ints(a: int, b: int) -> None:
    high, low = mul_64x64(np.uint64(a), np.uint64(b))
    assert (int(high) << 64) | int(low) == a * b


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, U64_MAX), name=st.text(min_size=1, max_size=23), upper=st.integers(0, 2**62)
)
def test_random_source_is_the_documented_splitmix64_with_lemire_draws(
    seed: int, name: str, upper: int
) -> None:
    rng = np.array([initial_state(seed, name)], dtype=np.uint64)
    reference = SplitMix64(seed, name)
    for _ in range(5):
        draw = int(draw_inclusive(rng, np.uint64(upper)))
        assert draw == reference.draw(upper)
        assert 0 <= draw <= upper


def test_small_range_draws_are_uniform() -> None:
    rng = np.array([initial_state(1, "m")], dtype=np.uint64)
    counts = np.bincount([int(draw_inclusive(rng, np.uint64(2))) for _ in range(30_000)])
    assert counts.tolist() == [c for c in counts.tolist() if 9_500 < c < 10_500]
    assert len(counts) == 3
