"""The reports: one SQL query (or two) each over the ``flows`` view, and their rows.

Every figure is an exact integer computed by the SQL engine (sums of counters scaled
by sampling) or from those integers in Python (rates floor-divided, shares as
percentages rounded to 2 places): nothing depends on the engine, the order of files
or how records were batched. Rows are plain JSON-ready dicts whose keys
docs/reports.md lists. A report's time series puts each record in the interval of its
first packet, as the time range does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import msgspec

from diffserv.errors import UsageError
from diffserv.records import iso_time
from diffserv.report.choices import METRICS, REPORTS
from diffserv.report.filters import PrefixFunction, Selection
from diffserv.report.groups import DscpGroups
from diffserv.report.names import (
    PORT_PROTOCOLS,
    dscp_label,
    ecn_label,
    precedence_label,
    protocol_name,
    service_class,
    service_name,
    tos_bits,
)
from diffserv.report.sources import Sources

_NS: Final = 1_000_000_000
_INTERVALS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
AUTO_INTERVALS: Final = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86_400)
MAX_AUTO_BUCKETS: Final = 500


class Engine(Protocol):
    """What a report needs of a SQL engine (DuckDB, Spark)."""

    name: str
    sampled: bool
    sources: Sources
    wide_int: str  # the engine's integer type past 64 bits (interval arithmetic on times)

    def rows(
        self, sql: str, params: Sequence[Any], functions: Sequence[PrefixFunction] = ()
    ) -> list[tuple[Any, ...]]: ...

    def relation(self, from_ns: int | None, to_ns: int | None, summary: bool) -> str:
        """What a query over ``[from_ns, to_ns)`` reads as ``{flows}`` (``summary``: it
        reads only the view's SUMMARY_COLUMNS and counts records as ``sum(n)``)."""
        ...


class ReportRequest(msgspec.Struct, frozen=True):
    """Which report, over which records, keyed and ordered how."""

    report: str
    selection: Selection
    groups: DscpGroups
    top: int = 10
    by: str = "bytes"
    key: str = "dscp"  # dscp or group: the mark every per-mark report is keyed by
    side: str = "in"  # which mark: as received (in) or after re-marking (out)
    interval_s: int | None = None  # None: chosen from the time span


class Report(msgspec.Struct):
    """A report's answer: ``rows`` (keys in ``columns`` order) and what they cover."""

    report: str
    columns: list[str]
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    extra: dict[str, list[dict[str, Any]]] = msgspec.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"report": self.report, "rows": self.rows}
        out.update(self.extra)
        out["meta"] = self.meta
        return out


def parse_interval(text: str) -> int | None:
    """Seconds of ``--interval`` (``30s``, ``1m``, ``5m``, ``1h``, ``1d``); None for auto."""
    word = text.strip().lower()
    if word == "auto":
        return None
    match = re.fullmatch(r"(\d+)\s*([smhd]?)", word)
    if match is None or int(match.group(1)) == 0:
        raise UsageError(f"--interval {text!r}: expected a duration such as 1m, 5m, 1h or auto")
    return int(match.group(1)) * _INTERVALS[match.group(2) or "s"]


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _share(part: int, total: int) -> float:
    return round(100 * part / total, 2) if total else 0.0


def _bps(nbytes: int, span_ns: int) -> int | None:
    return nbytes * 8 * _NS // span_ns if span_ns > 0 else None


class _Context:
    """One request's SQL pieces and totals, shared by the report functions."""

    def __init__(self, engine: Engine, request: ReportRequest) -> None:
        self.engine = engine
        self.request = request
        self.selection = request.selection
        self.where = request.selection.where
        self.params = request.selection.params
        self.groups = request.groups
        row = self.query(
            "SELECT sum(n), sum(s_packets), sum(s_bytes), min(first_ns), max(last_ns), "
            "sum(CASE WHEN scale > 1 THEN n ELSE 0 END), "
            "sum(CASE WHEN dscp_out IS NOT NULL THEN n ELSE 0 END) "
            "FROM {flows} WHERE {where}",
            summary=True,
        )[0]
        self.flows, self.packets, self.bytes = _int(row[0]), _int(row[1]), _int(row[2])
        self.first_ns = None if row[3] is None else int(row[3])
        self.last_ns = None if row[4] is None else int(row[4])
        self.sampled_records = _int(row[5])
        self.out_marked = _int(row[6])
        start = self.selection.from_ns if self.selection.from_ns is not None else self.first_ns
        end = self.selection.to_ns if self.selection.to_ns is not None else self.last_ns
        self.span_start = start
        self.span_ns = (end - start) if start is not None and end is not None else 0
        self.interval_s = request.interval_s or self._auto_interval()

    def _auto_interval(self) -> int:
        for seconds in AUTO_INTERVALS:
            if self.span_ns <= seconds * _NS * MAX_AUTO_BUCKETS:
                return seconds
        return AUTO_INTERVALS[-1]

    def query(
        self, sql: str, extra: Sequence[Any] = (), *, summary: bool = False
    ) -> list[tuple[Any, ...]]:
        """``sql`` with ``{where}`` the selection and ``{flows}`` what it reads: with
        ``summary`` (the query reads only summary columns), rollups where the selection
        allows. Parameters: the selection's, then ``extra``."""
        relation = self.engine.relation(
            self.selection.from_ns, self.selection.to_ns, summary and self.selection.summary
        )
        return self.engine.rows(
            sql.replace("{where}", self.where).replace("{flows}", relation),
            [*self.params, *extra],
            self.selection.functions,
        )

    def bucket(self) -> str:
        """SQL of the start of each record's interval: floored (pre-1970 times too), in
        a type wider than 64 bits, as the interval of a time near the int64 minimum
        starts below it."""
        ns = self.interval_s * _NS  # an integer of diffserv's: safe as SQL text
        t = f"CAST(first_ns AS {self.engine.wide_int})"
        return f"({t} - (({t} % {ns}) + {ns}) % {ns})"

    @property
    def minute_buckets(self) -> bool:
        """Whether the intervals are whole minutes, so rollups can answer per interval."""
        return self.interval_s % 60 == 0

    def total(self, by: str) -> int:
        return {"bytes": self.bytes, "packets": self.packets, "flows": self.flows}[by]

    # ---- keys

    def mark(self, side: str) -> str:
        return "dscp_out" if side == "out" else "dscp_in"

    def key_sql(self, side: str | None = None) -> str:
        """The SQL of the report key: the DSCP column, or its group's index."""
        column = self.mark(side or self.request.side)
        if self.request.key == "dscp":
            return column
        cases = []
        for index in range(len(self.groups.names) - 1):
            members = self.groups.members(index)
            if members:  # integers diffserv made: safe as SQL text
                cases.append(f"WHEN {column} IN ({', '.join(map(str, members))}) THEN {index}")
        other = len(self.groups.names) - 1
        return f"(CASE WHEN {column} IS NULL THEN NULL {' '.join(cases)} ELSE {other} END)"

    def key_fields(self, value: Any, prefix: str = "") -> dict[str, Any]:
        """The row fields that name one key value."""
        if self.request.key == "group":
            if value is None:
                return {f"{prefix}group": "unknown", f"{prefix}dscps": []}
            index = int(value)
            return {
                f"{prefix}group": self.groups.names[index],
                f"{prefix}dscps": [dscp_label(d) for d in self.groups.members(index)],
            }
        dscp = None if value is None else int(value)
        return {
            f"{prefix}dscp": dscp,
            f"{prefix}name": dscp_label(dscp),
            f"{prefix}service_class": service_class(dscp),
            f"{prefix}group": self.groups.names[self.groups.of_dscp[dscp]]
            if dscp is not None and 0 <= dscp < len(self.groups.of_dscp)
            else None,
        }

    def key_columns(self, prefix: str = "") -> list[str]:
        names = (
            ["group", "dscps"]
            if self.request.key == "group"
            else ["dscp", "name", "service_class", "group"]
        )
        return [prefix + name for name in names]

    def order(self) -> str:
        """ORDER BY of counter rows: the chosen metric, then the others, descending."""
        first = self.request.by
        rest = [m for m in METRICS if m != first]
        return ", ".join(f"{m} DESC" for m in (first, *rest))

    def meta(self) -> dict[str, Any]:
        request = self.request
        meta: dict[str, Any] = {
            "engine": self.engine.name,
            "key": request.key,
            "side": request.side,
            "by": request.by,
            "top": request.top,
            "interval_s": self.interval_s,
            "groups": self.groups.origin,
            **self.selection.describe(),
            "totals": {"flows": self.flows, "packets": self.packets, "bytes": self.bytes},
            "first_seen": iso_time(self.first_ns) if self.first_ns is not None else None,
            "last_seen": iso_time(self.last_ns) if self.last_ns is not None else None,
            "span_ns": self.span_ns,
            "sampled_records": self.sampled_records,
            "egress_marks": self.out_marked > 0,
        }
        if self.sampled_records:
            meta["note"] = (
                f"{self.sampled_records:,} sampled records: packets and bytes are scaled "
                "by each record's sampling rate (flows are records, not scaled)"
            )
        return meta


def _counters(row: Sequence[Any]) -> dict[str, int]:
    return {"flows": _int(row[0]), "packets": _int(row[1]), "bytes": _int(row[2])}


_SUMS: Final = "sum(n) AS flows, sum(s_packets) AS packets, sum(s_bytes) AS bytes"


def _marks(ctx: _Context) -> Report:
    """top-dscp / groups: traffic per mark, its share, average and peak bit rate."""
    sides = ["in", "out"] if ctx.out_marked else ["in"]
    if ctx.request.side == "out":
        sides = ["out"]
    rows: list[dict[str, Any]] = []
    for side in sides:
        key = ctx.key_sql(side)
        found = ctx.query(
            f"SELECT {key} AS k, {_SUMS} FROM {{flows}} WHERE {{where}} GROUP BY 1 "
            f"ORDER BY {ctx.order()}, k NULLS LAST",
            summary=True,
        )
        peaks = _peaks(
            ctx,
            ctx.query(
                f"SELECT {key} AS k, {ctx.bucket()} AS t, sum(s_bytes) AS b "
                "FROM {flows} WHERE {where} GROUP BY 1, 2",
                summary=ctx.minute_buckets,
            ),
        )
        total = ctx.total(ctx.request.by)
        for row in found[: ctx.request.top]:
            counters = _counters(row[1:])
            rows.append(
                {
                    "side": side,
                    **ctx.key_fields(row[0]),
                    **counters,
                    "share": _share(counters[ctx.request.by], total),
                    "avg_bps": _bps(counters["bytes"], ctx.span_ns),
                    "peak_bps": peaks.get(row[0]),
                }
            )
    columns = [
        "side",
        *ctx.key_columns(),
        *METRICS[::-1],
        "share",
        "avg_bps",
        "peak_bps",
    ]
    return Report("", columns, rows, ctx.meta())


def _peaks(ctx: _Context, buckets: list[tuple[Any, ...]]) -> dict[Any, int | None]:
    """The highest bit rate of each key over the intervals of the time series.

    An interval counts only for the part of it inside the report's span, so a capture
    shorter than one interval has the peak of its own length, never below its average.
    """
    interval_ns = ctx.interval_s * _NS
    start = ctx.span_start if ctx.span_start is not None else 0
    end = start + ctx.span_ns
    peaks: dict[Any, int | None] = {}
    for key, bucket, nbytes in buckets:
        t = int(bucket)
        length = min(t + interval_ns, end) - max(t, start)
        rate = _bps(_int(nbytes), length if length > 0 else interval_ns)
        old = peaks.get(key)
        if rate is not None and (old is None or rate > old):
            peaks[key] = rate
    return peaks


def _port_sql() -> str:
    protocols = ", ".join(map(str, PORT_PROTOCOLS))
    return (
        f"(CASE WHEN protocol NOT IN ({protocols}) THEN NULL WHEN sport = 0 THEN dport "
        "WHEN dport = 0 THEN sport ELSE least(sport, dport) END)"
    )


def _within_key(
    ctx: _Context, fields: str, names: Sequence[str], ties: str
) -> list[tuple[Any, ...]]:
    """The top rows of ``fields`` inside each key value, with the key value's total."""
    metric = ctx.request.by
    return ctx.query(
        f"WITH a AS (SELECT {ctx.key_sql()} AS k, {fields}, {_SUMS} FROM {{flows}} "
        f"WHERE {{where}} GROUP BY {', '.join(str(i) for i in range(1, len(names) + 2))}), "
        f"r AS (SELECT a.*, sum({metric}) OVER (PARTITION BY k) AS key_total, "
        f"row_number() OVER (PARTITION BY k ORDER BY {ctx.order()}, {ties}) AS position "
        "FROM a) "
        f"SELECT k, {', '.join(names)}, flows, packets, bytes, key_total FROM r "
        "WHERE position <= ? ORDER BY key_total DESC, k NULLS LAST, position",
        extra=(ctx.request.top,),
    )


def _share_name(ctx: _Context) -> str:
    return f"share_of_{ctx.request.key}"


def _inside_key(
    ctx: _Context,
    found: list[tuple[Any, ...]],
    values: int,
    columns: Sequence[str],
    fields: Callable[[tuple[Any, ...]], dict[str, Any]],
) -> Report:
    """The rows of a report that splits each key value (apps, conversations, ECN).

    Each row of ``found`` is: the key value, ``values`` values, flows, packets, bytes,
    the key value's total; ``fields`` names the values as the ``columns`` of the row.
    """
    total = ctx.total(ctx.request.by)
    rows = []
    for row in found:
        counters = _counters(row[1 + values : 4 + values])
        part = counters[ctx.request.by]
        rows.append(
            {
                **ctx.key_fields(row[0]),
                **fields(row),
                **counters,
                _share_name(ctx): _share(part, _int(row[4 + values])),
                "share_of_total": _share(part, total),
            }
        )
    names = [*ctx.key_columns(), *columns, *METRICS[::-1], _share_name(ctx), "share_of_total"]
    return Report("", names, rows, ctx.meta())


def _app_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    protocol, port = int(row[1]), (None if row[2] is None else int(row[2]))
    return {
        "protocol": protocol,
        "protocol_name": protocol_name(protocol),
        "port": port,
        "service": service_name(protocol, port),
    }


def _apps(ctx: _Context) -> Report:
    found = _within_key(
        ctx,
        f"protocol, {_port_sql()} AS port",
        ["protocol", "port"],
        "protocol, port NULLS LAST",
    )
    columns = ["protocol", "protocol_name", "port", "service"]
    return _inside_key(ctx, found, 2, columns, _app_fields)


def _conversations(ctx: _Context) -> Report:
    found = _within_key(
        ctx,
        "least(saddr, daddr) AS addr_a, greatest(saddr, daddr) AS addr_b",
        ["addr_a", "addr_b"],
        "addr_a, addr_b",
    )
    return _inside_key(
        ctx, found, 2, ["addr_a", "addr_b"], lambda row: {"addr_a": row[1], "addr_b": row[2]}
    )


def _timeline(ctx: _Context) -> Report:
    interval_ns = ctx.interval_s * _NS
    found = ctx.query(
        f"SELECT {ctx.bucket()} AS t, {ctx.key_sql()} AS k, {_SUMS} FROM {{flows}} "
        "WHERE {where} GROUP BY 1, 2 ORDER BY t, k NULLS LAST",
        summary=ctx.minute_buckets,
    )
    rows = []
    for row in found:
        counters = _counters(row[2:])
        start = int(row[0])
        rows.append(
            {
                "start": iso_time(start),
                "start_ns": start,
                **ctx.key_fields(row[1]),
                **counters,
                "bps": _bps(counters["bytes"], interval_ns),
            }
        )
    columns = ["start", "start_ns", *ctx.key_columns(), *METRICS[::-1], "bps"]
    return Report("", columns, rows, ctx.meta())


def _tos(ctx: _Context) -> Report:
    found = ctx.query(
        f"SELECT ds_in, dscp_in, prec_in, {_SUMS} FROM {{flows}} WHERE {{where}} "
        f"GROUP BY 1, 2, 3 ORDER BY {ctx.order()}, ds_in NULLS LAST, dscp_in NULLS LAST",
        summary=True,
    )
    total = ctx.total(ctx.request.by)
    rows = []
    for row in found[: ctx.request.top * 4]:
        tos = None if row[0] is None else int(row[0])
        dscp = None if row[1] is None else int(row[1])
        precedence = None if row[2] is None else int(row[2])
        ecn = None if tos is None else tos & 3
        counters = _counters(row[3:])
        rows.append(
            {
                "tos": tos,
                "tos_hex": None if tos is None else f"0x{tos:02x}",
                "precedence": precedence,
                "precedence_name": precedence_label(precedence),
                "tos_bits": tos_bits(tos),
                "dscp": dscp,
                "name": dscp_label(dscp),
                "ecn": ecn,
                "ecn_name": ecn_label(ecn),
                **counters,
                "share": _share(counters[ctx.request.by], total),
            }
        )
    columns = [
        "tos",
        "tos_hex",
        "precedence",
        "precedence_name",
        "tos_bits",
        "dscp",
        "name",
        "ecn",
        "ecn_name",
        *METRICS[::-1],
        "share",
    ]
    return Report("", columns, rows, ctx.meta())


def _ecn_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    value = None if row[1] is None else int(row[1])
    return {"ecn": value, "ecn_name": ecn_label(value)}


def _ecn(ctx: _Context) -> Report:
    side = ctx.request.side
    ecn = "ecn_out" if side == "out" else "ecn_in"
    found = ctx.query(
        f"WITH a AS (SELECT {ctx.key_sql()} AS k, {ecn} AS e, {_SUMS} FROM {{flows}} "
        "WHERE {where} GROUP BY 1, 2) "
        f"SELECT k, e, flows, packets, bytes, sum({ctx.request.by}) OVER (PARTITION BY k) "
        "AS key_total FROM a ORDER BY key_total DESC, k NULLS LAST, e NULLS LAST",
        summary=True,
    )
    return _inside_key(ctx, found, 1, ["ecn", "ecn_name"], _ecn_fields)


_FLOW_KEY: Final = ("saddr", "daddr", "sport", "dport", "protocol")


def _remark(ctx: _Context) -> Report:
    """The device's re-marking (ingress → egress mark) and flows whose mark changed."""
    key_in, key_out = ctx.key_sql("in"), ctx.key_sql("out")
    found = ctx.query(
        f"SELECT {key_in} AS k_in, {key_out} AS k_out, {_SUMS} FROM {{flows}} "
        "WHERE {where} AND dscp_in IS NOT NULL AND dscp_out IS NOT NULL "
        f"GROUP BY 1, 2 ORDER BY {ctx.order()}, k_in, k_out",
        summary=True,
    )
    both = sum(_counters(row[2:])[ctx.request.by] for row in found)
    rows = []
    for row in found:
        counters = _counters(row[2:])
        rows.append(
            {
                **ctx.key_fields(row[0], "in_"),
                **ctx.key_fields(row[1], "out_"),
                "changed": row[0] != row[1],
                **counters,
                "share": _share(counters[ctx.request.by], both),
            }
        )
    columns = [
        *ctx.key_columns("in_"),
        *ctx.key_columns("out_"),
        "changed",
        *METRICS[::-1],
        "share",
    ]
    report = Report("", columns, rows, ctx.meta())
    report.extra["changed_flows"] = _lifetime_changes(ctx)
    return report


def _lifetime_changes(ctx: _Context) -> list[dict[str, Any]]:
    """Flows (5-tuples) whose records carry more than one DSCP, in time order."""
    key = ", ".join(_FLOW_KEY)
    heads = ctx.query(
        f"SELECT {key}, count(DISTINCT dscp_in) AS marks, {_SUMS} FROM {{flows}} "
        f"WHERE {{where}} AND dscp_in IS NOT NULL GROUP BY {key} "
        f"HAVING count(DISTINCT dscp_in) > 1 ORDER BY {ctx.order()}, {key} LIMIT ?",
        extra=(ctx.request.top,),
    )
    if not heads:
        return []
    match = " OR ".join("(" + " AND ".join(f"{c} = ?" for c in _FLOW_KEY) + ")" for _ in heads)
    values = [value for head in heads for value in head[:5]]
    steps = ctx.query(
        f"SELECT {key}, first_ns, dscp_in FROM {{flows}} WHERE {{where}} "
        f"AND dscp_in IS NOT NULL AND ({match}) ORDER BY first_ns, dscp_in",
        extra=values,
    )
    sequences: dict[tuple[Any, ...], list[int]] = {}
    for step in steps:
        marks = sequences.setdefault(tuple(step[:5]), [])
        dscp = int(step[6])
        if not marks or marks[-1] != dscp:
            marks.append(dscp)
    out = []
    for head in heads:
        marks = sequences.get(tuple(head[:5]), [])
        out.append(
            {
                "saddr": head[0],
                "daddr": head[1],
                "sport": int(head[2]),
                "dport": int(head[3]),
                "protocol": int(head[4]),
                "marks": [dscp_label(d) for d in marks],
                "dscps": marks,
                **_counters(head[6:9]),
            }
        )
    return out


def _silent(ctx: _Context) -> Report:
    """Exporters, and interfaces of otherwise fine exporters, that never send a non-zero ToS."""
    found = ctx.query(
        "SELECT source, exporter, domain, "
        "CASE WHEN direction = 1 THEN out_if ELSE in_if END AS interface, sum(n), "
        "sum(s_bytes), "
        "sum(CASE WHEN ds_in > 0 OR dscp_in > 0 OR ds_out > 0 OR dscp_out > 0 "
        "THEN n ELSE 0 END), "
        "sum(CASE WHEN ds_in IS NULL AND dscp_in IS NULL THEN n ELSE 0 END), "
        "min(first_ns), max(last_ns) "
        "FROM {flows} WHERE {where} GROUP BY 1, 2, 3, 4 "
        "ORDER BY 1, 2, 3, 4 NULLS FIRST",
        summary=True,
    )
    exporters: dict[tuple[str, str, int], list[tuple[Any, ...]]] = {}
    for row in found:
        exporters.setdefault((row[0], row[1], int(row[2])), []).append(row)
    rows: list[dict[str, Any]] = []

    def entry(level: str, head: tuple[str, str, int], parts: list[tuple[Any, ...]]) -> None:
        flows = sum(_int(p[4]) for p in parts)
        unknown = sum(_int(p[7]) for p in parts)
        interfaces = sorted({int(p[3]) for p in parts if p[3] is not None})
        rows.append(
            {
                "level": level,
                "source": head[0],
                "exporter": head[1] or "local",
                "domain": head[2],
                "interfaces": interfaces,
                "flows": flows,
                "bytes": sum(_int(p[5]) for p in parts),
                "zero_flows": flows - unknown,
                "unknown_flows": unknown,
                "status": "no ToS field" if unknown == flows else "ToS always 0",
                "first_seen": iso_time(min(int(p[8]) for p in parts)),
                "last_seen": iso_time(max(int(p[9]) for p in parts)),
            }
        )

    for head, parts in exporters.items():
        if not any(_int(p[6]) for p in parts):
            entry("exporter", head, parts)
            continue
        for part in parts:
            if not _int(part[6]) and part[3] is not None:
                entry("interface", head, [part])
    report = Report(
        "",
        [
            "level",
            "source",
            "exporter",
            "domain",
            "interfaces",
            "flows",
            "bytes",
            "zero_flows",
            "unknown_flows",
            "status",
            "first_seen",
            "last_seen",
        ],
        rows,
        ctx.meta(),
    )
    report.meta["exporters_checked"] = len(exporters)
    report.meta["interfaces_checked"] = sum(1 for row in found if row[3] is not None)
    return report


def _flows(ctx: _Context) -> Report:
    """The records themselves, largest first: the end of a drill-down."""
    metric = "bytes" if ctx.request.by == "flows" else ctx.request.by
    order = f"s_{metric} DESC, first_ns, saddr, daddr, sport, dport, protocol"
    found = ctx.query(
        "SELECT first_ns, last_ns, saddr, sport, daddr, dport, protocol, dscp_in, dscp_out, "
        "ecn_in, s_packets, s_bytes, exporter, source, in_if, out_if, direction "
        f"FROM {{flows}} WHERE {{where}} ORDER BY {order} LIMIT ?",
        extra=(ctx.request.top,),
    )
    rows = []
    for row in found:
        dscp_in = None if row[7] is None else int(row[7])
        dscp_out = None if row[8] is None else int(row[8])
        ecn = None if row[9] is None else int(row[9])
        rows.append(
            {
                "first_seen": iso_time(int(row[0])),
                "last_seen": iso_time(int(row[1])),
                "saddr": row[2],
                "sport": int(row[3]),
                "daddr": row[4],
                "dport": int(row[5]),
                "protocol": int(row[6]),
                "protocol_name": protocol_name(int(row[6])),
                "dscp": dscp_in,
                "name": dscp_label(dscp_in),
                "dscp_out": dscp_out,
                "ecn_name": ecn_label(ecn),
                "packets": _int(row[10]),
                "bytes": _int(row[11]),
                "exporter": row[12] or "local",
                "source": row[13],
                "in_if": None if row[14] is None else int(row[14]),
                "out_if": None if row[15] is None else int(row[15]),
                "direction": {0: "ingress", 1: "egress"}.get(
                    -1 if row[16] is None else int(row[16])
                ),
            }
        )
    columns = (
        list(rows[0])
        if rows
        else [
            "first_seen",
            "last_seen",
            "saddr",
            "sport",
            "daddr",
            "dport",
            "protocol",
            "protocol_name",
            "dscp",
            "name",
            "dscp_out",
            "ecn_name",
            "packets",
            "bytes",
            "exporter",
            "source",
            "in_if",
            "out_if",
            "direction",
        ]
    )
    return Report("", columns, rows, ctx.meta())


_BUILDERS: Final[dict[str, Callable[[_Context], Report]]] = {
    "top-dscp": _marks,
    "groups": _marks,
    "apps": _apps,
    "conversations": _conversations,
    "timeline": _timeline,
    "tos": _tos,
    "ecn": _ecn,
    "remark": _remark,
    "silent-exporters": _silent,
    "flows": _flows,
}


def run_report(engine: Engine, request: ReportRequest) -> Report:
    """One report over ``engine``'s ``flows`` view."""
    if request.report not in _BUILDERS:
        raise UsageError(f"no report {request.report!r} (reports: {', '.join(REPORTS)})")
    if request.report == "groups" and request.key != "group":
        request = msgspec.structs.replace(request, key="group")
    ctx = _Context(engine, request)
    report = _BUILDERS[request.report](ctx)
    report.report = request.report
    return report
