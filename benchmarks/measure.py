"""What every ratio benchmark needs: the diffserv command and a timed child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Measurement:
    """One finished child process: wall and CPU (user + system) seconds, peak RSS."""

    wall_s: float
    cpu_s: float
    peak_rss_kib: int


def diffserv_command() -> list[str]:
    """The diffserv of this interpreter's environment (the venv's script, else -m)."""
    exe = Path(sys.executable).with_name("diffserv")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "diffserv"]


def fresh_disk(output: Path | None = None) -> None:
    """Remove an old output and write back dirty pages, so no run pays for another's I/O."""
    if output is not None:
        output.unlink(missing_ok=True)
    os.sync()


def timed(cmd: list[str], *, quiet_stderr: bool = False) -> Measurement:
    """Run ``cmd`` (stdout discarded) and measure it; a failure ends the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet_stderr else None,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)}: failed with status {code}")
    return Measurement(elapsed, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss))
