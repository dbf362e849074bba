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
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from diffserv.capture import pcap, pcapng
from diffserv.engine.batch import (
    FLAG_MALFORMED,
    FLAG_TRUNCATED,
    NOT_IP,
    UNKNOWN_ID,
    PacketBatch,
)
from diffserv.errors import InputDataError
from diffserv.packet.decode import SUPPORTED_LINKTYPES

DEFAULT_BATCH_SIZE = 65536
DEFAULT_CHUNK_SIZE = 8 << 20
RESERVE = 1 << 20  # room in front of a read-ahead chunk for the record cut by the last one
MMAP_ENV = "DIFFSERV_CAPTURE_MMAP"  # "0": always read() into buffers, never map the input
_MADV_POPULATE_READ = 22  # Linux >= 5.14: map pages now (in the helper thread), not on first touch
LOCAL_OUT = 2
MAX_MALFORMED_NUMBERS = 1000
_COLUMNS = tuple(
    name
    for name in PacketBatch.__dataclass_fields__
    if name not in ("buf", "interfaces", "span_start", "span_end")
)


@dataclass(slots=True)
class CaptureCounters:
    """What the reader saw, for the run summary."""

    packets: int = 0
    non_ip: int = 0
    malformed: int = 0
    truncated: int = 0  # snap length cut the packet (still classified)
    malformed_numbers: list[int] = field(default_factory=list)  # first MAX_MALFORMED_NUMBERS


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
        self.warnings: list[str] = []
        self.interfaces: list[str] = [""]
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
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[tuple[int, bool]] | None = None
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
        """Read until ``buf[start:]`` is full or the input ends; return (bytes, at EOF)."""
        view = memoryview(buf)  # type: ignore[arg-type]
        end = buf.shape[0]
        got = 0
        while start + got < end:
            try:
                n = self._file.readinto(view[start + got :])  # type: ignore[attr-defined]
            except (OSError, EOFError, zlib.error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise InputDataError(self.name, f"read error: {reason}") from None
            if not n:
                return got, True
            got += n
        return got, False

    def _prefetch_into(self, buf: NDArray[np.uint8]) -> tuple[int, bool]:
        for hook in self.reuse_hooks:
            hook(buf)  # a background writer may still be sending this buffer's batches
        return self._read_into(buf, RESERVE)

    def _start_prefetch(self, buf: NDArray[np.uint8]) -> None:
        if self._prefetch and not self._eof and buf.shape[0] == RESERVE + self._chunk:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="diffserv-capture-reader")
            self._pending = self._pool.submit(self._prefetch_into, buf)

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
                    f"link-layer type {header.linktype} is not supported "
                    f"(supported: {_supported_text()})",
                )
            self._pos = pcap.PCAP_HEADER_LEN
            if self._default_interface:
                self.interfaces.append(self._default_interface)
            return
        if len(head) >= 4 and int.from_bytes(head[:4], "little") == pcapng.BT_SHB:
            self.format = "pcapng"
            self._pos = 0
            return
        raise InputDataError(
            self.name,
            f"not a pcap or pcapng capture (starts with 0x{head[:4].hex()})",
        )

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
        n = self.batch_size
        return PacketBatch(
            buf=self._buf,
            number=np.empty(n, np.int64),
            rec_off=np.empty(n, np.int64),
            rec_len=np.empty(n, np.int64),
            ts_ns=np.empty(n, np.int64),
            wire_len=np.empty(n, np.uint32),
            cap_len=np.empty(n, np.uint32),
            pkt_off=np.empty(n, np.int64),
            l3_off=np.empty(n, np.int64),
            vlan_off=np.empty(n, np.int64),
            ip_version=np.empty(n, np.uint8),
            ds_byte=np.empty(n, np.uint8),
            protocol=np.empty(n, np.uint8),
            saddr_hi=np.empty(n, np.uint64),
            saddr_lo=np.empty(n, np.uint64),
            daddr_hi=np.empty(n, np.uint64),
            daddr_lo=np.empty(n, np.uint64),
            sport=np.empty(n, np.uint16),
            dport=np.empty(n, np.uint16),
            ip_len=np.empty(n, np.uint32),
            ifindex=np.empty(n, np.int32),
            direction=np.empty(n, np.uint8),
            uid=np.empty(n, np.int32),
            projid=np.empty(n, np.int32),
            flags=np.empty(n, np.uint8),
            class_id=np.empty(n, np.int32),
            action=np.empty(n, np.int32),
            new_ds=np.empty(n, np.int16),
            new_pcp=np.empty(n, np.int8),
            colour=np.empty(n, np.uint8),
        )

    def _scan_args(self, cap: PacketBatch) -> tuple[NDArray[Any], ...]:
        return (
            cap.rec_off,
            cap.rec_len,
            cap.ts_ns,
            cap.wire_len,
            cap.cap_len,
            cap.pkt_off,
        )

    def _decoded_args(self, cap: PacketBatch) -> tuple[NDArray[Any], ...]:
        return (
            cap.l3_off,
            cap.vlan_off,
            cap.ip_version,
            cap.ds_byte,
            cap.protocol,
            cap.saddr_hi,
            cap.saddr_lo,
            cap.daddr_hi,
            cap.daddr_lo,
            cap.sport,
            cap.dport,
            cap.ip_len,
            cap.direction,
            cap.flags,
        )

    def _make_batch(self, cap: PacketBatch, n: int, span_start: int, span_end: int) -> PacketBatch:
        """The first ``n`` rows of ``cap`` as a batch; a new ``cap`` is needed afterwards."""
        columns = {name: getattr(cap, name)[:n] for name in _COLUMNS}
        batch = PacketBatch(buf=self._buf, **columns)
        first = self.counters.packets + 1
        batch.number[:] = np.arange(first, first + n, dtype=np.int64)
        if self.format == "pcap":
            batch.ifindex[:] = 1 if self._default_interface else 0
        batch.uid[:] = UNKNOWN_ID
        batch.projid[:] = UNKNOWN_ID
        batch.class_id[:] = -1
        batch.action[:] = 0
        batch.new_ds[:] = -1
        batch.new_pcp[:] = -1
        batch.colour[:] = 0
        if self.direction is not None:
            batch.direction[:] = self.direction
        else:
            batch.direction[batch.direction == 0] = LOCAL_OUT
        batch.interfaces = tuple(self.interfaces)
        batch.span_start = span_start
        batch.span_end = span_end
        self._count(batch)
        return batch

    def _count(self, batch: PacketBatch) -> None:
        c = self.counters
        c.packets += batch.n
        if batch.n == 0:
            return
        malformed = (batch.flags & FLAG_MALFORMED) != 0
        n_bad = int(np.count_nonzero(malformed))
        c.malformed += n_bad
        c.non_ip += int(np.count_nonzero(batch.ip_version == NOT_IP)) - n_bad
        c.truncated += int(np.count_nonzero(batch.flags & FLAG_TRUNCATED))
        if n_bad and len(c.malformed_numbers) < MAX_MALFORMED_NUMBERS:
            room = MAX_MALFORMED_NUMBERS - len(c.malformed_numbers)
            c.malformed_numbers.extend(int(x) for x in batch.number[malformed][:room])

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
        section_ifaces: list[pcapng.Interface] = []
        tables = _interface_tables(section_ifaces)
        last_ts = 0
        pos = self._pos
        span_start = pos
        n = 0
        seen_shb = False
        while True:
            status, n, pos, last_ts = pcapng.scan_pcapng(  # type: ignore[call-arg]
                self._buf,
                pos,
                self._filled,
                big,
                *tables,
                last_ts,
                n,
                self.batch_size,
                *self._scan_args(cap),
                cap.ifindex,
                *self._decoded_args(cap),
            )
            if status in (pcapng.SCAN_BAD, pcapng.SCAN_BAD_IFACE) and n:
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
                    self._where_packet(self.counters.packets + n + 1),
                    f"packet block at byte offset {self._base + pos} refers to an interface "
                    f"the section does not describe ({len(section_ifaces)} interface(s))",
                )
            if status == pcapng.SCAN_CONTROL:
                block = self._control_block(pos, big)
                if block is None:
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
                btype = int.from_bytes(block[:4], "big" if big else "little")
                if btype == pcapng.BT_SHB or not seen_shb:
                    if btype != pcapng.BT_SHB:
                        raise InputDataError(self.name, "pcapng file does not start with a SHB")
                    try:
                        big, _version, section_len = pcapng.parse_shb(block)
                    except ValueError as exc:
                        raise InputDataError(
                            f"{self.name}: byte offset {self._base + pos}", str(exc)
                        ) from None
                    if section_len != -1:
                        # the writer may drop packets: mark the length as unspecified
                        self._buf[pos + 16 : pos + 24] = 0xFF  # -1 in either byte order
                    seen_shb = True
                    section_ifaces = []
                else:
                    section_ifaces.append(self._parse_idb(block, big, pos))
                tables = _interface_tables(section_ifaces)
                pos += len(block)
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

    def _control_block(self, pos: int, big: bool) -> bytes | None:
        """The SHB/IDB at ``pos`` as bytes, or None when it is not complete in the buffer."""
        if pos + 12 > self._filled:
            return None
        btype = bytes(self._buf[pos : pos + 4])
        if btype == b"\x0a\x0d\x0d\x0a":
            big = bytes(self._buf[pos + 8 : pos + 12]) == b"\x1a\x2b\x3c\x4d"
        length = int.from_bytes(bytes(self._buf[pos + 4 : pos + 8]), "big" if big else "little")
        if length < 12 or length % 4 or length > pcapng.MAX_BLOCK:
            raise InputDataError(
                f"{self.name}: byte offset {self._base + pos}",
                "corrupt pcapng block (impossible block length)",
            )
        if pos + length > self._filled:
            return None
        return bytes(self._buf[pos : pos + length])

    def _parse_idb(self, block: bytes, big: bool, pos: int) -> pcapng.Interface:
        try:
            linktype, snaplen, name, mul, div, shift, offset = pcapng.parse_idb(block, big)
        except ValueError as exc:
            raise InputDataError(f"{self.name}: byte offset {self._base + pos}", str(exc)) from None
        if linktype not in SUPPORTED_LINKTYPES:
            self.warnings.append(
                f"{self.name}: interface {name or '(unnamed)'} has link-layer type "
                f"{linktype}, which is not decoded; its packets pass through as non-IP"
            )
        name = name or (self._default_interface or "")
        if name and name not in self.interfaces:
            self.interfaces.append(name)
        ifindex = self.interfaces.index(name) if name else 0
        return pcapng.Interface(linktype, snaplen, name, ifindex, mul, div, shift, offset)

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
            pending.cancel()
            with contextlib.suppress(Exception):
                pending.result()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._map is not None:
            self._buf = self._whole = np.empty(0, np.uint8)
            self._retired = None
            with contextlib.suppress(BufferError):  # batches still held keep the mapping
                self._map.close()
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
        mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError, OverflowError):
        return None
    with contextlib.suppress(OSError):
        mapping.madvise(mmap.MADV_SEQUENTIAL)
    return mapping


def _u32_at(buf: NDArray[np.uint8], pos: int, big: bool) -> int:
    return int.from_bytes(bytes(buf[pos : pos + 4]), "big" if big else "little")


def _supported_text() -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(SUPPORTED_LINKTYPES.items()))


def _interface_tables(
    ifaces: list[pcapng.Interface],
) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]]:
    n = len(ifaces)
    linktype = np.array([i.linktype for i in ifaces], np.int32).reshape(n)
    snaplen = np.array([i.snaplen for i in ifaces], np.int64).reshape(n)
    ifindex = np.array([i.ifindex for i in ifaces], np.int32).reshape(n)
    ts = np.array(
        [[i.ts_mul, i.ts_div, i.ts_shift, i.ts_offset_ns] for i in ifaces], np.int64
    ).reshape(n, 4)
    return linktype, snaplen, ifindex, ts


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
