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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402
from measure import diffserv_command, fresh_disk, timed  # noqa: E402

POLICY = HERE / "bench_run.conf"
TOS = 184


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
    run = [*diffserv_command(), "run", str(POLICY)]

    # warm the numba cache once so no measured run pays for compilation
    subprocess.run([*run, str(small), "-o", str(ours_out), "-q"], check=True)

    fresh_disk(ours_out)
    small_run = timed([*run, str(small), "-o", str(ours_out), "-q"])
    small_s, small_cpu = small_run.wall_s, small_run.cpu_s
    print(
        f"diffserv run, {args.small:,} packets : {small_s:6.2f} s wall, {small_cpu:5.2f} s CPU "
        "(target < 1 s)"
    )

    fresh_disk(ours_out)
    big_run = timed([*run, str(big), "-o", str(ours_out), "-q"])
    ours_s, ours_rss, ours_cpu = big_run.wall_s, big_run.peak_rss_kib, big_run.cpu_s
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
        fresh_disk(theirs_out)
        theirs_run = timed(
            [tcprewrite, f"--tos={TOS}", f"--tclass={TOS}", "-i", str(big), "-o", str(theirs_out)]
        )
        theirs_s, theirs_cpu = theirs_run.wall_s, theirs_run.cpu_s
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
