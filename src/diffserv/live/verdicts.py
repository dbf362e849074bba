"""The verdict sink: every packet of a processed batch gets its verdict back to the kernel.

A packet needs a message of its own only when the engine did something to it: dropped it
(NF_DROP), changed its DS byte (NF_ACCEPT carrying the packet as the marker rewrote it in
the batch buffer, ECN bits and IPv4 checksum already right), or gave it a CoS (dlcosmk:
NFQA_PRIORITY sets ``skb->priority``, which a VLAN device's egress-qos-map turns into the
802.1p PCP). Everything else is accepted by one NFQNL_MSG_VERDICT_BATCH up to the
batch's highest packet id, sent after the individual verdicts in the same datagram.
A marked packet the queue copied only in part (larger than the copy range) or could not
decode is accepted unchanged and counted (``unwritable``): sending back a partial copy
would cut it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from diffserv._kernels import nfq_verdicts
from diffserv.columns import PacketBatch
from diffserv.live.source import LiveSource

OUT_BYTES: Final = 1 << 20  # verdicts are sent whenever this much is built


class VerdictSink:
    """The session's packet sink for a live source (the BatchSink protocol)."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.out: NDArray[np.uint8] = np.zeros(OUT_BYTES, np.uint8)
        self.messages = 0
        self.send_errors = 0
        self.last_error = 0

    def write(self, batch: PacketBatch) -> None:
        self.release(batch)

    def release(self, batch: PacketBatch | None) -> None:
        """Send the verdicts of ``batch`` (None: accept everything up to the source's
        max_id, as after a batch the engine failed on)."""
        source = self.source
        if batch is None:
            rows = 0
            cols = source.cols
        else:
            rows = batch.n
            cols = batch.cols
        messages, _bytes, err = nfq_verdicts(
            source.queue.fileno(),
            source.queue.queue,
            source.buf,
            cols,
            source.meta,
            self.out,
            source.counters,
            rows,
            source.max_id,
        )
        self.messages += messages
        if err:
            # counted, never fatal: a packet whose verdict was lost stays queued only
            # until the next batch verdict, which covers every lower id
            self.send_errors += 1
            self.last_error = err

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None
