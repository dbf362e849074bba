"""Direct (O_DIRECT) output: every byte arrives in order, and a full disk is an error.

The writer stages into two aligned buffers and lets a helper thread wait on the disk,
so a failed write surfaces one call later than it happened; these tests hold that it
still surfaces (at the next write or at close), on a real ext4 file system.
"""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diffserv.capture.direct_io import STAGING_BYTES, DirectWriter
from support.tools import require_tool, unavailable


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB ext4 file system on a loop device (direct I/O works there, tmpfs refuses)."""
    if os.geteuid() != 0:
        unavailable("mounting a loop file system needs root")
    mkfs = require_tool("mkfs.ext4")
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _pieces(total: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, total, dtype=np.uint8).tobytes()
    cuts = sorted(set(rng.integers(0, total, 40).tolist()) | {0, total})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def test_direct_output_is_every_byte_in_order(ext4: Path) -> None:
    pieces = _pieces(2 * STAGING_BYTES + 12345, seed=7)  # both buffers and an odd tail
    path = ext4 / "out.bin"
    writer = DirectWriter(str(path))
    assert writer.direct, "ext4 takes O_DIRECT"
    for piece in pieces:
        writer.write(piece)
    writer.close()
    assert path.read_bytes() == b"".join(pieces)


def test_a_full_disk_is_raised_at_the_next_write_or_at_close(ext4: Path) -> None:
    writer = DirectWriter(str(ext4 / "big.bin"))
    assert writer.direct
    chunk = np.zeros(1 << 20, np.uint8)
    with pytest.raises(OSError) as info:
        for _ in range(96):  # 96 MiB into a 48 MiB file system
            writer.write(chunk)
        writer.close()
    assert info.value.errno == errno.ENOSPC
    writer.discard()  # nothing left in flight: closing after the error does not hang
