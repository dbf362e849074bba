"""flowacct: the compiled flow table against a slow, obviously-correct reference."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.columns import ACTION_CONTINUE, ACTION_DROP, PacketBatch
from diffserv.engine.context import BuildContext, EngineOptions
from diffserv.engine.modules import factory_for
from diffserv.engine.modules.flowacct import FlowacctOperator, FlowTable, build
from diffserv.policy.model import CONTINUE, Action
from diffserv.records import FlowRecords

MS = 1_000_000
V4 = 0xFFFF << 32

Key5 = tuple[int, int, int, int, int]  # saddr, daddr, sport, dport, proto
ItemKey = tuple[int, int, int]  # dsfield, projid, uid
Record = tuple[int, ...]  # key8 + npackets, nbytes, first, last


@dataclass
class Pkt:
    ts: int
    saddr: int
    daddr: int
    sport: int
    dport: int
    proto: int
    ds: int
    length: int
    projid: int = -1
    uid: int = -1


# -- the reference: one packet at a time, dicts, every timer deadline swept ----------


@dataclass
class RefFlow:
    last: int = 0
    items: dict[ItemKey, list[int]] = field(default_factory=dict)  # npk, nby, first, last


class Reference:
    def __init__(self, timer_ms: int, timeout_ms: int, max_limit: int) -> None:
        self.timer = timer_ms * MS
        self.timeout = timeout_ms * MS
        self.max_limit = max_limit
        self.flows: OrderedDict[Key5, RefFlow] = OrderedDict()  # order = timeout list
        self.records: list[Record] = []
        self.started = False
        self.clock = 0
        self.deadline = 0
        self.epackets = 0
        self.npackets = 0
        self.nbytes = 0

    def n_items(self) -> int:
        return sum(len(f.items) for f in self.flows.values())

    def _expire(self, key: Key5) -> None:
        flow = self.flows.pop(key)
        for ik, (npk, nby, first, last) in flow.items.items():
            self.records.append((*key, *ik, npk, nby, first, last))

    def _sweep(self, when: int) -> None:
        for key in list(self.flows):
            if when - self.flows[key].last >= self.timeout:
                self._expire(key)
            else:
                break

    def packet(self, p: Pkt) -> bool:
        if not self.started:
            self.started = True
            self.clock = p.ts
            self.deadline = p.ts + self.timer
        self.clock = max(self.clock, p.ts)
        now = self.clock
        if self.timer == 0:
            self._sweep(now)
        while self.timer and now >= self.deadline:
            self._sweep(self.deadline)
            self.deadline += self.timer
        key = (p.saddr, p.daddr, p.sport, p.dport, p.proto)
        ik = (p.ds, p.projid, p.uid)
        flow = self.flows.get(key)
        if flow is None or ik not in flow.items:
            if self.n_items() + 1 > self.max_limit:
                others = [k for k in self.flows if k != key]
                if others and now - self.flows[others[0]].last >= self.timeout:
                    self._expire(others[0])
            if self.n_items() + 1 > self.max_limit:
                self.epackets += 1
                return False
            if flow is None:
                flow = self.flows[key] = RefFlow()
            flow.items[ik] = [0, 0, now, now]
        item = flow.items[ik]
        item[0] += 1
        item[1] += p.length
        item[3] = now
        flow.last = now
        self.flows.move_to_end(key)
        self.npackets += 1
        self.nbytes += p.length
        return True

    def finish(self) -> None:
        for key in list(self.flows):
            self._expire(key)


# -- helpers --------------------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.batches: list[FlowRecords] = []

    def write(self, records: FlowRecords) -> None:
        self.batches.append(records)

    def records(self) -> list[Record]:
        out: list[Record] = []
        for b in self.batches:
            for i in range(b.n):
                out.append(
                    (
                        *b.key(i),
                        int(b.npackets[i]),
                        int(b.nbytes[i]),
                        int(b.first_ns[i]),
                        int(b.last_ns[i]),
                    )
                )
        return out


def make_batch(pkts: list[Pkt]) -> PacketBatch:
    b = PacketBatch.allocate(np.zeros(0, np.uint8), len(pkts))
    for i, p in enumerate(pkts):
        b.cols.number[i] = i + 1
        b.cols.ts_ns[i] = p.ts
        b.cols.ip_version[i] = 4 if (p.saddr >> 32) == 0xFFFF else 6
        b.cols.saddr_hi[i] = p.saddr >> 64
        b.cols.saddr_lo[i] = p.saddr & (2**64 - 1)
        b.cols.daddr_hi[i] = p.daddr >> 64
        b.cols.daddr_lo[i] = p.daddr & (2**64 - 1)
        b.cols.sport[i] = p.sport
        b.cols.dport[i] = p.dport
        b.cols.protocol[i] = p.proto
        b.cols.ds_byte[i] = p.ds
        b.cols.ip_len[i] = p.length
        b.cols.projid[i] = p.projid
        b.cols.uid[i] = p.uid
    return b


def flowacct_action(timer: int | None, timeout: int | None, max_limit: int) -> Action:
    params: list[tuple[str, int | str]] = [("next_action", CONTINUE)]
    if timer is not None:
        params.append(("timer", timer))
    if timeout is not None:
        params.append(("timeout", timeout))
    params.append(("max_limit", max_limit))
    return Action(name="acct", module="flowacct", params=tuple(params))


def make_op(
    timer: int | None, timeout: int | None, max_limit: int, record_buffer: int | None = None
) -> tuple[FlowacctOperator, Collect]:
    sink = Collect()
    ctx = BuildContext(action_ids={"acct": 0}, options=EngineOptions(record_sink=sink))
    op = build(flowacct_action(timer, timeout, max_limit), ctx)
    if record_buffer is not None:
        # a tiny record buffer makes sweeps stop and resume mid-way
        assert timer is not None and timeout is not None
        table = FlowTable("acct", timer, timeout, max_limit, sink, record_buffer)
        op = FlowacctOperator("acct", ACTION_CONTINUE, table)
    return op, sink


def run_op(op: FlowacctOperator, pkts: list[Pkt], cuts: list[int]) -> list[int]:
    """Feed ``pkts`` in batches cut at ``cuts``; return the next-action ids."""
    out: list[int] = []
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(pkts)}), len(pkts)]
    for lo, hi in itertools.pairwise(bounds):
        batch = make_batch(pkts[lo:hi])
        out.extend(op.process(batch, np.arange(hi - lo, dtype=np.int64)).tolist())
    op.finish()
    return out


def v4(n: int) -> int:
    return V4 | (0xC0000200 + n)


def udp(ts_ms: int, src: int, sport: int = 1000, ds: int = 0, length: int = 100) -> Pkt:
    return Pkt(ts_ms * MS, v4(src), v4(99), sport, 53, 17, ds, length)


# -- behaviour ------------------------------------------------------------------------


def test_factory_is_registered() -> None:
    assert factory_for("flowacct") is build


def test_items_counted_per_dsfield_and_expire_with_their_flow() -> None:
    op, sink = make_op(timer=1000, timeout=2000, max_limit=100)
    pkts = [udp(0, 1, ds=0), udp(10, 1, ds=184), udp(20, 1, ds=0, length=60), udp(30, 2)]
    assert run_op(op, pkts, []) == [ACTION_CONTINUE] * 4
    recs = sink.records()
    # flow 1 (two items, creation order) then flow 2, oldest last-seen first
    assert [(r[5], r[8], r[9]) for r in recs] == [(0, 2, 160), (184, 1, 100), (0, 1, 100)]
    assert recs[0][10:] == (0, 20 * MS)
    assert op.counters()["flows_in_tbl"] == 0


def test_timer_sweeps_before_the_packet_that_passes_a_deadline() -> None:
    op, sink = make_op(timer=1000, timeout=1500, max_limit=100)
    batch = make_batch([udp(0, 1), udp(999, 2), udp(1600, 3), udp(2000, 4)])
    op.process(batch, np.arange(3, dtype=np.int64))
    # deadline 1000 swept at t=1600: flow 1 idle 1000 ms < 1500, nothing expires
    assert sink.records() == []
    op.process(batch, np.array([3], dtype=np.int64))
    # deadline 2000, reached by the packet at 2000: flow 1 idle 2000 ms expires first
    assert [r[0] for r in sink.records()] == [v4(1)]
    c = op.counters()
    assert c["flows_in_tbl"] == 3 and c["npackets"] == 4 and c["bytes_in_tbl"] == 300


def test_full_table_fails_the_packet_and_drops_it() -> None:
    op, sink = make_op(timer=10_000, timeout=500, max_limit=2)
    pkts = [udp(0, 1), udp(100, 2), udp(200, 3), udp(300, 1), udp(700, 4)]
    verdicts = run_op(op, pkts, [])
    # packet 3 finds no room: the head, flow 1, is idle only 200 ms; packet 4 refreshes
    # flow 1, so packet 5 makes room by expiring the new head, flow 2 (idle 600 ms)
    assert verdicts == [ACTION_CONTINUE, ACTION_CONTINUE, ACTION_DROP] + [ACTION_CONTINUE] * 2
    c = op.counters()
    assert c["epackets"] == 1
    assert c["npackets"] == 4
    assert [r[0] for r in sink.records()] == [v4(2), v4(1), v4(4)]


def test_non_ip_packets_pass_unaccounted() -> None:
    op, _ = make_op(timer=None, timeout=None, max_limit=10)
    batch = make_batch([udp(0, 1), udp(1, 2)])
    batch.cols.ip_version[0] = 0
    assert op.process(batch, np.array([0, 1], dtype=np.int64)).tolist() == [ACTION_CONTINUE] * 2
    assert op.counters()["npackets"] == 1


def test_dsfield_is_the_byte_as_marked_by_earlier_actions() -> None:
    op, sink = make_op(timer=None, timeout=None, max_limit=10)
    batch = make_batch([udp(0, 1, ds=1)])
    batch.cols.new_ds[0] = 46 << 2 | 1
    op.process(batch, np.array([0], dtype=np.int64))
    op.finish()
    assert sink.records()[0][5] == 46 << 2 | 1


def test_counters_and_usedmem() -> None:
    op, _ = make_op(timer=None, timeout=None, max_limit=5000)
    pkts = [udp(i, i % 3000, length=64) for i in range(6000)]
    batch = make_batch(pkts)
    op.process(batch, np.arange(6000, dtype=np.int64))
    c = op.counters()
    assert c["flows_in_tbl"] == 3000
    assert c["bytes_in_tbl"] == c["nbytes"] == 6000 * 64
    assert c["usedmem"] >= 3000 * (11 + 8) * 8  # the table's rows, at least
    op.finish()
    assert op.counters()["flows_in_tbl"] == 0 and op.counters()["bytes_in_tbl"] == 0


def test_no_sink_counts_without_writing() -> None:
    table = FlowTable("a", 1000, 1000, 10, None)
    batch = make_batch([udp(0, 1)])
    table.account(batch, np.array([0], dtype=np.int64))
    table.flush()
    assert table.records_written == 1


# -- the reference agrees record for record ------------------------------------------


Case = tuple[list[Pkt], list[int], int, int, int, int | None]


@st.composite
def traffic(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 120))
    n_hosts = draw(st.integers(1, 8))
    time = 0
    pkts: list[Pkt] = []
    for _ in range(n):
        time += draw(st.sampled_from([0, 1, 5, 50, 300, 1200, 4000])) * MS
        jitter = draw(st.integers(-2, 2)) * MS if draw(st.booleans()) else 0
        host = draw(st.integers(0, n_hosts - 1))
        v6 = draw(st.integers(0, 9)) == 0
        saddr = (0x20010DB8 << 96 | host) if v6 else v4(host)
        pkts.append(
            Pkt(
                ts=max(0, time + jitter),
                saddr=saddr,
                daddr=(0x20010DB8 << 96 | 0xFF) if v6 else v4(200),
                sport=draw(st.sampled_from([0, 1, 65535])),
                dport=80,
                proto=draw(st.sampled_from([6, 17])),
                ds=draw(st.sampled_from([0, 46 << 2, 10 << 2 | 1])),
                length=draw(st.integers(20, 1500)),
                projid=draw(st.sampled_from([-1, -1, 3])),
                uid=draw(st.sampled_from([-1, -1, 0, 1000])),
            )
        )
    cuts = draw(st.lists(st.integers(0, n), max_size=5))
    timer = draw(st.sampled_from([0, 1, 10, 100, 1000, 3000]))
    timeout = draw(st.sampled_from([0, 1, 100, 1000, 2500, 60000]))
    max_limit = draw(st.integers(0, 30))
    record_buffer = draw(st.sampled_from([None, None, 1, 2, 5]))
    return pkts, cuts, timer, timeout, max_limit, record_buffer


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic())
def test_agrees_with_reference(case: Case) -> None:
    pkts, cuts, timer, timeout, max_limit, record_buffer = case
    ref = Reference(timer, timeout, max_limit)
    expected_verdicts = [ACTION_CONTINUE if ref.packet(p) else ACTION_DROP for p in pkts]
    ref_counters = (ref.npackets, ref.nbytes, ref.epackets, ref.n_items())
    op, sink = make_op(timer, timeout, max_limit, record_buffer)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(pkts)}), len(pkts)]
    verdicts: list[int] = []
    for lo, hi in itertools.pairwise(bounds):
        # every other batch interleaves the packets with rows that are not at this action
        if lo % 2:
            batch = make_batch([q for p in pkts[lo:hi] for q in (p, p)])
            idx = np.arange(0, 2 * (hi - lo), 2, dtype=np.int64)
        else:
            batch = make_batch(pkts[lo:hi])
            idx = np.arange(hi - lo, dtype=np.int64)
        verdicts.extend(op.process(batch, idx).tolist())
    c = op.counters()
    assert verdicts == expected_verdicts
    assert (c["npackets"], c["nbytes"], c["epackets"], c["flows_in_tbl"]) == ref_counters
    ref.finish()
    op.finish()
    assert sink.records() == ref.records


def test_agrees_with_reference_on_a_table_that_grows() -> None:
    rng = np.random.default_rng(7)
    pkts = [
        Pkt(
            ts=int(t) * MS,
            saddr=v4(int(h)),
            daddr=v4(300),
            sport=int(p),
            dport=443,
            proto=6,
            ds=int(d),
            length=int(n),
        )
        for t, h, p, d, n in zip(
            np.cumsum(rng.integers(0, 3, 4000)),
            rng.integers(0, 1500, 4000),
            rng.integers(1, 4, 4000),
            rng.choice([0, 184], 4000),
            rng.integers(40, 1500, 4000),
            strict=True,
        )
    ]
    ref = Reference(500, 3000, 2500)
    expected = [ACTION_CONTINUE if ref.packet(p) else ACTION_DROP for p in pkts]
    ref.finish()
    op, sink = make_op(500, 3000, 2500, record_buffer=7)
    assert run_op(op, pkts, [1000, 1001, 2500]) == expected
    assert sink.records() == ref.records
    assert ref.epackets > 0  # the table did fill up


@pytest.mark.parametrize("max_limit", [0, 1])
def test_tiny_tables(max_limit: int) -> None:
    op, sink = make_op(timer=1, timeout=0, max_limit=max_limit)
    verdicts = run_op(op, [udp(0, 1), udp(0, 2), udp(5, 3)], [])
    if max_limit == 0:
        assert verdicts == [ACTION_DROP] * 3
        assert sink.records() == []
    else:
        # timeout 0: the oldest other flow has always timed out, so it makes room
        assert verdicts == [ACTION_CONTINUE] * 3
        assert [r[0] for r in sink.records()] == [v4(1), v4(2), v4(3)]


def test_sweep_resumes_after_a_full_record_buffer() -> None:
    # a buffer of one record: the sweep at t=5000 expires five flows, one per drain,
    # and a flow of three items makes the buffer grow
    op, sink = make_op(timer=1000, timeout=1000, max_limit=100, record_buffer=1)
    pkts = [udp(i, i) for i in range(5)]
    pkts += [udp(10, 9, ds=d) for d in (0, 4, 8)]
    pkts += [udp(5000, 7)]
    assert run_op(op, pkts, [2]) == [ACTION_CONTINUE] * 9
    assert [r[0] for r in sink.records()] == [v4(i) for i in (0, 1, 2, 3, 4, 9, 9, 9, 7)]
    assert [b.n for b in sink.batches][:5] == [1] * 5
    assert op.table.out.shape[0] >= 3
