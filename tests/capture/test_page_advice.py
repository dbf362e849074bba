"""The page-advice kernels a mapped capture is read with (src/kernels/capture_pages.c).

``copy_from_mapping`` copies exactly the bytes asked for and gives the source pages back
(the mapping's resident set, read from /proc/self/smaps, drops to nothing), and
``advise`` maps pages in or gives them back; both refuse a range outside their buffers.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from diffserv._kernels import MADV_POPULATE_READ, advise, copy_from_mapping

SIZE = 3 << 20  # a few MB, not page-aligned at the end


DATA = np.random.default_rng(7).integers(0, 256, SIZE + 123, np.uint8)


@pytest.fixture
def mapped(tmp_path: Path) -> Iterator[NDArray[np.uint8]]:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA.tobytes())
    with open(path, "rb") as file:
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        yield np.frombuffer(mapping, np.uint8)
        with contextlib.suppress(BufferError):  # the test's view may still be alive
            mapping.close()


def _resident_kb(view: NDArray[np.uint8]) -> int:
    """Resident kB of the mapping that holds ``view`` (its smaps entry)."""
    start = view.ctypes.data
    lines = Path(f"/proc/{os.getpid()}/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(part, 16) for part in head.split("-"))
            inside = lo <= start < hi
        elif inside and line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError("mapping not found in smaps")


def test_the_copy_is_exact_and_the_pages_are_given_back(mapped: NDArray[np.uint8]) -> None:
    dst = np.zeros(SIZE + 200, np.uint8)
    pos, start = 0, 7
    for n in (1, 4095, 4097, 1 << 20, SIZE + 123 - (1 + 4095 + 4097 + (1 << 20))):
        copy_from_mapping(mapped, pos, dst, start, n)
        assert np.array_equal(dst[start : start + n], DATA[pos : pos + n])
        pos, start = pos + n, start + n
    assert _resident_kb(mapped) <= 8  # at most the page the copy ended in
    assert pos == SIZE + 123
    assert np.array_equal(dst[7 : 7 + pos], DATA)
    assert dst[:7].sum() == 0 and dst[7 + pos :].sum() == 0  # nothing written outside


def test_a_plain_copy_leaves_the_pages_mapped(mapped: NDArray[np.uint8]) -> None:
    """The control: without the kernel's DONTNEED the whole file stays resident."""
    dst = np.empty(SIZE + 123, np.uint8)
    dst[:] = mapped
    assert _resident_kb(mapped) >= SIZE // 1024 - 8


def test_advise_maps_pages_in_and_gives_them_back(mapped: NDArray[np.uint8]) -> None:
    try:
        advise(mapped, 10, 1 << 20, MADV_POPULATE_READ)
    except OSError:
        pytest.skip("this kernel has no MADV_POPULATE_READ (Linux < 5.14)")
    assert _resident_kb(mapped) >= 1024
    advise(mapped, 0, SIZE + 123, mmap.MADV_DONTNEED)
    assert _resident_kb(mapped) <= 4  # the partial last page is not whole: it may stay
    assert np.array_equal(mapped, DATA)  # given back, not lost: the file's pages fault in


@pytest.mark.parametrize(
    ("pos", "start", "n", "where"),
    [(SIZE, 0, 200, "src"), (-1, 0, 1, "src"), (0, SIZE + 150, 100, "dst"), (0, 0, -1, "src")],
)
def test_copy_refuses_a_range_outside_a_buffer(
    mapped: NDArray[np.uint8], pos: int, start: int, n: int, where: str
) -> None:
    dst = np.zeros(SIZE + 200, np.uint8)
    with pytest.raises(ValueError, match=where):
        copy_from_mapping(mapped, pos, dst, start, n)
    assert dst.sum() == 0


def test_copy_needs_a_writable_destination(mapped: NDArray[np.uint8]) -> None:
    with pytest.raises(TypeError, match="dst"):
        copy_from_mapping(mapped, 0, mapped, 0, 10)


def test_advise_refuses_a_range_outside_the_buffer(mapped: NDArray[np.uint8]) -> None:
    with pytest.raises(ValueError, match="outside"):
        advise(mapped, SIZE, 1 << 20, mmap.MADV_DONTNEED)
    with pytest.raises(OSError):
        advise(mapped, 0, 4096, 12345)  # no such advice
