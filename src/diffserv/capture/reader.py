"""Streaming pcap/pcapng reader that yields decoded PacketBatches in bounded memory.

The file is read in large chunks into one preallocated, aligned buffer; record
headers are walked by compiled code and a record cut by the chunk boundary is
carried into the next chunk, so memory stays flat whatever the file size. Each
batch is a view of that buffer: it is valid until the next batch is requested,
which is exactly when a pipeline has written it out. A regular, uncompressed file
is instead mapped privately and walked in windows of the same size, which saves
copying it; the pages behind are given back as the windows are finished with.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import mmap
import os
import select
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from diffserv.capture import pcap, pcapng
from diffserv.capture.file_lease import lease_broken, take_read_lease
from diffserv.columns import (
    FLAG_HEADER_CUT,
    FLAG_LENGTH_FROM_FRAME,
    FLAG_MALFORMED,
    FLAG_TRUNCATED,
    NOT_IP,
    UNKNOWN_ID,
    Filler,
    PacketBatch,
    allocate_columns,
    reset_columns,
)
from diffserv.directions import DEFAULT as DEFAULT_DIRECTION
from diffserv.errors import InputDataError
from diffserv.packet.decode import SUPPORTED_LINKTYPES
from diffserv.packet.linktypes import linktype_text, supported_text

DEFAULT_BATCH_SIZE = 65536
DEFAULT_CHUNK_SIZE = 8 << 20
DETECT_BYTES = 64  # what the format detection looks at
STREAM_BATCH_BYTES = 1 << 20  # a pipe's read returns once this much has arrived
CLOSE_WAIT_S = 2.0  # close() waits this long for a read in flight, then leaves it
RESERVE = 1 << 20  # room in front of a read-ahead chunk for the record cut by the last one
MMAP_ENV = "DIFFSERV_CAPTURE_MMAP"  # "0": always read() into buffers, never map the input
_MADV_POPULATE_READ = 22  # Linux >= 5.14: map pages now (in the helper thread), not on first touch

MAX_MALFORMED_NUMBERS = 1000
# which of the 256 flag-byte values each counter counts (malformed rows are not
# counted as header cuts or offload lengths; decode never sets FLAG_HEADER_CUT on them)
_FLAG_BYTES = np.arange(256)
_MALFORMED_VALUES = (_FLAG_BYTES & FLAG_MALFORMED) != 0
_TRUNCATED_VALUES = (_FLAG_BYTES & FLAG_TRUNCATED) != 0
_HEADER_CUT_VALUES = ((_FLAG_BYTES & FLAG_HEADER_CUT) != 0) & ~_MALFORMED_VALUES
_FROM_FRAME_VALUES = ((_FLAG_BYTES & FLAG_LENGTH_FROM_FRAME) != 0) & ~_MALFORMED_VALUES


@dataclass(slots=True)
class CaptureCounters:
    """What the reader saw, for the run summary."""

    packets: int = 0
    non_ip: int = 0
    malformed: int = 0
    truncated: int = 0  # snap length cut the packet (still classified)
    header_cut: int = 0  # of those, cut inside the IP header (classified on the DS byte)
    length_from_frame: int = 0  # IP length field 0 (segmentation offload): frame length used
    malformed_numbers: list[int] = field(default_factory=list)  # first MAX_MALFORMED_NUMBERS

    def as_stats(self) -> dict[str, int]:
        """The counters a run's statistics document takes from the reader (top-level keys)."""
        return {
            "truncated": self.truncated,
            "header_cut": self.header_cut,
            "length_from_frame": self.length_from_frame,
        }


class CaptureReader:
    """Iterate a capture file as PacketBatches; use as a context manager.

    Attributes: ``format`` ("pcap" or "pcapng"), ``name`` (for messages),
    ``counters``, ``interfaces`` (names, index 0 = unknown), ``warnings``.
    A batch may have ``n == 0`` when its span holds only non-packet blocks.
    A record cut off at the end of the file raises InputDataError after every
    complete packet before it has been yielded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        interface: str | None = None,
        direction: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefetch: bool = True,
        use_mmap: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = os.fspath(path)
        self.batch_size = batch_size
        self.direction = direction
        self.counters = CaptureCounters()
        self._warnings: list[str] = []
        # link type -> [interfaces of that type not decoded, description of the first]
        self._undecoded: dict[int, list[Any]] = {}
        self.interfaces: list[str] = [""]  # only ever appended to
        self._interface_ids: dict[str, int] = {"": 0}
        self._interfaces_tuple: tuple[str, ...] = ("",)
        self._idb_rows = np.empty((4096, pcapng.IDB_COLUMNS), np.int64)  # scan_idbs output
        self._default_interface = interface
        self._file: BinaryIO
        self._owns_file = self.name != "-"
        try:
            if self._owns_file:
                self._file = open(self.name, "rb")  # noqa: SIM115
                with contextlib.suppress(AttributeError, OSError):
                    os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            else:
                self._file = sys.stdin.buffer
            self._file = _maybe_gunzip(self._file)
        except OSError as exc:
            raise InputDataError(self.name, f"cannot open: {exc.strerror or exc}") from None
        self._chunk = max(chunk_size, 1 << 16)
        try:
            self._fd = self._file.fileno()
        except (OSError, ValueError):  # an in-memory standard input (embedded use)
            self._fd = -1
        self._streaming = self._fd >= 0 and _is_stream(self._fd)
        self._map: mmap.mmap | None = None
        self._populate = _MADV_POPULATE_READ
        if use_mmap and self._owns_file and os.environ.get(MMAP_ENV, "1") != "0":
            self._map = _map_file(self._file)
        self._whole: NDArray[np.uint8] = np.empty(0, np.uint8)
        if self._map is not None:
            self._whole = np.frombuffer(self._map, np.uint8)
        self._retired: NDArray[np.uint8] | None = None  # mapped window left at the last advance
        self._released = 0  # mapped pages below this offset are given back
        self._release: Future[None] | None = None
        self._closing = False
        self._buf: NDArray[np.uint8] = np.empty(0, np.uint8)
        self._spare: NDArray[np.uint8] | None = None
        self._prefetch = prefetch
        self._pending: Future[tuple[int, bool]] | None = None
        self._reading = 0  # reads in progress (in any thread)
        # called with a buffer before it is refilled (the writer waits for its writes)
        self.reuse_hooks: list[Callable[[NDArray[np.uint8]], None]] = []
        self._filled = 0
        self._base = 0  # file offset of buf[0]
        self._eof = False
        self._started = False
        self.file_header = b""  # classic pcap: the 24-byte header the writer repeats
        try:
            self._detect()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- buffer
    def _read_into(self, buf: NDArray[np.uint8], start: int) -> tuple[int, bool]:
        """Read into ``buf[start:]``; return (bytes, at EOF).

        A regular file fills the buffer. A pipe or terminal returns as soon as what has
        arrived is read (at least one byte, more while more is waiting), so packets
        from a slow live source are processed as they come rather than 8 MB later.
        """
        view = memoryview(buf)  # type: ignore[arg-type]
        end = buf.shape[0]
        got = 0
        while start + got < end:
            self._reading += 1
            try:
                if self._streaming:
                    n = self._file.readinto1(view[start + got :])  # type: ignore[attr-defined]
                else:
                    n = self._file.readinto(view[start + got :])  # type: ignore[attr-defined]
            except (OSError, EOFError, zlib.error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise InputDataError(self.name, f"read error: {reason}") from None
            finally:
                self._reading -= 1
            if not n:
                return got, True
            got += n
            if self._streaming and (got >= STREAM_BATCH_BYTES or not self._more_waiting()):
                return got, False
        return got, False

    def _more_waiting(self) -> bool:
        """True when a pipe has more bytes ready now (the next read would not block)."""
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _prefetch_into(self, buf: NDArray[np.uint8]) -> tuple[int, bool]:
        for hook in self.reuse_hooks:
            hook(buf)  # a background writer may still be sending this buffer's batches
        return self._read_into(buf, RESERVE)

    def _start_prefetch(self, buf: NDArray[np.uint8]) -> None:
        if self._prefetch and not self._eof and buf.shape[0] == RESERVE + self._chunk:
            pending: Future[tuple[int, bool]] = Future()
            self._pending = pending

            def run() -> None:
                try:
                    pending.set_result(self._prefetch_into(buf))
                except BaseException as exc:
                    pending.set_exception(exc)

            # a daemon thread, not a pool: a read blocked on a stalled pipe must not keep
            # close() (or the interpreter's exit) waiting after the run has been stopped
            threading.Thread(target=run, name="diffserv-capture-reader", daemon=True).start()

    def _fill(self, keep_from: int) -> int:
        """Keep ``buf[keep_from:filled]`` (a partial record) and get more input; return the shift.

        Two buffers alternate so that a batch already handed out (and perhaps still
        being written by a background writer) is never overwritten; before a buffer
        is reused every ``reuse_hooks`` callback is given it to wait on. While the
        caller works on one buffer the next chunk is read into the other one behind
        a reserve, where the partial record is then copied in front of it.
        """
        if self._map is not None:
            return self._advance_window(keep_from)
        carry = self._filled - keep_from
        pending, self._pending = self._pending, None
        if pending is not None:
            got, eof = pending.result()
            nxt = self._spare
            assert nxt is not None
            if carry <= RESERVE:
                start = RESERVE - carry
                nxt[start:RESERVE] = self._buf[keep_from : self._filled]
                old = self._buf
                self._buf, self._spare = nxt, old
                self._filled = RESERVE + got
                self._eof = eof
                self._base += keep_from - start
                self._start_prefetch(old)
                return keep_from - start
            # a partial record longer than the reserve: merge into a bigger buffer
            big = np.empty(carry + got + self._chunk, np.uint8)
            big[:carry] = self._buf[keep_from : self._filled]
            big[carry : carry + got] = nxt[RESERVE : RESERVE + got]
            self._buf = big
            self._filled = carry + got
            self._eof = eof
            if not eof:
                more, self._eof = self._read_into(big, self._filled)
                self._filled += more
            self._base += keep_from
            return keep_from
        # synchronous refill: first chunk, or after a merge
        spare = self._spare
        size = RESERVE + self._chunk
        size = max(size, carry * 2)
        if spare is None or spare.shape[0] < size:
            spare = np.empty(size, np.uint8)
        else:
            for hook in self.reuse_hooks:
                hook(spare)
        if carry:
            spare[:carry] = self._buf[keep_from : self._filled]
        old = self._buf
        self._buf, self._spare = spare, old
        got, self._eof = self._read_into(spare, carry)
        self._filled = carry + got
        self._base += keep_from
        if old.shape[0] != RESERVE + self._chunk:
            self._spare = np.empty(RESERVE + self._chunk, np.uint8)
        self._start_prefetch(self._spare)
        return keep_from

    # ----------------------------------------------------------- mapped file
    def _advance_window(self, keep_from: int) -> int:
        """Mapped input: the next window starts at ``keep_from``; nothing is copied.

        A window is a view of the private (copy-on-write) mapping, so marks written
        into it never reach the file. Pages behind the window before last are given
        back (``MADV_DONTNEED``) once every ``reuse_hooks`` callback has returned for
        that window, which keeps the resident set at a few windows whatever the file
        size; the pages of the window after this one are mapped in ahead meanwhile.
        """
        if lease_broken(self._fd):
            raise InputDataError(
                self._where_packet(self.counters.packets + 1),
                "the file is being changed by another process (opened for writing or "
                "truncated) while it is read; stopped here, the packets before were processed",
            )
        pending, self._release = self._release, None
        if pending is not None:
            pending.result()  # bounded memory: the window before last is gone first
        old_base = self._base
        old_end = old_base + self._filled
        size = self._whole.shape[0]
        base = old_base + keep_from
        end = min(size, old_end + self._chunk)
        done, self._retired = self._retired, (self._buf if self._buf.shape[0] else None)
        self._buf = self._whole[base:end]
        self._base = base
        self._filled = end - base
        self._eof = end >= size
        release_to = old_base - old_base % mmap.PAGESIZE
        ahead = (end - end % mmap.PAGESIZE, min(size, end + self._chunk))
        if not self._prefetch:
            self._release_window(done, release_to, ahead)
            return keep_from
        release: Future[None] = Future()
        self._release = release

        def run() -> None:
            try:
                self._release_window(done, release_to, ahead)
            except BaseException as exc:
                release.set_exception(exc)
            else:
                release.set_result(None)

        # a daemon thread, not a pool: if the consumer stops with a batch still held,
        # close() must not wait for (and exit must not join) a hook that never returns
        threading.Thread(target=run, name="diffserv-capture-release", daemon=True).start()
        return keep_from

    def _release_window(
        self, done: NDArray[np.uint8] | None, release_to: int, ahead: tuple[int, int]
    ) -> None:
        mapping = self._map
        assert mapping is not None
        start, stop = ahead
        if stop > start and self._populate and not self._closing:
            try:
                mapping.madvise(self._populate, start, stop - start)
            except ValueError:  # closed meanwhile
                pass
            except OSError:  # a kernel before 5.14: read ahead without mapping
                self._populate = mmap.MADV_WILLNEED if self._populate != mmap.MADV_WILLNEED else 0
        if done is None:
            return
        for hook in self.reuse_hooks:
            hook(done)  # the consumer and the writer have finished with the window
        if release_to > self._released and not self._closing:
            with contextlib.suppress(ValueError):  # closed meanwhile
                mapping.madvise(mmap.MADV_DONTNEED, self._released, release_to - self._released)
            self._released = release_to

    def _detect(self) -> None:
        self._fill(0)
        while self._filled < DETECT_BYTES and not self._eof:  # a pipe may trickle it in
            self._fill(0)
        head = bytes(self._buf[: min(self._filled, 64)])
        if self._filled == 0:
            raise InputDataError(self.name, "empty file, not a pcap or pcapng capture")
        try:
            header = pcap.parse_pcap_header(head)
        except ValueError as exc:
            raise InputDataError(self.name, str(exc)) from None
        if header is not None:
            self.format = "pcap"
            self._pcap = header
            self.file_header = header.raw
            if header.linktype not in SUPPORTED_LINKTYPES:
                raise InputDataError(
                    self.name,
                    f"link-layer type {linktype_text(header.linktype)} is not supported "
                    f"(supported: {supported_text()})",
                )
            self._pos = pcap.PCAP_HEADER_LEN
            if self._default_interface:
                self._interface_index(self._default_interface)
            return
        if len(head) >= 4 and int.from_bytes(head[:4], "little") == pcapng.BT_SHB:
            self.format = "pcapng"
            self._pos = 0
            return
        raise InputDataError(
            self.name,
            f"not a pcap or pcapng capture (starts with 0x{head[:4].hex()})",
        )

    # ------------------------------------------------------------ interfaces
    @property
    def warnings(self) -> list[str]:
        """Messages for the user about the input (not errors), in the order they arose."""
        out = list(self._warnings)
        for linktype, (count, first) in self._undecoded.items():
            more = f" (and {count - 1:,} more interfaces of that type)" if count > 1 else ""
            out.append(
                f"{self.name}: {first} has link-layer type {linktype_text(linktype)}, which "
                f"is not decoded{more}; its packets pass through as non-IP"
            )
        return out

    def _interface_index(self, name: str) -> int:
        """Index of interface ``name`` in ``interfaces``, appending it when new."""
        index = self._interface_ids.get(name)
        if index is None:
            index = len(self.interfaces)
            self._interface_ids[name] = index
            self.interfaces.append(name)
        return index

    def _interface_names(self) -> tuple[str, ...]:
        """``interfaces`` as a tuple, the same object until an interface is added."""
        if len(self._interfaces_tuple) != len(self.interfaces):
            self._interfaces_tuple = tuple(self.interfaces)
        return self._interfaces_tuple

    # --------------------------------------------------------------- batches
    def __iter__(self) -> Iterator[PacketBatch]:
        if self._started:
            raise RuntimeError("a CaptureReader can be iterated only once")
        self._started = True
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _capacity_batch(self) -> PacketBatch:
        """Uninitialised columns for ``batch_size`` rows; only the rows used are ever touched."""
        return PacketBatch(buf=self._buf, cols=allocate_columns(self.batch_size, initialise=False))

    def _scan_args(self, cap: PacketBatch) -> tuple[NDArray[Any], ...]:
        return (
            cap.cols.rec_off,
            cap.cols.rec_len,
            cap.cols.ts_ns,
            cap.cols.wire_len,
            cap.cols.cap_len,
            cap.cols.pkt_off,
        )

    def _decoded_args(self, cap: PacketBatch) -> tuple[NDArray[Any], ...]:
        return (
            cap.cols.l3_off,
            cap.cols.vlan_off,
            cap.cols.ip_version,
            cap.cols.ds_byte,
            cap.cols.protocol,
            cap.cols.saddr_hi,
            cap.cols.saddr_lo,
            cap.cols.daddr_hi,
            cap.cols.daddr_lo,
            cap.cols.sport,
            cap.cols.dport,
            cap.cols.ip_len,
            cap.cols.direction,
            cap.cols.flags,
        )

    def _make_batch(self, cap: PacketBatch, n: int, span_start: int, span_end: int) -> PacketBatch:
        """The first ``n`` rows of ``cap`` as a batch; a new ``cap`` is needed afterwards."""
        batch = cap.head(n)
        batch.buf = self._buf  # the window may have moved since ``cap`` was made
        first = self.counters.packets + 1
        batch.cols.number[:] = np.arange(first, first + n, dtype=np.int64)
        if self.format == "pcap":
            batch.cols.ifindex[:] = 1 if self._default_interface else 0
        batch.cols.uid[:] = UNKNOWN_ID
        batch.cols.projid[:] = UNKNOWN_ID
        reset_columns(batch.cols, Filler.ENGINE)
        if self.direction is not None:
            batch.cols.direction[:] = self.direction
        else:
            batch.cols.direction[batch.cols.direction == 0] = DEFAULT_DIRECTION
        batch.interfaces = self._interface_names()
        batch.span_start = span_start
        batch.span_end = span_end
        self._count(batch)
        return batch

    def _count(self, batch: PacketBatch) -> None:
        c = self.counters
        c.packets += batch.n
        if batch.n == 0:
            return
        by_flags = np.bincount(batch.cols.flags, minlength=256)  # one pass for every counter
        n_bad = int(by_flags[_MALFORMED_VALUES].sum())
        c.malformed += n_bad
        c.non_ip += int(np.count_nonzero(batch.cols.ip_version == NOT_IP)) - n_bad
        c.truncated += int(by_flags[_TRUNCATED_VALUES].sum())
        c.header_cut += int(by_flags[_HEADER_CUT_VALUES].sum())
        c.length_from_frame += int(by_flags[_FROM_FRAME_VALUES].sum())
        if n_bad and len(c.malformed_numbers) < MAX_MALFORMED_NUMBERS:
            room = MAX_MALFORMED_NUMBERS - len(c.malformed_numbers)
            malformed = (batch.cols.flags & FLAG_MALFORMED) != 0
            c.malformed_numbers.extend(int(x) for x in batch.cols.number[malformed][:room])

    def _where_packet(self, number: int) -> str:
        return f"{self.name}: packet {number}"

    def _truncated_tail(self, pos: int, need: int, number: int) -> InputDataError:
        have = self._filled - pos
        return InputDataError(
            self._where_packet(number),
            f"capture ends inside the record at byte offset {self._base + pos} "
            f"({have} of {need} bytes present); the packets before it were processed",
        )

    def _iter_pcap(self) -> Iterator[PacketBatch]:
        header = self._pcap
        max_record = max(header.snaplen, pcap.PCAP_MAX_RECORD)
        cap = self._capacity_batch()
        pos = self._pos
        while True:
            status, n, end = pcap.scan_pcap(
                self._buf,
                pos,
                self._filled,
                header.big_endian,
                header.nanosecond,
                max_record,
                header.linktype,
                0,
                self.batch_size,
                *self._scan_args(cap),
                *self._decoded_args(cap),
            )
            if n:
                yield self._make_batch(cap, n, pos, end)
                cap = self._capacity_batch()
            pos = end
            if status == pcap.SCAN_BAD:
                length = _u32_at(self._buf, pos + 8, header.big_endian)
                raise InputDataError(
                    self._where_packet(self.counters.packets + 1),
                    f"record at byte offset {self._base + pos} claims {length} captured "
                    f"bytes (limit {max_record}); the file is corrupt",
                )
            if n == self.batch_size:
                continue
            if self._eof:
                if pos < self._filled:
                    need = 16
                    if self._filled - pos >= 16:
                        need += _u32_at(self._buf, pos + 8, header.big_endian)
                    raise self._truncated_tail(pos, need, self.counters.packets + 1)
                return
            pos -= self._fill(pos)

    def _iter_pcapng(self) -> Iterator[PacketBatch]:
        cap = self._capacity_batch()
        big = False
        tables = _InterfaceTables()
        last_ts = 0
        pos = self._pos
        span_start = pos
        n = 0
        section = 0  # sections seen so far (1 = the first)
        while True:
            status, n, pos, last_ts = pcapng.scan_pcapng(  # type: ignore[call-arg]
                self._buf,
                pos,
                self._filled,
                big,
                *tables.views(),
                last_ts,
                n,
                self.batch_size,
                *self._scan_args(cap),
                cap.cols.ifindex,
                *self._decoded_args(cap),
            )
            if status in (pcapng.SCAN_BAD, pcapng.SCAN_BAD_IFACE, pcapng.SCAN_BAD_TIME) and (
                n or pos > span_start
            ):
                # everything before the damage is still processed and written
                yield self._make_batch(cap, n, span_start, pos)
                cap = self._capacity_batch()
                n = 0
                span_start = pos
            if status == pcapng.SCAN_BAD:
                raise InputDataError(
                    f"{self.name}: byte offset {self._base + pos}",
                    "corrupt pcapng block (impossible block length)",
                )
            if status == pcapng.SCAN_BAD_IFACE:
                raise InputDataError(
                    self._where_packet(self.counters.packets + 1),
                    f"packet block at byte offset {self._base + pos} refers to an interface "
                    f"the section does not describe ({tables.n} interface(s))",
                )
            if status == pcapng.SCAN_BAD_TIME:
                raise InputDataError(
                    self._where_packet(self.counters.packets + 1),
                    f"the time stamp of the packet block at byte offset {self._base + pos} "
                    "(with its interface's if_tsresol and if_tsoffset) is outside what "
                    "diffserv can represent (64-bit nanoseconds: 1677-09-22 to 2262-04-11 UTC)",
                )
            if status == pcapng.SCAN_CONTROL:
                # section headers and interface descriptions, as many as follow each other
                try:
                    after, big, section, complete = self._control_blocks(pos, big, section, tables)
                except InputDataError:
                    if n or pos > span_start:  # what came before the damage is written
                        yield self._make_batch(cap, n, span_start, pos)
                    raise
                pos = after
                if complete:
                    continue
                # the block is not complete in the buffer: emit, then refill
                if n or pos > span_start:
                    yield self._make_batch(cap, n, span_start, pos)
                    cap = self._capacity_batch()
                    n = 0
                    span_start = pos
                if self._eof:
                    raise self._truncated_block(pos)
                shift = self._fill(span_start)
                pos -= shift
                span_start -= shift
                continue
            # SCAN_MORE: rows full, or need more data
            if n == self.batch_size:
                yield self._make_batch(cap, n, span_start, pos)
                cap = self._capacity_batch()
                n = 0
                span_start = pos
                continue
            if self._eof:
                if n or pos > span_start:
                    yield self._make_batch(cap, n, span_start, pos)
                if pos < self._filled:
                    raise self._truncated_block(pos)
                return
            if n:
                yield self._make_batch(cap, n, span_start, pos)
                cap = self._capacity_batch()
                n = 0
                span_start = pos
            shift = self._fill(span_start)
            pos -= shift
            span_start -= shift

    def _control_blocks(
        self, pos: int, big: bool, section: int, tables: _InterfaceTables
    ) -> tuple[int, bool, int, bool]:
        """Take in the SHBs and IDBs that follow each other from ``pos``.

        Returns (position after them, byte order, sections seen, complete); complete is
        False when the next of them is not wholly in the buffer yet.
        """
        while True:
            if section == 0 or self._is_shb(pos):
                length = self._control_length(pos, big)
                if length is None:
                    return pos, big, section, False
                big = self._section_header(pos, length)
                section += 1
                tables.clear()
                pos += length
            else:
                status, rows, end = pcapng.scan_idbs(
                    self._buf, pos, self._filled, big, self._idb_rows
                )
                self._add_interfaces(rows, big, section, tables)
                pos = end
                if status == pcapng.IDB_BAD:
                    raise self._corrupt_block(pos)
                if status == pcapng.IDB_SHORT:
                    raise InputDataError(
                        f"{self.name}: byte offset {self._base + pos}",
                        "interface description block is too short",
                    )
                if status == pcapng.IDB_INCOMPLETE:
                    return pos, big, section, False
            if not self._is_control(pos, big):
                return pos, big, section, True

    def _add_interfaces(self, rows: int, big: bool, section: int, tables: _InterfaceTables) -> None:
        """Add the interfaces ``scan_idbs`` left in the first ``rows`` of ``_idb_rows``."""
        order = ">q" if big else "<q"
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
                    raise InputDataError(
                        f"{self.name}: byte offset {self._base + at}", str(exc)
                    ) from None
            offset = 0
            if offset_at >= 0:
                (raw_offset,) = struct.unpack(order, buf[offset_at : offset_at + 8].tobytes())
                offset = pcapng.clamp_offset(raw_offset)
            if linktype not in SUPPORTED_LINKTYPES:
                seen = self._undecoded.setdefault(linktype, [0, ""])
                if not seen[0]:
                    label = f"interface {name!r}" if name else "an unnamed interface"
                    seen[1] = f"{label} (section {section}, interface {tables.n})"
                seen[0] += 1
            name = name or (self._default_interface or "")
            ifindex = self._interface_index(name) if name else 0
            tables.append(
                linktype, snaplen, ifindex, binary=binary, exponent=exponent, offset=offset
            )

    def _is_shb(self, pos: int) -> bool:
        return self._buf[pos : pos + 4].tobytes() == _SHB_BYTES  # either byte order

    def _is_control(self, pos: int, big: bool) -> bool:
        """Whether a SHB or IDB starts at ``pos`` (False when its type is not in the buffer)."""
        if pos + 4 > self._filled:
            return False
        return self._is_shb(pos) or _u32_at(self._buf, pos, big) == pcapng.BT_IDB

    def _corrupt_block(self, pos: int) -> InputDataError:
        return InputDataError(
            f"{self.name}: byte offset {self._base + pos}",
            "corrupt pcapng block (impossible block length)",
        )

    def _control_length(self, pos: int, big: bool) -> int | None:
        """Length of the SHB at ``pos``, or None when it is not complete in the buffer."""
        if pos + 12 > self._filled:
            return None
        if self._is_shb(pos):
            big = self._buf[pos + 8 : pos + 12].tobytes() == b"\x1a\x2b\x3c\x4d"
        length = _u32_at(self._buf, pos + 4, big)
        if length < 12 or length % 4 or length > pcapng.MAX_BLOCK:
            raise self._corrupt_block(pos)
        if pos + length > self._filled:
            return None
        if _u32_at(self._buf, pos + length - 4, big) != length:
            raise self._corrupt_block(pos)
        return length

    def _section_header(self, pos: int, length: int) -> bool:
        """Check the SHB at ``pos``; return whether its section is big-endian."""
        if not self._is_shb(pos):
            raise InputDataError(self.name, "pcapng file does not start with a SHB")
        try:
            big, _version, section_len = pcapng.parse_shb(
                self._buf[pos : pos + 24].tobytes(), length
            )
        except ValueError as exc:
            raise InputDataError(f"{self.name}: byte offset {self._base + pos}", str(exc)) from None
        if section_len != -1:
            # the writer may drop packets: mark the length as unspecified
            self._buf[pos + 16 : pos + 24] = 0xFF  # -1 in either byte order
        return big

    def _truncated_block(self, pos: int) -> InputDataError:
        have = self._filled - pos
        return InputDataError(
            f"{self.name}: byte offset {self._base + pos}",
            f"capture ends inside a block ({have} bytes present); "
            "the packets before it were processed",
        )

    # --------------------------------------------------------------- closing
    def close(self) -> None:
        """Stop reading ahead and close the file (standard input is left open)."""
        self._closing = True
        release, self._release = self._release, None
        if release is not None and release.done():
            with contextlib.suppress(Exception):
                release.result()
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.result(timeout=CLOSE_WAIT_S)
            if not pending.done():
                self._reading += 1  # a read is stuck (a stalled pipe): do not wait on it
        if self._map is not None:
            self._buf = self._whole = np.empty(0, np.uint8)
            self._retired = None
            with contextlib.suppress(BufferError):  # batches still held keep the mapping
                self._map.close()
        if self._reading:
            return  # closing would wait for the blocked read's lock; exit frees the file
        if self._owns_file and not self._file.closed:
            inner = getattr(self._file, "fileobj", None)
            self._file.close()
            if inner is not None:
                inner.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _maybe_gunzip(raw: BinaryIO) -> BinaryIO:
    """``raw`` itself, or a decompressing reader if it starts with the gzip magic."""
    peek = getattr(raw, "peek", None)
    if peek is None or peek(2)[:2] != b"\x1f\x8b":
        return raw
    return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def _map_file(file: BinaryIO) -> mmap.mmap | None:
    """A private, writable mapping of a regular, non-empty, uncompressed input file, else None."""
    if not isinstance(file, io.BufferedReader):
        return None  # standard input wrapper, gzip
    try:
        fd = file.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return None
        if not take_read_lease(fd):
            return None  # nothing would stop a truncation (SIGBUS): read() instead
        mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError, OverflowError):
        return None
    with contextlib.suppress(OSError):
        mapping.madvise(mmap.MADV_SEQUENTIAL)
    return mapping


def _is_stream(fd: int) -> bool:
    """True for a pipe, socket or terminal (reads return what has arrived)."""
    try:
        return not stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def _u32_at(buf: NDArray[np.uint8], pos: int, big: bool) -> int:
    return int.from_bytes(bytes(buf[pos : pos + 4]), "big" if big else "little")


_SHB_BYTES = pcapng.BT_SHB.to_bytes(4, "little")


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
        """Add an interface: link type, snap length, index into the reader's names, and
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


def open_capture(
    path: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    interface: str | None = None,
    direction: int | None = None,
    use_mmap: bool = True,
) -> CaptureReader:
    """Open a pcap or pcapng file (``"-"`` = standard input) for batch iteration.

    ``interface`` names the interface of a classic pcap file (and of pcapng
    interfaces without ``if_name``). ``direction`` forces every packet's direction;
    otherwise pcapng ``epb_flags`` and Linux cooked headers decide, else LOCAL_OUT.
    ``use_mmap=False`` reads a regular file into buffers instead of mapping it: better
    when most packets will be rewritten (a mapped page is copied on its first write).
    """
    return CaptureReader(
        path,
        batch_size=batch_size,
        interface=interface,
        direction=direction,
        use_mmap=use_mmap,
    )
