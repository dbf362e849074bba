"""diffserv report vs nfdump: Top ToS/DSCP and a 5-minute time series over 10 M flow records.

One IPFIX export (gen_exports' softflowd-like template, 30 records a message) of
``--records`` flows spread over ``--hours`` hours, with a DSCP/ECN mix (ToS 184 and
185 among them), ~50 000 sources and 4 096 destinations, goes (a) into nfcapd files,
replayed over loopback to a real nfcapd at a pace it does not lose at, one nfcapd run
per 5-minute window of flow start times (what ``nfcapd -t 300`` writes when flows
arrive as they end), and (b) into a diffserv flow store with
``diffserv collect --from-pcap``. Both are checked to hold every record, and are cached
under benchmarks/data/ keyed by the parameters, so a rerun only measures.

Timed, warm page cache (each command once first), best of ``--rounds``:

- Top ToS: ``nfdump -R SPOOL -s tos/bytes -n 10`` vs
  ``diffserv report STORE --report top-dscp --json``.
- Time series: nfdump 1.7 has no per-interval aggregation (``-A`` takes record fields
  only and ``-t`` keeps just the flows wholly inside one window), so its equivalent is
  ``nfdump -r FILE -s tos/bytes -n 0`` on each 5-minute file, all the runs together, vs
  ``diffserv report STORE --report timeline --interval 5m --json`` (per-interval,
  per-DSCP sums in one query). Both put a flow in the interval of its start.
- Dashboard view: ``run_report`` for top-dscp and for the timeline on a DuckDBEngine
  already open over the store, in this process (what one dashboard request costs), and
  the timeline of a range that starts and ends off a minute boundary (edge minutes read
  from the records).

Reports read the rollups beside the store files (per-minute sums, built by the first
report that meets a file): the store's rollups are removed first, and that first
report is timed on its own (once: it is the only one that builds them).

The answers must agree exactly: nfdump's per-ToS bytes summed per DSCP (ToS >> 2) equal
diffserv's top-dscp bytes, and per window and DSCP its per-file sums equal the timeline.

    python benchmarks/bench_report.py [--records N] [--hours H] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_collect import (  # noqa: E402
    free_port,
    nfdump_count,
    replay,
    settle,
    start_nfcapd,
    stop,
)
from gen_exports import DATA_DIR, RECORD, T0_MS, encode, pcap  # noqa: E402
from measure import Measurement, diffserv_command, save_results, timed  # noqa: E402

DEFAULT_RECORDS = 10_000_000
WINDOW_MS = 300_000
DASHBOARD_TARGET = "< 1 s a dashboard request"
CLI_TARGET = ">= 10× nfdump"
# ToS bytes and their weights: best effort most, EF voice (184, 185 = EF + ECT(1)),
# the AF classes, CS1/LE scavenger, network control, ECN codepoints on best effort
_TOS_MIX = (
    (0x00, 40),
    (0x02, 8),
    (0x01, 2),
    (0x03, 1),
    (0xB8, 8),
    (0xB9, 4),
    (0x88, 5),
    (0x8A, 1),
    (0x68, 4),
    (0x48, 6),
    (0x4A, 2),
    (0x28, 4),
    (0x20, 4),
    (0x04, 3),
    (0xA0, 3),
    (0xC0, 2),
    (0x60, 2),
    (0x80, 1),
)


def records(n: int, hours: float, seed: int = 11) -> NDArray[np.void]:
    """``n`` flows over ``hours``, sorted by start: the DSCP/ECN mix, many hosts and ports."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, RECORD)
    out["f8"] = 0x0A000000 + rng.integers(0, 50_000, n)
    out["f12"] = 0xC0A80000 + rng.integers(0, 4096, n)
    out["f7"] = rng.integers(1024, 65535, n)
    ports = np.array([443, 80, 53, 5060, 8801, 3478, 22, 25, 993, 123], np.uint16)
    out["f11"] = np.where(rng.random(n) < 0.8, ports[rng.integers(0, ports.size, n)], 0)
    out["f11"] = np.where(out["f11"] == 0, rng.integers(1, 65535, n), out["f11"])
    out["f4"] = np.where(rng.random(n) < 0.7, 6, 17)
    tos = np.array([t for t, _ in _TOS_MIX], np.uint8)
    weight = np.array([w for _, w in _TOS_MIX], np.float64)
    out["f5"] = tos[rng.choice(tos.size, n, p=weight / weight.sum())]
    out["f6"] = np.where(out["f4"] == 6, 0x1B, 0)
    out["f60"] = 4
    packets = rng.integers(1, 2000, n)
    out["f2"] = packets
    out["f1"] = packets * rng.integers(60, 1500, n)
    start = T0_MS + np.sort(rng.integers(0, int(hours * 3_600_000), n))
    out["f152"] = start
    out["f153"] = start + rng.integers(0, 120_000, n)
    return out


class Data:
    """The export (per 5-minute window and as one capture), the nfcapd spool, the store."""

    def __init__(self, n: int, hours: float) -> None:
        self.n = n
        self.root = DATA_DIR / f"report_{n}_{hours:g}h"
        self.capture = self.root / "export.pcap"
        self.spool = self.root / "nfcapd"
        self.store = self.root / "store"
        table = records(n, hours)
        window = (table["f152"].astype(np.int64) - T0_MS) // WINDOW_MS
        cuts = np.flatnonzero(np.diff(window)) + 1
        self.windows: list[list[bytes]] = []
        sequence = 0
        for piece in np.split(table, cuts):
            end_s = (int(piece["f153"].max()) + 999) // 1000
            self.windows.append(encode(piece, sequence, end_s))
            sequence += len(piece)

    def ensure(self, replay_rate: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.capture.exists():
            tmp = self.capture.with_suffix(".tmp")
            pcap(tmp, [p for w in self.windows for p in w])
            tmp.replace(self.capture)
        if not self.spool.with_suffix(".done").exists():
            self._nfcapd(replay_rate)
        if not self.store.with_suffix(".done").exists():
            self._collect()

    def _nfcapd(self, rate: float) -> None:
        nfcapd = shutil.which("nfcapd")
        if nfcapd is None:
            raise SystemExit("nfcapd is not installed (make system-tools)")
        shutil.rmtree(self.spool, ignore_errors=True)
        began = time.perf_counter()
        for i, payloads in enumerate(self.windows):
            want = sum((len(p) - 20) // RECORD.itemsize for p in payloads if p[16:18] != b"\0\2")
            pace = rate
            for _ in range(4):
                where = self.spool / f"w{i:04d}"
                shutil.rmtree(where, ignore_errors=True)
                port = free_port()
                proc = start_nfcapd(nfcapd, port, where, 4 << 20)
                replay(payloads, port, pace)
                settle(port, proc)
                stop(proc)
                if nfdump_count("nfdump", where) == want:
                    break
                pace /= 2
            else:
                raise SystemExit(f"nfcapd loses records of window {i} even at {pace:,.0f}/s")
        print(f"nfcapd: {len(self.windows)} files in {time.perf_counter() - began:.1f} s")
        self.spool.with_suffix(".done").touch()  # not inside: nfdump -R reads every file

    def _collect(self) -> None:
        shutil.rmtree(self.store, ignore_errors=True)
        cmd = [*diffserv_command(), "collect", "--from-pcap", str(self.capture)]
        cmd += ["--listen", "udp://127.0.0.1:4739", "--store", str(self.store), "-q"]
        began = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"diffserv collect --from-pcap: {time.perf_counter() - began:.1f} s")
        self.store.with_suffix(".done").touch()

    def files(self) -> list[Path]:
        """The nfcapd files, one a window, in time order."""
        found = sorted(p for p in self.spool.glob("w*/nfcapd.*") if ".current." not in p.name)
        if len(found) != len(self.windows):
            raise SystemExit(f"{len(found)} nfcapd files for {len(self.windows)} windows")
        return found


# ------------------------------------------------------------------ answers


def nfdump_tos_bytes(args: list[str]) -> Counter[int]:
    """Bytes per ToS from ``nfdump ... -s tos/bytes -n 0 -o csv`` (plain numbers)."""
    out = subprocess.run(
        ["nfdump", *args, "-s", "tos/bytes", "-n", "0", "-o", "csv", "-N", "-q"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line.split(",") for line in out.splitlines() if line and line[0].isdigit()]
    header = re.search(r"^ts,te,td,.*$", out, re.MULTILINE)
    names = header.group(0).split(",") if header else []
    tos_at, bytes_at = (names.index("val"), names.index("byt")) if names else (3, 9)
    totals: Counter[int] = Counter()
    for fields in lines:
        totals[int(fields[tos_at])] += int(fields[bytes_at])
    return totals


def per_dscp(tos_bytes: Counter[int]) -> dict[int, int]:
    out: Counter[int] = Counter()
    for tos, nbytes in tos_bytes.items():
        out[tos >> 2] += nbytes
    return dict(out)


def report_json(store: Path, *extra: str) -> dict[str, Any]:
    cmd = [*diffserv_command(), "report", str(store), *extra, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def check_answers(data: Data) -> tuple[int, int]:
    """Fail unless nfdump's ToS sums and diffserv's reports agree; (flows, bytes)."""
    count = nfdump_count("nfdump", data.spool)
    if count != data.n:
        raise SystemExit(f"nfdump counts {count:,} records in the spool, not {data.n:,}")
    top = report_json(data.store, "--report", "top-dscp", "--top", "64")
    flows = int(top["meta"]["totals"]["flows"])
    if flows != data.n:
        raise SystemExit(f"the diffserv store holds {flows:,} records, not {data.n:,}")
    theirs = per_dscp(nfdump_tos_bytes(["-R", str(data.spool)]))
    ours = {int(row["dscp"]): int(row["bytes"]) for row in top["rows"]}
    if theirs != ours:
        raise SystemExit(f"top-dscp bytes differ: nfdump {theirs} vs diffserv {ours}")
    timeline = report_json(data.store, "--report", "timeline", "--interval", "5m", "--top", "64")
    ours_t: dict[tuple[int, int], int] = {}
    for row in timeline["rows"]:
        ours_t[(int(row["start_ns"]) // 1_000_000, int(row["dscp"]))] = int(row["bytes"])
    theirs_t: dict[tuple[int, int], int] = {}
    for i, path in enumerate(data.files()):
        window_ms = T0_MS + i * WINDOW_MS
        for dscp, nbytes in per_dscp(nfdump_tos_bytes(["-r", str(path)])).items():
            theirs_t[(window_ms, dscp)] = nbytes
    if theirs_t != ours_t:
        wrong = sorted(set(theirs_t.items()) ^ set(ours_t.items()))[:6]
        raise SystemExit(f"timeline differs from nfdump's per-file sums, e.g. {wrong}")
    print(
        f"answers agree: {len(ours)} DSCPs, {len(ours_t)} (window, DSCP) cells, "
        f"{int(top['meta']['totals']['bytes']):,} bytes"
    )
    return flows, int(top["meta"]["totals"]["bytes"])


# ------------------------------------------------------------------ timing


def best(run: Callable[[], Measurement], rounds: int) -> Measurement:
    """The fastest of ``rounds`` runs after one untimed warm-up (page cache, imports)."""
    run()
    runs = [run() for _ in range(rounds)]
    return min(runs, key=lambda m: m.wall_s)


def sequence(commands: list[list[str]]) -> Measurement:
    """Commands one after another, as one measurement (wall, CPU summed, peak RSS max)."""
    started = time.perf_counter()
    parts = [timed(cmd) for cmd in commands]
    wall = time.perf_counter() - started
    return Measurement(wall, sum(p.cpu_s for p in parts), max(p.peak_rss_kib for p in parts))


def _s(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def cli_row(what: str, ours: Measurement, theirs: Measurement, label: str) -> dict[str, Any]:
    ratio_wall, ratio_cpu = theirs.wall_s / ours.wall_s, theirs.cpu_s / ours.cpu_s
    print(f"{'  diffserv':<14} {_s(ours.wall_s):>9} wall {_s(ours.cpu_s):>9} CPU")
    print(f"{'  nfdump':<14} {_s(theirs.wall_s):>9} wall {_s(theirs.cpu_s):>9} CPU")
    print(f"  ratio (nfdump / diffserv): {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU")
    return {
        "what": what,
        "ours": {
            "wall_s": ours.wall_s,
            "cpu_s": ours.cpu_s,
            "peak_rss_mib": ours.peak_rss_kib / 1024,
        },
        "anchor": {"label": label, "wall_s": theirs.wall_s, "cpu_s": theirs.cpu_s},
        "ratio_wall": ratio_wall,
        "ratio_cpu": ratio_cpu,
        "target": CLI_TARGET,
    }


def clear_rollups(store: Path) -> int:
    """Remove the rollups of every store file (so the next report builds them)."""
    gone = 0
    for directory in sorted(store.rglob(".rollup")):
        shutil.rmtree(directory)
        gone += 1
    return gone


def dashboard(data: Data, rounds: int) -> dict[str, float]:
    """Seconds of run_report on an engine already open over the store (best of rounds)."""
    from diffserv.report.duckdb_engine import DuckDBEngine  # noqa: PLC0415
    from diffserv.report.filters import build_selection  # noqa: PLC0415
    from diffserv.report.groups import default_groups  # noqa: PLC0415
    from diffserv.report.queries import ReportRequest, run_report  # noqa: PLC0415
    from diffserv.report.sources import SourceSet  # noqa: PLC0415

    sources = SourceSet([str(data.store)])
    engine = DuckDBEngine(lambda: sources.resolve(None))
    groups = default_groups()
    selection = build_selection([], groups)
    start = T0_MS * 1_000_000
    edges = build_selection(
        [],
        groups,
        start=f"{start // 10**9 + 4637}.25",  # 1 h 17 min 17.25 s in
        end=f"{start // 10**9 + 14_599}",  # 4 h 3 min 19 s in
    )
    requests = {
        "top-dscp": ReportRequest("top-dscp", selection, groups),
        "timeline": ReportRequest("timeline", selection, groups, interval_s=300),
        "timeline-edges": ReportRequest("timeline", edges, groups, interval_s=300),
    }
    seconds: dict[str, float] = {}
    try:
        for name, request in requests.items():
            run_report(engine, request)
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                run_report(engine, request)
                times.append(time.perf_counter() - began)
            seconds[name] = min(times)
    finally:
        engine.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--hours", type=float, default=6.0, help="span of the flows")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs (best is kept)")
    parser.add_argument("--replay-rate", type=float, default=400_000, help="records/s to nfcapd")
    args = parser.parse_args(argv)
    if shutil.which("nfdump") is None:
        raise SystemExit("nfdump is not installed (make system-tools)")
    data = Data(args.records, args.hours)
    data.ensure(args.replay_rate)
    n = f"{args.records / 1e6:g} M"
    load_start = os.getloadavg()[0]  # the machine is shared: the load goes with the figures
    print(f"{n} records, {len(data.windows)} 5-minute windows, load {load_start:.2f}")
    rows = []
    report = [*diffserv_command(), "report", str(data.store), "--json", "--report"]
    top_tos = ["nfdump", "-R", str(data.spool), "-s", "tos/bytes", "-n", "10"]
    floor = best(lambda: timed([sys.executable, "-c", "import duckdb, pyarrow.parquet"]), 3)
    print(f"start-up floor (python -c 'import duckdb, pyarrow.parquet'): {_s(floor.wall_s)}")
    print("First report after the files arrive (builds the rollups)")
    clear_rollups(data.store)
    timed(top_tos)  # nfdump's files into the page cache, as the store's are below
    timed([*report, "top-dscp", "--filter", "protocol=255"])  # the store's, no rollup use
    clear_rollups(data.store)
    first = timed([*report, "top-dscp"])
    theirs = best(lambda: timed(top_tos), args.rounds)
    rows.append(
        cli_row(
            f"Top DSCP by bytes over {n} flow records, the first report over the store "
            "(it builds the per-minute rollups of every file)",
            first,
            theirs,
            "nfdump -R -s tos/bytes -n 10",
        )
    )
    rows[-1]["target"] = "— (once per new store file)"
    check_answers(data)

    print("Top ToS / DSCP by bytes")
    ours = best(lambda: timed([*report, "top-dscp"]), args.rounds)
    theirs = nfdump_top = best(lambda: timed(top_tos), args.rounds)
    rows.append(
        cli_row(
            f"Top DSCP by bytes over {n} flow records (IPFIX, {args.hours:g} h), "
            "`diffserv report --report top-dscp --json` on its flow store",
            ours,
            theirs,
            "nfdump -R -s tos/bytes -n 10",
        )
    )

    print("5-minute time series per ToS / DSCP")
    files = data.files()
    ours = best(lambda: timed([*report, "timeline", "--interval", "5m"]), args.rounds)
    theirs = nfdump_series = best(
        lambda: sequence([["nfdump", "-r", str(f), "-s", "tos/bytes", "-n", "0"] for f in files]),
        args.rounds,
    )
    rows.append(
        cli_row(
            f"5-minute time series per DSCP over the same {n} records, "
            "`diffserv report --report timeline --interval 5m --json`",
            ours,
            theirs,
            f"nfdump -r -s tos/bytes on each of the {len(files)} 5-minute nfcapd files",
        )
    )

    latency = dashboard(data, args.rounds)
    worst = max(latency.values())
    print(
        f"dashboard (run_report, engine open): top-dscp {_s(latency['top-dscp'])}, "
        f"timeline {_s(latency['timeline'])}, timeline off-minute range "
        f"{_s(latency['timeline-edges'])}  (target {DASHBOARD_TARGET})"
    )
    rows.append(
        {
            "what": f"dashboard view over the same {n} records: `run_report` on a DuckDBEngine "
            "already open over the store (top-dscp; 5-minute timeline; the timeline of "
            "a range starting and ending off a minute)",
            "ours_text": "; ".join(_s(v) for v in latency.values()),
            "anchor_text": "nfdump in this run, as above: "
            f"{_s(nfdump_top.wall_s)}; {_s(nfdump_series.wall_s)}",
            "ratio_text": f"**{nfdump_top.wall_s / latency['top-dscp']:.0f}×**; "
            f"**{nfdump_series.wall_s / latency['timeline']:.0f}×**; "
            + ("within target" if worst < 1 else "**over target**"),
            "target": DASHBOARD_TARGET,
            "seconds": latency,
        }
    )
    for row in rows:
        if "anchor" in row:  # a command: what no Python reporter can go below
            row["what"] += (
                f"; start-up floor `python -c 'import duckdb, pyarrow.parquet'` {_s(floor.wall_s)}"
            )
            row["startup_floor_s"] = floor.wall_s
        row["records"] = args.records
        row["load_start"], row["load_end"] = load_start, os.getloadavg()[0]
    save_results("bench_report", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
