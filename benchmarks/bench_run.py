"""End-to-end `diffserv run` vs `tcprewrite --tos=184 --tclass=184` on the same capture.

A 20-filter policy (benchmarks/bench_run.conf) classifies and re-marks most packets of
the generated capture (gen_capture.py, 5 M packets by default). Both tools run as child
processes in the same run, start-up included, so the numbers are what a user sees. We
print both wall times and their ratio (target >= 3x), our peak RSS (target < 256 MiB),
and the wall time of a 200 000-packet run (target < 1 s).

    python benchmarks/bench_run.py [--packets N] [--small N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402

POLICY = HERE / "bench_run.conf"
TOS = 184


def _diffserv() -> list[str]:
    exe = Path(sys.executable).with_name("diffserv")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "diffserv"]


def _timed(cmd: list[str], output: Path) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one child process.

    Both tools start from the same disk state: no old output file, and the dirty
    pages of earlier runs written back (else one run pays for another's writeback).
    """
    output.unlink(missing_ok=True)
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with status {proc.returncode}")
    return elapsed, int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--small", type=int, default=200_000, help="packets of the start-up run")
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(HERE.parent / ".numba-cache"))

    big = ensure(args.packets)
    small = ensure(args.small)
    ours_out = DATA_DIR / "bench_run_ours.pcap"
    theirs_out = DATA_DIR / "bench_run_tcprewrite.pcap"
    run = [*_diffserv(), "run", str(POLICY)]

    # warm the numba cache once so no measured run pays for compilation
    subprocess.run([*run, str(small), "-o", str(ours_out), "-q"], check=True)

    small_s, _, small_cpu = _timed([*run, str(small), "-o", str(ours_out), "-q"], ours_out)
    print(
        f"diffserv run, {args.small:,} packets : {small_s:6.2f} s wall, {small_cpu:5.2f} s CPU "
        "(target < 1 s)"
    )

    ours_s, ours_rss, ours_cpu = _timed([*run, str(big), "-o", str(ours_out), "-q"], ours_out)
    print(
        f"diffserv run, {args.packets:,} packets: {ours_s:6.2f} s wall, {ours_cpu:6.2f} s CPU  "
        f"{args.packets / ours_s / 1e6:5.2f} Mpkt/s  peak RSS {ours_rss / 1024:.0f} MiB "
        f"(target < 256 MiB)"
    )
    tcprewrite = shutil.which("tcprewrite")
    status = 0
    if tcprewrite is None:
        print("tcprewrite not installed: no ratio")
    else:
        theirs_s, _, theirs_cpu = _timed(
            [tcprewrite, f"--tos={TOS}", f"--tclass={TOS}", "-i", str(big), "-o", str(theirs_out)],
            theirs_out,
        )
        ratio = theirs_s / ours_s
        print(
            f"tcprewrite --tos={TOS} --tclass={TOS}      : {theirs_s:6.2f} s wall, "
            f"{theirs_cpu:6.2f} s CPU  "
            f"{args.packets / theirs_s / 1e6:5.2f} Mpkt/s"
        )
        print(f"ratio (tcprewrite / diffserv)     : {ratio:6.2f}x wall (target >= 3x)")
        print(f"ratio of CPU time                 : {theirs_cpu / ours_cpu:6.2f}x")
    if not args.keep:
        for path in (ours_out, theirs_out):
            path.unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
