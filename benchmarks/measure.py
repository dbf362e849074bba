"""What every ratio benchmark needs: the diffserv command and a timed child process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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


def _high_water_kib(pid: int) -> int:
    """The process's own peak resident set (VmHWM), 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def timed(cmd: list[str], *, quiet_stderr: bool = False) -> Measurement:
    """Run ``cmd`` (stdout discarded) and measure it; a failure ends the benchmark.

    Peak RSS is the child's VmHWM, sampled until it exits: ``ru_maxrss`` would carry
    this (benchmark) process's own high-water mark into the child across fork and exec,
    which made every child of a benchmark that had just generated its data look big.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet_stderr else None,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _high_water_kib(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 without reaping first would lose /proc: peek for the exit, sample, then reap
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    peak[0] = max(peak[0], _high_water_kib(proc.pid))
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)}: failed with status {code}")
    return Measurement(elapsed, usage.ru_utime + usage.ru_stime, peak[0] or int(usage.ru_maxrss))
