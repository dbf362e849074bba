"""The collector's store thread: order kept, errors come back to the caller, memory bounded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from diffserv.errors import HostSystemError
from diffserv.flows.schema import FlowBatch, make_batch
from diffserv.flows.store_thread import SLICE_ROWS, StoreThread


def batch(n: int) -> FlowBatch:
    zeros = np.zeros(n, np.uint64)
    given = {
        "first_ns": np.arange(n, dtype=np.int64),
        "last_ns": np.arange(n, dtype=np.int64),
        "saddr_hi": zeros,
        "saddr_lo": zeros,
        "daddr_hi": zeros,
        "daddr_lo": zeros,
        "sport": np.zeros(n, np.uint16),
        "dport": np.zeros(n, np.uint16),
        "protocol": np.zeros(n, np.uint8),
        "packets": zeros,
        "bytes": zeros,
    }
    return make_batch("ipfix", "192.0.2.1", 0, n, given)


class Recorder:
    """A writer that logs what it was asked, optionally slow or failing."""

    def __init__(self, *, fail_at: int | None = None, gate: threading.Event | None = None) -> None:
        self.log: list[str] = []
        self.fail_at = fail_at
        self.gate = gate
        self.files_written = 0
        self.aborted = False

    def add(self, b: FlowBatch) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.fail_at is not None and len(self.log) == self.fail_at:
            raise HostSystemError("cannot write store/x.parquet: No space left on device")
        self.log.append(f"add {b.n}")

    def rotate(self) -> list[str]:
        self.log.append("rotate")
        self.files_written += 1
        return [f"file{self.files_written}"]

    def close(self) -> list[str]:
        self.log.append("close")
        return []

    def abort(self) -> None:
        self.aborted = True


def test_batches_rotations_and_close_keep_their_order() -> None:
    writer = Recorder()
    store = StoreThread(writer)
    store.add(batch(3))
    store.add(batch(4))
    assert store.rotate() == ["file1"]
    store.add(batch(5))
    store.close()
    assert writer.log == ["add 3", "add 4", "rotate", "add 5", "close"]
    assert store.files_written == 1
    assert store.close() == []  # closing twice is harmless
    assert store.rotate() == []  # and so is a rotation after it (no thread to hang on)
    with pytest.raises(ValueError, match="after close"):
        store.add(batch(1))


def test_a_writer_error_is_raised_in_the_callers_thread() -> None:
    writer = Recorder(fail_at=1)
    store = StoreThread(writer)
    store.add(batch(1))
    store.add(batch(2))  # fails in the thread
    with pytest.raises(HostSystemError, match="No space left"):
        store.rotate()
    with pytest.raises(HostSystemError):
        store.add(batch(3))
    store.abort()
    assert writer.aborted
    assert writer.log == ["add 1"]


def test_the_queue_is_bounded_and_pushes_back() -> None:
    gate = threading.Event()
    writer = Recorder(gate=gate)
    store = StoreThread(writer, max_batches=2)
    done = threading.Event()

    def producer() -> None:
        for n in range(1, 6):
            store.add(batch(n))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    # the writer is stuck: one batch in its hands, two queued, the producer waits
    assert not done.wait(0.3)
    gate.set()
    assert done.wait(5)
    thread.join()
    store.close()
    assert writer.log == [f"add {n}" for n in range(1, 6)] + ["close"]


def test_abort_drops_the_queue_and_lets_the_writer_clean_up() -> None:
    gate = threading.Event()
    writer = Recorder(gate=gate)
    store = StoreThread(writer, max_batches=4)
    for n in range(1, 4):
        store.add(batch(n))
    gate.set()
    store.abort()
    assert writer.aborted
    assert len(writer.log) <= 3


def test_a_big_batch_reaches_the_writer_in_slices_in_order() -> None:
    seen: list[FlowBatch] = []

    class Keep(Recorder):
        def add(self, b: FlowBatch) -> None:
            seen.append(b)

    store = StoreThread(Keep())
    store.add(batch(SLICE_ROWS * 2 + 5))
    store.close()
    assert [b.n for b in seen] == [SLICE_ROWS, SLICE_ROWS, 5]
    joined = np.concatenate([b.columns["first_ns"] for b in seen])
    assert (joined == np.arange(SLICE_ROWS * 2 + 5)).all()
