"""The live packet source: batches of queued packets, straight from the NFQUEUE socket.

One call of the compiled receiver (``nfq_receive``) takes every datagram waiting on the
socket (up to one per slot) with a single ``recvmmsg``, and parses and decodes them into
the batch's columns with the packet bytes left where they landed: the slot buffer *is*
the batch's ``buf``, so the markers rewrite in place and payload verdicts send from it.
The buffer and the columns are reused for the next batch, which is safe because the
session hands each batch to its packet sink (the verdicts) before ``process`` returns.

Per-packet facts the column table has no place for (the packet id that a verdict names,
the netfilter hook, gid, mark) stay in ``meta``, row for row with the batch.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Final

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import NFQ_COUNTERS, NFQ_META_WIDTH, nfq_receive
from diffserv.columns import PacketBatch, PacketColumns, allocate_columns, columns_of
from diffserv.errors import HostSystemError
from diffserv.live.netlink import QueueSocket

DEFAULT_SLOTS: Final = 1024  # datagrams (packets) per receive call and per batch
# a slot holds one packet message: the netlink and attribute headers (<= 200 bytes with
# every attribute the kernel adds) plus a 9000-byte jumbo frame
DEFAULT_SLOT_BYTES: Final = 9216 + 256
SLOT_OVERHEAD: Final = 256


class LiveSource:
    """Batches from ``queue``: :meth:`receive` returns the next one (or None when quiet).

    ``counters`` accumulates what the receiver and the verdicts counted (NFQ_* slots);
    ``enobufs`` counts socket overflows, during which the kernel failed open.
    """

    def __init__(
        self,
        queue: QueueSocket,
        *,
        slots: int = DEFAULT_SLOTS,
        slot_bytes: int = DEFAULT_SLOT_BYTES,
    ) -> None:
        self.queue = queue
        self.slot = slot_bytes
        self.buf: NDArray[np.uint8] = np.zeros(slots * slot_bytes, np.uint8)
        self.cols = allocate_columns(slots)
        self.meta: NDArray[np.int64] = np.zeros((slots, NFQ_META_WIDTH), np.int64)
        self.counters: NDArray[np.int64] = np.zeros(NFQ_COUNTERS, np.int64)
        self.max_id = 0  # highest packet id of the last batch: what its batch verdict covers
        self.packets = 0
        self.datagrams = 0
        self.receives = 0
        self.enobufs = 0
        self._floor_ns = 0
        self.interfaces: tuple[str, ...] = ("",)
        self._lut: NDArray[np.int32] = np.full(1, 0, np.int32)  # kernel ifindex -> table
        # the first n rows of every column, by n: slicing 29 columns anew cost a batch of
        # a few packets about as much as classifying it (these are views of self.cols,
        # which nothing else owns: no column pool waits for them to be dropped)
        self._views: dict[int, PacketColumns] = {}

    def receive(self, timeout_ms: int) -> PacketBatch | None:
        """The packets waiting (waiting up to ``timeout_ms`` for the first), or None.

        A batch may have no rows yet a ``max_id`` (only unparseable packet messages): it
        still goes through the session so the verdicts release them.
        """
        rows, datagrams, max_id, floor, err, mapped = nfq_receive(
            self.queue.fileno(),
            self.buf,
            self.slot,
            self.cols,
            self.meta,
            self.counters,
            self.packets + 1,
            self._floor_ns,
            timeout_ms,
            self._lut,
        )
        self.receives += 1
        if err:
            if err == errno.ENOBUFS:
                self.enobufs += 1  # the kernel accepted what did not fit (fail-open)
            elif err != errno.EINTR:
                raise HostSystemError(
                    f"NFQUEUE queue {self.queue.queue}: receive: {errno.errorcode.get(err, err)}"
                )
        if datagrams == 0 and max_id == 0:
            return None
        self._floor_ns = floor
        self.packets += rows
        self.datagrams += datagrams
        self.max_id = max(max_id, self.queue.early_max_id)
        self.queue.early_max_id = 0
        cols = self._views.get(rows)
        if cols is None:
            cols = self._views[rows] = columns_of(array[:rows] for array in self.cols)
        if not mapped:  # an interface not seen before (the receiver maps known ones)
            self._map_interfaces(cols.ifindex)
        return PacketBatch(buf=self.buf, cols=cols, interfaces=self.interfaces)

    def _map_interfaces(self, ifindex: NDArray[np.int32]) -> None:
        """Kernel interface indexes (as the receiver left them) -> the batch's name table.

        The table only grows at its end (ipgpc caches its lookups on that), one name per
        kernel index the first time it is seen.
        """
        if ifindex.shape[0] == 0:
            return
        lut = self._lut
        if int(ifindex.max()) < lut.shape[0]:
            mapped = lut[ifindex]
            if int(mapped.min()) >= 0:  # every interface known: the usual case
                ifindex[:] = mapped
                return
        top = int(ifindex.max())
        if top >= lut.shape[0]:
            lut = np.concatenate([lut, np.full(top + 1 - lut.shape[0], -1, np.int32)])
        names = list(self.interfaces)
        for index in np.unique(ifindex[lut[ifindex] < 0]).tolist():
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = f"if{index}"  # gone already: still one entry per index
            lut[index] = len(names)
            names.append(name)
        self.interfaces = tuple(names)
        self._lut = lut
        ifindex[:] = lut[ifindex]


def now_ns() -> int:
    """Wall-clock time in ns, the clock packets are stamped with."""
    return time.time_ns()
