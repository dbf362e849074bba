"""Deliberately simple scalar models of the meters, and helpers to drive the operators.

The models follow the RFC text (and docs/meters.md) one packet at a time with Python ints and
Fractions, with no cleverness about scaling or overflow, so that the compiled operators
can be checked against them packet by packet.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from diffserv.columns import FLAG_MALFORMED, IPV4, PacketBatch
from diffserv.engine.context import BuildContext, EngineOptions
from diffserv.engine.modules import factory_for
from diffserv.engine.operator import Operator
from diffserv.policy.model import GREEN, RED, YELLOW, Action
from diffserv.policy.schema import DEFAULT_COLOR_MAP

NS = 10**9
ACTION_IDS = {"green_act": 10, "yellow_act": 11, "red_act": 12}
NEXT_OF_COLOUR = {GREEN: 10, YELLOW: 11, RED: 12}
DROP_ID = -4


@dataclass
class Packet:
    ts_ns: int
    ip_len: int
    ds: int = 0
    valid: bool = True


# --- tokenmt --------------------------------------------------------------------------------


@dataclass
class TokenMeterModel:
    """RFC 2697 / 2698 with rates in bit/s and buckets in bits, as exact Fractions."""

    cir: int
    cbs: int
    pir: int | None = None  # None: single-rate
    pbs: int = 0  # PBS (two-rate) or EBS (single-rate)
    three: bool = False  # single-rate: yellow action configured
    aware: bool = False
    colour_map: Sequence[int] = DEFAULT_COLOR_MAP
    c: Fraction = Fraction(0)
    p: Fraction = Fraction(0)
    last: int | None = None

    def meter(self, pkt: Packet) -> int | None:
        if not pkt.valid:
            return None
        if self.last is None:
            self.c, self.p, self.last = Fraction(self.cbs), Fraction(self.pbs), pkt.ts_ns
        elif pkt.ts_ns > self.last:
            dt = pkt.ts_ns - self.last
            if self.pir is None:
                total = self.c + Fraction(self.cir * dt, NS)
                self.c = min(total, Fraction(self.cbs))
                self.p = min(self.p + (total - self.c), Fraction(self.pbs))
            else:
                self.c = min(self.c + Fraction(self.cir * dt, NS), Fraction(self.cbs))
                self.p = min(self.p + Fraction(self.pir * dt, NS), Fraction(self.pbs))
            self.last = pkt.ts_ns
        size = pkt.ip_len * 8
        pre = self.colour_map[pkt.ds >> 2] if self.aware else GREEN
        if self.pir is not None:
            if pre == RED or size > self.p:
                return RED
            if pre == YELLOW or size > self.c:
                self.p -= size
                return YELLOW
            self.c -= size
            self.p -= size
            return GREEN
        if pre == GREEN and size <= self.c:
            self.c -= size
            return GREEN
        if self.three and pre in (GREEN, YELLOW) and size <= self.p:
            self.p -= size
            return YELLOW
        return RED


def tokenmt_action(model: TokenMeterModel, name: str = "meter1") -> Action:
    params: list[tuple[str, int | bool | str | tuple[int, ...]]] = [("red_action_name", "red_act")]
    if model.pir is not None or model.three:
        params.append(("yellow_action_name", "yellow_act"))
    params += [
        ("green_action_name", "green_act"),
        ("committed_rate", model.cir),
        ("committed_burst", model.cbs),
    ]
    if model.pir is not None:
        params.append(("peak_rate", model.pir))
    if model.pir is not None or model.three:
        params.append(("peak_burst", model.pbs))
    params += [("color_aware", model.aware), ("color_map", tuple(model.colour_map))]
    return Action(name=name, module="tokenmt", params=tuple(params))


# --- tswtclmt -------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
AVG_RATE_MAX = 1 << 62


class SplitMix64:
    """splitmix64 and Lemire's bounded draw, written out with Python ints."""

    def __init__(self, seed: int, name: str) -> None:
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        self.state = (seed ^ int.from_bytes(digest, "little")) & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def draw(self, upper: int) -> int:
        span = upper + 1
        product = self.next() * span
        if product & MASK64 < span:
            threshold = (1 << 64) % span
            while product & MASK64 < threshold:
                product = self.next() * span
        return product >> 64


@dataclass
class TswModel:
    """RFC 2859 as docs/meters.md describes it, 64-bit average saturating at 2^62."""

    cir: int
    pir: int
    window_ms: int
    seed: int = 20260101
    name: str = "meter1"
    avg: int = 0
    front: int | None = None
    rng: SplitMix64 = field(init=False)

    def __post_init__(self) -> None:
        self.rng = SplitMix64(self.seed, self.name)

    def meter(self, pkt: Packet) -> int | None:
        if not pkt.valid:
            return None
        if self.front is None:
            self.front, self.avg = pkt.ts_ns, self.cir
        elapsed = max(0, pkt.ts_ns - self.front)
        self.front = max(self.front, pkt.ts_ns)
        bits_in_window = self.avg * self.window_ms // 1000 + pkt.ip_len * 8
        delta = min(elapsed, 1 << 63) + self.window_ms * 1_000_000
        self.avg = min(bits_in_window * NS // delta, AVG_RATE_MAX)
        if self.avg <= self.cir:
            return GREEN
        r = self.rng.draw(self.avg)
        if self.avg > self.pir and self.avg - self.pir >= r:
            return RED
        if self.avg - self.cir >= r:
            return YELLOW
        return GREEN


def tswtclmt_action(model: TswModel) -> Action:
    return Action(
        name=model.name,
        module="tswtclmt",
        params=(
            ("red_action_name", "red_act"),
            ("yellow_action_name", "yellow_act"),
            ("green_action_name", "green_act"),
            ("committed_rate", model.cir),
            ("peak_rate", model.pir),
            ("window", model.window_ms),
        ),
    )


# --- driving operators ----------------------------------------------------------------------


def build(action: Action, seed: int = 20260101) -> Operator:
    ctx = BuildContext(action_ids=ACTION_IDS, options=EngineOptions(seed=seed))
    return factory_for(action.module)(action, ctx)


def make_batch(packets: Sequence[Packet], marked: Sequence[int] | None = None) -> PacketBatch:
    """A batch holding ``packets``; ``marked`` (per packet, -1 = none) sets new_ds."""
    batch = PacketBatch.allocate(np.zeros(0, np.uint8), len(packets))
    batch.cols.number[:] = np.arange(1, len(packets) + 1)
    batch.cols.ts_ns[:] = [p.ts_ns for p in packets]
    batch.cols.ip_len[:] = [p.ip_len for p in packets]
    batch.cols.ds_byte[:] = [p.ds for p in packets]
    batch.cols.ip_version[:] = IPV4
    for i, p in enumerate(packets):
        if not p.valid:
            batch.cols.flags[i] = FLAG_MALFORMED
    if marked is not None:
        batch.cols.new_ds[:] = marked
    return batch


def run_operator(
    op: Operator,
    packets: Sequence[Packet],
    cuts: Sequence[int] = (),
    marked: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """(next action ids, colours) of every packet, fed to ``op`` in chunks split at ``cuts``."""
    batch = make_batch(packets, marked)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(packets))), len(packets)]
    nexts: list[int] = []
    for start, stop in itertools.pairwise(bounds):
        nexts += op.process(batch, np.arange(start, stop, dtype=np.int64)).tolist()
    return nexts, batch.cols.colour.tolist()


def run_model(model: TokenMeterModel | TswModel, packets: Sequence[Packet]) -> list[int | None]:
    return [model.meter(p) for p in packets]


def expected_nexts(colours: Sequence[int | None]) -> list[int]:
    return [DROP_ID if c is None else NEXT_OF_COLOUR[c] for c in colours]
