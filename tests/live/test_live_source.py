"""LiveSource.receive over a real datagram socket: interface names and reused views.

The receiver maps the kernel's interface indexes to the batch's name table itself when
it knows every one of them, and leaves a batch with a new index to the Python side,
which extends the table. Either way the batch must name the same interfaces, and a
batch of a size seen before (its column views are kept per row count) must hold only
this batch's packets.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from diffserv.live.source import LiveSource
from support import synth
from support.nfq_wire import packet_message

GONE = 987_654  # an interface index nothing has: named "if987654"


class _Queue:
    """The part of QueueSocket a LiveSource uses, over one end of a socketpair."""

    queue = 0
    early_max_id = 0

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, LiveSource]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        yield theirs, LiveSource(_Queue(ours), slots=16, slot_bytes=2048)  # type: ignore[arg-type]
    finally:
        ours.close()
        theirs.close()


def _send(sock: socket.socket, first_id: int, indevs: list[int]) -> None:
    for k, dev in enumerate(indevs):
        frame = synth.ipv4("10.99.1.1", "10.99.2.2", synth.udp(40000, 80 + k, b"x"))
        sock.send(packet_message(first_id + k, frame, hook=0, indev=dev))  # PRE_ROUTING


def _names(source: LiveSource, count: int) -> list[str]:
    batch = source.receive(1000)
    assert batch is not None and batch.n == count
    return [batch.interfaces[i] for i in batch.cols.ifindex.tolist()]


def test_known_and_new_interfaces_are_named_alike(
    wire: tuple[socket.socket, LiveSource],
) -> None:
    sender, source = wire
    lo = socket.if_nametoindex("lo")  # 1: never its place in the table below
    _send(sender, 1, [GONE, GONE])  # new: the Python side extends the table
    assert _names(source, 2) == [f"if{GONE}"] * 2
    _send(sender, 3, [lo])  # another new one
    assert _names(source, 1) == ["lo"]
    _send(sender, 4, [lo, GONE, lo])  # all known: mapped by the receiver
    assert _names(source, 3) == ["lo", f"if{GONE}", "lo"]
    _send(sender, 7, [lo, GONE + 1, GONE])  # a new one among known ones
    assert _names(source, 3) == ["lo", f"if{GONE + 1}", f"if{GONE}"]
    _send(sender, 10, [GONE + 1, lo])
    assert _names(source, 2) == [f"if{GONE + 1}", "lo"]
    assert source.interfaces == ("", f"if{GONE}", "lo", f"if{GONE + 1}")


def test_a_batch_of_a_size_seen_before_holds_only_its_own_packets(
    wire: tuple[socket.socket, LiveSource],
) -> None:
    sender, source = wire
    lo = socket.if_nametoindex("lo")
    seen = []
    for first in (1, 3, 5):
        _send(sender, first, [lo, lo])
        batch = source.receive(1000)
        assert batch is not None and batch.n == 2
        seen.append(batch.cols.dport.tolist())
        assert np.array_equal(batch.cols.number, [first, first + 1])
    assert seen == [[80, 81]] * 3
    assert source.max_id == 6
