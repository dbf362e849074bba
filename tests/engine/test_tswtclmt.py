"""tswtclmt operator: the rate estimator by hand, marking probabilities, seeding, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from meter_reference import (
    DROP_ID,
    NEXT_OF_COLOUR,
    Packet,
    TswModel,
    build,
    make_batch,
    run_model,
    run_operator,
    tswtclmt_action,
)

from diffserv.engine.modules.tswtclmt import TimeSlidingWindowMeter
from diffserv.errors import PolicyFileError
from diffserv.policy.model import GREEN, RED, YELLOW, Action

SEC = 1_000_000_000
MS = 1_000_000


def meter(
    cir: int, pir: int, window_ms: int, seed: int = 1, name: str = "m"
) -> TimeSlidingWindowMeter:
    op = build(tswtclmt_action(TswModel(cir, pir, window_ms, name=name)), seed=seed)
    assert isinstance(op, TimeSlidingWindowMeter)
    return op


def averages(op: TimeSlidingWindowMeter, packets: list[Packet]) -> list[int | None]:
    batch = make_batch(packets)
    out: list[int | None] = []
    for i in range(len(packets)):
        op.process(batch, np.array([i], dtype=np.int64))
        out.append(op.average_rate_bps)
    return out


def test_rate_estimator_worked_example() -> None:
    # CTR 8000 bit/s, window 1 s, 4000-bit packets. avg starts at CTR, front at 1st packet.
    op = meter(8000, 16000, 1000)
    assert op.average_rate_bps is None
    packets = [Packet(0, 500), Packet(SEC // 2, 500), Packet(5 * SEC // 2, 500)]
    # (8000·1 + 4000) / 1 s = 12000; (12000 + 4000) / 1.5 s = 10666;
    # (10666 + 4000) / 3 s = 4888.
    assert averages(op, packets) == [12000, 10666, 4888]


def test_window_in_ms_floors_bits_in_window() -> None:
    op = meter(1001, 5000, 3)  # 1001 bit/s × 3 ms = 3.003 → 3 bits in the window
    # (3 + 8) bits / 3 ms = 3666 bit/s; then (10 + 8) bits / 4 ms = 4500 bit/s.
    assert averages(op, [Packet(7 * MS, 1), Packet(8 * MS, 1)]) == [3666, 4500]


def test_backwards_timestamp_counts_as_zero_elapsed() -> None:
    op = meter(8000, 16000, 1000)
    packets = [Packet(SEC, 500), Packet(0, 500), Packet(SEC, 500)]
    # 12000, then (12000 + 4000) / 1 s, then again nothing elapsed since the front (1 s).
    assert averages(op, packets) == [12000, 16000, 20000]


def test_below_committed_rate_everything_is_green_once_the_estimate_settles() -> None:
    op = meter(1_000_000, 2_000_000, 100)
    packets = [Packet(i * 15 * MS, 1500) for i in range(2000)]  # 800 kbit/s
    _, colours = run_operator(op, packets)
    # the first packet alone lifts the estimate to CTR + 12000 bits / 100 ms
    assert averages(meter(1_000_000, 2_000_000, 100), packets[:1]) == [1_120_000]
    assert set(colours[50:]) == {GREEN}


def _marking_fractions(rate_bps: int, cir: int, pir: int, seed: int = 7) -> dict[int, float]:
    op = meter(cir, pir, 200, seed=seed)
    spacing = 1500 * 8 * SEC // rate_bps
    packets = [Packet(i * spacing, 1500) for i in range(60_000)]
    _, colours = run_operator(op, packets)
    steady = Counter(colours[5000:])
    total = sum(steady.values())
    return {c: steady[c] / total for c in (GREEN, YELLOW, RED)}


def test_between_targets_yellow_fraction_is_the_rfc_p0() -> None:
    cir, pir, rate = 4_000_000, 8_000_000, 6_000_000
    fractions = _marking_fractions(rate, cir, pir)
    assert fractions[RED] == 0
    assert fractions[YELLOW] == pytest.approx((rate - cir) / rate, abs=0.01)


def test_above_peak_red_and_yellow_fractions_are_the_rfc_p1_p2() -> None:
    cir, pir, rate = 2_000_000, 4_000_000, 10_000_000
    fractions = _marking_fractions(rate, cir, pir)
    assert fractions[RED] == pytest.approx((rate - pir) / rate, abs=0.01)
    assert fractions[YELLOW] == pytest.approx((pir - cir) / rate, abs=0.01)


def test_same_seed_same_colours_other_seed_or_name_other_colours() -> None:
    packets = [Packet(i * MS, 1500) for i in range(3000)]  # 12 Mbit/s
    first = run_operator(meter(4_000_000, 8_000_000, 100, seed=5), packets)
    again = run_operator(meter(4_000_000, 8_000_000, 100, seed=5), packets)
    other_seed = run_operator(meter(4_000_000, 8_000_000, 100, seed=6), packets)
    other_name = run_operator(meter(4_000_000, 8_000_000, 100, seed=5, name="n"), packets)
    assert first == again
    assert first != other_seed
    assert first != other_name


def test_default_seed_is_fixed_across_runs() -> None:
    packets = [Packet(i * MS, 1500) for i in range(500)]
    model = TswModel(4_000_000, 8_000_000, 100)
    op = build(tswtclmt_action(model))  # EngineOptions default seed
    _, colours = run_operator(op, packets)
    assert colours == run_model(model, packets)


def test_average_saturates_instead_of_overflowing() -> None:
    model = TswModel(1, 2, 1)
    op = build(tswtclmt_action(model))
    packets = [Packet(0, 2**32 - 1)] * 140_000  # all at one instant, window 1 ms
    _, colours = run_operator(op, packets)
    assert isinstance(op, TimeSlidingWindowMeter)
    assert op.average_rate_bps == 2**62
    assert colours == run_model(model, packets)


def test_counters_and_error_rows() -> None:
    op = build(tswtclmt_action(TswModel(8000, 16000, 1000)))
    packets = [Packet(0, 100), Packet(0, 100, valid=False), Packet(10 * SEC, 100)]
    nexts, colours = run_operator(op, packets)
    assert nexts == [NEXT_OF_COLOUR[GREEN], DROP_ID, NEXT_OF_COLOUR[GREEN]]
    assert colours == [GREEN, 0, GREEN]
    assert dict(op.counters()) == {
        "red_packets": 0,
        "yellow_packets": 0,
        "green_packets": 2,
        "red_bits": 0,
        "yellow_bits": 0,
        "green_bits": 1600,
        "epackets": 1,
    }


def test_first_metered_packet_sets_the_window_front_not_an_error_row() -> None:
    op = meter(8000, 16000, 1000)
    averages(op, [Packet(0, 500, valid=False), Packet(SEC, 500)])
    assert op.average_rate_bps == 12000


@pytest.mark.parametrize(
    ("drop", "extra", "message"),
    [
        ("yellow_action_name", {}, "Missing required parameter for action t."),
        ("window", {}, "Missing required parameter for action t."),
        ("", {"peak_rate": 10}, "Invalid Parameters for action t."),
        ("", {"window": 0}, "window must be 1 to 4294967295 ms"),
        ("", {"peak_rate": 2**32}, "Invalid Parameters for action t."),
    ],
)
def test_invalid_parameter_sets_are_rejected(
    drop: str, extra: dict[str, int], message: str
) -> None:
    params = dict(tswtclmt_action(TswModel(100, 200, 10, name="t")).params)
    params.pop(drop, None)
    params.update(extra)
    with pytest.raises(PolicyFileError, match=message):
        build(Action("t", "tswtclmt", params=tuple(params.items())))
