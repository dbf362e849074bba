"""`diffserv live` vs netfilterqueue's per-packet callback loop on the same queue and traffic.

Three namespaces (sender, router, receiver) joined by veth pairs; the router queues
everything it forwards (the rules of diffserv/live/rules.py, for both readers). The
sender is tcpreplay at top speed, replaying UDP frames to the receiver whose ports hit
the classes of the 20-filter policy benchmarks/bench_run.conf, so most packets are
re-marked (a payload verdict each). Two measurements, alternating reader by reader in
the same run (medians of --rounds):

- throughput: packets the reader *processed* per second of sending while the sender
  offers more than either reader can take. Our queue fails open, so what we cannot take
  is accepted unprocessed and not counted; netfilterqueue's queue overflows and drops.
  The anchor's callback does the least it can for the same result: one dict lookup on
  the destination port, the DS byte and IPv4 checksum rewritten, set_payload, accept.
- added latency: UDP round trips (sender -> receiver echo -> back, both directions
  through the queue) at a fixed moderate rate, p50/p99, minus the same without a reader;
  every round measures all three (none, ours, netfilterqueue) and the medians are used.

Needs root (namespaces), iptables, tcpreplay and the netfilterqueue package
(`make bench`); without them it says so and records no ratio.

    python benchmarks/bench_live.py [--seconds S] [--rounds N] [--ping-rate PPS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from measure import diffserv_command, save_results  # noqa: E402
from support.live_daemon import result, start_traffic  # noqa: E402
from support.netns import Topology, namespaces  # noqa: E402

POLICY = HERE / "bench_run.conf"
PORTS = (80, 443, 53, 5060, 22, 8080, 4789, 123, 8443, 25, 9999, 7)  # UDP: most are classes
# the anchor's marks for the same ports (bench_run.conf's, for the UDP classes it matches)
ANCHOR_MARKS = {80: 18, 53: 16, 5060: 46, 22: 16, 8080: 10, 4789: 8, 123: 48, 8443: 10, 25: 10}
BLAST_SPORT = 20000  # 20000-21999: below every ephemeral port (the latency pings use those)
FRAMES = 4096  # distinct frames in the replayed capture (ports and sources vary)
PAYLOAD = 64


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_capture(path: Path, src_mac: bytes, dst_mac: bytes) -> None:
    """UDP frames 10.99.1.1 -> 10.99.2.2 (ports cycling over PORTS) as a pcap file."""
    with path.open("wb") as out:
        out.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(FRAMES):
            udp = struct.pack(
                "!HHHH", BLAST_SPORT + i % 2000, PORTS[i % len(PORTS)], 8 + PAYLOAD, 0
            )
            total = 20 + len(udp) + PAYLOAD
            head = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, total, i & 0xFFFF, 0, 64, 17, 0,
                bytes([10, 99, 1, 1]), bytes([10, 99, 2, 2]),
            )  # fmt: skip
            head = head[:10] + struct.pack("!H", _ipv4_checksum(head)) + head[12:]
            frame = dst_mac + src_mac + b"\x08\x00" + head + udp + b"\x00" * PAYLOAD
            out.write(struct.pack("=IIII", 0, i, len(frame), len(frame)))
            out.write(frame)


def prepare_blast(topo: Topology, tmp: Path) -> Path:
    """The flood's capture (sender -> router frames) and a receiver that discards it on
    arrival: its socket lookup and ICMP errors would otherwise be charged to whatever
    forwarded the packet (a queue reader's verdict, the router's softirq)."""
    capture = tmp / "blast.pcap"
    write_capture(capture, _mac(topo["snd"], "veth1a"), _mac(topo["rtr"], "veth1b"))
    topo["rcv"].run(
        ["iptables", "-t", "raw", "-A", "PREROUTING", "-p", "udp", "--sport",
         f"{BLAST_SPORT}:{BLAST_SPORT + 1999}", "-j", "DROP"]
    )  # fmt: skip
    return capture


# ---------------------------------------------------------------- the anchor reader


def anchor(seconds_file: str) -> int:
    """netfilterqueue's callback loop (runs inside the router namespace)."""
    from netfilterqueue import NetfilterQueue  # noqa: PLC0415 (only the anchor needs it)

    count = [0]
    marks = {port: dscp << 2 for port, dscp in ANCHOR_MARKS.items()}

    def callback(packet: Any) -> None:
        data = bytearray(packet.get_payload())
        ihl = (data[0] & 0x0F) * 4
        port = (data[ihl + 2] << 8) | data[ihl + 3]
        mark = marks.get(port)
        if mark is not None and len(data) >= ihl + 4:
            data[1] = mark | (data[1] & 3)
            data[10:12] = b"\0\0"
            data[10:12] = struct.pack("!H", _ipv4_checksum(bytes(data[:ihl])))
            packet.set_payload(bytes(data))
        packet.accept()
        count[0] += 1

    def report(*_: object) -> None:
        Path(seconds_file).write_text(json.dumps({"packets": count[0]}))
        os._exit(0)

    signal.signal(signal.SIGTERM, report)
    queue = NetfilterQueue()
    queue.bind(0, callback, max_len=8192)
    print("ready", flush=True)
    queue.run()
    return 0


# ---------------------------------------------------------------- the harness


def _require() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("iptables", "tcpreplay", "ip"):
        if shutil.which(tool) is None and not os.access(f"/usr/sbin/{tool}", os.X_OK):
            return f"{tool} is not installed (make system-tools)"
    try:
        import netfilterqueue  # noqa: F401, PLC0415
    except ImportError:
        return "the netfilterqueue package is not installed (make bench)"
    return None


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])
    sock = os.path.join(tempfile.mkdtemp(prefix="ds-bench-"), "s")  # not the host's socket
    return dict(os.environ, PYTHONPATH=path, DIFFSERV_STATS_SOCKET=sock)


def _mac(ns: Any, ifname: str) -> bytes:
    words = ns.run(["ip", "-o", "link", "show", ifname]).stdout.split()
    return bytes.fromhex(words[words.index("link/ether") + 1].replace(":", ""))


# after a reader is ready, both readers get this long before the measurement: start-up is
# over, what follows is the queue's work only
START_S = 0.3
SENDER_PPS_GUESS = 150_000  # tcpreplay's top speed into a veth here, for the loop count


def _blast(topo: Any, capture: Path, seconds: float) -> float:
    """tcpreplay at top speed for about ``seconds`` (one call); the seconds it took."""
    loops = max(1, round(seconds * SENDER_PPS_GUESS / FRAMES))
    start = time.perf_counter()
    topo["snd"].run(
        ["tcpreplay", "-q", "--topspeed", "-i", "veth1a", f"--loop={loops}", str(capture)],
        timeout=300,
    )
    return time.perf_counter() - start


def _cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Sample:
    """One reader's run: packets it processed, seconds of sending, its CPU seconds
    (user + system, and user alone: the system part is mostly the kernel forwarding
    each packet on after its verdict, the same work for every reader)."""

    def __init__(
        self, packets: int, seconds: float, before: tuple[float, float], after: tuple[float, float]
    ) -> None:
        self.packets, self.seconds = packets, seconds
        self.user_s = after[0] - before[0]
        self.cpu_s = self.user_s + after[1] - before[1]

    @property
    def user_us_per_packet(self) -> float:
        return self.user_s / self.packets * 1e6 if self.packets else float("nan")

    @property
    def cpu_us_per_packet(self) -> float:
        return self.cpu_s / self.packets * 1e6 if self.packets else float("nan")

    @property
    def pps(self) -> float:
        return self.packets / self.seconds

    @property
    def per_cpu_s(self) -> float:
        return self.packets / self.cpu_s if self.cpu_s else float("inf")


def _ping(topo: Any, count: int, pps: float) -> dict[str, Any]:
    echo = start_traffic(topo["rcv"], "udp-echo", "10.99.2.2", "7777", "1.0")
    ping = start_traffic(topo["snd"], "udp-ping", "10.99.2.2", "7777", str(count), str(pps))
    out = result(ping, timeout=120)
    result(echo)
    return out


def start_daemon(topo: Any, stats: Path) -> subprocess.Popen[str]:
    """`diffserv live` on the benchmark policy in the router, its queue rules in place
    and its start-up over; ``stats`` receives its counters when it stops."""
    proc = topo["rtr"].popen(
        [*diffserv_command(), "live", str(POLICY), "-q", "--stats", str(stats)],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_rules(topo, proc)
    time.sleep(START_S)
    return proc


def stop_daemon(proc: subprocess.Popen[str], stats: Path) -> int:
    """Stop the daemon (SIGTERM, as a user would); the packets it processed."""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"diffserv live failed: {err}")
    packets: int = json.loads(stats.read_text())["packets"]
    return packets


def _run_ours(topo: Any, capture: Path, seconds: float, tmp: Path) -> Sample:
    stats = tmp / "stats.json"
    proc = start_daemon(topo, stats)
    cpu0 = _cpu_s(proc.pid)
    sent_s = _blast(topo, capture, seconds)
    cpu = _cpu_s(proc.pid)
    return Sample(stop_daemon(proc, stats), sent_s, cpu0, cpu)


def _run_anchor(topo: Any, capture: Path, seconds: float, tmp: Path) -> Sample:
    done = tmp / "anchor.json"
    done.unlink(missing_ok=True)
    installer, proc = _start_anchor(topo, done)
    try:
        cpu0 = _cpu_s(proc.pid)
        sent_s = _blast(topo, capture, seconds)
        cpu = _cpu_s(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        installer.communicate("\n", timeout=30)  # removes its rules
    return Sample(json.loads(done.read_text())["packets"], sent_s, cpu0, cpu)


# the anchor gets exactly our rules: installed by a helper that removes them on a newline
_RULES_HOLDER = (
    "import sys\nfrom diffserv.live import rules\nr = rules.install(0)\n"
    "print('installed', flush=True)\nsys.stdin.readline()\nr.remove()\n"
)


def _start_anchor(
    topo: Any, result_path: Path
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """Our queue rules (held by a helper until it reads a newline) and the anchor's reader
    on them, ready; the reader writes what it counted to ``result_path`` at SIGTERM."""
    installer = topo["rtr"].popen(
        [sys.executable, "-c", _RULES_HOLDER],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert installer.stdout is not None and installer.stdout.readline().strip() == "installed"
    proc = topo["rtr"].popen(
        [sys.executable, __file__, "--anchor", str(result_path)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return installer, proc


def _wait_rules(topo: Any, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while "NFQUEUE" not in topo["rtr"].run(["iptables-save", "-t", "mangle"]).stdout:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("diffserv live did not start")
        time.sleep(0.05)


def _latency(topo: Any, reader: str, count: int, pps: float, tmp: Path) -> dict[str, Any]:
    if reader == "none":
        return _ping(topo, count, pps)
    if reader == "ours":
        proc = topo["rtr"].popen(
            [*diffserv_command(), "live", str(POLICY), "-q"], env=_env(), stderr=subprocess.PIPE
        )
        _wait_rules(topo, proc)  # type: ignore[arg-type]
        time.sleep(START_S)
        try:
            return _ping(topo, count, pps)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    installer, proc = _start_anchor(topo, tmp / "lat.json")
    time.sleep(START_S)
    try:
        return _ping(topo, count, pps)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        installer.communicate("\n", timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="sending time per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ping-rate", type=float, default=1000, help="round trips a second")
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--anchor", metavar="RESULT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.anchor:
        return anchor(args.anchor)
    why = _require()
    if why is not None:
        print(f"bench_live: {why}: no ratio")
        return 0
    ours: list[Sample] = []
    theirs: list[Sample] = []
    alone: list[float] = []
    latency: dict[str, list[dict[str, Any]]] = {"none": [], "ours": [], "netfilterqueue": []}
    with namespaces(["snd", "rtr", "rcv"]) as topo, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        capture = prepare_blast(topo, tmp)
        for _ in range(args.rounds):
            sent_s = _blast(topo, capture, args.seconds)  # no queue: what the sender can do
            alone.append(round(args.seconds * SENDER_PPS_GUESS / FRAMES) * FRAMES / sent_s)
            ours.append(_run_ours(topo, capture, args.seconds, tmp))
            theirs.append(_run_anchor(topo, capture, args.seconds, tmp))
            for name, x in (("ours", ours[-1]), ("netfilterqueue", theirs[-1])):
                print(
                    f"  {name}: {x.pps:,.0f} pkt/s, {x.cpu_us_per_packet:.2f} µs CPU a packet "
                    f"({x.user_us_per_packet:.2f} µs in user space)"
                )
            print(f"  sender alone: {alone[-1]:,.0f} pkt/s")
            # latency every round too, reader by reader: one slow spell of this shared
            # machine must not decide a percentile
            for reader, samples in latency.items():
                samples.append(_latency(topo, reader, args.pings, args.ping_rate, tmp))
            print(
                "  round trips p50/p99: "
                + ", ".join(
                    f"{reader} {s[-1]['p50_us']:.0f}/{s[-1]['p99_us']:.0f} µs"
                    for reader, s in latency.items()
                )
            )
    ours_pps = statistics.median(x.pps for x in ours)
    theirs_pps = statistics.median(x.pps for x in theirs)
    ours_cpu = statistics.median(x.per_cpu_s for x in ours)
    theirs_cpu = statistics.median(x.per_cpu_s for x in theirs)
    sender_pps = statistics.median(alone)
    ratio = ours_pps / theirs_pps if theirs_pps else float("inf")
    cpu_ratio = ours_cpu / theirs_cpu if theirs_cpu else float("inf")
    ours_user = statistics.median(x.user_us_per_packet for x in ours)
    theirs_user = statistics.median(x.user_us_per_packet for x in theirs)
    user_ratio = theirs_user / ours_user if ours_user else float("inf")

    def added(reader: str, key: str) -> float:
        return statistics.median(r[key] for r in latency[reader]) - statistics.median(
            r[key] for r in latency["none"]
        )

    print(
        f"throughput (20-filter marking policy, UDP forwarded through the queue): "
        f"diffserv live {ours_pps:,.0f} pkt/s, netfilterqueue {theirs_pps:,.0f} pkt/s, "
        f"ratio {ratio:.1f}x; the sender alone reaches {sender_pps:,.0f} pkt/s"
    )
    print(
        f"packets per CPU-second of the reader: diffserv live {ours_cpu:,.0f}, "
        f"netfilterqueue {theirs_cpu:,.0f}, ratio {cpu_ratio:.1f}x (target >= 3x)"
    )
    print(
        f"user-space CPU a packet: diffserv live {ours_user:.2f} µs, netfilterqueue "
        f"{theirs_user:.2f} µs, ratio {user_ratio:.1f}x"
    )
    for reader in ("ours", "netfilterqueue"):
        print(
            f"added round-trip latency at {args.ping_rate:,.0f}/s ({reader}): "
            f"p50 {added(reader, 'p50_us'):+.0f} µs, p99 {added(reader, 'p99_us'):+.0f} µs"
        )
    save_results(
        "bench_live",
        [
            {
                "what": "NFQUEUE packets per reader CPU-second, 20-filter marking policy",
                "ours_text": f"{ours_cpu:,.0f} pkt/CPU-s",
                "anchor_text": f"netfilterqueue callback loop {theirs_cpu:,.0f} pkt/CPU-s",
                "ratio_text": f"{cpu_ratio:.1f}x",
                "target": ">= 3x",
                "user_us_per_packet": {"ours": ours_user, "netfilterqueue": theirs_user},
                "per_cpu_s": {
                    "ours": [x.per_cpu_s for x in ours],
                    "netfilterqueue": [x.per_cpu_s for x in theirs],
                },
            },
            {
                "what": "NFQUEUE throughput under overload, forwarded UDP (ceiling: sender alone)",
                "ours_text": f"{ours_pps:,.0f} pkt/s",
                "anchor_text": f"netfilterqueue callback loop {theirs_pps:,.0f} pkt/s",
                "ratio_text": f"{ratio:.1f}x",
                "target": f"sender alone {sender_pps:,.0f} pkt/s",
                "pps": {
                    "ours": [x.pps for x in ours],
                    "netfilterqueue": [x.pps for x in theirs],
                    "sender_alone": alone,
                },
            },
            {
                "what": f"added round-trip latency at {args.ping_rate:,.0f} round trips/s",
                "ours_text": f"p50 {added('ours', 'p50_us'):+.0f} µs, "
                f"p99 {added('ours', 'p99_us'):+.0f} µs",
                "anchor_text": f"netfilterqueue p50 {added('netfilterqueue', 'p50_us'):+.0f} µs, "
                f"p99 {added('netfilterqueue', 'p99_us'):+.0f} µs",
                "ratio_text": "—",
                "target": "—",
                "latency": latency,
            },
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
