"""Decode the next batch on another core while the engine works on this one.

Decoding and the engine's compiled kernels release the GIL, so on a machine
with two cores they overlap. The reader reuses its buffers, so every batch in the
queue or with the consumer holds its buffer (``lease.BUFFERS``) until the consumer
asks for the next one; a writer that queues the batch takes its own hold first.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from diffserv.capture.lease import Holds
from diffserv.capture.reader import CaptureReader
from diffserv.columns import PacketBatch

_DONE = object()
STOP_WAIT_S = 2.0  # how long a consumer that stops early waits for the helper thread


def read_ahead(reader: CaptureReader) -> Iterator[PacketBatch]:
    """Yield the reader's batches, decoding one batch ahead in a helper thread.

    Errors of the reader (a truncated last record, say) are raised here after
    every batch before them has been yielded, as the plain reader does.
    """
    holds = Holds()
    ready: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        item: object = _DONE
        try:
            for batch in reader:
                holds.take(batch.buf)  # before the reader is asked for the next one
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:
            item = exc
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="diffserv-capture-decode", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            assert isinstance(item, PacketBatch)
            try:
                yield item
            finally:
                holds.give_back(item.buf)
    finally:
        stop.set()
        holds.give_back_all()
        # stopped early, the helper may be blocked reading a stalled pipe: it is a daemon
        # and stops at its next batch, so do not wait for it long
        thread.join(None if finished else STOP_WAIT_S)
