"""diffserv collect vs the `netflow` library and nfcapd: decode rate and loss-free ingest.

(a) Decode rate over one capture of 1 M IPFIX records (gen_exports: a softflowd-like
    IPv4 template, 30 records a message): `diffserv collect --from-pcap` end to end
    (start-up, decoding, the Parquet store), against (i) the `netflow` PyPI library's
    parse loop over the same payloads (pure Python: a slice of ``--slice`` records is
    timed and the rate scaled to the whole), and (ii) nfcapd ingesting the same
    datagrams replayed over loopback at a pace it does not lose at (checked with
    nfdump), its rate being records per CPU second of the nfcapd process; diffserv
    collect gets the same replay, measured the same way.
(b) Sustained loopback ingest: a paced sender (a process of its own) sends for
    ``--seconds`` at a rate stepped up by ``--step`` until a collector loses records
    (diffserv: its --stats count; nfcapd: nfdump's count); the highest loss-free rate of
    each, measured in the same run. Both get the same socket buffer (``--buffer``,
    which nfcapd -B can have without raising net.core.rmem_max), so the figure is the
    collector's speed, not the size of its buffer.

    python benchmarks/bench_collect.py [--records N] [--slice N] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_exports import DEFAULT_RECORDS, RECORD, RECORDS_PER_MESSAGE, ensure  # noqa: E402
from measure import (  # noqa: E402
    Measurement,
    Runs,
    alternate,
    comparison,
    diffserv_command,
    save_results,
)

LIBRARY_TARGET = ">= 20× the netflow library"
NFCAPD_TARGET = ">= nfcapd"


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _udp_row(port: int) -> list[str] | None:
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 12 and fields[1] == wanted:
            return fields
    return None


def wait_bound(port: int, proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _udp_row(port) is not None:
            return
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args}: exited with status {proc.returncode}")
        time.sleep(0.02)
    raise SystemExit(f"nothing listens on UDP {port}")


def backlog_bytes(port: int) -> int:
    """Bytes waiting in the socket's receive queue (rx_queue of /proc/net/udp)."""
    row = _udp_row(port)
    return int(row[4].split(":")[1], 16) if row else 0


def kernel_drops(port: int) -> int:
    row = _udp_row(port)
    return int(row[12]) if row else 0


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(proc: subprocess.Popen[Any], timeout_s: float = 60.0) -> Measurement:
    """SIGTERM, and what the process used in all: CPU (user + system) and peak RSS."""
    peak = _hwm_kib(proc.pid)  # now: a process that exits at once leaves a zombie without it
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is not None:
            break
        peak = max(peak, _hwm_kib(proc.pid))
        time.sleep(0.005)
    else:
        proc.kill()
    peak = max(peak, _hwm_kib(proc.pid))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(0.0, usage.ru_utime + usage.ru_stime, peak)


def start_diffserv(port: int, store: Path, stats: Path, buffer: int) -> subprocess.Popen[Any]:
    cmd = [*diffserv_command(), "collect", "--listen", f"udp://127.0.0.1:{port}"]
    cmd += ["--store", str(store), "--stats", str(stats), "--receive-buffer", str(buffer)]
    cmd += ["--status-interval", "0.2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_bound(port, proc)
    return proc


def start_nfcapd(nfcapd: str, port: int, spool: Path, buffer: int) -> subprocess.Popen[Any]:
    spool.mkdir(parents=True, exist_ok=True)
    cmd = [nfcapd, "-b", "127.0.0.1", "-p", str(port), "-w", str(spool), "-t", "3600"]
    proc = subprocess.Popen(
        [*cmd, "-B", str(buffer)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_bound(port, proc)
    return proc


def stats_records(stats: Path) -> tuple[int, int]:
    """(records decoded, records lost to sequence gaps) from a --stats file."""
    try:
        total = json.loads(stats.read_text())["total"]
    except (OSError, ValueError, KeyError):
        return 0, 0
    return int(total["records"]), int(total["lost_records"])


def nfdump_count(nfdump: str, spool: Path) -> int:
    out = subprocess.run(
        [nfdump, "-R", str(spool), "-I"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"^Flows: (\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def settle(port: int, proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """Wait until the collector has read its socket's queue empty."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if backlog_bytes(port) == 0:
            time.sleep(0.3)  # and has decoded what it read
            if backlog_bytes(port) == 0:
                return
        time.sleep(0.02)


# ------------------------------------------------------------------ (a) decode


def netflow_library(payloads: list[bytes], records: int) -> tuple[float, float] | None:
    """(wall s, CPU s) of netflow.parse_packet over payloads holding ``records`` records."""
    try:  # optional: `make bench` installs it (pyproject's bench extra)
        netflow = importlib.import_module("netflow")
    except ImportError:
        print("the netflow library is not installed (pip install '.[bench]'): no ratio")
        return None
    templates: dict[str, dict[Any, Any]] = {"netflow": {}, "ipfix": {}}
    decoded = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for payload in payloads:
        decoded += len(netflow.parse_packet(payload, templates).flows)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if decoded != records:
        raise SystemExit(f"netflow library decoded {decoded:,} records, not {records:,}")
    return wall, cpu


def replay(payloads: list[bytes], port: int, rate: float) -> None:
    """Send ``payloads`` to 127.0.0.1:port at ``rate`` records a second, in small bursts."""
    per_s = rate / RECORDS_PER_MESSAGE
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.perf_counter()
        for i, payload in enumerate(payloads):
            if i % 32 == 0:
                ahead = i / per_s - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
            sock.sendto(payload, ("127.0.0.1", port))


def decode_case(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    capture, payloads = ensure(args.records)
    print(f"capture: {capture.name}, {args.records:,} records in {len(payloads):,} datagrams")
    store, stats = work / "pcap-store", work / "pcap-stats.json"

    def fresh() -> None:
        shutil.rmtree(store, ignore_errors=True)

    cmd = [*diffserv_command(), "collect", "--from-pcap", str(capture)]
    cmd += ["--listen", "udp://127.0.0.1:4739", "--store", str(store), "--stats", str(stats), "-q"]
    label = f"diffserv collect --from-pcap, {args.records / 1e6:g} M records"
    (ours,) = alternate([(label, cmd)], args.rounds, before=fresh)
    decoded, lost = stats_records(stats)
    if (decoded, lost) != (args.records, 0):
        raise SystemExit(f"diffserv collect decoded {decoded:,} records ({lost:,} lost)")
    print(ours.line())
    rate = args.records / ours.wall_s
    print(f"  {rate:,.0f} records/s (wall, start-up and store included)")
    rows = []

    # (i) the netflow library: a slice (its first message carries the template), scaled
    piece: list[bytes] = []
    sliced = 0
    for payload in payloads:
        if sliced >= min(args.slice, args.records):
            break
        piece.append(payload)
        if payload[16:18] != b"\x00\x02":  # a data set: 16 + 4 header bytes, then records
            sliced += (len(payload) - 20) // RECORD.itemsize
    library = netflow_library(piece, sliced)
    if library is not None:
        scale = args.records / sliced
        anchor = Runs(
            f"netflow.parse_packet ({sliced / 1e3:g} k records, ×{scale:g})",
            (Measurement(library[0] * scale, library[1] * scale, 0),),
        )
        print(f"{anchor.label:<44} {sliced / library[0]:,.0f} records/s over the slice")
        print(f"  scaled to {args.records:,} records: {anchor.wall_s:.1f} s")
        rows.append(
            comparison(
                f"decode {args.records / 1e6:g} M IPFIX records from a capture "
                "(softflowd-like template, 30 a message), against the `netflow` library's "
                f"parse loop ({sliced / 1e3:g} k-record slice, scaled)",
                ours,
                anchor,
                LIBRARY_TARGET,
                records_per_s=rate,
                library_records_per_s=sliced / library[0],
            )
        )

    # (ii) nfcapd, and diffserv collect, taking the same datagrams over loopback
    nfcapd, nfdump = shutil.which("nfcapd"), shutil.which("nfdump")
    if nfcapd is None or nfdump is None:
        print("nfcapd/nfdump not installed: no nfcapd ratio")
        return rows
    per_cpu: dict[str, tuple[float, float, float]] = {}
    idle: dict[str, float] = {}
    for name in ("nfcapd", "diffserv"):
        # the CPU of starting and stopping with nothing received (Python's start-up)
        port = free_port()
        spool, rstats = work / f"idle-{name}", work / f"idle-{name}.json"
        if name == "nfcapd":
            proc = start_nfcapd(nfcapd, port, spool, args.buffer)
        else:
            proc = start_diffserv(port, spool, rstats, args.buffer)
        idle[name] = stop(proc).cpu_s
        pace = args.replay_rate
        for _ in range(4):
            port = free_port()
            spool, rstats = work / f"replay-{name}", work / f"replay-{name}.json"
            shutil.rmtree(spool, ignore_errors=True)
            if name == "nfcapd":
                proc = start_nfcapd(nfcapd, port, spool, args.buffer)
            else:
                proc = start_diffserv(port, spool, rstats, args.buffer)
            before = time.perf_counter()
            replay(payloads, port, pace)
            settle(port, proc)
            used = stop(proc)
            wall = time.perf_counter() - before
            got = nfdump_count(nfdump, spool) if name == "nfcapd" else stats_records(rstats)[0]
            if got == args.records:
                break
            print(f"  {name} lost {args.records - got:,} records at {pace:,.0f}/s: slower pace")
            pace /= 2
        else:
            raise SystemExit(f"{name} loses records even at {pace:,.0f} records/s")
        per_cpu[name] = (args.records / used.cpu_s, used.cpu_s, used.peak_rss_kib / 1024)
        working = max(used.cpu_s - idle[name], 1e-6)
        print(
            f"{name + ' over loopback':<44} {used.cpu_s:7.3f} s CPU "
            f"({per_cpu[name][0]:,.0f} records per CPU s; replay {pace:,.0f} records/s, "
            f"{wall:.1f} s), peak RSS {per_cpu[name][2]:.0f} MiB"
        )
        print(
            f"  {idle[name]:.3f} s of it is starting and stopping idle: "
            f"{args.records / working:,.0f} records per CPU s without it"
        )
    theirs_rate, theirs_cpu, theirs_rss = per_cpu["nfcapd"]
    ours_rate, ours_cpu, ours_rss = per_cpu["diffserv"]
    ratio = ours_rate / theirs_rate
    ours_net = args.records / max(ours_cpu - idle["diffserv"], 1e-6)
    theirs_net = args.records / max(theirs_cpu - idle["nfcapd"], 1e-6)
    print(f"  ratio (diffserv / nfcapd records per CPU s): {ratio:.2f}x  (target {NFCAPD_TARGET})")
    print(f"  without start-up: {ours_net / theirs_net:.2f}x")
    rows.append(
        {
            "what": f"ingest the same {args.records / 1e6:g} M records replayed over loopback, "
            "records per CPU second of the collector process",
            "ours_text": f"{ours_rate:,.0f} records/CPU s ({ours_cpu:.2f} s CPU), "
            f"peak RSS {ours_rss:.0f} MiB",
            "anchor_text": f"`nfcapd` {theirs_rate:,.0f} records/CPU s ({theirs_cpu:.2f} s CPU), "
            f"peak RSS {theirs_rss:.0f} MiB",
            "ratio_text": f"**{ratio:.2f}×** records per CPU s",
            "target": NFCAPD_TARGET,
            "ratio_cpu": ratio,
            "ratio_cpu_without_startup": ours_net / theirs_net,
            "idle_cpu_s": idle,
        }
    )
    return rows


# ------------------------------------------------------------------ (b) loss-free


def sender(port: int, rate: float, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "paced_sender.py"), "--port", str(port)]
    cmd += ["--rate", str(rate), "--seconds", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def ingest_step(name: str, rate: float, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One collector at one rate: sent, received, lost, kernel drops, CPU and peak RSS."""
    port = free_port()
    spool, stats = work / f"step-{name}", work / f"step-{name}.json"
    shutil.rmtree(spool, ignore_errors=True)
    nfcapd = shutil.which("nfcapd") or "nfcapd"
    if name == "nfcapd":
        proc = start_nfcapd(nfcapd, port, spool, args.buffer)
    else:
        proc = start_diffserv(port, spool, stats, args.buffer)
    sent = sender(port, rate, args.seconds)
    settle(port, proc)
    drops = kernel_drops(port)
    used = stop(proc)
    if name == "nfcapd":
        received, gaps = nfdump_count(shutil.which("nfdump") or "nfdump", spool), 0
    else:
        received, gaps = stats_records(stats)
    return {
        "sent": sent["records"],
        "sender_rate": sent["rate"],
        "received": received,
        "gaps": gaps,
        "kernel_drops": drops,
        "cpu_s": used.cpu_s,
        "peak_rss_mib": used.peak_rss_kib / 1024,
        "lossless": received == sent["records"] and gaps == 0 and drops == 0,
    }


def ingest_case(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    have_nfcapd = shutil.which("nfcapd") is not None and shutil.which("nfdump") is not None
    names = ["diffserv", "nfcapd"] if have_nfcapd else ["diffserv"]
    best: dict[str, dict[str, Any] | None] = {name: None for name in names}
    lost: dict[str, float | None] = {name: None for name in names}
    sender_max = False
    rate = args.start_rate
    started = time.monotonic()
    while any(v is None for v in lost.values()) and time.monotonic() - started < args.budget:
        for name in names:
            if lost[name] is not None:
                continue
            step = ingest_step(name, rate, args, work)
            verdict = "no loss" if step["lossless"] else "LOSS"
            print(
                f"  {rate:>12,.0f} records/s  {name:<9} sent {step['sent']:>10,} "
                f"(at {step['sender_rate']:,.0f}/s) received {step['received']:>10,} "
                f"drops {step['kernel_drops']:>7,}  {verdict}",
                flush=True,
            )
            if step["sender_rate"] < 0.9 * rate:
                sender_max = True
            if step["lossless"]:
                best[name] = {**step, "rate": step["sender_rate"]}
            else:
                lost[name] = rate
        if sender_max:
            break
        rate *= args.step

    def text(name: str) -> str:
        step = best[name]
        if step is None:
            return f"loses at {args.start_rate:,.0f} records/s already"
        prefix = "≥ " if lost[name] is None else ""
        return (
            f"{prefix}{step['rate']:,.0f} records/s loss-free, "
            f"peak RSS {step['peak_rss_mib']:.0f} MiB"
        )

    ours, theirs = best["diffserv"], best.get("nfcapd")
    print(f"diffserv collect: {text('diffserv')}")
    row: dict[str, Any] = {
        "what": f"sustained loopback ingest, highest loss-free rate ({args.seconds:g} s per "
        f"step, ×{args.step:g} steps, both asking for a {args.buffer >> 20} MiB socket buffer)",
        "ours_text": text("diffserv"),
        "target": NFCAPD_TARGET,
        "sender_max": sender_max,
    }
    if "nfcapd" in names:
        print(f"nfcapd:           {text('nfcapd')}")
        row["anchor_text"] = f"`nfcapd` {text('nfcapd')}"
        if ours is not None and theirs is not None:
            ratio = ours["rate"] / theirs["rate"]
            both_open = sender_max and lost["diffserv"] is None and lost["nfcapd"] is None
            row["ratio_text"] = "both ≥ sender max" if both_open else f"**{ratio:.2f}×**"
            print(f"  ratio (diffserv / nfcapd loss-free rate): {row['ratio_text']}")
    if sender_max:
        print("  the sender topped out before a collector lost: '≥' marks that rate")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--slice", type=int, default=100_000, help="records the library parses")
    parser.add_argument("--rounds", type=int, default=3, help="runs of collect --from-pcap")
    parser.add_argument("--replay-rate", type=float, default=400_000, help="(a) records/s")
    parser.add_argument("--seconds", type=float, default=2.5, help="(b) length of a step")
    parser.add_argument("--start-rate", type=float, default=100_000, help="(b) first step")
    parser.add_argument("--step", type=float, default=1.5, help="(b) rate factor per step")
    parser.add_argument("--budget", type=float, default=150, help="(b) at most this many s")
    parser.add_argument("--buffer", type=int, default=4 << 20, help="socket buffer asked for")
    parser.add_argument("--skip-ingest", action="store_true", help="only (a)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_collect-") as tmp:
        work = Path(tmp)
        rows = decode_case(args, work)
        if not args.skip_ingest:
            rows.append(ingest_case(args, work))
    save_results("bench_collect", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
