"""Keep numba's on-disk cache honest for kernels that inline code from other modules.

numba invalidates a cached kernel only when the file defining it changes; a
kernel that calls a jitted function from another file (the capture walkers call
``decode_one``) would keep running the old copy after that file is edited. This
drops such a kernel's cache index when a dependency is newer, so it recompiles.

A kernel that takes a ``PacketColumns`` tuple depends on ``diffserv.columns`` the same
way: the position of each field in the tuple and the FLAG_* constants are compiled into
it, so ``columns`` is one of its dependencies.
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Any


def invalidate_if_stale(kernel: Any, *dependencies: ModuleType) -> None:
    """Remove ``kernel``'s cache index if any dependency's source is newer than it."""
    with contextlib.suppress(AttributeError, OSError, TypeError):
        index_path = kernel._cache._cache_file._index_path
        if not os.path.exists(index_path):
            return
        built = os.stat(index_path).st_mtime
        for module in dependencies:
            source = module.__file__
            if source and os.stat(source).st_mtime > built:
                os.remove(index_path)
                return
