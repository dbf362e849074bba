"""The compiled packet and capture kernels refuse arguments that would take them outside a
buffer, with a Python exception, instead of reading or writing memory they were not given.

The C kernels check at the boundary (and per row where a row's offsets come from the
caller), so a bad caller gets a ValueError/TypeError.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffserv import _kernels
from diffserv.capture import pcap, pcapng
from diffserv.columns import allocate_columns
from diffserv.packet.checksum import fold16, incremental_checksum, ipv4_header_checksum
from diffserv.packet.decode import decode_frames
from support import synth

FRAME = synth.ethernet(synth.ipv4("10.0.0.1", "10.0.0.2", synth.udp()), vlans=[synth.Vlan(5)])


def test_decode_rows_refuses_a_frame_outside_the_buffer() -> None:
    batch = decode_frames([FRAME])
    batch.cols.cap_len[0] = len(FRAME) + 1
    with pytest.raises(ValueError, match="not inside buf"):
        _kernels.decode_rows(batch.buf, np.ones(1, np.int32), batch.cols)
    batch.cols.cap_len[0] = len(FRAME)
    batch.cols.pkt_off[0] = -1
    with pytest.raises(ValueError, match="not inside buf"):
        _kernels.decode_rows(batch.buf, np.ones(1, np.int32), batch.cols)


def test_decode_rows_checks_the_link_types_and_columns() -> None:
    batch = decode_frames([FRAME])
    with pytest.raises(ValueError, match="linktype"):
        _kernels.decode_rows(batch.buf, np.ones(2, np.int32), batch.cols)
    with pytest.raises(TypeError, match="linktype"):
        _kernels.decode_rows(batch.buf, np.ones(1, np.int64), batch.cols)
    with pytest.raises(TypeError, match="PacketColumns"):
        _kernels.decode_rows(batch.buf, np.ones(1, np.int32), tuple(batch.cols)[:-1])


def test_mark_rows_refuses_offsets_outside_the_buffer() -> None:
    for column in ("l3_off", "vlan_off"):
        batch = decode_frames([FRAME])
        batch.cols.new_ds[0] = 46 << 2
        batch.cols.new_pcp[0] = 3
        getattr(batch.cols, column)[0] = len(FRAME)
        with pytest.raises(ValueError, match="not inside buf"):
            _kernels.mark_rows(batch.buf, batch.cols)


def test_mark_rows_needs_a_writable_buffer() -> None:
    batch = decode_frames([FRAME])
    with pytest.raises(TypeError, match="writable"):
        _kernels.mark_rows(bytes(batch.buf), batch.cols)


def test_checksum_helpers() -> None:
    header = synth.ipv4("10.0.0.1", "10.0.0.2", synth.udp())[:20]
    assert ipv4_header_checksum(header, 0, 20) == int.from_bytes(header[10:12], "big")
    with pytest.raises(ValueError, match="not inside buf"):
        ipv4_header_checksum(header, 1, 20)
    with pytest.raises(ValueError, match="not inside buf"):
        ipv4_header_checksum(header, 0, 21)  # an odd length reads the pad byte too
    assert ipv4_header_checksum(header, 0, 0) == 0xFFFF
    assert fold16(0x1FFFF) == 1
    assert fold16(0x12345678) == 0x68AC
    assert incremental_checksum(0xFFFF, 0, 0) == 0


def test_walkers_refuse_positions_and_rows_outside_what_they_were_given() -> None:
    data = np.frombuffer(synth.pcap_bytes([FRAME]), np.uint8).copy()
    cols = allocate_columns(4)
    args = (False, False, pcap.PCAP_MAX_RECORD, 1)
    assert pcap.scan_pcap(data, 24, len(data), *args, 0, 4, cols) == (
        pcap.SCAN_MORE,
        1,
        len(data),
    )
    with pytest.raises(ValueError, match="not inside buf"):
        pcap.scan_pcap(data, 24, len(data) + 1, *args, 0, 4, cols)
    with pytest.raises(ValueError, match="not inside buf"):
        pcap.scan_pcap(data, -1, len(data), *args, 0, 4, cols)
    with pytest.raises(ValueError, match="not inside the columns"):
        pcap.scan_pcap(data, 24, len(data), *args, 0, 5, cols)
    out = np.zeros((2, pcapng.IDB_COLUMNS), np.int64)
    with pytest.raises(ValueError, match="not inside buf"):
        pcapng.scan_idbs(data, 0, len(data) + 1, False, out)
    with pytest.raises(TypeError, match="shape"):
        pcapng.scan_idbs(data, 0, len(data), False, np.zeros((2, 6), np.int64))


def test_pcapng_walker_checks_the_interface_tables() -> None:
    data = np.frombuffer(synth.simple_pcapng([FRAME]), np.uint8).copy()
    cols = allocate_columns(4)

    def scan(ts: list[list[int]], n: int = 1) -> tuple[int, int, int, int]:
        return pcapng.scan_pcapng(
            data,
            0,
            len(data),
            False,
            np.ones(n, np.int32),
            np.zeros(n, np.int64),
            np.zeros(n, np.int32),
            np.array(ts, np.int64).reshape(-1, 3),
            0,
            0,
            4,
            cols,
        )

    assert scan([[0, 6, 0]])[0] == pcapng.SCAN_CONTROL  # the file starts with a SHB
    for bad in ([0, 20, 0], [1, 64, 0], [2, 6, 0], [0, -1, 0], [0, 6, pcapng.OFFSET_CLAMP + 1]):
        with pytest.raises(ValueError, match="out of range"):
            scan([bad])
    with pytest.raises(ValueError, match="differ in length"):
        scan([[0, 6, 0], [0, 6, 0]])


def test_compact_refuses_records_outside_the_span() -> None:
    buf = np.arange(100, dtype=np.uint8)
    out = np.zeros(100, np.uint8)
    off = np.array([10, 40], np.int64)
    size = np.array([10, 10], np.int64)
    drop = np.array([True, False])
    assert _kernels.compact_records(buf, 0, 100, off, size, drop, out) == 90
    assert out[:90].tolist() == list(range(10)) + list(range(20, 100))
    with pytest.raises(ValueError, match="outside the span"):
        _kernels.compact_records(buf, 0, 45, off[::-1].copy(), size, np.array([True, True]), out)
    with pytest.raises(ValueError, match="span"):
        _kernels.compact_records(buf, 0, 101, off, size, drop, out)
    with pytest.raises(ValueError, match="span"):
        _kernels.compact_records(buf, 0, 100, off, size, drop, out[:50])
    with pytest.raises(TypeError, match="bool"):
        _kernels.compact_records(buf, 0, 100, off, size, drop.astype(np.uint8), out)
