"""Buffer lifetime: a reader's buffer is refilled only when no hold on it is outstanding.

A capture reader hands out batches that are views of its own buffers (a read buffer, or
a window of the mapped file). A batch is valid until the consumer asks for the next one;
whoever keeps using a buffer past that moment (the background writer with queued writes,
the read-ahead queue with batches handed out) *holds* it. Holds are counted per buffer
object in one process-wide ledger, :data:`BUFFERS`, and the byte source calls
``BUFFERS.wait_free(buffer)`` before it refills a buffer or gives a window's pages back.

The rule, which is all that correctness depends on:

* take a hold before the moment the source could reuse the buffer (before asking the
  source for another batch, or before giving back the hold the batch came with), and
* give it back when the last use of the buffer is over (or drop every hold at once
  with :meth:`Holds.give_back_all` when stopping).

A batch passed along a chain of holders (read-ahead queue, then writer queue) is
therefore always held by at least one of them: the writer takes its hold inside
``write`` while the read-ahead consumer still holds the batch. Because there is one
count per buffer, not one list of callbacks per reader, the order in which holders were
created or registered plays no part.
"""

from __future__ import annotations

import threading


class _Counts:
    """Counts per buffer object (by identity), keeping each counted buffer alive so that
    its id cannot be reused while it is counted."""

    def __init__(self) -> None:
        self._buffers: dict[int, object] = {}
        self._counts: dict[int, int] = {}

    def add(self, buffer: object, count: int = 1) -> None:
        key = id(buffer)
        self._buffers[key] = buffer
        self._counts[key] = self._counts.get(key, 0) + count

    def remove(self, buffer: object, count: int = 1) -> bool:
        """Take ``count`` off; True when none is left (or there was none)."""
        key = id(buffer)
        left = self._counts.get(key, 0) - count
        if left > 0:
            self._counts[key] = left
            return False
        self._counts.pop(key, None)
        self._buffers.pop(key, None)
        return True

    def get(self, buffer: object) -> int:
        return self._counts.get(id(buffer), 0)

    def drain(self) -> list[tuple[object, int]]:
        """Every buffer with its count; the counts are then empty."""
        out = [(self._buffers[key], count) for key, count in self._counts.items()]
        self._buffers.clear()
        self._counts.clear()
        return out


class BufferLedger:
    """Outstanding holds on buffers, counted per buffer object."""

    def __init__(self) -> None:
        self._counts = _Counts()
        self._cond = threading.Condition()

    def hold(self, buffer: object) -> None:
        with self._cond:
            self._counts.add(buffer)

    def release(self, buffer: object, count: int = 1) -> None:
        with self._cond:
            if self._counts.remove(buffer, count):
                self._cond.notify_all()

    def held(self, buffer: object) -> int:
        """How many holds on ``buffer`` are outstanding."""
        with self._cond:
            return self._counts.get(buffer)

    def wait_free(self, buffer: object) -> None:
        """Block until no hold on ``buffer`` is outstanding."""
        with self._cond:
            while self._counts.get(buffer):
                self._cond.wait()


BUFFERS = BufferLedger()


class Holds:
    """The holds one holder has in a ledger (its own count, so it can drop them all)."""

    def __init__(self, ledger: BufferLedger = BUFFERS) -> None:
        self._ledger = ledger
        self._mine = _Counts()
        self._lock = threading.Lock()
        self.closed = False

    def take(self, buffer: object) -> None:
        with self._lock:
            if self.closed:
                return
            self._mine.add(buffer)
            self._ledger.hold(buffer)

    def give_back(self, buffer: object) -> None:
        with self._lock:
            if not self._mine.get(buffer):  # dropped by give_back_all meanwhile
                return
            self._mine.remove(buffer)
            self._ledger.release(buffer)

    def give_back_all(self) -> None:
        """Give back every hold and take no more: whoever waits on these buffers goes on."""
        with self._lock:
            self.closed = True
            for buffer, count in self._mine.drain():
                self._ledger.release(buffer, count)
