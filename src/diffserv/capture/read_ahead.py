"""Decode the next batch on another core while the engine works on this one.

Decoding and the engine's compiled kernels release the GIL, so on a machine
with two cores they overlap. The reader reuses its buffers, so a buffer is
handed back to it only when the consumer has finished every batch that points
into it (the same hook the background writer uses).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from diffserv.capture.lease import BufferLease
from diffserv.capture.reader import CaptureReader
from diffserv.columns import PacketBatch

_DONE = object()
STOP_WAIT_S = 2.0  # how long a consumer that stops early waits for the helper thread


def read_ahead(reader: CaptureReader) -> Iterator[PacketBatch]:
    """Yield the reader's batches, decoding one batch ahead in a helper thread.

    Errors of the reader (a truncated last record, say) are raised here after
    every batch before them has been yielded, as the plain reader does.
    """
    lease = BufferLease()
    ready: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        item: object = _DONE
        try:
            for batch in reader:
                lease.take(batch.buf)
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

    # first: the consumer queues its writes before it gives a batch back, so a writer's
    # hook (registered earlier) only knows about every write once the lease is free
    reader.reuse_hooks.insert(0, lease.wait_free)
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
                lease.give_back(item.buf)
    finally:
        stop.set()
        lease.close()
        # stopped early, the helper may be blocked reading a stalled pipe: it is a daemon
        # and stops at its next batch, so do not wait for it long
        thread.join(None if finished else STOP_WAIT_S)
        reader.reuse_hooks.remove(lease.wait_free)
