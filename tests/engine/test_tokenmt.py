"""tokenmt operator: RFC 2697/2698 worked examples, colour-aware mode, errors, counters."""

from __future__ import annotations

import numpy as np
import pytest
from meter_reference import (
    DROP_ID,
    NEXT_OF_COLOUR,
    Packet,
    TokenMeterModel,
    build,
    make_batch,
    run_operator,
    tokenmt_action,
)

from diffserv.columns import NOT_IP
from diffserv.errors import PolicyFileError
from diffserv.policy.model import GREEN, RED, YELLOW, Action, Location

G, Y, R = GREEN, YELLOW, RED
SEC = 1_000_000_000
BYTES_500 = 500  # ip_len 500 → 4000 bits


def colours_of(model: TokenMeterModel, packets: list[Packet]) -> list[int]:
    _, colours = run_operator(build(tokenmt_action(model)), packets)
    return colours


def test_srtcm_colour_blind_worked_example_with_excess_spill() -> None:
    # CIR 8000 bit/s, CBS 8000 bits, EBS 4000 bits; 4000-bit packets.
    model = TokenMeterModel(cir=8000, cbs=8000, pbs=4000, three=True)
    times = [0, 0, 0, 0, SEC // 2, 3 * SEC // 2, 7 * SEC // 2, 7 * SEC // 2, 7 * SEC // 2]
    times.append(7 * SEC // 2)
    packets = [Packet(t, BYTES_500) for t in times]
    # t=0: C 8000→4000→0, E 4000→0, then red. t=0.5: +4000 → green.
    # t=1.5: +8000 fills C exactly → green (C=4000). t=3.5: +16000: 4000 to C, the
    # 12000 that arrive while C is full spill into E (capped at 4000).
    assert colours_of(model, packets) == [G, G, Y, R, G, G, G, G, Y, R]


def test_srtcm_two_outcomes_never_yellow() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000)
    op = build(tokenmt_action(model))
    packets = [Packet(0, BYTES_500)] * 3 + [Packet(SEC, BYTES_500)] * 3
    nexts, colours = run_operator(op, packets)
    assert colours == [G, G, R, G, G, R]
    assert nexts == [NEXT_OF_COLOUR[c] for c in colours]
    assert op.counters()["yellow_packets"] == 0


def test_trtcm_colour_blind_worked_example() -> None:
    # CIR 8000, CBS 8000, PIR 16000, PBS 16000; 4000-bit packets.
    model = TokenMeterModel(cir=8000, cbs=8000, pir=16000, pbs=16000)
    packets = [Packet(0, BYTES_500)] * 5 + [Packet(SEC // 4, BYTES_500), Packet(SEC // 2, 500)]
    # t=0: green, green (C=0, P=8000), yellow, yellow (P=0), red.
    # t=0.25: C=2000, P=4000 → yellow (P=0). t=0.5: C=4000, P=4000 → green.
    assert colours_of(model, packets) == [G, G, Y, Y, R, Y, G]


def test_trtcm_red_takes_no_tokens() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pir=8000, pbs=8000)
    packets = [Packet(0, 1500), Packet(0, BYTES_500), Packet(0, BYTES_500)]
    # 12000 bits exceed PBS: red, and both later packets still find full buckets.
    assert colours_of(model, packets) == [R, G, G]


def test_decisions_table_64_bps_with_10_ms_spacing_refills() -> None:
    # illumos floors 64 bit/s × 10 ms = 0.64 bit to 0 at every packet and never refills.
    # Exact accrual: a 512-bit packet conforms every 8 s.
    model = TokenMeterModel(cir=64, cbs=512)
    packets = [Packet(i * 10_000_000, 64) for i in range(2001)]  # 0 .. 20 s
    colours = colours_of(model, packets)
    green_times = [p.ts_ns for p, c in zip(packets, colours, strict=True) if c == G]
    assert green_times == [0, 8 * SEC, 16 * SEC]


def test_fraction_of_a_token_is_carried_between_packets() -> None:
    # 24 bit/s with a packet every 1 ms: 0.024 bit per interval, carried exactly.
    # CBS 16 bits: two bytes at 0 and 1 ms leave 0.024 bit. Then one byte (8 bits)
    # conforms at 334 ms (8.016 bits), 667 ms (0.016 + 7.992) and 1000 ms, where the
    # bucket holds exactly 8.000 bits (0.008 + 333 × 0.024).
    model = TokenMeterModel(cir=24, cbs=16)
    packets = [Packet(i * 1_000_000, 1) for i in range(1001)]
    colours = colours_of(model, packets)
    green_ms = [i for i, c in enumerate(colours) if c == G]
    assert green_ms == [0, 1, 334, 667, 1000]


def test_buckets_start_full_at_the_first_packet_not_at_time_zero() -> None:
    model = TokenMeterModel(cir=1000, cbs=8000)
    start = 1_700_000_000 * SEC
    assert colours_of(model, [Packet(start, 1000), Packet(start, 1)]) == [G, R]


def test_backwards_timestamp_is_zero_elapsed_and_keeps_last() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000)
    packets = [
        Packet(SEC, 1000),  # green, C=0
        Packet(SEC // 2, 1000),  # earlier: nothing accrues → red
        Packet(3 * SEC // 2, BYTES_500),  # 0.5 s after 1 s: 4000 bits → green
        Packet(3 * SEC // 2, BYTES_500),  # nothing left → red
    ]
    assert colours_of(model, packets) == [G, R, G, R]


def test_long_idle_at_extreme_rate_and_burst_refills_without_overflow() -> None:
    top = 2**32 - 1
    model = TokenMeterModel(cir=top, cbs=top, pir=top, pbs=top)
    ten_years = 10 * 365 * 86400 * SEC
    packets = [Packet(0, 65535), Packet(ten_years, 65535), Packet(2 * ten_years, 65535)]
    assert colours_of(model, packets) == [G, G, G]
    single = TokenMeterModel(cir=1, cbs=top, pbs=top, three=True)
    huge = 2**32 - 1  # ip_len of 2^35 bits: fits no bucket
    packets = [Packet(0, huge), Packet(0, top // 8), Packet(2**62, top // 8)]
    assert colours_of(single, packets) == [R, G, G]


def test_colour_aware_srtcm_follows_the_pre_colour() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pbs=8000, three=True, aware=True)
    af11, af12, af13 = 10 << 2, 12 << 2, 14 << 2
    packets = [Packet(0, BYTES_500, ds) for ds in (af12, af13, af11, af11, af11)]
    # AF12 pre-yellow takes from E only; AF13 pre-red is red with full buckets;
    # AF11 green takes C twice, then E has 4000 left → yellow.
    assert colours_of(model, packets) == [Y, R, G, G, Y]


def test_colour_aware_trtcm_never_improves_a_colour() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pir=16000, pbs=16000, aware=True)
    packets = [
        Packet(0, BYTES_500, 14 << 2),
        Packet(0, BYTES_500, 12 << 2),
        Packet(0, 500, 46 << 2),
    ]
    # red stays red (no tokens), yellow takes P only, EF (green in the map) finds C full.
    assert colours_of(model, packets) == [R, Y, G]


def test_colour_aware_reads_the_ds_byte_as_earlier_actions_left_it() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pir=16000, pbs=16000, aware=True)
    op = build(tokenmt_action(model))
    packets = [Packet(0, BYTES_500, ds=0), Packet(0, BYTES_500, ds=14 << 2)]
    batch = make_batch(packets, marked=[(14 << 2) | 1, 0])  # marker set AF13+ECN, then BE
    op.process(batch, np.arange(2, dtype=np.int64))
    assert batch.cols.colour.tolist() == [R, G]


def test_custom_colour_map_is_used() -> None:
    cmap = [GREEN] * 64
    cmap[0] = RED
    model = TokenMeterModel(cir=8000, cbs=8000, pbs=8000, three=True, aware=True, colour_map=cmap)
    assert colours_of(model, [Packet(0, 10, 0), Packet(0, 10, 14 << 2)]) == [R, G]


def test_colour_map_ignored_when_colour_blind() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pbs=8000, three=True, aware=False)
    assert colours_of(model, [Packet(0, 10, 14 << 2)]) == [G]


def test_counters_packets_and_bits_per_colour_and_epackets() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000, pbs=4000, three=True)
    op = build(tokenmt_action(model))
    packets = [Packet(0, BYTES_500)] * 4 + [Packet(0, 20, valid=False)]
    run_operator(op, packets)
    assert dict(op.counters()) == {
        "red_packets": 1,
        "yellow_packets": 1,
        "green_packets": 2,
        "red_bits": 4000,
        "yellow_bits": 4000,
        "green_bits": 8000,
        "epackets": 1,
    }


def test_malformed_and_non_ip_rows_are_dropped_uncoloured_and_leave_buckets_alone() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000)
    op = build(tokenmt_action(model))
    packets = [Packet(0, 1000), Packet(0, 1000, valid=False), Packet(0, 1000), Packet(SEC, 1000)]
    batch = make_batch(packets)
    batch.cols.ip_version[2] = NOT_IP
    batch.cols.colour[:] = YELLOW  # as an earlier meter might have left them
    nexts = op.process(batch, np.arange(4, dtype=np.int64)).tolist()
    assert nexts == [NEXT_OF_COLOUR[G], DROP_ID, DROP_ID, NEXT_OF_COLOUR[G]]
    assert batch.cols.colour.tolist() == [G, 0, 0, G]
    assert op.counters()["epackets"] == 2


def test_only_the_given_rows_are_touched() -> None:
    model = TokenMeterModel(cir=8000, cbs=8000)
    op = build(tokenmt_action(model))
    batch = make_batch([Packet(0, 10)] * 5)
    nexts = op.process(batch, np.array([1, 3], dtype=np.int64))
    assert nexts.tolist() == [NEXT_OF_COLOUR[G]] * 2
    assert batch.cols.colour.tolist() == [0, G, 0, G, 0]


def _action(**params: int | str) -> Action:
    base: dict[str, int | str] = {
        "red_action_name": "red_act",
        "green_action_name": "green_act",
        "committed_rate": 8000,
        "committed_burst": 8000,
    }
    base.update(params)
    return Action("m", "tokenmt", params=tuple((k, v) for k, v in base.items() if v != ""))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"committed_rate": ""}, "Missing required parameter for action m."),
        ({"red_action_name": ""}, "Missing required parameter for action m."),
        ({"committed_rate": 0}, "Invalid Parameters for action m."),
        ({"yellow_action_name": "yellow_act"}, "Invalid Parameters for action m."),
        ({"peak_burst": 100}, "Invalid Parameters for action m."),
        ({"peak_rate": 16000}, "Invalid Parameters for action m."),
        (
            {"peak_rate": 4000, "peak_burst": 10, "yellow_action_name": "yellow_act"},
            "Invalid Parameters for action m.",
        ),
        (
            {"peak_rate": 16000, "peak_burst": 0, "yellow_action_name": "yellow_act"},
            "Invalid Parameters for action m.",
        ),
        ({"committed_burst": 0}, "Invalid Parameters for action m."),
        ({"committed_burst": 2**32}, "Invalid Parameters for action m."),
    ],
)
def test_invalid_parameter_sets_are_rejected_like_the_kernel(
    params: dict[str, int | str], message: str
) -> None:
    with pytest.raises(PolicyFileError, match=message):
        build(_action(**params))


def test_rejection_names_the_file_and_line_of_the_action() -> None:
    action = Action(
        "m",
        "tokenmt",
        params=_action(committed_rate=0).params,
        location=Location("policy.conf", 12, 1),
    )
    with pytest.raises(PolicyFileError) as info:
        build(action)
    assert str(info.value) == "policy.conf:12:1: error: Invalid Parameters for action m."


def test_an_empty_row_set_is_a_no_op() -> None:
    op = build(tokenmt_action(TokenMeterModel(cir=8000, cbs=8000)))
    nexts = op.process(make_batch([Packet(0, 10)]), np.zeros(0, dtype=np.int64))
    assert nexts.dtype == np.int32 and nexts.shape == (0,)
    assert set(op.counters().values()) == {0}
