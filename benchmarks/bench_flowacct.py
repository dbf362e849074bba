"""flowacct vs softflowd: flow accounting of the whole benchmark capture, same run.

`diffserv run` classifies every packet (four classes) into flowacct on every class
and writes Parquet records; `softflowd -r` accounts the same file and exports
IPFIX to a local socket nobody reads. We print both wall times, the ratio, our
peak RSS on the 5M and on a 10x smaller capture with the same ~10 000 flows
(memory follows the flow table, not the input), and, separately, the flowacct
operator alone over already-decoded batches.

    python benchmarks/bench_flowacct.py [--packets N] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from diffserv.capture import open_capture
from diffserv.engine.modules.flowacct import FlowTable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402
from measure import diffserv_command, timed  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--keep", action="store_true", help="keep the record files")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the best counts")
    args = parser.parse_args(argv)
    src = ensure(args.packets)
    small_packets = max(1, args.packets // 10)
    small = ensure(small_packets)
    policy = DATA_DIR / "bench_flowacct.conf"
    policy.write_text(policy_text())
    records = DATA_DIR / "bench_flowacct.parquet"
    diffserv = diffserv_command()

    def ours(capture: Path) -> list[str]:
        run = [*diffserv, "run", str(policy), str(capture), "-o", "-", "-q"]
        return [*run, "--flows", str(records)]

    softflowd = shutil.which("softflowd")
    # one run first, so every measured run finds the input in the page cache
    subprocess.run(ours(small), check=True, stdout=subprocess.DEVNULL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # softflowd exports here; nobody reads
        port = sink.getsockname()[1]
        theirs_cmd = [softflowd or "softflowd", "-r", str(src), "-n", f"127.0.0.1:{port}"]
        theirs_cmd += ["-v", "10", "-6", "-A", "milli"]
        ours_runs, theirs_runs = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            ours_runs.append(timed(ours(src), quiet_stderr=True))
            if softflowd is not None:
                theirs_runs.append(timed(theirs_cmd, quiet_stderr=True))
    n_records = pq.ParquetFile(records).metadata.num_rows
    small_rss = timed(ours(small), quiet_stderr=True).peak_rss_kib
    ours_s, ours_cpu = min(r.wall_s for r in ours_runs), min(r.cpu_s for r in ours_runs)
    ours_rss = max(r.peak_rss_kib for r in ours_runs)
    print(f"diffserv run : {ours_s:7.2f} s  {args.packets / ours_s / 1e6:6.2f} Mpkt/s", end="")
    print(f"  (CPU {ours_cpu:.2f} s; best of {args.runs})")
    print(f"  records    : {n_records} written to {records.name}")
    print(f"  peak RSS   : {ours_rss / 1024:7.1f} MiB ({args.packets} packets)")
    print(f"  peak RSS   : {small_rss / 1024:7.1f} MiB ({small_packets} packets)")
    op_s, op_records = operator_only(src)
    print(f"flowacct op  : {op_s:7.2f} s  {args.packets / op_s / 1e6:6.2f} Mpkt/s", end="")
    print(f"  (CPU, decoded batches, {op_records} records)")
    status = 0
    if softflowd is None:
        print("softflowd not installed: no ratio")
        status = 1
    else:
        theirs_s = min(r.wall_s for r in theirs_runs)
        theirs_cpu = min(r.cpu_s for r in theirs_runs)
        rate = args.packets / theirs_s / 1e6
        print(f"softflowd -r : {theirs_s:7.2f} s  {rate:6.2f} Mpkt/s  (CPU {theirs_cpu:.2f} s)")
        print(f"ratio        : {theirs_s / ours_s:7.2f}x wall (softflowd time / diffserv time)")
        print(f"ratio        : {theirs_cpu / ours_cpu:7.2f}x CPU")
    if not args.keep:
        records.unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
