"""No reader ever sees half a store file: not while a writer works, not after it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

import diffserv
from diffserv.flows.store import StoreWriter, open_store_file, read_store, store_files
from support.flow_batches import T0, simple_batch

SOURCE_ROOT = str(Path(diffserv.__file__).resolve().parents[1])
TESTS_ROOT = str(Path(__file__).resolve().parents[1])

# A writer that never stops: files finish every 300 rows (max_buffered_rows), row groups of
# 64, batches spread over a few hours so several partitions are open at once.
CHILD = """
import sys
from diffserv.flows.store import StoreWriter
from support.flow_batches import HOUR, T0, simple_batch
writer = StoreWriter(sys.argv[1], row_group_rows=64, max_buffered_rows=300)
i = 0
print("ready", flush=True)
while True:
    writer.add(simple_batch(97, start_ns=T0 + (i % 5) * HOUR, step_ns=10**6, seed=i))
    i += 1
"""


def check_whole(root: Path) -> int:
    """Every visible file reads completely (all rows the footer promises); total rows."""
    total = 0
    for path in store_files(str(root)):
        parquet = open_store_file(path)  # footer, version and columns
        table = parquet.read()
        assert table.num_rows == parquet.metadata.num_rows
        total += table.num_rows
    return total


def test_killed_writer_leaves_only_whole_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE_ROOT, TESTS_ROOT])}
    for round_number, delay in enumerate((0.4, 0.9, 1.3)):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            deadline = time.monotonic() + delay
            reads = 0
            while time.monotonic() < deadline:  # read while the writer writes
                for path in root.rglob("*.parquet"):
                    table = pq.read_table(path)
                    assert table.num_rows == pq.ParquetFile(path).metadata.num_rows
                    reads += 1
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert reads > 0 or round_number == 0
        rows = check_whole(root)
        assert rows > 0 and rows % 97 == 0  # whole batches only: files hold what was added
        with duckdb.connect() as con:
            glob = f"read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
            ((count,),) = con.sql(f"SELECT count(*) FROM {glob}").fetchall()
        assert count == rows
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert all(p.name.endswith(".parquet.tmp") for p in leftovers)


def test_open_writer_shows_no_file_until_finished(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path), row_group_rows=10)
    writer.add(simple_batch(35, start_ns=T0, step_ns=1000))
    # three row groups are on disk already, but only under the hidden name
    assert list(tmp_path.rglob("*.parquet")) == []
    (temp,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert temp.name.startswith(".flows-") and temp.name.endswith(".parquet.tmp")
    writer.abort()
    assert not temp.exists()
    assert check_whole(tmp_path) == 35
    assert read_store(str(tmp_path)).num_rows == 35
