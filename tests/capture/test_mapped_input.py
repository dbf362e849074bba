"""A mapped input file gives exactly what reading it into buffers gives, and lets pages go."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffserv.capture import CaptureWriter
from diffserv.capture.read_ahead import read_ahead
from diffserv.capture.reader import MMAP_ENV, CaptureReader
from diffserv.columns import ACTION_DROP
from diffserv.packet.rewrite import apply_marks
from support import synth

WINDOW = 1 << 16  # the smallest window: ~40 window boundaries in the files below


def packets(n: int = 3000) -> list[bytes]:
    out = []
    for i in range(n):
        vlans = [synth.Vlan(7, pcp=i % 8)] if i % 5 == 0 else []
        out.append(
            synth.simple_frame(
                version=4 if i % 3 else 6,
                proto=("tcp", "udp")[i % 2],
                sport=i,
                dscp=i % 64,
                payload_len=(i * 389) % 1450,  # records cut by every window boundary
                vlans=vlans,
            )
        )
        if i % 97 == 0:
            out.append(synth.ethernet(bytes(40), ethertype=0x0806))
    return out


class SlowOutput(io.BytesIO):
    """An output that lags behind, so the reader must really wait for the writer."""

    def write(self, data: Any) -> int:
        time.sleep(0.0005)
        return super().write(data)


def run(path: Path, *, use_mmap: bool, batch_size: int, slow: bool = False) -> tuple[Any, ...]:
    """Mark, drop and write as ``diffserv run`` does (read ahead, background writer)."""
    out = SlowOutput() if slow else io.BytesIO()
    with CaptureReader(path, batch_size=batch_size, chunk_size=WINDOW, use_mmap=use_mmap) as r:
        assert r.source.mapped == use_mmap
        writer = CaptureWriter(out, r.capture_format)
        decoded: list[tuple[int, int, int]] = []  # (number, ip version, flags) of every row
        for batch in read_ahead(r):
            decoded += zip(
                batch.cols.number.tolist(),
                batch.cols.ip_version.tolist(),
                batch.cols.flags.tolist(),
                strict=True,
            )
            batch.cols.new_ds[:] = ((batch.cols.number * 11) % 64 << 2) | (batch.cols.ds_byte & 3)
            batch.cols.new_pcp[:] = (batch.cols.number % 8).astype(np.int8)
            apply_marks(batch)
            batch.cols.action[batch.cols.number % 13 == 0] = ACTION_DROP
            writer.write(batch)
        writer.close()
        if use_mmap:  # pages behind the last windows were given back
            assert r.source.released >= path.stat().st_size - 4 * WINDOW - 2 * 1500
    counts = (r.packets, decoded)
    written = (writer.packets_written, writer.packets_dropped, writer.bytes_written)
    return out.getvalue(), counts, written


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("mapped")
    pkts = packets()
    ng = synth.pcapng_bytes(
        [
            synth.Section([synth.Interface(name="eth0")], list(pkts[:1700])),
            synth.Section([synth.Interface(name="eth1")], list(pkts[1700:]), big_endian=True),
        ]
    )
    return {
        "pcap": Path(synth.write_file(base / "in.pcap", synth.pcap_bytes(pkts))),
        "pcapng": Path(synth.write_file(base / "in.pcapng", ng)),
    }


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("batch_size", [7, 65536])
def test_mapped_and_read_inputs_give_identical_output_and_counts(
    inputs: dict[str, Path], kind: str, batch_size: int
) -> None:
    path = inputs[kind]
    assert path.stat().st_size > 30 * WINDOW
    ref = run(path, use_mmap=False, batch_size=batch_size)
    got = run(path, use_mmap=True, batch_size=batch_size)
    assert got == ref
    assert ref[1][0] > 3000 and ref[2][1] > 200  # packets seen, packets dropped
    assert ref[0] != path.read_bytes()  # marks and drops did happen


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_windows_are_released_only_after_a_slow_writer(inputs: dict[str, Path], kind: str) -> None:
    ref = run(inputs[kind], use_mmap=False, batch_size=257)
    assert run(inputs[kind], use_mmap=True, batch_size=257, slow=True) == ref
    assert run(inputs[kind], use_mmap=False, batch_size=257, slow=True) == ref


def test_marks_never_reach_the_input_file(inputs: dict[str, Path]) -> None:
    before = inputs["pcap"].read_bytes()
    run(inputs["pcap"], use_mmap=True, batch_size=65536)
    assert inputs["pcap"].read_bytes() == before


def test_unmappable_inputs_are_read(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = tmp_path / "in.pcap.gz"
    gz.write_bytes(gzip.compress(inputs["pcap"].read_bytes()))
    with CaptureReader(gz) as reader:
        assert not reader.source.mapped
        assert sum(b.n for b in reader) > 3000
    monkeypatch.setenv(MMAP_ENV, "0")
    with CaptureReader(inputs["pcap"]) as reader:
        assert not reader.source.mapped
    monkeypatch.delenv(MMAP_ENV)
    with CaptureReader(inputs["pcap"]) as reader:
        assert reader.source.mapped


def test_a_batch_kept_after_close_stays_readable(inputs: dict[str, Path]) -> None:
    with CaptureReader(inputs["pcap"], chunk_size=WINDOW) as reader:
        first = next(iter(reader))
    # the mapping lives on while a batch refers to it
    start = int(first.cols.rec_off[0])
    assert bytes(first.buf[start : start + 16]) == inputs["pcap"].read_bytes()[24:40]
