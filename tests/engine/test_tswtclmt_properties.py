"""tswtclmt against the scalar integer model; the average step and the random source."""

from __future__ import annotations

import numpy as np
import pytest
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

from diffserv.engine.meters.random_source import initial_state, tsw_draw_inclusive, tsw_next_u64
from diffserv.engine.meters.time_window import tsw_next_avg_rate, tsw_next_avg_rate_wide

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


def exact_average(avg: int, window_ms: int, bits: int, elapsed: int, window_ns: int) -> int:
    """The average step of docs/meters.md in Python ints: floors, capped elapsed, clamp."""
    delta = min(elapsed, 2**63) + window_ns
    return min((avg * window_ms // 1000 + bits) * SEC // delta, 2**62)


@settings(max_examples=500, deadline=None)
@given(
    avg=st.integers(0, 2**62),
    window_ms=windows,
    bits=st.integers(0, 2**35),
    elapsed=st.integers(0, U64_MAX),
)
def test_wide_average_is_the_exact_floor(avg: int, window_ms: int, bits: int, elapsed: int) -> None:
    got = tsw_next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ms * 1_000_000)
    assert got == exact_average(avg, window_ms, bits, elapsed, window_ms * 1_000_000)


# What the 128-bit path replaced (a 64×64 multiply and a 128-by-64 division written out
# in uint64 halves) is now gcc's unsigned __int128: these hold it exact at the extremes,
# where avg × window_ms, bits_in_win × 1e9 and the quotient all pass 2^64.
wide_operands = st.one_of(
    st.integers(0, INT64_MAX), st.sampled_from([0, 1, 2**32 - 1, 2**62, 2**63 - 1])
)


@settings(max_examples=1000, deadline=None)
@given(
    avg=wide_operands,
    window_ms=windows,
    bits=wide_operands,
    elapsed=st.one_of(st.integers(0, U64_MAX), st.sampled_from([0, 2**63 - 1, 2**63, U64_MAX])),
    window_ns=st.one_of(st.integers(1, INT64_MAX), st.sampled_from([1, 999, 10**6])),
)
def test_wide_average_is_exact_over_its_whole_operand_range(
    avg: int, window_ms: int, bits: int, elapsed: int, window_ns: int
) -> None:
    got = tsw_next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ns)
    assert got == exact_average(avg, window_ms, bits, elapsed, window_ns)


def test_wide_average_clamps_exactly_at_two_to_the_62() -> None:
    # bits_in_win × 1e9 / Δ with Δ = 1 ns: 2^62 stays, one more is clamped to it
    below = tsw_next_avg_rate_wide(0, 1, 4611686018, 0, 1)
    assert below == 4611686018 * SEC < 2**62
    assert tsw_next_avg_rate_wide(0, 1, 4611686019, 0, 1) == 2**62
    assert tsw_next_avg_rate_wide(2**63 - 1, 2**32 - 1, 2**63 - 1, U64_MAX, 2**63 - 1) == (
        exact_average(2**63 - 1, 2**32 - 1, 2**63 - 1, U64_MAX, 2**63 - 1)
    )


@settings(max_examples=1000, deadline=None)
@given(
    avg=st.one_of(st.integers(0, 2**62), st.integers(0, 2**40)),
    window_ms=windows,
    bits=st.one_of(st.integers(0, 2**35), st.integers(0, 2**62)),
    elapsed=st.one_of(st.integers(0, 2**62), st.integers(0, U64_MAX), st.just(2**62 - 1)),
)
def test_average_step_fast_or_wide_is_the_exact_floor(
    avg: int, window_ms: int, bits: int, elapsed: int
) -> None:
    expected = exact_average(avg, window_ms, bits, elapsed, window_ms * 1_000_000)
    assert tsw_next_avg_rate(avg, window_ms, bits, elapsed) == expected


def test_average_step_refuses_operands_outside_its_proof() -> None:
    with pytest.raises(ValueError, match="window_ms"):
        tsw_next_avg_rate(0, 0, 0, 0)
    with pytest.raises(ValueError, match="avg"):
        tsw_next_avg_rate(-1, 1, 0, 0)
    with pytest.raises(ValueError, match="bits"):
        tsw_next_avg_rate(0, 1, 2**62 + 1, 0)
    with pytest.raises(ValueError, match="window_ns"):
        tsw_next_avg_rate_wide(0, 1, 0, 0, 0)
    with pytest.raises(OverflowError):
        tsw_next_avg_rate_wide(0, 1, 0, 2**64, 1)


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
        draw = tsw_draw_inclusive(rng, upper)
        assert draw == reference.draw(upper)
        assert 0 <= draw <= upper


def test_small_range_draws_are_uniform() -> None:
    rng = np.array([initial_state(1, "m")], dtype=np.uint64)
    counts = np.bincount([tsw_draw_inclusive(rng, 2) for _ in range(30_000)])
    assert counts.tolist() == [c for c in counts.tolist() if 9_500 < c < 10_500]
    assert len(counts) == 3


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, U64_MAX), name=st.text(min_size=1, max_size=23))
def test_next_u64_is_the_documented_splitmix64(seed: int, name: str) -> None:
    rng = np.array([initial_state(seed, name)], dtype=np.uint64)
    reference = SplitMix64(seed, name)
    for _ in range(5):
        assert tsw_next_u64(rng) == reference.next()
        assert int(rng[0]) == reference.state


def test_draw_over_the_whole_64_bit_range() -> None:
    # span 2^64 − 1 + 1 wraps to 0: the draw is 0 and consumes one output, as it always did
    rng = np.array([5], dtype=np.uint64)
    reference = SplitMix64(0, "x")
    reference.state = 5
    assert tsw_draw_inclusive(rng, U64_MAX) == 0
    reference.next()
    assert int(rng[0]) == reference.state
    assert tsw_draw_inclusive(rng, 2**64 - 2) == reference.draw(2**64 - 2)


def test_random_hooks_check_the_state_array() -> None:
    with pytest.raises(ValueError, match="rng has 2 items"):
        tsw_next_u64(np.zeros(2, dtype=np.uint64))
    with pytest.raises(TypeError, match="rng"):
        tsw_draw_inclusive(np.zeros(1, dtype=np.int64), 3)
    with pytest.raises(OverflowError):
        tsw_draw_inclusive(np.zeros(1, dtype=np.uint64), -1)
