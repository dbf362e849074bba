"""What every ratio benchmark needs: the diffserv command, timed child processes, results.

Each benchmark runs diffserv and its anchor tool alternately in the same run, takes
medians, and saves what it measured to ``benchmarks/results/<benchmark>.json``; the
README's speed table is rendered from those files (``speed_table.py``), never typed.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


def timed(
    cmd: list[str],
    *,
    quiet_stderr: bool = False,
    then: Callable[[], None] | None = None,
    ok: tuple[int, ...] = (0,),
) -> Measurement:
    """Run ``cmd`` (stdout discarded) and measure it; a failure ends the benchmark.

    ``ok``: the exit statuses that are answers, not failures (an audit that finds
    something mismarked exits 1).

    Peak RSS is the child's VmHWM, sampled until it exits: ``ru_maxrss`` would carry
    this (benchmark) process's own high-water mark into the child across fork and exec,
    which made every child of a benchmark that had just generated its data look big.
    ``then`` runs inside the timed interval after the child exits (syncing its output).
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
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 without reaping first would lose /proc: peek for the exit, sample, then reap
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    peak[0] = max(peak[0], _high_water_kib(proc.pid))
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    if then is not None:
        then()
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise SystemExit(f"{' '.join(cmd)}: failed with status {code}")
    return Measurement(elapsed, usage.ru_utime + usage.ru_stime, peak[0] or int(usage.ru_maxrss))


@dataclass(frozen=True, slots=True)
class Runs:
    """Several runs of one command: medians are what the tables show."""

    label: str
    runs: tuple[Measurement, ...]

    @property
    def wall_s(self) -> float:
        return statistics.median(m.wall_s for m in self.runs)

    @property
    def cpu_s(self) -> float:
        return statistics.median(m.cpu_s for m in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(m.peak_rss_kib for m in self.runs) / 1024

    def line(self) -> str:
        walls = ", ".join(f"{m.wall_s:.3f}" for m in self.runs)
        return (
            f"{self.label:<44} median {self.wall_s:7.3f} s wall, {self.cpu_s:7.3f} s CPU, "
            f"peak RSS {self.peak_rss_mib:5.0f} MiB  (runs: {walls})"
        )


def alternate(
    commands: Sequence[tuple[str, list[str]]],
    rounds: int,
    *,
    before: Callable[[], None] | None = None,
    then: Callable[[], None] | None = None,
    quiet_stderr: bool = False,
    ok: tuple[int, ...] = (0,),
) -> list[Runs]:
    """Run each command once per round, in turn, so a slow spell hits every one alike."""
    measured: list[list[Measurement]] = [[] for _ in commands]
    for _ in range(rounds):
        for i, (_label, cmd) in enumerate(commands):
            if before is not None:
                before()
            measured[i].append(timed(cmd, then=then, quiet_stderr=quiet_stderr, ok=ok))
    return [Runs(label, tuple(runs)) for (label, _), runs in zip(commands, measured, strict=True)]


def comparison(
    what: str, ours: Runs, anchor: Runs | None, target: str, **extra: Any
) -> dict[str, Any]:
    """One row of a results file: both tools' medians and the ratios (anchor / ours)."""
    row: dict[str, Any] = {
        "what": what,
        "ours": {"wall_s": ours.wall_s, "cpu_s": ours.cpu_s, "peak_rss_mib": ours.peak_rss_mib},
        "target": target,
        "runs": len(ours.runs),
        **extra,
    }
    if anchor is not None:
        row["anchor"] = {"label": anchor.label, "wall_s": anchor.wall_s, "cpu_s": anchor.cpu_s}
        row["ratio_wall"] = anchor.wall_s / ours.wall_s
        row["ratio_cpu"] = anchor.cpu_s / ours.cpu_s
        print(
            f"  ratio ({anchor.label.split()[0]} / diffserv): {row['ratio_wall']:.2f}x wall, "
            f"{row['ratio_cpu']:.2f}x CPU  (target {target})"
        )
    return row


def save_results(benchmark: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``results/<benchmark>.json``, which the README's speed table is made from."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}.json"
    document = {
        "benchmark": benchmark,
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"results: {path}")
    return path
