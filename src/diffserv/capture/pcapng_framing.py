"""Sans-I/O framing of a pcapng capture: sections, interfaces and packet blocks.

See :mod:`diffserv.capture.framing` for the protocol. Section headers and interface
descriptions are rare and carry the state the packet blocks depend on (byte order,
link type, time stamp resolution and offset), so they are taken in here one run at a
time; the compiled ``scan_pcapng`` stops at each of them and handles EPB/SPB/OPB (and
skips every other block) at full speed in between.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from numpy.typing import NDArray

from diffserv.capture import pcapng
from diffserv.capture.framing import (
    Batch,
    Event,
    Framer,
    FramingError,
    InterfaceDescription,
    SectionHeader,
    Steps,
    _i64_at,
    _u32_at,
)

_SHB_BYTES = pcapng.BT_SHB.to_bytes(4, "little")
# (position after the control blocks, big-endian, sections seen, complete)
_ControlSteps = Generator[Event, None, tuple[int, bool, int, bool]]


class PcapngFramer(Framer):
    """Frames a pcapng capture. ``interface`` names the interfaces without ``if_name``."""

    kind = "pcapng"

    def _prepare(self) -> None:
        self._idb_rows = np.empty((4096, pcapng.IDB_COLUMNS), np.int64)  # scan_idbs output

    def _run(self) -> Steps:
        cap = self._capacity_batch()
        big = False
        tables = _InterfaceTables()
        last_ts = 0
        pos = -self._base
        span_start = pos
        n = 0
        section = 0  # sections seen so far (1 = the first)
        while True:
            status, n, pos, last_ts = pcapng.scan_pcapng(
                self._buf,
                pos,
                self._end,
                big,
                *tables.views(),
                last_ts,
                n,
                self.batch_size,
                cap.cols,
            )
            if status in (pcapng.SCAN_BAD, pcapng.SCAN_BAD_IFACE, pcapng.SCAN_BAD_TIME) and (
                n or pos > span_start
            ):
                # everything before the damage is still processed and written
                yield Batch(self._finish_batch(cap, n, span_start, pos))
                cap = self._capacity_batch()
                n = 0
                span_start = pos
            if status == pcapng.SCAN_BAD:
                raise self._corrupt_block(pos)
            if status == pcapng.SCAN_BAD_IFACE:
                raise FramingError(
                    f"packet block at byte offset {self._base + pos} refers to an interface "
                    f"the section does not describe ({tables.n} interface(s))",
                    packet=self.packets + 1,
                )
            if status == pcapng.SCAN_BAD_TIME:
                raise FramingError(
                    f"the time stamp of the packet block at byte offset {self._base + pos} "
                    "(with its interface's if_tsresol and if_tsoffset) is outside what "
                    "diffserv can represent (64-bit nanoseconds: 1677-09-22 to 2262-04-11 UTC)",
                    packet=self.packets + 1,
                )
            if status == pcapng.SCAN_CONTROL:
                # section headers and interface descriptions, as many as follow each other
                try:
                    after, big, section, complete = yield from self._control_blocks(
                        pos, big, section, tables
                    )
                except FramingError:
                    if n or pos > span_start:  # what came before the damage is written
                        yield Batch(self._finish_batch(cap, n, span_start, pos))
                    raise
                pos = after
                if complete:
                    continue
                # the block is not complete in the buffer: emit, then refill
                if n or pos > span_start:
                    yield Batch(self._finish_batch(cap, n, span_start, pos))
                    cap = self._capacity_batch()
                    n = 0
                    span_start = pos
                if self._eof:
                    raise self._truncated_block(pos)
                shift = yield from self._more(span_start)
                pos -= shift
                span_start -= shift
                continue
            # SCAN_MORE: rows full, or need more data
            if n == self.batch_size:
                yield Batch(self._finish_batch(cap, n, span_start, pos))
                cap = self._capacity_batch()
                n = 0
                span_start = pos
                continue
            if self._eof:
                if n or pos > span_start:
                    yield Batch(self._finish_batch(cap, n, span_start, pos))
                if pos < self._end:
                    raise self._truncated_block(pos)
                return
            if n:
                yield Batch(self._finish_batch(cap, n, span_start, pos))
                cap = self._capacity_batch()
                n = 0
                span_start = pos
            shift = yield from self._more(span_start)
            pos -= shift
            span_start -= shift

    def _control_blocks(
        self, pos: int, big: bool, section: int, tables: _InterfaceTables
    ) -> _ControlSteps:
        """Take in the SHBs and IDBs that follow each other from ``pos``.

        Returns (position after them, byte order, sections seen, complete); complete is
        False when the next of them is not wholly in the buffer yet.
        """
        while True:
            if section == 0 or self._is_shb(pos):
                length = self._control_length(pos, big)
                if length is None:
                    return pos, big, section, False
                big, version = self._section_header(pos, length)
                section += 1
                tables.clear()
                yield SectionHeader(self._base + pos, section, big, version)
                pos += length
            else:
                status, rows, end = pcapng.scan_idbs(self._buf, pos, self._end, big, self._idb_rows)
                yield from self._add_interfaces(rows, big, section, tables)
                pos = end
                if status == pcapng.IDB_BAD:
                    raise self._corrupt_block(pos)
                if status == pcapng.IDB_SHORT:
                    raise FramingError(
                        "interface description block is too short", offset=self._base + pos
                    )
                if status == pcapng.IDB_INCOMPLETE:
                    return pos, big, section, False
            if not self._is_control(pos, big):
                return pos, big, section, True

    def _add_interfaces(
        self, rows: int, big: bool, section: int, tables: _InterfaceTables
    ) -> Generator[InterfaceDescription, None, None]:
        """Add the interfaces ``scan_idbs`` left in the first ``rows`` of ``_idb_rows``."""
        buf = self._buf
        for at, linktype, snaplen, name_at, name_len, resol, offset_at in self._idb_rows[
            :rows
        ].tolist():
            name = ""
            if name_len:
                raw = buf[name_at : name_at + name_len].tobytes()
                name = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
            binary, exponent = False, 6  # default: microseconds
            if resol >= 0:
                try:
                    binary, exponent = pcapng.resolution(resol)
                except ValueError as exc:
                    raise FramingError(str(exc), offset=self._base + at) from None
            offset = 0
            if offset_at >= 0:
                offset = pcapng.clamp_offset(_i64_at(buf, offset_at, big))
            label = name or (self._default_interface or "")
            ifindex = self._interface_index(label) if label else 0
            yield InterfaceDescription(
                self._base + at, section, tables.n, name, linktype, snaplen, ifindex
            )
            tables.append(
                linktype, snaplen, ifindex, binary=binary, exponent=exponent, offset=offset
            )

    def _is_shb(self, pos: int) -> bool:
        return self._buf[pos : pos + 4].tobytes() == _SHB_BYTES  # either byte order

    def _is_control(self, pos: int, big: bool) -> bool:
        """Whether a SHB or IDB starts at ``pos`` (False when its type is not in the buffer)."""
        if pos + 4 > self._end:
            return False
        return self._is_shb(pos) or _u32_at(self._buf, pos, big) == pcapng.BT_IDB

    def _corrupt_block(self, pos: int) -> FramingError:
        return FramingError(
            "corrupt pcapng block (impossible block length)", offset=self._base + pos
        )

    def _control_length(self, pos: int, big: bool) -> int | None:
        """Length of the SHB at ``pos``, or None when it is not complete in the buffer."""
        if pos + 12 > self._end:
            return None
        if self._is_shb(pos):
            big = self._buf[pos + 8 : pos + 12].tobytes() == b"\x1a\x2b\x3c\x4d"
        length = _u32_at(self._buf, pos + 4, big)
        if length < 12 or length % 4 or length > pcapng.MAX_BLOCK:
            raise self._corrupt_block(pos)
        if pos + length > self._end:
            return None
        if _u32_at(self._buf, pos + length - 4, big) != length:
            raise self._corrupt_block(pos)
        return length

    def _section_header(self, pos: int, length: int) -> tuple[bool, tuple[int, int]]:
        """Check the SHB at ``pos``; return its byte order (big-endian?) and version."""
        if not self._is_shb(pos):
            raise FramingError("pcapng file does not start with a SHB")
        try:
            big, version, section_len = pcapng.parse_shb(
                self._buf[pos : pos + 24].tobytes(), length
            )
        except ValueError as exc:
            raise FramingError(str(exc), offset=self._base + pos) from None
        if section_len != -1:
            # the writer may drop packets: mark the length as unspecified
            self._buf[pos + 16 : pos + 24] = 0xFF  # -1 in either byte order
        return big, version

    def _truncated_block(self, pos: int) -> FramingError:
        have = self._end - pos
        return FramingError(
            f"capture ends inside a block ({have} bytes present); "
            "the packets before it were processed",
            offset=self._base + pos,
        )


class _InterfaceTables:
    """The current section's interfaces as the arrays the compiled walker takes.

    Rows are appended in place (capacity doubles), so a section with n interfaces
    costs O(n) in all, not O(n^2).
    """

    def __init__(self) -> None:
        self.n = 0
        self._linktype = np.zeros(8, np.int32)
        self._snaplen = np.zeros(8, np.int64)
        self._ifindex = np.zeros(8, np.int32)
        self._ts = np.zeros((8, 3), np.int64)

    def clear(self) -> None:
        self.n = 0

    def append(
        self, linktype: int, snaplen: int, ifindex: int, *, binary: bool, exponent: int, offset: int
    ) -> None:
        """Add an interface: link type, snap length, index into the framer's names, and
        its time stamp resolution (binary or decimal, exponent) and if_tsoffset seconds."""
        i = self.n
        if i == self._linktype.shape[0]:
            self._linktype = np.resize(self._linktype, 2 * i)
            self._snaplen = np.resize(self._snaplen, 2 * i)
            self._ifindex = np.resize(self._ifindex, 2 * i)
            self._ts = np.resize(self._ts, (2 * i, 3))
        self._linktype[i] = linktype
        self._snaplen[i] = snaplen
        self._ifindex[i] = ifindex
        ts = self._ts[i]
        ts[0] = binary
        ts[1] = exponent
        ts[2] = offset
        self.n = i + 1

    def views(
        self,
    ) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]]:
        n = self.n
        return self._linktype[:n], self._snaplen[:n], self._ifindex[:n], self._ts[:n]
