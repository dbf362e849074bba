"""The sans-I/O framers, fed plain bytes: the result does not depend on the chunking."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.capture.framers import make_framer
from diffserv.capture.framing import (
    DETECT_BYTES,
    Batch,
    CaptureError,
    CaptureFormat,
    EndOfCapture,
    FileHeader,
    InterfaceDescription,
    NeedData,
    SectionHeader,
    detect_format,
)
from diffserv.columns import COLUMNS
from support import synth

_OFFSET_COLUMNS = ("rec_off", "pkt_off", "l3_off", "vlan_off")


@dataclass
class Framed:
    """Everything a framer said about a capture, with buffer positions made absolute."""

    rows: dict[str, list[int]] = field(default_factory=dict)
    span_bytes: bytes = b""
    spans: list[tuple[int, int]] = field(default_factory=list)
    control: list[Any] = field(default_factory=list)
    error: CaptureError | None = None
    interfaces: list[str] = field(default_factory=list)
    batch_interfaces: tuple[str, ...] = ()


def frame(data: bytes, cuts: list[int], *, batch_size: int = 64, **kw: Any) -> Framed:
    """Frame ``data`` offered in buffers that end at ``cuts`` (then at the end)."""
    fmt = detect_format(data[:DETECT_BYTES])
    framer = make_framer(fmt, batch_size=batch_size, **kw)
    ends = [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    limit = 0
    buf: np.ndarray[Any, np.dtype[np.uint8]] | None = None
    base = 0
    bases: dict[int, int] = {}
    kept = []
    out = Framed(rows={column.name: [] for column in COLUMNS})
    for _ in range(10 * len(data) + 100):
        event = framer.next_event()
        if isinstance(event, NeedData):
            # carry what the last buffer holds from the offset on (as the framer may
            # have left it), then the input up to the next cut
            carried = b""
            if buf is not None and base <= event.offset:
                carried = buf[event.offset - base :].tobytes()
            start = event.offset + len(carried)
            limit = next(e for e in ends if e > max(limit, start))
            buf = np.frombuffer(carried + data[start:limit], np.uint8).copy()
            base = event.offset
            bases[id(buf)] = base
            kept.append(buf)  # ids of live buffers stay unique
            framer.receive_data(buf, buf.shape[0], base, limit == len(data))
            continue
        if isinstance(event, Batch):
            batch = event.batch
            at = bases[id(batch.buf)]
            for column, array in zip(COLUMNS, batch.cols, strict=True):
                values = array.astype(np.int64)
                if column.name in _OFFSET_COLUMNS:
                    values = np.where(values >= 0, values + at, values)
                out.rows[column.name].extend(values.tolist())
            out.spans.append((at + batch.span_start, at + batch.span_end))
            out.span_bytes += batch.buf[batch.span_start : batch.span_end].tobytes()
            out.batch_interfaces = batch.interfaces
            continue
        if isinstance(event, CaptureError):
            out.error = event
            assert framer.next_event() is event  # the framer stays there
            break
        if isinstance(event, EndOfCapture):
            break
        out.control.append(event)
    else:
        raise AssertionError("the framer did not finish")
    out.interfaces = list(framer.interfaces)
    # spans follow each other without gap or overlap
    for (_, end), (start, _) in zip(out.spans, out.spans[1:], strict=False):
        assert end == start
    # where batches end depends on the buffers: what they cover together does not
    if out.spans:
        out.spans = [(out.spans[0][0], out.spans[-1][1])]
    return out


def _frames(n: int) -> list[bytes]:
    return [
        synth.simple_frame(
            version=4 if i % 3 else 6,
            proto=("tcp", "udp", "sctp")[i % 3],
            sport=1000 + i,
            dscp=i % 64,
            payload_len=i * 7 % 90,
            vlans=[synth.Vlan(vid=i)] if i % 4 == 0 else (),
        )
        for i in range(n)
    ]


def _pcapng_capture() -> bytes:
    frames = _frames(12)
    sections = [
        synth.Section(
            [synth.Interface(name="eth0"), synth.Interface(linktype=147, name="odd")],
            [
                synth.Packet(frames[0], ts_ns=1_000, epb_flags=1),
                synth.Packet(frames[1], ts_ns=2_000, interface=1),
                synth.Packet(frames[2], ts_ns=3_000, block="spb"),
                synth.Interface(name="eth1", tsresol=9),
                synth.Packet(frames[3], ts_ns=4_000, interface=2, epb_flags=2),
                synth.RawBlock(0x0BAD, b"\x00" * 8),
                synth.Packet(frames[4], ts_ns=5_000, block="opb"),
            ],
        ),
        synth.Section(
            [synth.Interface()],
            [synth.Packet(f, ts_ns=6_000 + i) for i, f in enumerate(frames[5:])],
            big_endian=True,
            section_length=1234,
        ),
    ]
    return synth.pcapng_bytes(sections)


CAPTURES = {
    "pcap": synth.pcap_bytes(_frames(20)),
    "pcap-big-endian-ns": synth.pcap_bytes(_frames(9), big_endian=True, nanosecond=True),
    "pcap-cut": synth.pcap_bytes(_frames(6))[:-5],
    "pcap-cut-header": synth.pcap_bytes(_frames(6)) + b"\x00" * 9,
    "pcap-corrupt": synth.pcap_bytes(_frames(5)) + struct.pack("<IIII", 0, 0, 1 << 30, 60),
    "pcapng": _pcapng_capture(),
    "pcapng-cut": _pcapng_capture()[:-7],
    "pcapng-corrupt": _pcapng_capture() + struct.pack("<II", 6, 13) + b"\x00" * 8,
    "pcapng-cut-idb": _pcapng_capture() + b"\x01\x00\x00\x00\x20\x00",
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_one_byte_at_a_time_is_the_same_as_all_at_once(name: str) -> None:
    data = CAPTURES[name]
    whole = frame(data, [])
    assert frame(data, list(range(len(data)))) == whole
    assert whole.span_bytes or whole.error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CAPTURES)),
    cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=40),
    batch_size=st.integers(min_value=1, max_value=9),
)
def test_any_chunking_gives_the_same_result(name: str, cuts: list[int], batch_size: int) -> None:
    data = CAPTURES[name]
    assert frame(data, cuts, batch_size=batch_size) == frame(data, [], batch_size=64)


def test_pcap_events_and_rows() -> None:
    frames = _frames(4)
    data = synth.pcap_bytes(frames, nanosecond=True)
    out = frame(data, [30, 100], interface="wan0", direction=1)
    assert [type(e) for e in out.control] == [FileHeader]
    assert out.control[0].format == detect_format(data[:DETECT_BYTES])
    assert out.rows["number"] == [1, 2, 3, 4]
    assert out.rows["cap_len"] == [len(f) for f in frames]
    assert set(out.rows["ifindex"]) == {1} and out.interfaces == ["", "wan0"]
    assert set(out.rows["direction"]) == {1}
    assert out.span_bytes == data[24:]
    assert out.error is None


def test_pcapng_control_events() -> None:
    data = CAPTURES["pcapng"]
    out = frame(data, [])
    kinds = [type(e).__name__ for e in out.control]
    assert kinds == [
        "SectionHeader",
        "InterfaceDescription",
        "InterfaceDescription",
        "InterfaceDescription",
        "SectionHeader",
        "InterfaceDescription",
    ]
    sections = [e for e in out.control if isinstance(e, SectionHeader)]
    assert [(s.section, s.big_endian, s.offset) for s in sections] == [
        (1, False, 0),
        (2, True, sections[1].offset),
    ]
    idbs = [e for e in out.control if isinstance(e, InterfaceDescription)]
    assert [(i.section, i.index, i.name, i.decoded) for i in idbs] == [
        (1, 0, "eth0", True),
        (1, 1, "odd", False),
        (1, 2, "eth1", True),
        (2, 0, "", True),
    ]
    assert out.interfaces == ["", "eth0", "odd", "eth1"]
    assert out.rows["number"] == list(range(1, 13))
    # the span bytes are the input, except each section length now says -1
    assert len(out.span_bytes) == len(data)
    assert out.span_bytes[16:24] == b"\xff" * 8


def test_errors_name_the_packet_or_the_offset() -> None:
    cut = frame(CAPTURES["pcap-cut"], [])
    assert cut.error is not None and cut.error.packet == 6
    assert cut.rows["number"] == [1, 2, 3, 4, 5]
    assert "capture ends inside the record" in cut.error.message
    corrupt = frame(CAPTURES["pcapng-corrupt"], [])
    assert corrupt.error is not None and corrupt.error.packet is None
    assert corrupt.error.offset == len(_pcapng_capture())
    assert corrupt.error.where("x.pcapng") == f"x.pcapng: byte offset {len(_pcapng_capture())}"
    assert corrupt.span_bytes[: len(_pcapng_capture())] == frame(CAPTURES["pcapng"], []).span_bytes


def test_the_protocol_is_checked() -> None:
    data = CAPTURES["pcap"]
    framer = make_framer(detect_format(data), batch_size=8)
    buf = np.frombuffer(data, np.uint8).copy()
    assert framer.next_event() == NeedData(24)
    with pytest.raises(ValueError, match="does not hold offset 24"):
        framer.receive_data(buf[30:], 10, 30, False)
    framer.receive_data(buf, buf.shape[0], 0, True)
    with pytest.raises(RuntimeError):
        framer.receive_data(buf, buf.shape[0], 0, True)
    assert isinstance(framer.next_event(), FileHeader)
    assert isinstance(framer.next_event(), Batch)


def test_format_descriptions() -> None:
    pcap_format = detect_format(CAPTURES["pcap-big-endian-ns"][:DETECT_BYTES])
    assert pcap_format == CaptureFormat(
        "pcap",
        CAPTURES["pcap-big-endian-ns"][:24],
        big_endian=True,
        nanosecond=True,
        linktype=1,
        snaplen=262144,
    )
    assert detect_format(CAPTURES["pcapng"]) == CaptureFormat("pcapng", b"", big_endian=False)
    with pytest.raises(ValueError, match="not a pcap or pcapng capture"):
        detect_format(b"hello world")
