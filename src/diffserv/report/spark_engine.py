"""Reports on Spark: the same ``flows`` view and SQL as DuckDB, for stores on a cluster.

A flow store that outgrows one machine lives on shared storage, where Spark reads it
in place; everything a report computes stays exact integers, so a report on Spark
equals the same report on DuckDB row for row.

What differs from DuckDB is only how the data gets in:

* the store's times are Parquet ``TIMESTAMP(NANOS)``, which Spark refuses by default;
  ``spark.sql.legacy.parquet.nanosAsLong`` reads them as bigint nanoseconds, which is
  what the view wants anyway (no precision lost to Spark's microsecond timestamps);
* unsigned 64-bit counters read as ``decimal(20,0)``, so the scaled counters are
  ``DECIMAL(38,0)`` and rows come back as :class:`~decimal.Decimal`, made int here;
* record files and captures are Arrow tables in this process: they are written to a
  private temporary Parquet directory (pandas is not a dependency) and read from there
  (a cluster's executors must reach that path too, so they suit local masters);
* an IPv6 prefix filter is a Python UDF per prefix (per row; Spark has no 128-bit
  integers to do it in SQL).

The driver binds to loopback unless a master URL is given (a cluster must reach it).
"""

from __future__ import annotations

import contextlib
import decimal
import ipaddress
import itertools
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import pyarrow.parquet as pq

from diffserv.errors import HostSystemError, InternalError, UsageError, first_line
from diffserv.report.filters import PrefixFunction
from diffserv.report.sources import Sources
from diffserv.report.view import VIEW_COLUMNS, view_select

DEFAULT_MASTER: Final = "local[2]"
_NAMES: Final = itertools.count()
_V4_MAPPED: Final = 0xFFFF << 32
# Spark's WARN lines on start-up (native Hadoop, local dirs) are noise on a report's
# terminal; PySpark's own two lines about the default log level still show.
_LOG4J: Final = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %p %c{1}: %m%n
"""


def _java_found() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return True
    return shutil.which("java") is not None


def spark_message(exc: BaseException) -> str:
    """One line saying what Spark refused (a Java exception's own message where there is one)."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return first_line(str(java.toString())) or type(exc).__name__
        except Exception:  # the gateway itself is gone
            pass
    return first_line(str(exc)) or type(exc).__name__


def prefix_test(network_text: str) -> Callable[[str | None], bool | None]:
    """Whether address text lies in one IPv6 prefix, per row (IPv4 as v4-mapped).

    The semantics of :func:`diffserv.report.duckdb_engine.prefix_matcher`; a closure
    over plain ints so that Spark's Python workers need nothing of diffserv.
    """
    network = ipaddress.IPv6Network(network_text)
    base = int(network.network_address)
    mask = int(network.netmask)
    v4_mapped = _V4_MAPPED

    def matches(text: str | None) -> bool | None:
        if text is None:
            return None
        address = ipaddress.ip_address(text)
        value = int(address) if address.version == 6 else v4_mapped | int(address)
        return (value & mask) == base

    return matches


def _spark_errors() -> tuple[type[BaseException], ...]:
    """What Spark raises: its own exceptions and those of the Java gateway."""
    from py4j.protocol import Py4JError  # type: ignore[import-untyped]  # noqa: PLC0415
    from pyspark.errors import PySparkException  # noqa: PLC0415

    return (PySparkException, Py4JError)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value)
    return value


class SparkEngine:
    """Reports' SQL on a Spark session (``local[2]`` unless ``master`` names a cluster).

    ``sources`` are read as they are at opening; with ``resolve``, :meth:`refresh`
    resolves them again and rebuilds the view when they changed (store files are never
    rewritten, so new files are all there is to see).
    """

    name = "spark"
    wide_int = "DECIMAL(38,0)"

    def __init__(
        self,
        sources: Sources,
        master: str | None = None,
        *,
        resolve: Callable[[], Sources] | None = None,
    ) -> None:
        self._resolve = resolve
        self._master = master
        self._lock = threading.Lock()
        self._scratch = tempfile.TemporaryDirectory(prefix="diffserv-spark-")
        self._owner = False
        self._signature: tuple[Any, ...] | None = None
        self._generation = 0
        self.sources = Sources()
        self.sampled = False
        try:
            self._session = self._start()
            self._build(sources)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ start-up

    def _start(self) -> Any:
        try:
            from pyspark.sql import SparkSession  # noqa: PLC0415 (an optional dependency)
        except ImportError:
            raise HostSystemError(
                "the Spark engine needs pyspark (pip install 'pyspark>=3.5')"
            ) from None
        if not _java_found():
            raise HostSystemError("Spark needs a Java runtime (java not found)")
        # Python UDF workers run this interpreter (the one diffserv is installed in)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        local = self._master is None or self._master.startswith("local")
        builder = SparkSession.builder.appName("diffserv report").master(
            self._master or DEFAULT_MASTER
        )
        scratch = self._scratch.name
        log4j = os.path.join(scratch, "log4j2.properties")
        with open(log4j, "w", encoding="utf-8") as stream:
            stream.write(_LOG4J)
        settings = {
            "spark.ui.enabled": "false",
            "spark.sql.legacy.parquet.nanosAsLong": "true",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.warehouse.dir": os.path.join(scratch, "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={log4j}",
            "spark.ui.showConsoleProgress": "false",  # no progress bars on a report's terminal
        }
        if self._master is None:  # our own JVM: nothing outside this host talks to it
            os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
            settings["spark.driver.bindAddress"] = "127.0.0.1"
            settings["spark.driver.host"] = "127.0.0.1"
        if local:  # a report's data fits one machine: few shuffle partitions, local scratch
            settings["spark.sql.shuffle.partitions"] = "2"
            settings["spark.local.dir"] = os.path.join(scratch, "local")
        for key, value in settings.items():
            builder = builder.config(key, value)
        existed = SparkSession.getActiveSession() is not None
        try:
            base = builder.getOrCreate()
        except (*_spark_errors(), OSError, RuntimeError) as exc:  # type: ignore[misc]
            message = f"cannot start Spark: {spark_message(exc)}"
            if self._master is not None:
                raise UsageError(f"--master {self._master}: {message}") from None
            raise HostSystemError(message) from None
        self._owner = not existed
        base.sparkContext.setLogLevel("ERROR")
        # a session of our own: its temp views and functions are nobody else's
        session = base.newSession()
        session.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        session.conf.set("spark.sql.session.timeZone", "UTC")
        return session

    # ------------------------------------------------------------ the view

    def refresh(self) -> None:
        """Resolve the sources again (if the engine was given how) and rebuild on a change."""
        if self._resolve is None:
            return
        sources = self._resolve()
        with self._lock:
            self._build(sources)

    def _build(self, sources: Sources) -> None:
        signature = (tuple(sources.files), tuple(id(t) for t in sources.tables))
        if signature == self._signature:
            return
        self._generation += 1
        paths = list(sources.files)
        tables = list(sources.tables) or ([] if paths else [sources.empty_table()])
        for i, table in enumerate(tables):
            path = os.path.join(self._scratch.name, f"tables-{self._generation}", f"{i}.parquet")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(table, path)
            paths.append(path)
        session = self._session
        try:
            session.read.parquet(*paths).createOrReplaceTempView("raw")
            top = session.sql("SELECT max(sampling) FROM raw").collect()[0][0]
            sampled = top is not None and int(top) > 1
            select = view_select("first_seen", "last_seen", sampled, self.wide_int)
            session.sql(f"CREATE OR REPLACE TEMP VIEW flows AS SELECT {select} FROM raw")
            columns = tuple(session.table("flows").columns)
        except _spark_errors() as exc:
            raise HostSystemError(
                f"Spark cannot read the flow store: {spark_message(exc)}"
            ) from None
        if sorted(columns) != sorted(
            VIEW_COLUMNS
        ):  # the view is diffserv's own: a mismatch is a bug
            raise InternalError(f"Spark's flows view has columns {columns}")
        self._signature = signature
        self.sources = sources
        self.sampled = sampled

    # ------------------------------------------------------------ queries

    def relation(self, from_ns: int | None, to_ns: int | None, summary: bool) -> str:
        """Always the records: Spark reads the store itself (the rollups are DuckDB's,
        and a cluster's object store may not be writable); the ``WHERE`` bounds them."""
        return "flows"

    def rows(
        self, sql: str, params: Sequence[Any], functions: Sequence[PrefixFunction] = ()
    ) -> list[tuple[Any, ...]]:
        """The rows of one query (``?`` parameters), with the prefix functions it calls."""
        from pyspark.sql.types import BooleanType  # noqa: PLC0415

        with self._lock:
            session = self._session
            renamed = sql
            try:
                for function in functions:
                    name = f"ds_prefix_{next(_NAMES)}"
                    session.udf.register(name, prefix_test(function.network), BooleanType())
                    renamed = renamed.replace(f"{function.name}(", f"{name}(")
                found = session.sql(renamed, args=list(params)).collect()
            except _spark_errors() as exc:
                raise HostSystemError(f"Spark: {spark_message(exc)}") from None
        return [tuple(_plain(value) for value in row) for row in found]

    def close(self) -> None:
        """Stop the Spark session this engine started and remove its temporary files."""
        with self._lock:
            session = getattr(self, "_session", None)
            if session is not None and self._owner:
                with contextlib.suppress(Exception):  # a JVM already gone has nothing to stop
                    session.stop()
            self._session = None
            self._owner = False
            self._scratch.cleanup()
