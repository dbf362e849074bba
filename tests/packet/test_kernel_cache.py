"""invalidate_if_stale drops a cached kernel's index when a dependency is newer."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from diffserv.capture import pcap, pcapng
from diffserv.packet import decode, rewrite
from diffserv.packet.kernel_cache import invalidate_if_stale


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_a_newer_dependency_drops_the_index(tmp_path: Path) -> None:
    kernel_src = tmp_path / "kc_kernel_mod.py"
    kernel_src.write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
    )
    dependency = tmp_path / "kc_dependency_mod.py"
    dependency.write_text("VALUE = 1\n")
    module = _load(kernel_src)
    assert module.twice(21) == 42
    index = Path(module.twice._cache._cache_file._index_path)
    assert index.exists()
    dep = _load(dependency)
    invalidate_if_stale(module.twice, dep)  # older dependency: kept
    assert index.exists()
    later = time.time() + 10
    os.utime(dependency, (later, later))
    invalidate_if_stale(module.twice, dep)
    assert not index.exists()
    for leftover in index.parent.glob("kc_kernel_mod.*"):  # the shared cache stays clean
        leftover.unlink()


def test_column_kernels_name_their_cache_files() -> None:
    # the mechanism reads numba internals: make sure they are still where it looks
    for kernel in (decode.decode_rows, pcap.scan_pcap, pcapng.scan_pcapng, rewrite.mark_rows):
        assert kernel._cache._cache_file._index_path.endswith(".nbi")
