"""The flow store as its readers see it: DuckDB over the glob, nulls, round trips, rotation,
the schema table in docs/flowstore.md, and files it refuses."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.errors import HostSystemError, InputDataError
from diffserv.flows.schema import BATCH_COLUMNS, STORE_VERSION, STORE_VERSION_KEY, make_batch
from diffserv.flows.store import (
    STORE_COLUMNS,
    StoreWriter,
    arrow_schema,
    iter_store_batches,
    read_store,
    store_files,
)
from support.flow_batches import HOUR, T0, flow_batches, rows_of, simple_batch

ROOT = Path(__file__).resolve().parents[2]
GLOB = "read_parquet('{root}/**/*.parquet', hive_partitioning = true)"


def duck(root: Path, query: str) -> list[tuple[object, ...]]:
    with duckdb.connect() as con:
        return con.sql(query.format(store=GLOB.format(root=root))).fetchall()


def write(root: Path, *batches: object, **options: int) -> StoreWriter:
    writer = StoreWriter(str(root), **options)  # type: ignore[arg-type]
    for batch in batches:
        writer.add(batch)  # type: ignore[arg-type]
    writer.close()
    return writer


def test_duckdb_groups_by_dscp_filters_on_time_and_sees_the_partitions(tmp_path: Path) -> None:
    dscp = np.array([46, 0, 10, 46, 0, 46] * 10)  # a flow a minute for an hour, from 23:30
    batch = simple_batch(60, start_ns=T0 - HOUR // 2, dscp=dscp, seed=3)
    write(tmp_path, batch)
    packets = batch.columns["packets"]
    rows = duck(
        tmp_path,
        "SELECT dscp_in, count(*), sum(packets) FROM {store} "
        "WHERE first_seen >= TIMESTAMPTZ '2026-01-01 00:00:00+00' "
        "AND first_seen < TIMESTAMPTZ '2026-01-01 00:20:00+00' "
        "GROUP BY dscp_in ORDER BY dscp_in",
    )
    window = slice(30, 50)  # minutes 00:00 .. 00:19
    expected = []
    for value in (0, 10, 46):
        chosen = dscp[window] == value
        expected.append((value, int(chosen.sum()), int(packets[window][chosen].sum())))
    assert rows == expected
    partitions = duck(
        tmp_path, "SELECT date, hour, count(*) FROM {store} GROUP BY ALL ORDER BY ALL"
    )
    assert [(str(d), h, c) for d, h, c in partitions] == [
        ("2025-12-31", 23, 30),
        ("2026-01-01", 0, 30),
    ]
    assert sorted(p.relative_to(tmp_path).parts[:2] for p in tmp_path.rglob("*.parquet")) == [
        ("date=2025-12-31", "hour=23"),
        ("date=2026-01-01", "hour=0"),
    ]


DUCK_TYPES = {
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "string": "VARCHAR",
    "dictionary<values=string, indices=int32, ordered=0>": "VARCHAR",
    "timestamp[ns, tz=UTC]": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ_NS"),
}


def test_duckdb_types_follow_the_schema(tmp_path: Path) -> None:
    write(tmp_path, simple_batch(3))
    described = {name: kind for name, kind, *_ in duck(tmp_path, "DESCRIBE SELECT * FROM {store}")}
    expected_names = [c.name for c in STORE_COLUMNS] + ["date", "hour"]
    assert list(described) == expected_names
    for column in STORE_COLUMNS:
        want = DUCK_TYPES[str(column.arrow)]
        assert described[column.name] in (want if isinstance(want, tuple) else (want,))
    assert described["date"] == "DATE"
    assert described["hour"] == "BIGINT"
    schema = pq.read_schema(next(tmp_path.rglob("*.parquet")))
    assert schema.equals(arrow_schema(), check_metadata=False)
    assert schema.metadata[STORE_VERSION_KEY] == str(STORE_VERSION).encode()
    assert "date" not in schema.names and "hour" not in schema.names
    codec = pq.ParquetFile(next(tmp_path.rglob("*.parquet"))).metadata.row_group(0).column(0)
    assert codec.compression == "ZSTD"


def test_unknown_is_null_and_zero_stays_zero(tmp_path: Path) -> None:
    batch = simple_batch(4, dscp=np.array([46, 46, 0, 0]), ecn=np.array([-1, 0, -1, 1]))
    write(tmp_path, batch)
    rows = duck(tmp_path, "SELECT dscp_in, ecn_in, ds_out, action FROM {store} ORDER BY first_seen")
    assert rows == [
        (46, None, None, None),
        (46, 0, None, None),
        (0, None, None, None),
        (0, 1, None, None),
    ]


def test_times_keep_nanoseconds_and_addresses_are_text(tmp_path: Path) -> None:
    batch = simple_batch(1, start_ns=T0 + 123_456_789)
    write(tmp_path, batch)
    (row,) = duck(tmp_path, "SELECT epoch_ns(first_seen), saddr, daddr FROM {store}")
    assert row == (T0 + 123_456_789, "10.0.0.1", "192.168.1.1")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(flow_batches(), min_size=1, max_size=3),
    row_group_rows=st.integers(1, 40),
    max_buffered_rows=st.integers(5, 100),
)
def test_round_trip_gives_back_every_record(
    batches: list[object], row_group_rows: int, max_buffered_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        writer = write(
            root, *batches, row_group_rows=row_group_rows, max_buffered_rows=max_buffered_rows
        )
        back = list(iter_store_batches(str(root)))
        assert rows_of(back) == rows_of(batches)  # type: ignore[arg-type]
        assert writer.rows_written == sum(b.n for b in batches)  # type: ignore[attr-defined]
        assert read_store(str(root)).num_rows == writer.rows_written
        for path in root.rglob("*.parquet"):
            sizes = [
                pq.ParquetFile(path).metadata.row_group(i).num_rows
                for i in range(pq.ParquetFile(path).metadata.num_row_groups)
            ]
            assert all(size <= row_group_rows for size in sizes)
        assert not [p for p in root.rglob("*") if p.name.startswith(".")]


def test_row_groups_are_row_group_rows_long(tmp_path: Path) -> None:
    write(tmp_path, simple_batch(250, step_ns=1000), row_group_rows=100)
    (path,) = tmp_path.rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100, 100, 50]


def test_max_buffered_rows_finishes_the_files(tmp_path: Path) -> None:
    """The memory bound: the 4th batch of 30 reaches 100 rows waiting, so files appear."""
    writer = StoreWriter(str(tmp_path), max_buffered_rows=100)
    for i in range(3):
        writer.add(simple_batch(30, start_ns=T0 + i * 10**9, step_ns=1000, seed=i))
        assert writer.buffered_rows == 30 * (i + 1)
        assert store_files(str(tmp_path)) == []
    writer.add(simple_batch(30, start_ns=T0 + 5 * 10**9, step_ns=1000, seed=5))
    assert writer.buffered_rows == 0
    assert writer.files_written == 1 and writer.rows_written == 120
    assert len(store_files(str(tmp_path))) == 1
    assert read_store(str(tmp_path)).num_rows == 120
    writer.close()


def test_wall_clock_rotation(tmp_path: Path) -> None:
    now = [0]
    writer = StoreWriter(str(tmp_path), rotate_ns=10 * 10**9, clock=lambda: now[0])
    writer.add(simple_batch(5))
    now[0] = 9 * 10**9
    assert writer.tick() == []
    writer.add(simple_batch(5, seed=1))
    assert store_files(str(tmp_path)) == []
    now[0] = 10 * 10**9  # ten seconds after the oldest waiting row
    (path,) = writer.tick()
    assert store_files(str(tmp_path)) == [path]
    assert writer.buffered_rows == 0
    writer.add(simple_batch(5, seed=2))
    assert writer.tick() == []  # a new interval starts with the next row
    (second,) = writer.rotate()  # SIGHUP / --rotate
    assert second != path
    assert writer.close() == []
    assert read_store(str(tmp_path)).num_rows == 15


def test_abort_keeps_complete_files_and_no_temporaries(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path / "s"))
    writer.add(simple_batch(10))
    writer.abort()
    assert [p.name.startswith(".") for p in (tmp_path / "s").rglob("*")].count(True) == 0
    assert read_store(str(tmp_path / "s")).num_rows == 10
    empty = StoreWriter(str(tmp_path / "new"))
    empty.abort()
    assert empty.removed_root and not (tmp_path / "new").exists()


def test_discard_removes_what_the_writer_wrote(tmp_path: Path) -> None:
    write(tmp_path, simple_batch(3))
    before = store_files(str(tmp_path))
    writer = StoreWriter(str(tmp_path), max_buffered_rows=5)
    writer.add(simple_batch(5, start_ns=T0 + 5 * HOUR))
    writer.add(simple_batch(2))
    assert writer.discard() == 1
    assert store_files(str(tmp_path)) == before
    assert not (tmp_path / "date=2026-01-01" / "hour=5").exists()


def test_a_batch_the_schema_cannot_hold_is_refused_before_any_write(tmp_path: Path) -> None:
    batch = simple_batch(2)
    batch.columns["ds_in"][0] = 300
    writer = StoreWriter(str(tmp_path))
    with pytest.raises(ValueError, match="ds_in holds 300"):
        writer.add(batch)
    with pytest.raises(ValueError, match="action_code 3 has no name"):
        writer.add(
            make_batch(
                "ipfix",
                "",
                0,
                1,
                {
                    **{k: v[:1] for k, v in simple_batch(1).columns.items()},
                    "action_code": np.array([3], np.int32),
                },
            )
        )
    assert writer.close() == []


def test_reader_skips_hidden_and_temporary_files(tmp_path: Path) -> None:
    write(tmp_path, simple_batch(3))
    part = next(tmp_path.rglob("*.parquet")).parent
    (part / ".flows-x.parquet.tmp").write_bytes(b"PAR1 half")
    (part / "_SUCCESS").write_bytes(b"")
    assert duck(tmp_path, "SELECT count(*) FROM {store}") == [(3,)]  # the glob skips them too
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.parquet").write_bytes(b"junk")
    assert len(store_files(str(tmp_path))) == 1
    assert read_store(str(tmp_path)).num_rows == 3


def _write_foreign(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_reader_refuses_newer_versions_and_foreign_columns(tmp_path: Path) -> None:
    write(tmp_path / "a", simple_batch(2))
    table = pq.read_table(next((tmp_path / "a").rglob("*.parquet")))
    newer = table.replace_schema_metadata({STORE_VERSION_KEY: str(STORE_VERSION + 1).encode()})
    _write_foreign(tmp_path / "b" / "date=2026-01-01" / "hour=0" / "flows-new.parquet", newer)
    with pytest.raises(InputDataError, match=r"flows-new\.parquet: written by a newer diffserv"):
        read_store(str(tmp_path / "b"))
    dropped = table.drop_columns(["vlan"])
    _write_foreign(tmp_path / "c" / "x.parquet", dropped)
    with pytest.raises(
        InputDataError, match=r"x\.parquet: not the flow store's columns .*no column vlan"
    ):
        list(iter_store_batches(str(tmp_path / "c")))
    plain = pa.table({"a": [1]})
    _write_foreign(tmp_path / "d" / "y.parquet", plain)
    with pytest.raises(InputDataError, match=r"y\.parquet: not a flow store file"):
        read_store(str(tmp_path / "d"))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "z.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputDataError, match=r"z\.parquet: not a valid Parquet file"):
        read_store(str(tmp_path / "e"))
    with pytest.raises(HostSystemError, match="No such file"):
        read_store(str(tmp_path / "missing"))


def test_store_cannot_be_created_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(HostSystemError, match="is not a directory"):
        StoreWriter(str(tmp_path / "f" / "store"))


def schema_table() -> str:
    """The column table of docs/flowstore.md, from the schema itself."""
    lines = ["| column | Parquet type | null when unknown | meaning |", "|---|---|---|---|"]
    for column in STORE_COLUMNS:
        arrow = str(column.arrow).replace(
            "dictionary<values=string, indices=int32, ordered=0>", "dictionary<string>"
        )
        null = "yes" if column.nullable else "no"
        lines.append(f"| `{column.name}` | {arrow} | {null} | {column.doc} |")
    return "\n".join(lines)


def test_docs_schema_table_is_the_schema() -> None:
    text = (ROOT / "docs" / "flowstore.md").read_text()
    assert schema_table() in text, "regenerate the table: tests/flows/test_store.py schema_table()"
    assert [c.name for c in BATCH_COLUMNS if c.name.endswith("_lo")] == ["saddr_lo", "daddr_lo"]
    assert re.search(rf"store version\D+{STORE_VERSION}", text)


def test_files_are_named_and_placed_as_documented(tmp_path: Path) -> None:
    write(tmp_path, simple_batch(1, start_ns=T0 + 13 * HOUR))
    (path,) = tmp_path.rglob("*.parquet")
    rel = path.relative_to(tmp_path)
    assert rel.parts[:2] == ("date=2026-01-01", "hour=13")
    assert re.fullmatch(rf"flows-\d{{8}}T\d{{6}}Z-{os.getpid()}-\d+\.parquet", rel.parts[2])
