"""keep_freed_memory: a batch loop stops paying page faults for its temporaries."""

from __future__ import annotations

import subprocess
import sys

from diffserv.heap import keep_freed_memory

_LOOP = """
import resource, sys
import numpy as np
sys.path.insert(0, "src")
if sys.argv[1] == "keep":
    from diffserv.heap import keep_freed_memory
    assert keep_freed_memory()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # a batch's temporaries: made, used, freed, made again
    a = np.ones(1 << 19); b = a * 2; c = b + a; total = float(c.sum())
    del a, b, c
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _LOOP, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_freed_blocks_are_reused_instead_of_mapped_again() -> None:
    assert keep_freed_memory()
    default, kept = _faults("default"), _faults("keep")
    # three 4 MiB arrays a round: ~3000 faults a round when mapped fresh each time
    assert kept * 4 < default, (kept, default)
