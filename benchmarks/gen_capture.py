"""Generate the realistic benchmark capture (default 5 million packets) with vectorised numpy.

Traffic shape: ~10 000 flows whose sizes follow a Zipf law, 70 % IPv4 / 30 %
IPv6, 75 % TCP / 25 % UDP, a third of the flows 802.1Q-tagged (some QinQ),
varied DSCP and ECN, an IMIX-like size mix and increasing µs timestamps. The
file is written in chunks, so generating 5 M packets takes seconds and little
memory. Output goes to benchmarks/data/ (git-ignored) unless told otherwise.

    python benchmarks/gen_capture.py [--packets N] [--out PATH] [--seed S] [--pcapng]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PACKETS = 5_000_000
DEFAULT_FLOWS = 10_000
DEFAULT_SEED = 4242
CHUNK = 250_000
FORMAT_VERSION = 1

DSCP_CHOICES = np.array([0, 0, 0, 0, 8, 10, 12, 18, 20, 26, 28, 34, 36, 46, 48, 1], np.int64)
ECN_WEIGHTS = np.array([0.70, 0.05, 0.20, 0.05])

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]


def _put(buf: U8, off: I64, value: I64, size: int, big: bool = True) -> None:
    """Scatter ``size``-byte integers ``value`` at offsets ``off``."""
    for k in range(size):
        shift = 8 * (size - 1 - k) if big else 8 * k
        buf[off + k] = (value >> shift) & 0xFF


def _flows(rng: np.random.Generator, n_flows: int) -> dict[str, NDArray[np.int64]]:
    v6 = rng.random(n_flows) < 0.3
    tcp = rng.random(n_flows) < 0.75
    tag_roll = rng.random(n_flows)
    n_tags = np.where(tag_roll < 0.05, 2, np.where(tag_roll < 0.33, 1, 0))
    return {
        "v6": v6.astype(np.int64),
        "proto": np.where(tcp, 6, 17).astype(np.int64),
        "tags": n_tags.astype(np.int64),
        "vid": rng.integers(1, 4095, n_flows),
        "pcp": rng.integers(0, 8, n_flows),
        "dscp": DSCP_CHOICES[rng.integers(0, DSCP_CHOICES.size, n_flows)],
        "ecn": rng.choice(4, n_flows, p=ECN_WEIGHTS).astype(np.int64),
        "sport": rng.integers(1024, 65536, n_flows),
        "dport": rng.choice(np.array([80, 443, 53, 5060, 22, 8080, 4789, 123]), n_flows),
        "src4": (0x0A000000 | rng.integers(0, 1 << 20, n_flows)).astype(np.int64),
        "dst4": (0xC0A80000 | rng.integers(0, 1 << 16, n_flows)).astype(np.int64),
        "src6": rng.integers(0, 1 << 62, n_flows),
        "dst6": rng.integers(0, 1 << 62, n_flows),
        "label": rng.integers(0, 1 << 20, n_flows),
    }


def _zipf_weights(n_flows: int, exponent: float = 1.1) -> NDArray[np.float64]:
    ranks = np.arange(1, n_flows + 1, dtype=np.float64)
    weights = 1.0 / ranks**exponent
    return weights / weights.sum()


def _chunk(
    rng: np.random.Generator,
    flows: dict[str, NDArray[np.int64]],
    weights: NDArray[np.float64],
    count: int,
    t0_us: int,
    *,
    pcapng: bool = False,
) -> tuple[U8, int]:
    """Build ``count`` pcap records (or pcapng EPBs); return the bytes and the last time (µs)."""
    f = rng.choice(weights.size, count, p=weights)
    v6 = flows["v6"][f]
    proto = flows["proto"][f]
    tags = flows["tags"][f]
    l4_len = np.where(proto == 6, 20, 8)
    ip_hdr = np.where(v6 == 1, 40, 20)
    roll = rng.random(count)
    payload = np.where(
        roll < 0.55,
        rng.integers(0, 40, count),
        np.where(roll < 0.70, rng.integers(100, 600, count), 1500 - ip_hdr - l4_len),
    )
    ip_len = ip_hdr + l4_len + payload
    l2 = 14 + 4 * tags
    frame = l2 + ip_len
    head = 28 if pcapng else 16
    rec = 32 + ((frame + 3) & ~3) if pcapng else 16 + frame
    off = np.zeros(count, np.int64)
    np.cumsum(rec[:-1], out=off[1:])
    total = int(off[-1] + rec[-1])
    buf = np.zeros(total, np.uint8)

    gaps = rng.exponential(3.0, count).astype(np.int64) + 1
    ts = t0_us + np.cumsum(gaps)
    if pcapng:
        _put(buf, off, np.full(count, 6, np.int64), 4, big=False)  # enhanced packet block
        _put(buf, off + 4, rec, 4, big=False)
        _put(buf, off + 12, ts >> 32, 4, big=False)
        _put(buf, off + 16, ts & 0xFFFFFFFF, 4, big=False)
        _put(buf, off + 20, frame, 4, big=False)
        _put(buf, off + 24, frame, 4, big=False)
        _put(buf, off + rec - 4, rec, 4, big=False)
    else:
        _put(buf, off, ts // 1_000_000, 4, big=False)
        _put(buf, off + 4, ts % 1_000_000, 4, big=False)
        _put(buf, off + 8, frame, 4, big=False)
        _put(buf, off + 12, frame, 4, big=False)

    eth = off + head
    buf[eth[:, None] + np.arange(12)] = np.array(
        [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01], np.uint8
    )
    vid = flows["vid"][f]
    pcp = flows["pcp"][f]
    tci = (pcp << 13) | vid
    one = tags >= 1
    two = tags == 2
    _put(buf, eth[two] + 12, np.full(int(two.sum()), 0x88A8, np.int64), 2)
    _put(buf, eth[two] + 14, tci[two], 2)
    _put(buf, eth[two] + 16, np.full(int(two.sum()), 0x8100, np.int64), 2)
    _put(buf, eth[two] + 18, (tci[two] + 1) & 0xFFFF, 2)
    single = one & ~two
    _put(buf, eth[single] + 12, np.full(int(single.sum()), 0x8100, np.int64), 2)
    _put(buf, eth[single] + 14, tci[single], 2)
    l3 = eth + l2
    _put(buf, l3 - 2, np.where(v6 == 1, 0x86DD, 0x0800), 2)

    ds = (flows["dscp"][f] << 2) | flows["ecn"][f]
    is4 = v6 == 0
    o4 = l3[is4]
    n4 = o4.size
    words = [
        (0x45 << 8) | ds[is4],
        ip_len[is4],
        rng.integers(0, 65536, n4),
        np.full(n4, 0x4000, np.int64),
        (64 << 8) | proto[is4],
        flows["src4"][f][is4] >> 16,
        flows["src4"][f][is4] & 0xFFFF,
        flows["dst4"][f][is4] >> 16,
        flows["dst4"][f][is4] & 0xFFFF,
    ]
    total_sum = np.sum(words, axis=0)
    while np.any(total_sum > 0xFFFF):
        total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
    checksum = ~total_sum & 0xFFFF
    for k, word in enumerate(words[:5]):
        _put(buf, o4 + 2 * k, word, 2)
    _put(buf, o4 + 10, checksum, 2)
    for k, word in enumerate(words[5:]):
        _put(buf, o4 + 12 + 2 * k, word, 2)

    is6 = ~is4
    o6 = l3[is6]
    word0 = (6 << 28) | (ds[is6] << 20) | flows["label"][f][is6]
    _put(buf, o6, word0, 4)
    _put(buf, o6 + 4, ip_len[is6] - 40, 2)
    buf[o6 + 6] = proto[is6]
    buf[o6 + 7] = 64
    _put(buf, o6 + 8, np.full(o6.size, 0x20010DB8 << 32, np.int64), 8)
    _put(buf, o6 + 16, flows["src6"][f][is6], 8)
    _put(buf, o6 + 24, np.full(o6.size, 0x20010DB8_00010000, np.int64), 8)
    _put(buf, o6 + 32, flows["dst6"][f][is6], 8)

    l4 = l3 + ip_hdr
    _put(buf, l4, flows["sport"][f], 2)
    _put(buf, l4 + 2, flows["dport"][f], 2)
    tcp_rows = proto == 6
    t = l4[tcp_rows]
    _put(buf, t + 4, rng.integers(0, 1 << 32, t.size), 4)
    buf[t + 12] = 0x50
    buf[t + 13] = 0x18
    _put(buf, t + 14, np.full(t.size, 65535, np.int64), 2)
    u = l4[~tcp_rows]
    _put(buf, u + 4, (8 + payload)[~tcp_rows], 2)
    return buf, int(ts[-1])


def generate(
    path: Path,
    packets: int = DEFAULT_PACKETS,
    *,
    n_flows: int = DEFAULT_FLOWS,
    seed: int = DEFAULT_SEED,
    pcapng: bool = False,
) -> Path:
    """Write the capture to ``path`` (little-endian, µs; classic pcap or pcapng EPBs)."""
    rng = np.random.default_rng(seed)
    flows = _flows(rng, n_flows)
    weights = _zipf_weights(n_flows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pcapng:
        name = b"bench0\x00\x00"
        shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
        idb_body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", 2, 6) + name
        idb_body += struct.pack("<HH", 0, 0)
        idb = struct.pack("<II", 1, 12 + len(idb_body)) + idb_body
        header = shb + idb + struct.pack("<I", 12 + len(idb_body))
    else:
        header = np.array([0xA1B2C3D4], "<u4").tobytes()
        header += np.array([2, 4], "<u2").tobytes()
        header += np.array([0, 0, 65535, 1], "<u4").tobytes()
    t_us = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as out:
        out.write(header)
        done = 0
        while done < packets:
            count = min(CHUNK, packets - done)
            chunk, t_us = _chunk(rng, flows, weights, count, t_us, pcapng=pcapng)
            out.write(chunk.data)
            done += count
    tmp.replace(path)
    return path


def ensure(
    packets: int = DEFAULT_PACKETS,
    *,
    seed: int = DEFAULT_SEED,
    path: Path | None = None,
    pcapng: bool = False,
) -> Path:
    """The benchmark capture for ``packets``/``seed``, generated only if missing or stale."""
    path = path or DATA_DIR / f"bench_{packets}.{'pcapng' if pcapng else 'pcap'}"
    meta = path.with_name(path.name + ".json") if pcapng else path.with_suffix(".json")
    wanted: dict[str, object] = {"packets": packets, "seed": seed, "version": FORMAT_VERSION}
    if pcapng:
        wanted["format"] = "pcapng"
    if path.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == wanted:
                return path
        except ValueError:
            pass
    generate(path, packets, seed=seed, pcapng=pcapng)
    meta.write_text(json.dumps(wanted))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pcapng", action="store_true", help="write pcapng (EPBs)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = ensure(args.packets, seed=args.seed, path=args.out, pcapng=args.pcapng)
    elapsed = time.perf_counter() - start
    size = path.stat().st_size
    print(f"{path}: {args.packets} packets, {size / 1e6:.1f} MB, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
