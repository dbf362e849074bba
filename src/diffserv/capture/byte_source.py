"""Getting capture bytes: files, mapped files, gzip, pipes and standard input.

A :class:`ByteSource` offers the input as one buffer view at a time: ``buf[:filled]``
holds the bytes from input offset ``base`` on, and ``refill(offset)`` keeps the bytes
from ``offset`` on (a record cut by the end of the buffer) and gets more behind them.
What the bytes mean is not its business (see the framing modules).

* A regular, uncompressed file is mapped privately (copy-on-write: marks written into
  it never reach the file) under a read lease, and offered in windows of ``chunk_size``;
  nothing is copied. Between windows the lease is checked (another process opening the
  file for writing or truncating it stops the read with :class:`InputChangedError`), the
  pages of the next window are mapped in ahead by a helper thread, and the
  pages behind the window before last are given back.
* Anything else (gzip, pipes, standard input, ``use_mmap=False``) is read into two
  alternating buffers: while the consumer works on one, a helper thread reads the next
  chunk into the other one behind a reserve, where the partial record is then copied in
  front of it. A pipe's read returns what has arrived, so a slow live source is
  processed as it comes.

Buffers are reused, so before a buffer is refilled (or a window's pages are given
back) the source waits until no hold on it is outstanding (``lease.BUFFERS``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import mmap
import os
import select
import stat
import sys
import threading
import zlib
from concurrent.futures import Future
from types import TracebackType
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import MADV_POPULATE_READ, advise, copy_from_mapping
from diffserv.capture.file_lease import drop_read_lease, lease_broken, take_read_lease
from diffserv.capture.lease import BUFFERS
from diffserv.errors import InputDataError

DEFAULT_CHUNK_SIZE = 8 << 20
STREAM_BATCH_BYTES = 1 << 20  # a pipe's read returns once this much has arrived
CLOSE_WAIT_S = 2.0  # close() waits this long for a read in flight, then leaves it
RESERVE = 1 << 20  # room in front of a read-ahead chunk for the record cut by the last one
MMAP_ENV = "DIFFSERV_CAPTURE_MMAP"  # "0": always read() into buffers, never map the input


class InputChangedError(Exception):
    """Another process opened the mapped input for writing or truncated it."""


class ByteSource:
    """The bytes of one capture input, offered as a buffer view at a time.

    Attributes: ``buf`` (the current buffer; its first ``filled`` bytes are valid),
    ``base`` (input offset of ``buf[0]``), ``eof`` (nothing follows ``buf[:filled]``),
    ``mapped`` (the input is a mapped file). ``name`` is used in messages.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefetch: bool = True,
        use_mmap: bool = True,
    ) -> None:
        """Open ``path`` (``"-"``: standard input); nothing is read yet (see ``refill``)."""
        self.name = os.fspath(path)
        self._file: BinaryIO
        self._owns_file = self.name != "-"
        try:
            if self._owns_file:
                # no POSIX_FADV_SEQUENTIAL: measured, it made every read() of a file in
                # the page cache over three times slower (0.67 s against 0.20 s of system
                # time for 1.15 GB) and the kernel's own read-ahead already sees the pattern
                self._file = open(self.name, "rb")  # noqa: SIM115
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
        # Linux >= 5.14: map the next window's pages now (in the helper), not on first touch
        self._populate = MADV_POPULATE_READ
        # read() by copying out of a read-only mapping (see _copy_into)
        self._copy_map: mmap.mmap | None = None
        self._copy_pos = 0
        if self._owns_file and os.environ.get(MMAP_ENV, "1") != "0":
            if use_mmap:
                self._map = _map_file(self._file)
            else:
                self._copy_map = _map_file(self._file, access=mmap.ACCESS_READ)
        self._whole: NDArray[np.uint8] = np.empty(0, np.uint8)
        if self._map is not None:
            self._whole = np.frombuffer(self._map, np.uint8)
        self._copy_whole: NDArray[np.uint8] = np.empty(0, np.uint8)
        if self._copy_map is not None:
            self._copy_whole = np.frombuffer(self._copy_map, np.uint8)
        self._retired: NDArray[np.uint8] | None = None  # mapped window left at the last advance
        self._released = 0  # mapped pages below this offset are given back
        self._release: Future[None] | None = None
        self._advising = threading.Lock()  # held by a helper thread advising on the mapping
        self._closing = False
        self._buf: NDArray[np.uint8] = np.empty(0, np.uint8)
        self._spare: NDArray[np.uint8] | None = None
        self._prefetch = prefetch
        self._pending: Future[tuple[int, bool]] | None = None
        self._reading = 0  # reads in progress (in any thread)
        self._filled = 0
        self._base = 0  # file offset of buf[0]
        self._eof = False

    # ------------------------------------------------------------ the view
    @property
    def buf(self) -> NDArray[np.uint8]:
        return self._buf

    @property
    def filled(self) -> int:
        return self._filled

    @property
    def base(self) -> int:
        return self._base

    @property
    def eof(self) -> bool:
        return self._eof

    @property
    def leased(self) -> bool:
        """The input is read through a mapping under a read lease (offered as windows of
        the mapping, or copied out of one into buffers)."""
        return self._map is not None or self._copy_map is not None

    @property
    def mapped(self) -> bool:
        return self._map is not None

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def released(self) -> int:
        """Mapped input: the pages below this offset have been given back."""
        return self._released

    def refill(self, offset: int) -> None:
        """Keep the bytes from input offset ``offset`` on and get more behind them.

        ``offset`` must lie in the current view (``base <= offset <= base + filled``).
        Afterwards ``base <= offset`` and the view ends later than before unless ``eof``.
        Raises :class:`InputChangedError` when a mapped input is being changed by another
        process, InputDataError on a read error.
        """
        keep_from = offset - self._base
        if not 0 <= keep_from <= self._filled:
            raise ValueError(f"offset {offset} is outside the current view")
        self._fill(keep_from)

    # ----------------------------------------------------------------- buffer
    def _read_into(self, buf: NDArray[np.uint8], start: int) -> tuple[int, bool]:
        """Read into ``buf[start:]``; return (bytes, at EOF).

        A regular file fills the buffer. A pipe or terminal returns as soon as what has
        arrived is read (at least one byte, more while more is waiting), so packets
        from a slow live source are processed as they come rather than 8 MB later.
        """
        if self._copy_map is not None:
            return self._copy_into(buf, start)
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

    def _copy_into(self, buf: NDArray[np.uint8], start: int) -> tuple[int, bool]:
        """``_read_into`` for a regular file: copy from a read-only mapping of it.

        Measured on the build machine, read() of a file in the page cache cost 0.8 s of
        system time per 1.15 GB while the engine ran on the other core; copying the same
        bytes out of a mapping costs a third of that. The mapping is read-only (marks go
        into the copy) and held under the same read lease as a mapped input.
        """
        mapping = self._copy_map
        assert mapping is not None
        if lease_broken(self._fd):
            raise InputChangedError(self.name)
        if self._copy_pos == 0:
            self._copy_pos = self._file.tell()  # after what was read() before (the header)
        pos = self._copy_pos
        size = len(mapping)
        n = max(0, min(buf.shape[0] - start, size - pos))
        self._reading += 1
        try:
            # map in, copy, give the pages back: one call, without the GIL (the engine
            # thread runs meanwhile; mmap.madvise would hold it)
            copy_from_mapping(self._copy_whole, pos, buf, start, n)
        finally:
            self._reading -= 1
        self._copy_pos = pos + n
        return n, pos + n >= size

    def _more_waiting(self) -> bool:
        """True when a pipe has more bytes ready now (the next read would not block)."""
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _prefetch_into(self, buf: NDArray[np.uint8]) -> tuple[int, bool]:
        BUFFERS.wait_free(buf)  # a background writer may still be sending its batches
        return self._read_into(buf, RESERVE)

    def _start_prefetch(self, buf: NDArray[np.uint8]) -> None:
        # a copy out of the mapping is made where it is needed, by the thread that asks:
        # a third thread for it only fought the other two for the GIL (measured: 2 M
        # packets through a marking policy took 1.17 s with it and 1.02 s without)
        inline = self._copy_map is not None
        if (
            self._prefetch
            and not inline
            and not self._eof
            and buf.shape[0] == RESERVE + self._chunk
        ):
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
        being written by a background writer) is never overwritten; a buffer is reused
        only once every hold on it has been given back. While the
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
            BUFFERS.wait_free(spare)
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
        back (``MADV_DONTNEED``) once every hold on that window has been given back,
        which keeps the resident set at a few windows whatever the file size; the pages
        of the window after this one are mapped in ahead meanwhile.
        """
        if lease_broken(self._fd):
            raise InputChangedError(self.name)
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
        # close() must not wait for (and exit must not join) a wait that never ends
        threading.Thread(target=run, name="diffserv-capture-release", daemon=True).start()
        return keep_from

    def _release_window(
        self, done: NDArray[np.uint8] | None, release_to: int, ahead: tuple[int, int]
    ) -> None:
        start, stop = ahead
        # advice goes through a view of the mapping with the GIL released (mmap.madvise
        # holds it); the lock keeps close() from unmapping while a call holds the view
        with self._advising:
            if stop > start and self._populate and not self._closing:
                try:
                    advise(self._whole, start, stop - start, self._populate)
                except OSError:  # a kernel before 5.14: read ahead without mapping
                    self._populate = (
                        mmap.MADV_WILLNEED if self._populate != mmap.MADV_WILLNEED else 0
                    )
        if done is None:
            return
        BUFFERS.wait_free(done)  # the consumer and the writer have finished with the window
        with self._advising:
            if release_to > self._released and not self._closing:
                advise(self._whole, self._released, release_to - self._released, mmap.MADV_DONTNEED)
                self._released = release_to

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
        if self.leased:
            drop_read_lease(self._fd)
        if self._map is not None:
            with self._advising:  # no advice is in flight, and none starts from here on
                pass
            self._buf = self._whole = np.empty(0, np.uint8)
            self._retired = None
            with contextlib.suppress(BufferError):  # batches still held keep the mapping
                self._map.close()
        if self._copy_map is not None:  # nothing but the copying ever views it
            self._copy_whole = np.empty(0, np.uint8)
            with contextlib.suppress(BufferError):
                self._copy_map.close()
        if self._reading:
            return  # closing would wait for the blocked read's lock; exit frees the file
        if self._owns_file and not self._file.closed:
            inner = getattr(self._file, "fileobj", None)
            self._file.close()
            if inner is not None:
                inner.close()

    def __enter__(self) -> ByteSource:
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


def _map_file(file: BinaryIO, access: int = mmap.ACCESS_COPY) -> mmap.mmap | None:
    """A mapping (private and writable unless ``access`` says otherwise) of a regular,
    non-empty, uncompressed input file, else None."""
    if not isinstance(file, io.BufferedReader):
        return None  # standard input wrapper, gzip
    try:
        fd = file.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return None
        if not take_read_lease(fd):
            return None  # nothing would stop a truncation (SIGBUS): read() instead
        mapping = mmap.mmap(fd, 0, access=access)
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
