"""End-to-end `diffserv run` vs `tcprewrite --tos=184 --tclass=184` on the same capture.

A 20-filter policy (benchmarks/bench_run.conf) classifies and re-marks most packets of
the generated capture (gen_capture.py). Both tools run as child processes, start-up
included, alternating round by round so a slow spell of this shared machine hits both;
we print medians of wall and CPU time, their ratios and our peak RSS:

- 2 M packets, output to /dev/null (target >= 3x tcprewrite);
- 5 M packets to a real file, the output synced to disk before the clock stops, for
  both tools (target >= 3x); peak RSS < 256 MiB on both.

    python benchmarks/bench_run.py [--small N] [--packets N] [--rounds N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402
from measure import alternate, comparison, diffserv_command, fresh_disk, save_results  # noqa: E402

POLICY = HERE / "bench_run.conf"
TOS = 184


def _sync(path: Path) -> None:
    """Write the file's data to disk (what `sync FILE` does), inside the timed interval."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _case(
    packets: int, out_ours: Path, out_theirs: Path, rounds: int, *, synced: bool
) -> dict[str, Any]:
    capture = ensure(packets)
    ours = [*diffserv_command(), "run", str(POLICY), str(capture), "-o", str(out_ours), "-q"]
    tcprewrite = shutil.which("tcprewrite")
    commands = [(f"diffserv run, {packets:,} packets", ours)]
    if tcprewrite:
        theirs = [tcprewrite, f"--tos={TOS}", f"--tclass={TOS}", "-i", str(capture)]
        theirs += ["-o", str(out_theirs)]
        commands.append((f"tcprewrite --tos={TOS} --tclass={TOS}", theirs))
    else:
        print("tcprewrite not installed: no ratio")
    outputs = {out_ours, out_theirs}
    real = {path for path in outputs if path != Path(os.devnull)}

    def before() -> None:
        for path in real:
            fresh_disk(path)

    def then() -> None:
        if synced:
            for path in real:
                if path.exists():
                    _sync(path)

    results = alternate(commands, rounds, before=before, then=then)
    for runs in results:
        print(runs.line())
    where = "a file, synced" if synced else "/dev/null"
    what = f"{packets / 1e6:g} M packets, 20-filter marking policy, output to {where}"
    row = comparison(what, results[0], results[1] if len(results) > 1 else None, ">= 3×, < 256 MiB")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=2_000_000, help="packets, to /dev/null")
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS, help="packets, to a file")
    parser.add_argument("--rounds", type=int, default=5, help="runs per tool, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    args = parser.parse_args(argv)
    ours_out = DATA_DIR / "bench_run_ours.pcap"
    theirs_out = DATA_DIR / "bench_run_tcprewrite.pcap"
    null = Path(os.devnull)
    rows = [
        _case(args.small, null, null, args.rounds, synced=False),
        _case(args.packets, ours_out, theirs_out, args.rounds, synced=True),
    ]
    save_results("bench_run", rows)
    if not args.keep:
        for path in (ours_out, theirs_out):
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
