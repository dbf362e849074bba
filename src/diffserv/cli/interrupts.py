"""Signals that stop a command unwind it like an exception, once, so cleanup always runs.

SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread the first time;
a second signal while the command cleans up (removing a temporary output, stopping its
threads) is noted and ignored, so a user pressing Ctrl-C twice cannot leave a
half-written file behind. The previous handlers come back when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from diffserv.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """Within the block, the first stop signal raises Interrupted; later ones are ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # embedded use from another thread: signals are not ours to take
        return
    fired: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signum)

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
