"""An input that changes while it is read: a clear error, never SIGBUS; pipes are read as
packets arrive.

A mapped capture that another process truncates would kill the reader with SIGBUS. The
reader holds a Linux read lease while it maps the file: the truncating process waits
until we have stopped, and we stop with a message naming the packet.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diffserv.capture import open_capture
from diffserv.capture.reader import CaptureReader
from diffserv.errors import InputDataError
from support import synth

CHUNK = 1 << 16  # the smallest window: a small file still spans many


def _capture(path: Path, packets: int = 4000) -> None:
    frames = [synth.simple_frame(payload_len=300, sport=1000 + i % 100) for i in range(50)]
    path.write_bytes(synth.pcap_bytes([frames[i % len(frames)] for i in range(packets)]))


def _wait_until(predicate: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "copied-from-a-mapping"])
def test_truncation_while_mapped_stops_with_a_message_and_waits_for_us(
    tmp_path: Path, mapped: bool
) -> None:
    """Both ways a regular file is read go through a mapping under the lease: as windows
    (no action rewrites packets), or copied out of it into buffers (marking runs)."""
    path = tmp_path / "big.pcap"
    _capture(path)
    size = path.stat().st_size
    with CaptureReader(path, batch_size=256, chunk_size=CHUNK, use_mmap=mapped) as reader:
        assert reader.source.mapped == mapped and reader.source.leased
        batches = iter(reader)
        first = next(batches)
        assert 0 < first.n <= 256
        # another process truncates the file: with our lease held, it has to wait
        truncator = subprocess.Popen(
            [sys.executable, "-c", f"import os; os.truncate({str(path)!r}, 100)"]
        )
        fd = reader.source.fd
        _wait_until(
            lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK,
            "the lease break never showed",
        )
        assert truncator.poll() is None, "the truncation did not wait for the lease"
        seen = first.n
        with pytest.raises(InputDataError) as info:
            for batch in batches:
                seen += batch.n
        assert seen < 4000
        assert path.stat().st_size == size  # nothing changed under us while we read
    message = str(info.value)
    assert message.startswith(f"{path}: packet {seen + 1}: the file is being changed")
    assert truncator.wait(timeout=60) == 0  # it goes on once we have let go
    assert path.stat().st_size == 100


def test_a_run_on_a_file_being_truncated_never_dies_of_sigbus(tmp_path: Path) -> None:
    """The whole command: exit 0 (done first) or 2 with the message, never a signal."""
    path = tmp_path / "big.pcap"
    _capture(path, 20000)
    policy = tmp_path / "p.conf"
    policy.write_text("fmt_version 1.0\n\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffserv", "run", str(policy), str(path), "-o", os.devnull, "-q"],
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    cut = threading.Thread(target=os.truncate, args=(path, 1000))
    cut.start()
    _, err = proc.communicate(timeout=120)
    cut.join(timeout=60)
    assert proc.returncode in (0, 2), err
    assert "Traceback" not in err.decode()
    if proc.returncode == 2:
        assert "the file is being changed" in err.decode() or "capture ends" in err.decode()


def test_a_file_open_for_writing_is_read_not_mapped(tmp_path: Path) -> None:
    """tcpdump may still be writing it: no lease can be had, so no mapping."""
    path = tmp_path / "live.pcap"
    _capture(path, 100)
    for mapped in (True, False):
        with open(path, "ab"), open_capture(path, use_mmap=mapped) as reader:
            assert not reader.source.mapped and not reader.source.leased
            assert sum(batch.n for batch in reader) == 100


def test_a_pipe_is_processed_as_packets_arrive(tmp_path: Path) -> None:
    """A live source that pauses: the packets so far come out without waiting for 8 MB."""
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    data = synth.pcap_bytes([synth.simple_frame(payload_len=100)] * 50)
    release = threading.Event()

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as sink:
            sink.write(data)
            release.wait(30)  # keep the pipe open, silent

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        with open_capture(fifo, batch_size=1000) as reader:
            first = next(iter(reader))
            assert first.n == 50
    finally:
        release.set()
        feeder.join(timeout=30)


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "copied-from-a-mapping"])
def test_closing_the_reader_lets_a_writer_in_at_once(tmp_path: Path, mapped: bool) -> None:
    """The lease goes with the reader's close, not with the last reference to it."""
    path = tmp_path / "done.pcap"
    _capture(path, 500)
    reader = CaptureReader(path, batch_size=64, chunk_size=CHUNK, use_mmap=mapped)
    with reader:
        assert reader.source.leased
        assert sum(batch.n for batch in reader) == 500
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}, 'ab').close()"], check=True)
    assert time.monotonic() - start < 10, "the writer waited for a lease still held"
    assert reader.packets == 500  # the reader object itself is still alive


def test_a_batch_still_held_does_not_keep_the_lease(tmp_path: Path) -> None:
    """A batch viewing the mapping outlives the reader: the writer still gets in at once."""
    path = tmp_path / "held.pcap"
    _capture(path, 500)
    reader = CaptureReader(path, batch_size=64, chunk_size=CHUNK, use_mmap=True)
    with reader:
        assert reader.source.mapped
        held = next(iter(reader))  # its buffer is a view of the mapping
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}, 'ab').close()"], check=True)
    assert time.monotonic() - start < 10, "the writer waited for a lease still held"
    assert held.n == 64
