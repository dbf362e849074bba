"""Who still uses a reader buffer: the reader may refill it only when nobody does.

The background writer (queued writes) and the read-ahead consumer (batches
handed out) both hold buffers past the moment the reader moves on; each keeps
one lease and registers its ``wait_free`` as a reader reuse hook.
"""

from __future__ import annotations

import threading


class BufferLease:
    """Counts the uses of each buffer (by identity) and waits for them to end."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}
        self._cond = threading.Condition()
        self.closed = False

    def take(self, buffer: object) -> None:
        with self._cond:
            self._held[id(buffer)] = self._held.get(id(buffer), 0) + 1

    def give_back(self, buffer: object) -> None:
        with self._cond:
            self._held[id(buffer)] -= 1
            self._cond.notify_all()

    def wait_free(self, buffer: object) -> None:
        """Block until no use of ``buffer`` is outstanding (or the lease is closed)."""
        with self._cond:
            while self._held.get(id(buffer), 0) and not self.closed:
                self._cond.wait()

    def close(self) -> None:
        """Stop holding anything: every waiter is released."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
