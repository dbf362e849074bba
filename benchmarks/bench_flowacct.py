"""flowacct vs softflowd: flow accounting of the whole benchmark capture, same run.

`diffserv run` classifies every packet (four classes) into flowacct on every class
and writes CSV records (and, in a third case, Parquet); `softflowd -r` accounts the
same file and exports
IPFIX to a local socket nobody reads. On 2 M and on 5 M packets (the same ~10 000
flows: memory follows the flow table, not the input) both run alternately, round by
round; we print medians of wall and CPU time, the ratios (target >= 1.5x) and our peak
RSS (target < 256 MiB), then the flowacct operator alone over decoded batches.

    python benchmarks/bench_flowacct.py [--small N] [--packets N] [--rounds N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from diffserv.capture import open_capture
from diffserv.engine.modules.flowacct import FlowTable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402
from measure import alternate, comparison, diffserv_command, save_results, timed  # noqa: E402

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action acct_web
	}
	class {
		name dns
		next_action acct_dns
	}
	class {
		name voice
		next_action acct_voice
	}
	class {
		name default
		next_action acct_other
	}
	filter {
		name https
		class web
		dport 443
	}
	filter {
		name http
		class web
		dport 80
	}
	filter {
		name dns
		class dns
		dport 53
	}
	filter {
		name sip
		class voice
		dport 5060
	}
}
"""

ACCT = """
action {
	module flowacct
	name %s
	params {
		timer 15000
		timeout 60000
		max_limit 200000
		next_action continue
	}
}
"""


def policy_text() -> str:
    names = ("acct_web", "acct_dns", "acct_voice", "acct_other")
    return POLICY + "".join(ACCT % name for name in names)


def operator_only(src: Path) -> tuple[float, int]:
    """CPU seconds spent in flowacct alone over decoded batches (decode time excluded)."""

    class Discard:
        def __init__(self) -> None:
            self.records = 0

        def write(self, records: object) -> None:
            self.records += int(getattr(records, "n", 0))

    sink = Discard()
    table = FlowTable("acct", 15000, 60000, 200000, sink)
    spent = 0.0
    with open_capture(str(src)) as reader:
        for batch in reader:
            rows = np.arange(batch.n, dtype=np.int64)
            start = time.process_time()
            table.account(batch, rows)
            spent += time.process_time() - start
    start = time.process_time()
    table.flush()
    spent += time.process_time() - start
    return spent, sink.records


def _case(packets: int, policy: Path, records: Path, rounds: int) -> dict[str, Any]:
    """diffserv and softflowd on one capture, alternating; our peak RSS and records."""
    src = ensure(packets)
    ours = [*diffserv_command(), "run", str(policy), str(src), "-o", os.devnull, "-q"]
    ours += ["--flows", str(records)]
    commands = [(f"diffserv run, {packets:,} packets", ours)]
    softflowd = shutil.which("softflowd")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # softflowd exports here; nobody reads
        port = sink.getsockname()[1]
        if softflowd is None:
            print("softflowd not installed: no ratio")
        else:
            theirs = [softflowd, "-r", str(src), "-n", f"127.0.0.1:{port}"]
            commands.append(("softflowd -r", [*theirs, "-v", "10", "-6", "-A", "milli"]))
        timed(ours, quiet_stderr=True)  # the page cache holds the capture from here on
        results = alternate(commands, rounds, quiet_stderr=True)
    for runs in results:
        print(runs.line())
    if records.suffix == ".parquet":
        n_records = pq.ParquetFile(records).metadata.num_rows
    else:
        n_records = sum(1 for _ in records.open(encoding="utf-8")) - 1  # the CSV header
    print(f"  records: {n_records:,} written to {records.name}")
    what = f"flowacct on every class, {packets / 1e6:g} M packets, ~10 000 flows, "
    what += f"records to {records.suffix[1:].upper()}"
    anchor = results[1] if len(results) > 1 else None
    return comparison(what, results[0], anchor, ">= 1.5×, < 256 MiB", records=n_records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=2_000_000, help="packets of the first case")
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the record files")
    args = parser.parse_args(argv)
    policy = DATA_DIR / "bench_flowacct.conf"
    policy.write_text(policy_text())
    # CSV records: what softflowd's cost compares with (it only sends datagrams); Parquet
    # adds importing pyarrow, a fixed 0.3-0.4 s and 60 MiB, which the third row shows
    csv = DATA_DIR / "bench_flowacct.csv"
    records = DATA_DIR / "bench_flowacct.parquet"
    rows = [_case(n, policy, csv, args.rounds) for n in (args.small, args.packets)]
    rows.append(_case(args.small, policy, records, args.rounds))
    op_s, op_records = operator_only(ensure(args.packets))
    print(f"flowacct operator alone: {op_s:.2f} s CPU over {args.packets:,} decoded packets")
    print(f"  ({op_s / args.packets * 1e9:.0f} ns/packet, {op_records:,} records)")
    rows[-1]["operator_cpu_s"] = op_s
    save_results("bench_flowacct", rows)
    if not args.keep:
        records.unlink(missing_ok=True)
        csv.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
