"""ipgpc classification cost with 20, 1 000 and 10 000 filters (tuple-space search).

Filters mix the shapes real policies use: host /32 + service port, /24 source subnets,
protocol + port, and IPv6 /64 destinations, with a spread of priorities. One million
synthetic packets (about half of them hit some filter) are classified in batches of 65 536;
we print nanoseconds per packet. Cost must not grow linearly with the number of filters:
the 10 000-filter case should cost about the same as the 1 000-filter one.

    python benchmarks/bench_ipgpc.py [--packets N]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from diffserv.columns import PacketBatch  # noqa: E402
from diffserv.engine.graph import compile_policy  # noqa: E402
from diffserv.policy.model import Action, Class, Filter, Policy  # noqa: E402
from measure import save_results  # noqa: E402

V4_MAPPED = 0xFFFF << 32
BATCH = 65536
PORTS = (22, 25, 53, 80, 123, 443, 993, 5060, 8080, 8443)


def make_filters(n: int, rng: np.random.Generator) -> list[Filter]:
    filters = []
    for i in range(n):
        kind = i % 4
        cls = f"c{i % 50}"
        pri = int(rng.integers(0, 4))
        if kind == 0:
            host = ipaddress.ip_network(f"192.168.{(i // 256) % 256}.{i % 256}/32")
            filters.append(Filter(f"f{i}", cls, daddr=host, dport=PORTS[i % 10], priority=pri))
        elif kind == 1:
            net = ipaddress.ip_network(f"10.{(i // 256) % 256}.{i % 256}.0/24")
            filters.append(Filter(f"f{i}", cls, saddr=net, priority=pri))
        elif kind == 2:
            filters.append(
                Filter(f"f{i}", cls, protocol=6 + 11 * (i % 2), dport=1000 + i, priority=pri)
            )
        else:
            net = ipaddress.ip_network(f"2001:db8:{i:x}::/64")
            filters.append(Filter(f"f{i}", cls, daddr=net, priority=pri))
    return filters


def make_policy(filters: list[Filter]) -> Policy:
    classes = tuple(Class(f"c{k}", "ipp.continue") for k in range(50))
    return Policy(
        actions=(Action("ipgpc.classify", "ipgpc", classes=classes, filters=tuple(filters)),)
    )


def make_batches(packets: int, rng: np.random.Generator) -> list[PacketBatch]:
    out = []
    for start in range(0, packets, BATCH):
        n = min(BATCH, packets - start)
        b = PacketBatch.allocate(np.zeros(1, np.uint8), n)
        v6 = rng.random(n) < 0.25
        b.cols.ip_version[:] = np.where(v6, 6, 4)
        src4 = (10 << 24) | rng.integers(0, 1 << 20, n)
        dst4 = (192 << 24) | (168 << 16) | rng.integers(0, 1 << 14, n)
        b.cols.saddr_lo[:] = np.where(v6, rng.integers(0, 1 << 62, n), V4_MAPPED | src4).astype(
            np.uint64
        )
        b.cols.daddr_lo[:] = np.where(v6, rng.integers(0, 1 << 62, n), V4_MAPPED | dst4).astype(
            np.uint64
        )
        hi = (0x20010DB8 << 32) | (rng.integers(0, 1 << 14, n) << 16)
        b.cols.daddr_hi[:] = np.where(v6, hi, 0).astype(np.uint64)
        b.cols.protocol[:] = np.where(rng.random(n) < 0.7, 6, 17)
        b.cols.sport[:] = rng.integers(1024, 65535, n)
        b.cols.dport[:] = np.where(
            rng.random(n) < 0.6,
            np.array(PORTS)[rng.integers(0, 10, n)],
            rng.integers(1000, 12000, n),
        )
        b.cols.direction[:] = 2
        b.cols.ip_len[:] = 500
        out.append(b)
    return out


def measure(
    nfilters: int, batches: list[PacketBatch], rng: np.random.Generator
) -> tuple[float, float]:
    t0 = time.perf_counter()
    graph = compile_policy(make_policy(make_filters(nfilters, rng)))
    build_s = time.perf_counter() - t0
    graph.run(batches[0])  # load the compiled kernel before timing
    classifier: Any = graph.classifier
    unmatched_before = classifier.class_counters()["default"]["npackets"]
    t0 = time.perf_counter()
    for b in batches:
        graph.run(b)
    elapsed = time.perf_counter() - t0
    packets = sum(b.n for b in batches)
    unmatched = classifier.class_counters()["default"]["npackets"] - unmatched_before
    hit = 1.0 - unmatched / packets
    print(
        f"{nfilters:6,} filters: build {build_s * 1000:7.1f} ms, "
        f"{elapsed / packets * 1e9:6.1f} ns/packet, {hit:5.1%} of packets matched a filter"
    )
    return build_s, elapsed / packets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    batches = make_batches(args.packets, rng)
    results = {n: measure(n, batches, rng) for n in (20, 1000, 10000)}
    growth = results[10000][1] / results[1000][1]
    print(f"cost 10 000 / 1 000 filters: {growth:.2f}x (linear search would be ~10x)")
    per_packet = " / ".join(f"{results[n][1] * 1e9:.0f}" for n in (20, 1000, 10000))
    row = {
        "what": "classification per packet, 20 / 1 000 / 10 000 filters",
        "ours_text": f"{per_packet} ns",
        "anchor_text": "—",
        "ratio_text": f"{growth:.2f}× from 1 k to 10 k filters",
        "target": "sub-linear in filters",
        "ns_per_packet": {str(n): results[n][1] * 1e9 for n in results},
    }
    save_results("bench_ipgpc", [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
