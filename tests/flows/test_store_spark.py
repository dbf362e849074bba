"""Spark reads the flow store: the same rows, DSCP mix and times as DuckDB, partitions typed.

The store keeps first_seen/last_seen as Parquet TIMESTAMP(NANOS) (flowacct's times are
exact to the nanosecond). Spark 4 refuses that type by default; the two settings that
read it are checked here, as docs/flowstore.md tells users to use them:
``spark.sql.legacy.parquet.nanosAsLong`` (times as bigint nanoseconds) and the preview
``spark.sql.timestampNanosTypes.enabled`` (times as timestamps, in SQL).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from diffserv.cli.main import main
from support import synth
from support.policies import account_everything
from support.tools import require_tool, unavailable

try:
    from pyspark.sql import SparkSession
except ImportError:  # make setup installs it with the dev extras; CI fails without it
    SparkSession = None

pytestmark = pytest.mark.tools

T0 = 1_767_225_600_000_000_000 - 1_200_000_000_000  # 23:40 UTC: records cross midnight


def _make_store(tmp: Path) -> Path:
    packets = []
    for i in range(600):
        frame = synth.simple_frame(
            version=6 if i % 7 == 0 else 4,
            proto="udp" if i % 3 else "tcp",
            src="2001:db8::5" if i % 7 == 0 else f"10.4.0.{i % 9}",
            dst="2001:db8::ff" if i % 7 == 0 else "192.168.3.3",
            sport=42000 + i % 9,
            dport=443,
            dscp=[0, 10, 46, 34][i % 4],
            ecn=(i // 4) % 2,
            payload_len=100 + i,
        )
        packets.append(synth.Packet(frame, ts_ns=T0 + i * 3_999_999_937))
    capture = tmp / "mix.pcap"
    synth.write_file(capture, synth.pcap_bytes(packets, nanosecond=True))
    policy = tmp / "acct.conf"
    policy.write_text(account_everything(timeout_ms=30_000))
    store = tmp / "store"
    argv = ["run", str(policy), str(capture), "-o", str(tmp / "out.pcap"), "-q"]
    assert main([*argv, "--flows", f"{store}/"]) == 0
    return store


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_tool("java")
    if SparkSession is None:
        unavailable("pyspark is required (make setup installs the dev extras)")
    scratch = tmp_path_factory.mktemp("spark")
    # the driver binds to loopback only (Spark would pick the host's first interface)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[1]")
        .appName("diffserv-store-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.local.dir", str(scratch))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def _duckdb(store: Path, sql: str) -> list[tuple[Any, ...]]:
    view = f"read_parquet('{store}/**/*.parquet', hive_partitioning = true)"
    return duckdb.sql(sql.replace("FLOWS", view)).fetchall()


def test_spark_reads_times_as_nanoseconds_and_agrees_with_duckdb(
    spark: Any, tmp_path: Path
) -> None:
    store = _make_store(tmp_path)
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    try:
        frame = spark.read.parquet(str(store))
        frame.createOrReplaceTempView("flows")
        types = dict(frame.dtypes)
        assert types["first_seen"] == "bigint" and types["date"] == "date"
        assert types["hour"] == "int"  # hour=5, not 05: a number to Spark too
        got = spark.sql(
            "SELECT dscp_in, ecn_in, count(*), sum(packets), sum(bytes), min(first_seen), "
            "max(last_seen) FROM flows GROUP BY dscp_in, ecn_in ORDER BY dscp_in, ecn_in"
        ).collect()
        partitions = spark.sql(
            "SELECT cast(date AS string), hour, count(*) FROM flows GROUP BY 1, 2 ORDER BY 1, 2"
        ).collect()
    finally:
        spark.conf.unset("spark.sql.legacy.parquet.nanosAsLong")
    expected = _duckdb(
        store,
        "SELECT dscp_in, ecn_in, count(*), sum(packets), sum(bytes), epoch_ns(min(first_seen)), "
        "epoch_ns(max(last_seen)) FROM FLOWS GROUP BY ALL ORDER BY dscp_in, ecn_in",
    )
    assert [tuple(int(v) for v in row) for row in got] == [
        tuple(int(v) for v in row) for row in expected
    ]
    assert len(expected) == 8  # four DSCPs, each with ECN 0 and 1
    assert [tuple(r) for r in partitions] == [
        (str(d), h, n)
        for d, h, n in _duckdb(
            store, "SELECT date, hour, count(*) FROM FLOWS GROUP BY ALL ORDER BY ALL"
        )
    ]
    assert len(partitions) >= 2  # the records cross midnight


def test_spark_queries_nanosecond_timestamps_in_sql(spark: Any, tmp_path: Path) -> None:
    store = _make_store(tmp_path)
    window = "first_seen >= TIMESTAMP '2026-01-01 00:00:00' AND dscp_in = 46"
    spark.conf.set("spark.sql.timestampNanosTypes.enabled", "true")
    try:
        spark.read.parquet(str(store)).createOrReplaceTempView("flows")
        (row,) = spark.sql(f"SELECT count(*), sum(bytes) FROM flows WHERE {window}").collect()
    finally:
        spark.conf.unset("spark.sql.timestampNanosTypes.enabled")
    (expected,) = _duckdb(
        store,
        "SELECT count(*), sum(bytes) FROM FLOWS WHERE "
        + window.replace("TIMESTAMP '2026-01-01 00:00:00'", "TIMESTAMPTZ '2026-01-01 00:00:00+00'"),
    )
    assert (int(row[0]), int(row[1])) == (int(expected[0]), int(expected[1]))
    assert int(expected[0]) > 0


def test_spark_without_either_setting_refuses_the_times(spark: Any, tmp_path: Path) -> None:
    # what a user meets first, and what the docs answer
    store = _make_store(tmp_path)
    with pytest.raises(Exception, match=r"Illegal Parquet type: INT64 \(TIMESTAMP\(NANOS,true\)\)"):
        spark.read.parquet(str(store)).select("first_seen").collect()
