"""The rollups beside store files: every report answers exactly as from the records.

Each report runs twice over the same real flow store, once on an engine that reads the
rollups (whole minutes) and the records (edge minutes, addresses, ports), once on an
engine that reads records only; the two answers must be equal to the last figure, for
time ranges on and off minute boundaries, every kind of filter and interval. Then the
rollup files themselves: where they are, that they are reused, rebuilt when their
store file changes or they are damaged, kept in memory where they cannot be written,
and never read as store files.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from diffserv.flows.store_read import read_store, store_files
from diffserv.report.choices import REPORTS
from diffserv.report.duckdb_engine import DuckDBEngine
from diffserv.report.queries import Engine
from diffserv.report.rollup import ROLLUP_DIR, rollup_path
from diffserv.report.sources import SourceSet
from support.report_data import T0, Rec, S, report, write_store

MINUTE = 60 * S


def _records(seed: int, n: int = 1500) -> list[Rec]:
    """Records over three store hours: marks in and out, sampling, several exporters,
    interfaces, directions, VLANs, classes; some first packets exactly on a minute."""
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        on_minute = rng.random() < 0.1
        first = T0 + rng.randrange(0, 3 * 3600) * S + (0 if on_minute else rng.randrange(S))
        ds = rng.choice([0, 0, 184, 185, 40, 72, 0x2B, 4, None])
        recs.append(
            Rec(
                first_ns=first,
                saddr=f"10.0.{rng.randrange(3)}.{rng.randrange(1, 9)}",
                daddr=rng.choice(["192.0.2.10", "2001:db8::1"]) if i % 7 else "10.0.0.1",
                sport=rng.choice([443, 5060, 40000 + i % 50]),
                dport=rng.choice([443, 53, 5060]),
                protocol=rng.choice([6, 17, 1]),
                ds=ds,
                dscp_only=46 if ds is None and i % 2 else None,
                ds_out=rng.choice([None, None, 0, 184, 40]),
                packets=rng.randrange(1, 500),
                bytes=rng.randrange(40, 2_000_000),
                duration_ns=rng.randrange(0, 90) * S,
                sampling=rng.choice([None, None, 1, 100]),
                exporter=rng.choice(["192.0.2.1", "192.0.2.2", "2001:db8::7"]),
                domain=rng.choice([0, 256]),
                in_if=rng.choice([None, 1, 2]),
                out_if=rng.choice([None, 3]),
                direction=rng.choice([None, 0, 1]),
                vlan=rng.choice([None, 10]),
                action=rng.choice([None, "acct"]),
                klass=rng.choice([None, "voice", "bulk"]),
            )
        )
    # the minutes the ranges below start or end in, crowded with records that differ
    # only in address, port and time: a rollup row there sums records on both sides of
    # a bound, so the edge minutes must come from the records
    for minute in (10, 32, 61, 62, 95, 130):
        for k in range(120):
            recs.append(
                Rec(
                    first_ns=T0 + minute * MINUTE + k * S // 2,
                    saddr=f"10.9.0.{k + 1}",
                    sport=30000 + k,
                    ds=184 if k % 3 else 0,
                    bytes=1000 + k,
                )
            )
    return recs


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("rollup") / "store", _records(7))


@pytest.fixture(scope="module")
def engines(store: Path) -> tuple[Engine, Engine]:
    sources = SourceSet([str(store)])
    return DuckDBEngine(sources.resolve), DuckDBEngine(sources.resolve, rollup=False)


def _iso(ns: int) -> str:
    return str(ns // S) + (f".{ns % S:09d}" if ns % S else "")


# (from, to) as offsets from T0: none, whole minutes, off-minute on both sides, inside
# one minute, across one minute boundary only, open on either side
_RANGES: list[tuple[int | None, int | None]] = [
    (None, None),
    (10 * MINUTE, 70 * MINUTE),
    (10 * MINUTE + 17 * S + 5, 130 * MINUTE + 59 * S),
    (61 * MINUTE + 3 * S, 61 * MINUTE + 40 * S),
    (61 * MINUTE + 30 * S, 62 * MINUTE + 30 * S),
    (95 * MINUTE + 1, None),
    (None, 33 * MINUTE - 1),
]
_FILTERS: list[list[str]] = [
    [],
    ["exporter=192.0.2.2"],
    ["direction=egress", "protocol=udp"],
    ["dscp=EF", "dscp=AF11"],
    ["ecn=unknown"],
    ["interface=2", "class=voice"],
    ["vlan=10", "action=acct", "domain=256"],
    ["group=Telephony", "ip_version=4"],
    ["tos=184-185"],
    ["source=ipfix", "dscp_out=0"],
    ["src=10.0.1.0/24"],  # addresses and ports: records only
    ["port=443"],
]


def _pairs() -> list[tuple[str, int, int]]:
    return [(name, r, f) for name in REPORTS for r in range(len(_RANGES)) for f in (0, 1, 3)]


def _ask(
    engine: Engine,
    name: str,
    span: tuple[int | None, int | None],
    filters: list[str],
    **options: Any,
) -> dict[str, Any]:
    start = None if span[0] is None else _iso(T0 + span[0])
    end = None if span[1] is None else _iso(T0 + span[1])
    answer = report(engine, name, filters=filters, start=start, end=end, **options).to_json()
    answer["meta"].pop("engine")
    return answer


@pytest.mark.parametrize(("name", "span", "filters"), _pairs())
def test_every_report_and_range_is_exact(
    engines: tuple[Engine, Engine], name: str, span: int, filters: int
) -> None:
    fast, records = engines
    got = _ask(fast, name, _RANGES[span], _FILTERS[filters])
    assert got == _ask(records, name, _RANGES[span], _FILTERS[filters])
    assert got["meta"]["totals"]["flows"] > 0 or span == 3  # the range holds records


@pytest.mark.parametrize("filters", _FILTERS)
@pytest.mark.parametrize("name", ["top-dscp", "timeline", "ecn", "silent-exporters"])
def test_every_filter_is_exact(
    engines: tuple[Engine, Engine], name: str, filters: list[str]
) -> None:
    fast, records = engines
    span = _RANGES[2]
    assert _ask(fast, name, span, filters) == _ask(records, name, span, filters)


@pytest.mark.parametrize("interval_s", [None, 60, 300, 3600, 90, 10])
@pytest.mark.parametrize(
    "options", [{}, {"key": "group"}, {"side": "out"}, {"by": "packets"}, {"by": "flows"}]
)
def test_intervals_keys_and_sides_are_exact(
    engines: tuple[Engine, Engine], interval_s: int | None, options: dict[str, Any]
) -> None:
    fast, records = engines
    for name in ("top-dscp", "groups", "timeline"):
        for span in (_RANGES[0], _RANGES[2]):
            got = _ask(fast, name, span, [], interval_s=interval_s, **options)
            assert got == _ask(records, name, span, [], interval_s=interval_s, **options)


def test_a_summary_query_reads_the_rollups(engines: tuple[Engine, Engine]) -> None:
    """The fast engine does read rollups (else the comparisons above prove nothing)."""
    fast, records = engines
    assert "rollup_flows" in fast.relation(None, None, True)
    assert "rollup_flows" in fast.relation(T0 + 17, T0 + 50 * MINUTE + 3, True)
    assert "rollup_flows" not in fast.relation(None, None, False)
    assert "rollup_flows" not in records.relation(None, None, True)
    # under one whole minute: records only
    assert "rollup_flows" not in fast.relation(T0 + S, T0 + 59 * S, True)


def test_rollups_live_beside_store_files_and_are_not_store_files(store: Path) -> None:
    files = store_files(str(store))
    assert len(files) >= 3  # three hours, three partitions
    for file in files:
        rollup = Path(rollup_path(file))
        assert rollup.parent == Path(file).parent / ROLLUP_DIR
        assert rollup.is_file()
        metadata = pq.read_schema(rollup).metadata
        assert metadata[b"diffserv.rollup_version"] == b"1"
        status = os.stat(file)
        assert (
            metadata[b"diffserv.rollup_source"] == f"{status.st_size}:{status.st_mtime_ns}".encode()
        )
        summed = pq.read_table(rollup)
        records = pq.read_table(file)
        assert sum(summed.column("n").to_pylist()) == records.num_rows
        assert sum(summed.column("bytes").to_pylist()) == sum(records.column("bytes").to_pylist())
    assert not any(ROLLUP_DIR in f for f in files)
    # the store's documented DuckDB query (its glob enters dot directories) sees records only
    glob = str(store / "**" / "*.parquet")
    found = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)")
    assert found.fetchall() == [(1500 + 6 * 120,)]
    assert read_store(str(store)).num_rows == 1500 + 6 * 120


def test_a_rollup_sums_addresses_and_ports_away(tmp_path: Path) -> None:
    recs = [
        Rec(first_ns=T0 + i * S, saddr=f"10.1.{i // 250}.{i % 250 + 1}", sport=1024 + i, ds=184)
        for i in range(600)
    ]
    store = write_store(tmp_path / "store", recs)
    DuckDBEngine(SourceSet([str(store)]).resolve)
    (file,) = store_files(str(store))
    summed = pq.read_table(rollup_path(file))
    assert summed.num_rows == 10  # ten minutes, one mark, one exporter
    assert sorted(summed.column("n").to_pylist()) == [60] * 10
    assert sorted(summed.column("bytes").to_pylist()) == [60_000] * 10


def _copy_store(tmp_path: Path, recs: list[Rec]) -> Path:
    return write_store(tmp_path / "store", recs)


def test_rollups_are_reused_then_rebuilt_when_stale_or_damaged(tmp_path: Path) -> None:
    recs = _records(11, 400)
    store = _copy_store(tmp_path, recs)
    sources = SourceSet([str(store)])
    expected = _ask(DuckDBEngine(sources.resolve, rollup=False), "top-dscp", (None, None), [])
    assert _ask(DuckDBEngine(sources.resolve), "top-dscp", (None, None), []) == expected
    files = store_files(str(store))
    made = {f: os.stat(rollup_path(f)).st_mtime_ns for f in files}
    # a second engine finds them valid and writes nothing
    assert _ask(DuckDBEngine(sources.resolve), "top-dscp", (None, None), []) == expected
    assert {f: os.stat(rollup_path(f)).st_mtime_ns for f in files} == made
    # a store file that changed (here: only its time) and a rollup that is garbage
    status = os.stat(files[0])
    os.utime(files[0], ns=(status.st_atime_ns, status.st_mtime_ns + 5 * S))
    Path(rollup_path(files[1])).write_bytes(b"PAR1 not really")
    assert _ask(DuckDBEngine(sources.resolve), "top-dscp", (None, None), []) == expected
    assert os.stat(rollup_path(files[0])).st_mtime_ns != made[files[0]]
    assert pq.read_schema(rollup_path(files[1])).metadata[b"diffserv.rollup_version"] == b"1"
    assert os.stat(rollup_path(files[2])).st_mtime_ns == made[files[2]]


def test_an_unwritable_store_keeps_rollups_in_memory(tmp_path: Path) -> None:
    recs = _records(12, 300)
    store = _copy_store(tmp_path, recs)
    files = store_files(str(store))
    for file in files:  # the rollup directory cannot be made: a file is in the way
        Path(file).parent.joinpath(ROLLUP_DIR).write_text("not a directory")
    sources = SourceSet([str(store)])
    fast = DuckDBEngine(sources.resolve)
    assert "rollup_flows" in fast.relation(None, None, True)
    for name in ("top-dscp", "timeline", "tos"):
        got = _ask(fast, name, _RANGES[2], [])
        assert got == _ask(DuckDBEngine(sources.resolve, rollup=False), name, _RANGES[2], [])
    for file in files:
        assert Path(file).parent.joinpath(ROLLUP_DIR).read_text() == "not a directory"
        assert not list(Path(file).parent.glob(".*.tmp"))


def test_a_new_store_file_gets_its_rollup_on_refresh(tmp_path: Path) -> None:
    recs = _records(13, 300)
    store = _copy_store(tmp_path, recs[:150])
    sources = SourceSet([str(store)])
    fast = DuckDBEngine(sources.resolve)
    first = _ask(fast, "top-dscp", (None, None), [])
    assert first["meta"]["totals"]["flows"] == 150
    write_store(store, recs[150:])  # a collector closes more files into the store
    fast.refresh()
    again = _ask(fast, "top-dscp", (None, None), [])
    assert again["meta"]["totals"]["flows"] == len(recs)
    assert again == _ask(DuckDBEngine(sources.resolve, rollup=False), "top-dscp", (None, None), [])
    assert all(os.path.isfile(rollup_path(f)) for f in store_files(str(store)))


def test_records_before_1970_fall_in_floored_minutes(tmp_path: Path) -> None:
    """Minutes and intervals floor a time before the epoch (-30 s is in [-60 s, 0))."""
    recs = [
        Rec(first_ns=t * S // 4, saddr=f"10.2.0.{i % 200 + 1}", ds=184 if i % 2 else 0)
        for i, t in enumerate(range(-4 * 200, 4 * 100, 3))
    ]
    store = write_store(tmp_path / "store", recs)
    sources = SourceSet([str(store)])
    fast, records = DuckDBEngine(sources.resolve), DuckDBEngine(sources.resolve, rollup=False)
    spans = [(None, None), ("1969-12-31T23:57:54.5Z", "1970-01-01T00:01:01Z"),
             ("1969-12-31T23:58:00Z", "1970-01-01T00:01:00Z")]  # fmt: skip
    for start, end in spans:
        for name in ("timeline", "top-dscp"):
            got = report(fast, name, start=start, end=end, interval_s=60).to_json()
            want = report(records, name, start=start, end=end, interval_s=60).to_json()
            got["meta"].pop("engine"), want["meta"].pop("engine")
            assert got == want
    timeline = report(fast, "timeline", interval_s=60).to_json()["rows"]
    starts = sorted({row["start_ns"] for row in timeline})
    assert starts == [-240 * S, -180 * S, -120 * S, -60 * S, 0, 60 * S]
