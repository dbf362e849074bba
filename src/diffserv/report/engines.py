"""Opening the SQL engine a report runs on: DuckDB in-process (default) or Spark."""

from __future__ import annotations

from diffserv.errors import UsageError
from diffserv.report.choices import ENGINES
from diffserv.report.duckdb_engine import DuckDBEngine
from diffserv.report.queries import Engine
from diffserv.report.sources import SourceSet


def open_engine(
    name: str, sources: SourceSet, *, master: str | None = None, from_ns: int | None = None
) -> Engine:
    """The engine ``name`` over ``sources`` (partitions ending before ``from_ns`` skipped)."""
    if name == "duckdb":
        if master is not None:
            raise UsageError("--master is an option of --engine spark")
        return DuckDBEngine(lambda: sources.resolve(from_ns))
    if name == "spark":
        from diffserv.report.spark_engine import SparkEngine  # noqa: PLC0415 (needs a JVM)

        spark: Engine = SparkEngine(sources.resolve(from_ns), master=master)
        return spark
    raise UsageError(f"no engine {name!r} (engines: {', '.join(ENGINES)})")
