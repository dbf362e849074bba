"""The compiled NFQUEUE parser and verdict builder, without a kernel: what the kernel
sends becomes the right rows, garbage never crashes it, verdicts say what the engine did.
"""

from __future__ import annotations

import struct
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv._kernels import (
    NFQ_BAD,
    NFQ_COUNTERS,
    NFQ_META_GID,
    NFQ_META_HOOK,
    NFQ_META_ID,
    NFQ_META_WIDTH,
    NFQ_OVERFLOW,
    nfq_parse,
    nfq_verdicts,
)
from diffserv.columns import ACTION_DROP, FLAG_MALFORMED, allocate_columns
from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
from support import synth
from support.nfq_wire import VERDICT, VERDICT_BATCH, attr, packet_message, verdicts

SLOT = 2048
NOW = 1_767_225_600 * 10**9  # 2026-01-01


def _parse(datagrams: list[bytes], rows: int | None = None, now: int = NOW):
    n = len(datagrams)
    buf = np.zeros(max(n, 1) * SLOT, np.uint8)
    for k, d in enumerate(datagrams):
        buf[k * SLOT : k * SLOT + len(d)] = np.frombuffer(d, np.uint8)
    lengths = np.array([len(d) for d in datagrams], np.int64)
    cap = n if rows is None else rows
    cols = allocate_columns(cap)
    meta = np.zeros((cap, NFQ_META_WIDTH), np.int64)
    counters = np.zeros(NFQ_COUNTERS, np.int64)
    got, max_id, _last = nfq_parse(buf, lengths, SLOT, cols, meta, counters, 1, now, 0)
    return buf, cols, meta, counters, got, max_id


def udp4(dport: int, tos: int = 0) -> bytes:
    return synth.ipv4("10.99.1.1", "10.99.2.2", synth.udp(40000, dport, b"hello"), tos=tos)


def test_well_formed_messages_become_rows() -> None:
    frames = [
        packet_message(7, udp4(5001, 0x02), hook=2, indev=3, outdev=4, timestamp_ns=NOW - 5000),
        packet_message(8, udp4(80), hook=3, outdev=4, uid=1234, gid=99),
        packet_message(
            9, synth.ipv6("fd99:1::1", "fd99:2::2", synth.udp(1, 53), tclass=0xB9), hook=1, indev=3
        ),
        packet_message(10, udp4(53), hook=0, indev=5),
    ]
    _buf, cols, meta, counters, got, max_id = _parse(frames)
    assert (got, max_id) == (4, 10)
    assert counters[NFQ_BAD] == 0
    assert meta[:, NFQ_META_ID].tolist() == [7, 8, 9, 10]
    assert meta[:, NFQ_META_HOOK].tolist() == [2, 3, 1, 0]
    assert cols.direction.tolist() == [FWD_OUT, LOCAL_OUT, LOCAL_IN, FWD_IN]
    # the interface the position is about: outgoing when leaving, incoming when arriving
    assert cols.ifindex.tolist() == [4, 4, 3, 5]
    assert cols.uid.tolist() == [-1, 1234, -1, -1]
    assert meta[:, NFQ_META_GID].tolist() == [-1, 99, -1, -1]
    assert cols.ds_byte.tolist() == [0x02, 0, 0xB9, 0]
    assert cols.dport.tolist() == [5001, 80, 53, 53]
    assert cols.ip_version.tolist() == [4, 4, 6, 4]
    assert cols.number.tolist() == [1, 2, 3, 4]
    # the kernel's time stamp where it has one, else the receive time; never backwards
    assert cols.ts_ns.tolist() == [NOW - 5000, NOW, NOW, NOW]
    assert cols.cap_len.tolist() == cols.wire_len.tolist()


def test_monotonic_timestamps_on_output_are_not_taken_for_wall_clock() -> None:
    boot_relative = 12_345 * 10**9  # what TCP's departure times look like
    _b, cols, *_ = _parse([packet_message(1, udp4(1), hook=3, timestamp_ns=boot_relative)])
    assert cols.ts_ns[0] == NOW


def test_truncated_copy_keeps_the_wire_length() -> None:
    frame = udp4(9)
    _b, cols, *_ = _parse([packet_message(1, frame[:24], cap_len=len(frame))])
    assert cols.cap_len[0] == 24 and cols.wire_len[0] == len(frame)


def test_a_header_without_payload_still_gets_a_row_for_its_verdict() -> None:
    _b, cols, meta, _counters, got, max_id = _parse([packet_message(5, None)])
    assert got == 1 and max_id == 5 and meta[0, NFQ_META_ID] == 5
    assert cols.cap_len[0] == 0 and cols.flags[0] & FLAG_MALFORMED


def test_rows_beyond_the_batch_are_counted_and_covered_by_max_id() -> None:
    two = packet_message(1, udp4(1)) + packet_message(2, udp4(2))
    _b, _c, _m, counters, got, max_id = _parse([two], rows=1)
    assert got == 1 and max_id == 2 and counters[NFQ_OVERFLOW] == 1


def test_several_messages_in_one_datagram() -> None:
    two = packet_message(1, udp4(1)) + packet_message(2, udp4(2))
    _b, cols, _m, _c, got, _max = _parse([two], rows=2)
    assert got == 2 and cols.dport.tolist() == [1, 2]


def _check_rows_inside_slots(cols, got: int, nslots: int) -> None:
    for i in range(got):
        start = int(cols.pkt_off[i])
        slot = start // SLOT
        assert 0 <= slot < nslots
        assert start + int(cols.cap_len[i]) <= (slot + 1) * SLOT


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=SLOT), min_size=1, max_size=6))
def test_garbage_never_crashes(datagrams: list[bytes]) -> None:
    _b, cols, _m, _c, got, _max = _parse(datagrams, rows=8)
    assert 0 <= got <= 8
    _check_rows_inside_slots(cols, got, len(datagrams))


@st.composite
def damaged_messages(draw: st.DrawFn) -> bytes:
    """A valid packet message, then cut short and/or with one length field rewritten."""
    msg = bytearray(
        packet_message(
            draw(st.integers(1, 2**32 - 1)),
            udp4(draw(st.integers(0, 65535))),
            hook=draw(st.integers(0, 255)),
            uid=draw(st.none() | st.integers(0, 2**32 - 1)),
            indev=draw(st.none() | st.integers(0, 2**32 - 1)),
            extra=attr(draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=40))),
        )
    )
    if draw(st.booleans()):
        at = draw(st.integers(0, len(msg) - 2))
        struct.pack_into("=H", msg, at, draw(st.integers(0, 0xFFFF)))
    if draw(st.booleans()):
        del msg[draw(st.integers(0, len(msg))) :]
    return bytes(msg)


@settings(max_examples=400, deadline=None)
@given(st.lists(damaged_messages(), min_size=1, max_size=4))
def test_damaged_messages_are_skipped_or_parsed_inside_their_slot(datagrams: list[bytes]) -> None:
    _b, cols, _m, counters, got, _max = _parse(datagrams, rows=4)
    assert got + counters[NFQ_BAD] >= 0
    _check_rows_inside_slots(cols, got, len(datagrams))


def _verdicts_of(cols, meta, buf, rows: int, max_id: int) -> list[dict]:
    out = np.zeros(1 << 16, np.uint8)
    counters = np.zeros(NFQ_COUNTERS, np.int64)
    messages, nbytes, err = nfq_verdicts(-1, 3, buf, cols, meta, out, counters, rows, max_id)
    assert err == 0
    parsed = verdicts(out[:nbytes].tobytes())
    assert len(parsed) == messages
    return parsed


def test_verdicts_say_what_the_engine_did() -> None:
    frames = [packet_message(i, udp4(5000 + i, tos=0x02)) for i in range(1, 6)]
    buf, cols, meta, _c, got, max_id = _parse(frames)
    cols.action[:] = -2
    cols.action[1] = ACTION_DROP  # id 2: dropped
    cols.new_ds[2] = 0xBA  # id 3: re-marked (the marker rewrote its bytes in buf)
    cols.new_pcp[3] = 5  # id 4: dlcosmk priority
    cols.new_ds[4] = 0x02  # id 5: "marked" to what it had: nothing to send
    parsed = _verdicts_of(cols, meta, buf, got, max_id)
    assert [(m["type"], m["id"]) for m in parsed] == [
        (VERDICT, 2),
        (VERDICT, 3),
        (VERDICT, 4),
        (VERDICT_BATCH, 5),
    ]
    assert all(m["queue"] == 3 for m in parsed)
    assert [m["verdict"] for m in parsed] == [0, 1, 1, 1]
    start = int(cols.pkt_off[2])
    assert parsed[1]["payload"] == buf[start : start + int(cols.cap_len[2])].tobytes()
    assert parsed[1]["priority"] is None and parsed[0]["payload"] is None
    assert parsed[2]["priority"] == 5 and parsed[2]["payload"] is None


def test_a_truncated_copy_is_never_sent_back_cut() -> None:
    frame = udp4(9)
    buf, cols, meta, _c, got, max_id = _parse([packet_message(1, frame[:24], cap_len=len(frame))])
    cols.action[:] = -2
    cols.new_ds[0] = 0xB8
    parsed = _verdicts_of(cols, meta, buf, got, max_id)
    assert [(m["type"], m["payload"]) for m in parsed] == [(VERDICT_BATCH, None)]


def test_parsing_is_fast_enough_for_a_link() -> None:
    frames = [packet_message(i, udp4(i % 65536)) for i in range(1, 1025)]
    start = time.perf_counter()
    for _ in range(20):
        _parse(frames)
    per_packet = (time.perf_counter() - start) / (20 * 1024)
    assert per_packet < 20e-6  # includes building the test buffers in Python
