"""One count of holds per buffer: a buffer is free when every holder has given it back."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from diffserv.capture.byte_source import ByteSource
from diffserv.capture.lease import BufferLedger, Holds


def _waits(ledger: BufferLedger, buffer: object) -> threading.Thread:
    thread = threading.Thread(target=ledger.wait_free, args=(buffer,), daemon=True)
    thread.start()
    return thread


def test_a_buffer_is_free_once_every_holder_has_given_it_back() -> None:
    ledger = BufferLedger()
    buf = np.zeros(4, np.uint8)
    ledger.wait_free(buf)  # nobody holds it
    read_ahead, writer = Holds(ledger), Holds(ledger)
    read_ahead.take(buf)
    writer.take(buf)  # hand over hand: the writer takes before read-ahead gives back
    read_ahead.give_back(buf)
    waiter = _waits(ledger, buf)
    waiter.join(0.2)
    assert waiter.is_alive() and ledger.held(buf) == 1
    writer.give_back(buf)
    waiter.join(5)
    assert not waiter.is_alive() and ledger.held(buf) == 0


def test_the_order_of_holders_does_not_matter() -> None:
    ledger = BufferLedger()
    buf = np.zeros(4, np.uint8)
    first, second = Holds(ledger), Holds(ledger)
    second.take(buf)
    first.take(buf)
    second.give_back(buf)
    assert ledger.held(buf) == 1
    first.give_back(buf)
    ledger.wait_free(buf)


def test_give_back_all_frees_everything_and_takes_no_more() -> None:
    ledger = BufferLedger()
    a, b = np.zeros(4, np.uint8), np.zeros(4, np.uint8)
    holds, other = Holds(ledger), Holds(ledger)
    holds.take(a)
    holds.take(a)
    holds.take(b)
    other.take(b)
    waiter = _waits(ledger, a)
    holds.give_back_all()
    waiter.join(5)
    assert not waiter.is_alive()
    assert ledger.held(a) == 0 and ledger.held(b) == 1  # the other holder's hold stays
    holds.give_back(a)  # a late give-back after dropping everything is harmless
    holds.take(a)
    assert ledger.held(a) == 0
    other.give_back(b)
    ledger.wait_free(b)


def test_a_byte_source_offers_bytes_without_knowing_the_format(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1024
    path = tmp_path / "bytes.bin"
    path.write_bytes(data)
    for use_mmap in (False, True):
        with ByteSource(path, chunk_size=1 << 16, use_mmap=use_mmap) as source:
            assert source.mapped == use_mmap
            got = b""
            offset = 0
            source.refill(0)
            while True:
                end = source.base + source.filled
                fresh = bytes(source.buf[offset - source.base : source.filled])
                assert fresh == data[offset:end]
                if source.eof:
                    got += fresh
                    break
                got += fresh[:-10]
                offset = end - 10  # keep a "partial record"
                source.refill(offset)
                assert source.base <= offset
            assert got == data
