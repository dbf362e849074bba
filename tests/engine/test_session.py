"""The engine session: process / advance / close, its sinks, and driving it from a source."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from engine_helpers import make_batch

from diffserv.columns import ACTION_CONTINUE, PacketBatch
from diffserv.engine.context import EngineOptions
from diffserv.engine.session import Labels, Session, drive
from diffserv.errors import InputDataError
from diffserv.policy.build import parse
from diffserv.records import FlowRecords

NS_PER_S = 1_000_000_000

POLICY = """fmt_version 1.0
action {
    module ipgpc
    name ipgpc.classify
    class { name web next_action acct }
    filter { name www class web dport 80 }
}
action {
    module flowacct
    name acct
    params { next_action continue timer 1000 timeout 2000 max_limit 100 }
}
"""


class Records:
    """A RecordSink that keeps what it is given, and how it was ended."""

    def __init__(self) -> None:
        self.batches: list[FlowRecords] = []
        self.ended = ""

    def write(self, records: FlowRecords) -> None:
        self.batches.append(records)

    def close(self) -> None:
        self.ended = "closed"

    def abort(self) -> None:
        self.ended = "aborted"

    def flows(self) -> list[tuple[int, int, int]]:
        return [
            (int(sport), int(n), int(last))
            for r in self.batches
            for sport, n, last in zip(r.sport, r.npackets, r.last_ns, strict=True)
        ]


class Packets:
    """A BatchSink that keeps the verdicts of every batch it is handed."""

    def __init__(self) -> None:
        self.verdicts: list[int] = []
        self.ended = ""

    def write(self, batch: PacketBatch) -> None:
        self.verdicts.extend(int(v) for v in batch.cols.action)

    def close(self) -> None:
        self.ended = "closed"

    def abort(self) -> None:
        self.ended = "aborted"


def _policy() -> object:
    return parse(POLICY, "<session-test>")


def _web(sport: int, ts_s: float) -> dict[str, int]:
    return {"sport": sport, "dport": 80, "ts": int(ts_s * NS_PER_S)}


def test_advance_expires_idle_flows_on_a_quiet_link() -> None:
    records = Records()
    session = Session(_policy(), EngineOptions(record_sink=records))  # type: ignore[arg-type]
    session.process(make_batch([_web(1000, 10.0), _web(1001, 10.5)]))
    assert records.flows() == []
    session.advance(int(11.9 * NS_PER_S))  # no deadline passed yet: nothing expires
    assert records.flows() == []
    session.advance(int(13.2 * NS_PER_S))  # the sweep at 13 s finds both idle for 2 s
    assert [f[0] for f in records.flows()] == [1000, 1001]
    stats = session.close()
    assert records.ended == "closed"
    assert stats.actions["acct"].counters["flows_in_tbl"] == 0


def test_advance_gives_the_records_a_later_packet_would_have_given() -> None:
    """Telling the time with advance only makes the records come out sooner."""
    early = [_web(1000, 10.0), _web(1001, 10.5), _web(1002, 12.1)]
    late = [_web(1003, 14.7)]

    def run(advance_at: list[float]) -> list[tuple[int, int, int]]:
        records = Records()
        session = Session(_policy(), EngineOptions(record_sink=records))  # type: ignore[arg-type]
        session.process(make_batch(early))
        for t in advance_at:
            session.advance(int(t * NS_PER_S))
        session.process(make_batch(late))
        session.close()
        return records.flows()

    assert run([12.5, 13.0, 14.2]) == run([])
    assert run([12.5, 13.0, 14.2]) == run([14.69])


def test_advance_before_any_packet_and_backwards_time_change_nothing() -> None:
    records = Records()
    session = Session(_policy(), EngineOptions(record_sink=records))  # type: ignore[arg-type]
    session.advance(5 * NS_PER_S)  # the timer starts with the first packet
    session.process(make_batch([_web(1000, 10.0)]))
    session.advance(3 * NS_PER_S)  # the table's clock never runs backwards
    assert records.flows() == []
    session.close()
    assert [f[0] for f in records.flows()] == [1000]


def test_packet_sink_gets_every_batch_and_stats_count_them() -> None:
    packets = Packets()
    session = Session(
        _policy(),  # type: ignore[arg-type]
        EngineOptions(rewrite_packets=False),
        packet_sink=packets,
        labels=Labels(policy="p.conf", input="in.pcap", output="out.pcap"),
    )
    session.process(make_batch([_web(1000, 1.0), {"dport": 22, "ts": 2}]))
    session.process(make_batch([]))
    stats = session.close()
    assert packets.verdicts == [ACTION_CONTINUE, ACTION_CONTINUE]
    assert packets.ended == "closed"
    doc = stats.to_json()
    assert (doc["policy"], doc["input"], doc["output"]) == ("p.conf", "in.pcap", "out.pcap")
    assert doc["format"] == "diffserv-run-stats/1"
    assert (doc["packets"], doc["written"], doc["dropped"]) == (2, 2, 0)
    assert doc["classes"]["web"]["packets"] == 1
    assert doc["classes"]["default"]["packets"] == 1
    assert "input_error" not in doc


def test_a_full_flow_table_drops_and_the_stats_say_so() -> None:
    policy = POLICY.replace("max_limit 100", "max_limit 1")
    session = Session(parse(policy, "<p>"), EngineOptions(rewrite_packets=False))
    session.process(make_batch([_web(1000, 1.0), _web(1001, 1.1)]))
    stats = session.close()
    assert stats.dropped == 1 and stats.written == 1


def test_closing_twice_is_a_bug_not_a_silent_no_op() -> None:
    session = Session(_policy(), EngineOptions(rewrite_packets=False))  # type: ignore[arg-type]
    session.close()
    with pytest.raises(RuntimeError):
        session.close()


def _source(batches: list[PacketBatch], error_after: int | None) -> Iterator[PacketBatch]:
    for i, batch in enumerate(batches):
        if i == error_after:
            raise InputDataError("in.pcap: packet 3", "record is cut short")
        yield batch


def test_drive_keeps_what_came_before_damaged_input() -> None:
    packets, records = Packets(), Records()
    options = EngineOptions(record_sink=records, rewrite_packets=False)
    session = Session(_policy(), options, packet_sink=packets)  # type: ignore[arg-type]
    batches = [make_batch([_web(1000, 1.0), _web(1001, 1.0)]), make_batch([_web(1002, 2.0)])]
    stats = drive(session, _source(batches, error_after=1))
    assert stats.input_error == "in.pcap: packet 3: record is cut short"
    assert stats.to_json()["input_error"] == stats.input_error
    assert packets.verdicts == [ACTION_CONTINUE] * 2 and packets.ended == "closed"
    assert [f[0] for f in records.flows()] == [1000, 1001] and records.ended == "closed"


def test_drive_aborts_both_sinks_when_the_source_fails_otherwise() -> None:
    packets, records = Packets(), Records()
    options = EngineOptions(record_sink=records, rewrite_packets=False)
    session = Session(_policy(), options, packet_sink=packets)  # type: ignore[arg-type]

    def broken() -> Iterator[PacketBatch]:
        yield make_batch([_web(1000, 1.0)])
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        drive(session, broken())
    assert (packets.ended, records.ended) == ("aborted", "aborted")


def test_session_as_context_manager_aborts_on_error() -> None:
    packets = Packets()
    options = EngineOptions(rewrite_packets=False)
    session = Session(_policy(), options, packet_sink=packets)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stop"), session:
        session.process(make_batch([]))
        raise ValueError("stop")
    assert packets.ended == "aborted"


def test_results_do_not_depend_on_how_time_is_told() -> None:
    """Many advance calls between packets give the same verdicts and counters."""
    rng = np.random.default_rng(3)
    times = np.sort(rng.integers(0, 20 * NS_PER_S, 200))
    packets = [{"sport": int(1000 + rng.integers(0, 20)), "dport": 80, "ts": int(t)} for t in times]

    def run(tick: bool) -> tuple[list[tuple[int, int, int]], dict[str, int]]:
        records = Records()
        session = Session(_policy(), EngineOptions(record_sink=records, rewrite_packets=False))  # type: ignore[arg-type]
        for start in range(0, len(packets), 17):
            part = packets[start : start + 17]
            session.process(make_batch(part))
            if tick:
                session.advance(int(part[-1]["ts"]) + 1)
        stats = session.close()
        return records.flows(), dict(stats.actions["acct"].counters)

    assert run(True) == run(False)
