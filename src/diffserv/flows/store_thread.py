"""The flow store written from a thread of its own, so that receiving never waits for Parquet.

Writing a row group (Arrow conversion, zstd, the file system) takes tens of milliseconds
per batch; done in the receive loop, every write is a pause in which datagrams pile up
in the socket's buffer, and past it are lost. Parquet's encoder and the file writes
run without the GIL, so on a second core they overlap with receiving and decoding.
The queue between the two holds at most ``max_batches`` batches: memory stays bounded,
and a store slower than the exporters pushes back on the receive loop (the kernel
buffer then decides) instead of growing without limit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Final, Protocol

import msgspec

from diffserv.flows.schema import FlowBatch

DEFAULT_MAX_BATCHES: Final = 4
# Batches are handed to the writer in slices of at most this many rows: turning
# addresses into text and columns into Arrow arrays holds the GIL for the whole of a
# call, and a slice keeps each such pause of the receive loop to a few milliseconds
# (the socket buffer covers far more) instead of one pause per decoded batch.
SLICE_ROWS: Final = 8192


class Writer(Protocol):
    """What is written to in the thread (the store writer)."""

    def add(self, batch: FlowBatch) -> None: ...

    def rotate(self) -> list[str]: ...

    def close(self) -> list[str]: ...

    def abort(self) -> None: ...

    @property
    def files_written(self) -> int: ...


class _Call:
    """rotate/close asked of the thread: the caller waits for its result."""

    def __init__(self, work: Callable[[], list[str]]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: list[str] = []


_STOP: Final = object()


class StoreThread:
    """A :class:`Writer` in front of another one, which a worker thread drives in order.

    ``add`` returns once the batch is queued; ``rotate`` and ``close`` wait until every
    batch queued before them is written and return the files they finished. An error
    of the writer (a full disk) is raised again, by the next call, in the caller's thread.
    """

    def __init__(self, writer: Writer, *, max_batches: int = DEFAULT_MAX_BATCHES) -> None:
        self.writer = writer
        self._queue: queue.Queue[FlowBatch | _Call | object] = queue.Queue(max_batches)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="flow-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if self._error is None:
                    if isinstance(item, _Call):
                        item.result = item.work()
                    elif isinstance(item, FlowBatch):
                        for piece in _slices(item, SLICE_ROWS):
                            self.writer.add(piece)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                if isinstance(item, _Call):
                    item.done.set()

    def _raise(self) -> None:
        """The writer's error, once it had one (every later call fails with it too)."""
        if self._error is not None:
            raise self._error

    @property
    def files_written(self) -> int:
        """Files the writer has finished so far (read while it works: a count, no lock)."""
        return self.writer.files_written

    def add(self, batch: FlowBatch) -> None:
        self._raise()
        if self._closed:
            raise ValueError("flow store: a batch after close")
        self._queue.put(batch)

    def _call(self, work: Callable[[], list[str]]) -> list[str]:
        self._raise()
        if self._closed:  # no thread is left to do it
            return []
        call = _Call(work)
        self._queue.put(call)
        call.done.wait()
        self._raise()
        return call.result

    def rotate(self) -> list[str]:
        return self._call(self.writer.rotate)

    def close(self) -> list[str]:
        if self._closed:
            return []
        files = self._call(self.writer.close)
        self._closed = True
        self._stop()
        return files

    def abort(self) -> None:
        """Drop what is still queued, stop the thread, and let the writer clean up."""
        if not self._closed:
            self._closed = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._stop()
        self.writer.abort()

    def _stop(self) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._queue.put(_STOP)
            self._thread.join()


def _slices(batch: FlowBatch, rows: int) -> Iterator[FlowBatch]:
    """``batch`` in pieces of at most ``rows`` rows (views of its arrays, no copies)."""
    if batch.n <= rows:
        yield batch
        return
    for start in range(0, batch.n, rows):
        columns = {name: array[start : start + rows] for name, array in batch.columns.items()}
        yield msgspec.structs.replace(batch, columns=columns)
