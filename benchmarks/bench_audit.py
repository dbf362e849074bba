"""`diffserv audit` on a 5 M-packet capture against `diffserv run` on the same capture,
and on 10 M flow records.

- Capture: the capture and 20-filter policy of bench_run.py (gen_capture.py), audited
  packet by packet (`diffserv audit bench_run.conf CAPTURE --json`) and run through the
  engine (`diffserv run bench_run.conf CAPTURE -o /dev/null -q`), alternating round by
  round, medians of wall and CPU time. Target: the audit within 1.5× of the run. The
  capture is unmarked, so most packets are mismarked: the audit's worst case (every
  mismarked flow is summed for its lists).
- Records: the 10 M-record flow store of bench_report.py (IPFIX through `diffserv
  collect`), audited with the same policy (`diffserv audit bench_run.conf STORE
  --json`). Target: under 5 s.

Both commands exit 1 (something is mismarked): that is their answer, not a failure.

    python benchmarks/bench_audit.py [--packets N] [--records N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DEFAULT_PACKETS, ensure  # noqa: E402
from measure import Runs, alternate, comparison, diffserv_command, save_results  # noqa: E402

POLICY = HERE / "bench_run.conf"
RECORDS_TARGET_S = 5.0


def capture_row(packets: int, rounds: int) -> dict[str, Any]:
    capture = ensure(packets)
    audit = [*diffserv_command(), "audit", str(POLICY), str(capture), "--json"]
    run = [*diffserv_command(), "run", str(POLICY), str(capture), "-o", os.devnull, "-q"]
    results = alternate(
        [(f"diffserv audit, {packets:,} packets", audit), ("diffserv run (same capture)", run)],
        rounds,
        ok=(0, 1),
    )
    for runs in results:
        print(runs.line())
    what = (
        f"audit of a {packets / 1e6:g} M-packet capture (20-filter policy, most packets "
        "mismarked), against `diffserv run` on the same capture"
    )
    row = comparison(what, results[0], results[1], "within 1.5× of diffserv run")
    row["ratio_text"] = f"**{results[0].wall_s / results[1].wall_s:.2f}×** run's time"
    return row


def records_row(records: int, rounds: int) -> dict[str, Any]:
    from bench_report import Data  # noqa: PLC0415 (generating the records takes a while)

    data = Data(records, 6.0)
    data.ensure(400_000)
    audit = [*diffserv_command(), "audit", str(POLICY), str(data.store), "--json"]
    (runs,) = alternate([(f"diffserv audit, {records:,} records", audit)], rounds, ok=(0, 1))
    print(runs.line())
    return _alone(
        f"audit of {records / 1e6:g} M flow records (the IPFIX flow store of bench_report)",
        runs,
        f"< {RECORDS_TARGET_S:g} s",
        runs.wall_s < RECORDS_TARGET_S,
    )


def _alone(what: str, runs: Runs, target: str, met: bool) -> dict[str, Any]:
    row = comparison(what, runs, None, target)
    row["anchor_text"] = "—"
    row["ratio_text"] = "within target" if met else "**over target**"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per command, alternating")
    args = parser.parse_args(argv)
    rows = [capture_row(args.packets, args.rounds), records_row(args.records, args.rounds)]
    save_results("bench_audit", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
