"""tokenmt against the scalar Fraction model: random traffic, parameters and batch cuts."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meter_reference import (
    Packet,
    TokenMeterModel,
    build,
    expected_nexts,
    run_model,
    run_operator,
    tokenmt_action,
)

from diffserv.policy.model import GREEN, RED, YELLOW

U32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
SEC = 1_000_000_000

# packet-scale values make every outcome likely; the extremes check exactness and overflow
rates = st.one_of(
    st.integers(1, 100_000),
    st.integers(1, U32_MAX),
    st.sampled_from([1, 2, 3, 7, 64, 1_000_000, U32_MAX]),
    st.integers(1, 20).map(lambda k: k * 800),  # whole 100-byte packets per second
)
bursts = st.one_of(
    st.integers(0, 100_000),
    st.integers(0, U32_MAX),
    st.sampled_from([0, 1, 8, 12_000, U32_MAX]),
    st.integers(0, 20).map(lambda k: k * 800),  # buckets that drain to exactly zero
)
gaps = st.one_of(
    st.integers(0, 2_000_000),  # sub-token intervals at low rates, bursts at high ones
    st.integers(-5 * SEC, -1),  # reordered capture: time goes backwards
    st.integers(0, 100 * SEC),
    st.integers(0, 2**62),  # idle for up to ~146 years
    st.sampled_from([0, SEC // 4, SEC // 2, SEC]),  # aligned with the whole-packet rates
)
sizes = st.one_of(
    st.integers(0, 1600), st.integers(0, 65_575), st.just(U32_MAX), st.sampled_from([50, 100])
)
colour_maps = st.lists(st.sampled_from([GREEN, YELLOW, RED]), min_size=64, max_size=64)


@st.composite
def token_models(draw: st.DrawFn) -> TokenMeterModel:
    cir = draw(rates)
    two_rate = draw(st.booleans())
    aware = draw(st.booleans())
    cmap = draw(colour_maps)
    if two_rate:
        pir = draw(st.integers(cir, U32_MAX))
        return TokenMeterModel(
            cir=cir,
            cbs=draw(st.integers(1, U32_MAX)),
            pir=pir,
            pbs=draw(st.integers(1, U32_MAX)),
            aware=aware,
            colour_map=cmap,
        )
    three = draw(st.booleans())
    cbs = draw(bursts)
    pbs = draw(bursts) if three else 0
    if cbs == 0 and pbs == 0:
        cbs = 1
    return TokenMeterModel(cir=cir, cbs=cbs, pbs=pbs, three=three, aware=aware, colour_map=cmap)


@st.composite
def traffic(draw: st.DrawFn) -> list[Packet]:
    now = draw(st.integers(-(2**60), 2**61))
    packets = []
    for _ in range(draw(st.integers(1, 60))):
        now = max(-(2**63), min(INT64_MAX, now + draw(gaps)))
        packets.append(
            Packet(
                ts_ns=now,
                ip_len=draw(sizes),
                ds=draw(st.integers(0, 255)),
                valid=draw(st.integers(0, 15)) != 0,
            )
        )
    return packets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=token_models(),
    packets=traffic(),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    remarks=st.lists(st.integers(-1, 255), min_size=60, max_size=60),
)
def test_operator_matches_the_fraction_model_packet_by_packet(
    model: TokenMeterModel, packets: list[Packet], cuts: list[int], remarks: list[int]
) -> None:
    # an earlier marker may have rewritten the DS byte (-1 = left as received)
    marked = remarks[: len(packets)]
    op = build(tokenmt_action(model))
    nexts, colours = run_operator(op, packets, cuts, marked)
    seen = [replace(p, ds=p.ds if m < 0 else m) for p, m in zip(packets, marked, strict=True)]
    expected = run_model(model, seen)
    assert colours == [0 if c is None else c for c in expected]
    assert nexts == expected_nexts(expected)
    counters = op.counters()
    for name, colour in (("green", GREEN), ("yellow", YELLOW), ("red", RED)):
        chosen = [p for p, c in zip(packets, expected, strict=True) if c == colour]
        assert counters[f"{name}_packets"] == len(chosen)
        assert counters[f"{name}_bits"] == sum(p.ip_len * 8 for p in chosen)
    assert counters["epackets"] == expected.count(None)


@settings(max_examples=40, deadline=None)
@given(model=token_models(), packets=traffic(), cuts=st.lists(st.integers(0, 60), max_size=10))
def test_results_do_not_depend_on_how_the_rows_are_cut_into_batches(
    model: TokenMeterModel, packets: list[Packet], cuts: list[int]
) -> None:
    whole = run_operator(build(tokenmt_action(model)), packets)
    assert run_operator(build(tokenmt_action(model)), packets, cuts) == whole


def _constant_rate(rate_bps: int, ip_len: int, seconds: int) -> list[Packet]:
    spacing = ip_len * 8 * SEC // rate_bps
    return [Packet(i * spacing, ip_len) for i in range(seconds * SEC // spacing)]


def test_trtcm_long_run_green_converges_to_cir_and_yellow_to_pir_minus_cir() -> None:
    cir, pir, seconds = 2_000_000, 5_000_000, 60
    model = TokenMeterModel(cir=cir, cbs=24_000, pir=pir, pbs=48_000)
    op = build(tokenmt_action(model))
    run_operator(op, _constant_rate(7_000_000, 1500, seconds))
    counters = op.counters()
    assert abs(counters["green_bits"] / seconds - cir) / cir < 0.001
    assert abs(counters["yellow_bits"] / seconds - (pir - cir)) / (pir - cir) < 0.001


def test_srtcm_long_run_green_converges_to_cir() -> None:
    cir, seconds = 3_000_000, 60
    model = TokenMeterModel(cir=cir, cbs=30_000, pbs=60_000, three=True)
    op = build(tokenmt_action(model))
    run_operator(op, _constant_rate(4_000_000, 1000, seconds))
    counters = op.counters()
    assert abs(counters["green_bits"] / seconds - cir) / cir < 0.001
    # E only gets tokens while C is full, which an overloaded meter never is: EBS once.
    assert counters["yellow_bits"] <= 60_000


def test_low_rate_long_run_is_exact_where_per_packet_flooring_gives_nothing() -> None:
    model = TokenMeterModel(cir=100, cbs=8)  # 100 bit/s, packets of 8 bits every 1 ms
    op = build(tokenmt_action(model))
    run_operator(op, [Packet(i * 1_000_000, 1) for i in range(100_001)])  # 100 s
    assert op.counters()["green_bits"] == 8 + 100 * 100 // 8 * 8  # burst + 10_000 bits
