"""Capture writer: copies each batch's input bytes through, minus the dropped packets' records.

Because the reader's spans cover the input contiguously, writing every span in
order reproduces the file byte for byte; marks were written into the buffer in
place, and a dropped packet is just its record (pcap header + data, or the whole
pcapng block) left out. Nothing is seeked, so the output may be a pipe.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import BinaryIO, NoReturn

import numpy as np
from numpy.typing import NDArray

# compiled (src/kernels/capture_scan.c): copies buf[span_start:span_end] into out
# without the dropped records, returning the bytes written
from diffserv._kernels import compact_records
from diffserv.capture.framing import CaptureFormat
from diffserv.capture.lease import Holds
from diffserv.columns import ACTION_DROP, PacketBatch
from diffserv.errors import HostSystemError

ABORT_WAIT_S = 2.0  # how long abort() waits for a write already under way


class CaptureWriter:
    """Write batches to ``out`` in the format ``capture_format`` describes (the reader's
    ``capture_format``: what to write before the first span).

    With ``background=True`` (the default) the bytes are written by a helper
    thread while the caller works on the next batch; each queued write holds the
    batch's buffer (``lease.BUFFERS``), so the reader does not reuse it before the
    write is done, and a batch must not be changed after ``write``. ``close()`` writes
    what a capture needs even when no batch came (the pcap file header), waits for
    every write and flushes; it never closes ``out``, which the caller owns. An I/O
    error (of the helper thread too) is raised by the next ``write`` or by ``close`` as
    a HostSystemError naming ``name``; a broken pipe stays a BrokenPipeError, so a
    command can end quietly when its reader has gone.
    ``abort()`` stops at once after a failure elsewhere: queued writes are skipped and
    every buffer is handed back, so the reader never waits for a writer that has stopped.
    """

    def __init__(
        self,
        out: BinaryIO,
        capture_format: CaptureFormat,
        *,
        background: bool = True,
        name: str | None = None,
    ) -> None:
        self._out = out
        self.name = name if name is not None else str(getattr(out, "name", "the output"))
        self.format = capture_format
        self._header_done = False
        self._scratch: NDArray[np.uint8] = np.empty(0, np.uint8)
        self.packets_written = 0
        self.packets_dropped = 0
        self.bytes_written = 0
        self._closed = False
        self._aborted = False
        self._stop_sent = False
        self._error: BaseException | None = None
        self._holds = Holds()  # buffers that queued writes still read from
        self._queue: queue.SimpleQueue[tuple[object, NDArray[np.uint8] | memoryview] | None]
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._run, name="diffserv-capture-writer", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------ background
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            owner, data = item
            try:
                if self._error is None and not self._aborted:
                    self._out.write(data)  # type: ignore[arg-type]
            except BaseException as exc:
                self._error = exc
            if owner is not None:
                self._holds.give_back(owner)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._fail(error)

    def _fail(self, error: BaseException) -> NoReturn:
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
            reason = error.strerror or str(error)
            raise HostSystemError(f"cannot write {self.name}: {reason}") from None
        raise error

    def _write_now(self, data: NDArray[np.uint8] | memoryview) -> None:
        try:
            self._out.write(data)  # type: ignore[arg-type]
        except OSError as exc:
            self._fail(exc)

    # ---------------------------------------------------------------- output
    def _emit(self, data: NDArray[np.uint8] | memoryview, owner: object = None) -> None:
        self.bytes_written += len(data)
        if self._thread is None:
            self._write_now(data)
            return
        self._raise_error()
        if owner is not None:
            self._holds.take(owner)  # before the caller can ask the reader for more
        self._queue.put((owner, data))

    def _header(self) -> None:
        if not self._header_done:
            self._header_done = True
            if self.format.header:
                self._emit(memoryview(self.format.header))

    def write(self, batch: PacketBatch) -> None:
        """Write the batch's span, leaving out packets whose action is ACTION_DROP."""
        self._header()
        drop = batch.cols.action == ACTION_DROP
        n_drop = int(np.count_nonzero(drop))
        self.packets_dropped += n_drop
        self.packets_written += batch.n - n_drop
        if batch.span_end <= batch.span_start:
            return
        if n_drop == 0:
            self._emit(batch.buf[batch.span_start : batch.span_end], batch.buf)
            return
        size = batch.span_end - batch.span_start
        if self._thread is not None or self._scratch.shape[0] < size:
            # a queued write may still read the old scratch buffer
            self._scratch = np.empty(max(size, self._scratch.shape[0]), np.uint8)
        used = compact_records(
            batch.buf,
            batch.span_start,
            batch.span_end,
            batch.cols.rec_off,
            batch.cols.rec_len,
            drop,
            self._scratch,
        )
        if used:
            self._emit(self._scratch[:used], self._scratch)

    def close(self) -> None:
        """Finish the output (header if nothing was written), wait for it and flush."""
        if self._closed:
            return
        self._closed = True
        self._header()
        self._stop_thread()
        self._raise_error()
        try:
            self._out.flush()
        except OSError as exc:
            self._fail(exc)

    def abort(self) -> None:
        """Stop without finishing the output: skip queued writes, release every buffer.

        For a run that failed or was interrupted; the caller then discards the output.
        Safe to call more than once and after ``close``.
        """
        self._aborted = True
        self._closed = True
        self._holds.give_back_all()
        # a write blocked on a stalled pipe must not hold up the exit: the thread is a
        # daemon and skips everything still queued, so waiting a moment is enough
        self._stop_thread(timeout=ABORT_WAIT_S)
        self._error = None

    def _stop_thread(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is None:
            return
        if not self._stop_sent:  # once: an interrupted join may be retried by abort()
            self._stop_sent = True
            self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():  # a write still stuck (abort): the reader must not wait on it
            self._holds.give_back_all()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
