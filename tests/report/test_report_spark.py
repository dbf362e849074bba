"""Every report on Spark equals the same report on DuckDB, row for row.

The two engines share the view and the SQL; what can differ is how each reads the store
(nanosecond times, unsigned counters as decimals, Arrow tables written out for Spark),
how each binds parameters, orders NULLs and evaluates IPv6 prefix filters. The store
here has all of that: IPv4 and IPv6, unknown and re-marked DSCPs, sampled records,
several exporters and hours, a record file next to the store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffserv.flows.schema import FlowBatch, make_batch
from diffserv.flows.store_write import StoreWriter
from diffserv.report.duckdb_engine import DuckDBEngine
from diffserv.report.filters import build_selection
from diffserv.report.groups import default_groups
from diffserv.report.queries import REPORTS, Engine, ReportRequest, run_report
from diffserv.report.sources import SourceSet
from support.collecting import diffserv_env
from support.flow_batches import HOUR, T0, v4
from support.tools import require_tool, unavailable

try:
    import pyspark
except ImportError:  # make setup installs it with the dev extras; CI fails without it
    pyspark = None

pytestmark = pytest.mark.tools

V6_HI = 0x20010DB8 << 32  # 2001:db8::/32


def _batch(
    source: str,
    exporter: str,
    n: int,
    *,
    offset_ns: int,
    v6: bool = False,
    dscps: list[int] | None = None,
    sampling: list[int] | None = None,
    remark: bool = False,
    seed: int = 0,
) -> FlowBatch:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    first = T0 - HOUR // 2 + offset_ns + i * (3 * HOUR // n)  # over four hours
    if dscps is None:
        dscp = np.full(n, -1, np.int16)
        ecn = np.full(n, -1, np.int16)
        ds = np.full(n, -1, np.int16)
    else:
        dscp = np.array([dscps[k % len(dscps)] for k in range(n)], np.int16)
        ecn = np.where(dscp >= 0, (i // 3) % 4, -1).astype(np.int16)
        ds = np.where(dscp >= 0, (dscp << 2) | ecn, -1).astype(np.int16)
    given: dict[str, Any] = {
        "first_ns": first,
        "last_ns": first + rng.integers(1, 90_000_000_000, n),
        "ip_version": np.full(n, 6 if v6 else 4, np.uint8),
        "saddr_hi": np.full(n, V6_HI if v6 else 0, np.uint64),
        "saddr_lo": (
            (np.uint64(5) + (i % 7).astype(np.uint64))
            if v6
            else np.uint64(v4("10.1.0.0")) + (i % 13).astype(np.uint64)
        ),
        "daddr_hi": np.full(n, V6_HI if v6 else 0, np.uint64),
        "daddr_lo": np.full(n, 0xFF if v6 else v4("192.168.7.1"), np.uint64)
        + (i % 3).astype(np.uint64),
        "sport": 40_000 + i % 5,
        "dport": np.array([[443, 53, 5060, 0, 8080][k % 5] for k in range(n)]),
        "protocol": np.array([[6, 17, 17, 1, 6][k % 5] for k in range(n)]),
        "ds_in": ds,
        "dscp_in": dscp,
        "ecn_in": ecn,
        "prec_in": np.where(dscp >= 0, dscp >> 3, -1).astype(np.int16),
        "in_if": 1 + i % 3,
        "out_if": 10 + i % 2,
        "direction": (i % 2).astype(np.int8),
        "packets": rng.integers(1, 5_000, n).astype(np.uint64),
        "bytes": rng.integers(64, 10**7, n).astype(np.uint64),
    }
    if sampling is not None:
        given["sampling"] = np.array([sampling[k % len(sampling)] for k in range(n)], np.int64)
    if remark:  # the device re-marks AF11 to DF, keeps the rest; some records say nothing
        out = np.where(dscp == 10, 0, dscp).astype(np.int16)
        out = np.where(i % 4 == 3, -1, out).astype(np.int16)
        given["dscp_out"] = out
        given["ecn_out"] = np.where(out >= 0, ecn, -1).astype(np.int16)
        given["ds_out"] = np.where(out >= 0, (out << 2) | np.maximum(ecn, 0), -1).astype(np.int16)
        given["prec_out"] = np.where(out >= 0, out >> 3, -1).astype(np.int16)
    return make_batch(source, exporter, 7, n, given, actions=("acct",), classes=("web",))


def _changing_flow() -> FlowBatch:
    """One 5-tuple whose mark changes over its records (the remark report's changed flows)."""
    n = 6
    first = T0 + 123 + np.arange(n) * 60_000_000_000
    dscp = np.array([0, 0, 46, 46, 34, 0], np.int16)
    given = {
        "first_ns": first,
        "last_ns": first + 1_000,
        "ip_version": np.full(n, 4, np.uint8),
        "saddr_hi": np.zeros(n, np.uint64),
        "saddr_lo": np.full(n, v4("10.9.9.9"), np.uint64),
        "daddr_hi": np.zeros(n, np.uint64),
        "daddr_lo": np.full(n, v4("10.8.8.8"), np.uint64),
        "sport": np.full(n, 5004),
        "dport": np.full(n, 5004),
        "protocol": np.full(n, 17),
        "ds_in": dscp << 2,
        "dscp_in": dscp,
        "ecn_in": np.zeros(n, np.int16),
        "prec_in": dscp >> 3,
        "packets": np.full(n, 10, np.uint64) + np.arange(n, dtype=np.uint64),
        "bytes": np.full(n, 99_999_000, np.uint64) + np.arange(n, dtype=np.uint64),
    }
    return make_batch("flowacct", "", 0, n, given)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-spark") / "store"
    writer = StoreWriter(str(root))
    mix = [0, 10, 46, 34, 26, -1, 46, 0, 8]
    writer.add(_batch("ipfix", "192.0.2.1", 90, offset_ns=1, dscps=mix, remark=True, seed=1))
    writer.add(
        _batch("netflow9", "2001:db8::9", 60, offset_ns=2, v6=True, dscps=mix, sampling=[1, 100])
    )
    writer.add(_batch("netflow9", "192.0.2.2", 40, offset_ns=3, dscps=[0, 46], sampling=[10]))
    writer.add(_batch("netflow5", "192.0.2.3", 30, offset_ns=4, dscps=[0], seed=3))
    writer.add(_batch("ipfix", "192.0.2.4", 20, offset_ns=5, dscps=None, seed=4))
    writer.add(_changing_flow())
    writer.close()
    return root


@pytest.fixture(scope="module")
def engines(store: Path) -> Iterator[tuple[Engine, Engine]]:
    require_tool("java")
    if pyspark is None:
        unavailable("pyspark is required (make setup installs the dev extras)")
    from diffserv.report.spark_engine import SparkEngine  # noqa: PLC0415 (needs pyspark)

    sources = SourceSet([str(store)])
    duck = DuckDBEngine(sources.resolve)
    spark = SparkEngine(sources.resolve(), resolve=sources.resolve)
    try:
        yield duck, spark
    finally:
        spark.close()
        duck.close()


def _both(engines: tuple[Engine, Engine], request: ReportRequest) -> tuple[Any, Any]:
    duck, spark = engines
    a, b = run_report(duck, request), run_report(spark, request)
    assert a.meta.pop("engine") == "duckdb" and b.meta.pop("engine") == "spark"
    return a, b


# every report by DSCP, and by group those whose SQL the group key changes most (each
# Spark query costs about a second on two cores)
@pytest.mark.parametrize(
    ("report", "key"),
    [(report, "dscp") for report in REPORTS]
    + [(report, "group") for report in ("top-dscp", "apps", "timeline", "remark")],
)
def test_spark_report_equals_duckdb(engines: tuple[Engine, Engine], report: str, key: str) -> None:
    groups = default_groups()
    request = ReportRequest(report, build_selection([], groups), groups, top=5, key=key)
    duck, spark = _both(engines, request)
    assert spark.rows == duck.rows
    assert spark.extra == duck.extra
    assert spark.meta == duck.meta
    if report not in ("remark", "silent-exporters"):
        assert duck.rows  # the comparison compares something


def test_spark_sees_sampling_remarks_and_silent_exporters(
    engines: tuple[Engine, Engine],
) -> None:
    """The store has what the comparison above is meant to cover."""
    groups = default_groups()
    _, spark = engines
    assert spark.sampled
    top = run_report(spark, ReportRequest("top-dscp", build_selection([], groups), groups))
    assert top.meta["sampled_records"] == 70 and top.meta["egress_marks"]
    assert {row["side"] for row in top.rows} == {"in", "out"}
    assert None in {row["dscp"] for row in top.rows}
    remark = run_report(spark, ReportRequest("remark", build_selection([], groups), groups))
    assert any(row["changed"] for row in remark.rows)
    assert remark.extra["changed_flows"][0]["marks"] == ["DF", "EF", "AF41", "DF"]
    silent = run_report(
        spark, ReportRequest("silent-exporters", build_selection([], groups), groups)
    )
    silent_exporters = {row["exporter"]: row["status"] for row in silent.rows}
    assert silent_exporters["192.0.2.4"] == "no ToS field"


@pytest.mark.parametrize(
    "filters",
    [
        ["addr=2001:db8::/120"],  # an IPv6 prefix: a Python UDF on Spark
        ["src=10.1.0.0/29", "dscp=EF", "dscp=AF11"],  # an IPv4 prefix: SQL arithmetic
        ["exporter=2001:db8::9", "port=443", "dscp=unknown"],
    ],
)
def test_spark_filters_equal_duckdb(engines: tuple[Engine, Engine], filters: list[str]) -> None:
    groups = default_groups()
    selection = build_selection(filters, groups, start="2026-01-01T00:00Z", end="2026-01-01T02:30Z")
    for report in ("flows",):
        request = ReportRequest(report, selection, groups, top=20, by="packets")
        duck, spark = _both(engines, request)
        assert spark.rows == duck.rows
        assert spark.meta == duck.meta
    assert duck.meta["totals"]["flows"] > 0


def test_cli_spark_json_equals_duckdb(store: Path) -> None:
    require_tool("java")
    if pyspark is None:
        unavailable("pyspark is required (make setup installs the dev extras)")
    # a capture next to the store: an Arrow table, which Spark reads from Parquet
    capture = Path(__file__).resolve().parents[2] / "examples" / "captures" / "edge.pcapng"
    paths = [str(store), str(capture)]
    options = ["--report", "apps", "--key", "group", "--json", "--engine"]
    outputs = {}
    for engine in ("duckdb", "spark"):
        done = subprocess.run(
            [sys.executable, "-m", "diffserv", "report", *paths, *options, engine],
            env={**diffserv_env(), "SPARK_LOCAL_IP": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs[engine] = json.loads(done.stdout)
    assert outputs["spark"]["rows"] == outputs["duckdb"]["rows"]
    assert outputs["spark"]["meta"]["engine"] == "spark"
    assert outputs["spark"]["meta"]["totals"] == outputs["duckdb"]["meta"]["totals"]


def test_spark_without_java_says_so_in_one_line(store: Path) -> None:
    if pyspark is None:
        unavailable("pyspark is required (make setup installs the dev extras)")
    env = {k: v for k, v in diffserv_env().items() if k != "JAVA_HOME"}
    bare = Path(shutil.which("python3") or sys.executable).parent
    env["PATH"] = os.pathsep.join(p for p in (str(bare), "/nonexistent") if p)
    if shutil.which("java", path=env["PATH"]):
        pytest.skip("java is next to python on PATH")
    done = subprocess.run(
        [sys.executable, "-m", "diffserv", "report", str(store), "--engine", "spark"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: Spark needs a Java runtime (java not found)"
    ]
