"""What an audit reads: captures packet by packet, flow records and stores record by record.

Flow records (a flow store, store files, record files) are selected as ``diffserv
report`` selects them: with ``--filter``, by the report engine's SQL (bound parameters);
without, scanned from the files with the same time condition. They arrive in Arrow
batches of the columns the audit reads and are judged a batch at a time (memory follows
the batch).

A capture is judged packet by packet, each packet at its exact callout position (pcapng
flags, a cooked header, ``--direction``; else LOCAL_OUT, as ``diffserv run`` takes it);
packets the policy cannot tell apart are judged together (:func:`group_flows`).
``--from``/``--to`` select its packets by time stamp; ``--filter`` is for flow records
and is refused for a capture.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from diffserv.audit.audit import Audit
from diffserv.audit.verdicts import PRIORITY_DSCPS
from diffserv.columns import FLAG_HEADER_CUT, FLAG_MALFORMED, NOT_IP, PacketBatch
from diffserv.errors import UsageError
from diffserv.flows.schema import FlowBatch, make_batch
from diffserv.policy.model import Policy
from diffserv.rowgroups import group_rows

_RECORD_BATCH_ROWS = 262_144  # records judged at a time (results never depend on it)
# The store columns the verdicts and the lists of flows read; the classifier adds those
# its filters test (RecordClassifier.record_columns). The others stay unread: an audit
# of millions of records spends its time turning columns into arrays.
JUDGED_COLUMNS: Final = (
    "first_seen", "ip_version", "saddr", "daddr", "sport", "dport", "protocol", "dscp_in",
    "ecn_in", "dscp_out", "ecn_out", "pcp", "packets", "bytes",
)  # fmt: skip
_CAPTURE_BATCH = 65_536  # packets judged at a time (nor on this)
_WORKERS = 4  # processes judging a large store's records at most
_PARALLEL_ROWS = 1_000_000  # records from which a store is judged by several processes


def record_columns(audit: Audit) -> list[str]:
    """The store columns an audit of flow records reads, in the store's order."""
    from diffserv.flows.store_arrow import SCHEMA

    wanted = {*JUDGED_COLUMNS, *audit.classifier.record_columns()}
    return [name for name in SCHEMA.names if name in wanted]


_Flows = tuple[dict[str, NDArray[Any]], NDArray[Any]]  # flow columns, callout positions


def packet_flows(batch: PacketBatch, keep: Any) -> _Flows:
    """The IP packets ``keep`` selects of ``batch`` as one-packet flows (the columns
    :func:`group_flows` groups by and sums), and each packet's callout position."""
    c = batch.cols
    rows = slice(None) if keep.all() else np.flatnonzero(keep)
    n = int(np.count_nonzero(keep))
    flows: dict[str, NDArray[Any]] = {
        "first_ns": c.ts_ns[rows],
        "last_ns": c.ts_ns[rows],
        "packets": np.ones(n, np.int64),
        "bytes": c.ip_len[rows],
        "ip_version": c.ip_version[rows],
        "saddr_hi": c.saddr_hi[rows],
        "saddr_lo": c.saddr_lo[rows],
        "daddr_hi": c.daddr_hi[rows],
        "daddr_lo": c.daddr_lo[rows],
        "sport": c.sport[rows],
        "dport": c.dport[rows],
        "protocol": c.protocol[rows],
        "ds_in": c.ds_byte[rows],
        "in_if": c.ifindex[rows],
        "pcp": batch.priorities(rows),
        "uid": c.uid[rows],
        "projid": c.projid[rows],
    }
    return flows, c.direction[rows]


def group_flows(parts: Sequence[_Flows]) -> _Flows:
    """Flows (with their callout positions) equal in every field a filter can test summed
    into one each: packets and bytes added, the first and last time kept.

    Such flows get the same class and the same verdict, so a capture's many packets of a
    flow are judged once.
    """
    if len(parts) == 1:
        flows, positions = parts[0]
    else:
        flows = {name: np.concatenate([part[name] for part, _ in parts]) for name in parts[0][0]}
        positions = np.concatenate([where for _, where in parts])
    u64 = np.uint64
    tuple_word = (
        flows["sport"].astype(u64, copy=False)
        | flows["dport"].astype(u64, copy=False) << u64(16)
        | flows["protocol"].astype(u64, copy=False) << u64(32)
        | flows["ip_version"].astype(u64, copy=False) << u64(40)
        | flows["ds_in"].astype(u64, copy=False) << u64(48)
        | positions.astype(u64, copy=False) << u64(56)
    )
    where_word = flows["in_if"].astype(np.uint32, copy=False).astype(u64, copy=False) | (
        (flows["pcp"] + 1).astype(u64, copy=False) << u64(32)
    )
    who_word = flows["uid"].astype(np.uint32, copy=False).astype(u64, copy=False) | (
        flows["projid"].astype(np.uint32, copy=False).astype(u64, copy=False) << u64(32)
    )
    groups = group_rows(
        [flows["saddr_hi"], flows["saddr_lo"], flows["daddr_hi"], flows["daddr_lo"],
         tuple_word, where_word, who_word]
    )  # fmt: skip
    given = {name: column[groups.firsts] for name, column in flows.items()}
    given["first_ns"] = groups.minima(flows["first_ns"])
    given["last_ns"] = groups.maxima(flows["last_ns"])
    given["packets"] = groups.sums(flows["packets"])
    given["bytes"] = groups.sums(flows["bytes"])
    return given, positions[groups.firsts]


def _flow_batch(flows: dict[str, NDArray[Any]]) -> FlowBatch:
    """Grouped packets as flowacct-like records (the DS byte is the arrival mark)."""
    ds = flows["ds_in"].astype(np.int16, copy=False)
    given = {
        **flows,
        "ds_in": ds,
        "dscp_in": ds >> 2,
        "ecn_in": ds & 3,
        "prec_in": ds >> 5,
        "out_if": flows["in_if"],
    }
    return make_batch("flowacct", "", 0, int(ds.shape[0]), given)


def _capture(audit: Audit, path: str, args: dict[str, Any], tally: dict[str, int]) -> None:
    """Judge a capture's packets, grouped (:func:`group_flows`) within each batch and
    again over batches until _CAPTURE_BATCH groups wait: each group is judged once."""
    from diffserv.capture import open_capture

    start, end = args["from_ns"], args["to_ns"]
    pending: list[_Flows] = []
    waiting = 0

    def judge_pending() -> None:
        nonlocal waiting
        if pending:
            flows, positions = group_flows(pending)
            audit.add(_flow_batch(flows), positions=positions, packets=True)
        pending.clear()
        waiting = 0

    with open_capture(
        path, interface=args["interface"], direction=args["direction"], batch_size=_CAPTURE_BATCH
    ) as reader:
        for batch in reader:
            c = batch.cols
            ip = (c.ip_version != NOT_IP) & ((c.flags & (FLAG_MALFORMED | FLAG_HEADER_CUT)) == 0)
            tally["not_ip"] += int(batch.n - int(ip.sum()))
            keep = ip
            if start is not None:
                keep = keep & (c.ts_ns >= start)
            if end is not None:
                keep = keep & (c.ts_ns < end)
            if not keep.any():
                continue
            audit.classifier.use_interfaces(dict(enumerate(batch.interfaces)))
            grouped = group_flows([packet_flows(batch, keep)])
            pending.append(grouped)
            waiting += int(grouped[1].shape[0])
            tally["packets"] += int(np.count_nonzero(keep))
            if waiting >= _CAPTURE_BATCH:
                judge_pending()
        judge_pending()
        audit.warnings.extend(f"{path}: {warning}" for warning in reader.warnings)


def _selected_records(
    paths: Sequence[str], selection: Any, columns: Sequence[str]
) -> Iterator[FlowBatch]:
    """The records a selection with filters selects, through the report engine's SQL."""
    from diffserv.flows.store_arrow import table_to_batches
    from diffserv.report.duckdb_engine import DuckDBEngine
    from diffserv.report.sources import SourceSet

    sources = SourceSet(list(paths))
    engine = DuckDBEngine(lambda: sources.resolve(selection.from_ns), rollup=False)
    try:
        for arrow in engine.record_batches(selection, _RECORD_BATCH_ROWS, columns):
            yield from table_to_batches(arrow)
    finally:
        engine.close()


def _scanned_records(
    sources: Any, selection: Any, columns: Sequence[str], share: tuple[int, int] = (0, 1)
) -> Iterator[FlowBatch]:
    """The records of ``sources`` whose first packet is inside ``--from``/``--to``, read
    with Parquet's own reader: addresses stay dictionaries (each distinct text parsed
    once), and none of SQL's per-row work is done for a selection that needs none.

    ``share`` (k, n): only every n-th row group of the store files, from the k-th (a
    worker's part; the in-memory record files are part 0's). The time condition is the
    report engine's (first_seen in [from, to)), on the same integer nanoseconds; a
    record without a first time is outside any bound.
    """
    from diffserv.flows.store_read import file_batches, flow_batches, open_store_file

    part, parts = share
    unit = 0
    for path in sources.files:
        parquet = open_store_file(path, read_dictionary=("saddr", "daddr"))
        for group in range(parquet.metadata.num_row_groups):
            unit += 1
            if (unit - 1) % parts != part:
                continue
            for arrow, row in file_batches(
                path,
                parquet,
                batch_rows=_RECORD_BATCH_ROWS,
                columns=columns,
                row_group=group,
            ):
                yield from flow_batches(_inside(arrow, selection), f"{path}: row", row)
    if part:
        return
    for table in sources.tables:  # record files, already read into memory
        row = 0
        for arrow in table.select(list(columns)).to_batches(_RECORD_BATCH_ROWS):
            yield from flow_batches(_inside(arrow, selection), "flow records: row", row)
            row += arrow.num_rows


def _stored_rows(sources: Any) -> int:
    """How many records the store files of ``sources`` hold (from their metadata)."""
    from diffserv.flows.store_read import open_store_file

    return sum(open_store_file(path).metadata.num_rows for path in sources.files)


_AUDIT: list[Any] = []  # the audit a forked worker judges into (set before the fork)


def _judge_part(
    sources: Any, selection: Any, columns: Sequence[str], share: tuple[int, int], direction: Any
) -> Any:
    """A worker process: its part of the records judged into (its copy of) the audit."""
    audit = _AUDIT[0]
    for batch in _scanned_records(sources, selection, columns, share):
        _add_records(audit, batch, direction)
    return audit.share()


def _add_records(audit: Audit, batch: FlowBatch, direction: int | None) -> None:
    positions = None if direction is None else np.full(batch.n, direction, np.uint8)
    audit.add(batch, positions=positions)


def _judge_records(
    audit: Audit, paths: Sequence[str], selection: Any, direction: int | None
) -> None:
    """Judge the flow records of ``paths``: with filters, as the report engine's SQL
    selects them; without, scanned from the files, and a large store split between
    processes (one per CPU, up to _WORKERS), each judging every n-th row group, their
    tallies merged: sums and top lists that do not depend on the split."""
    from diffserv.report.sources import SourceSet

    columns = record_columns(audit)
    if selection.filters:
        batches = _selected_records(paths, selection, columns)
    else:
        sources = SourceSet(list(paths)).resolve(selection.from_ns)
        workers = min(_WORKERS, len(os.sched_getaffinity(0)))
        if workers > 1 and _stored_rows(sources) >= _PARALLEL_ROWS:
            _judge_in_parallel(audit, sources, selection, columns, workers, direction)
            return
        batches = _scanned_records(sources, selection, columns)
    for batch in read_ahead(batches):
        _add_records(audit, batch, direction)


def _judge_in_parallel(  # noqa: PLR0917 (the parts of one split)
    audit: Audit,
    sources: Any,
    selection: Any,
    columns: Sequence[str],
    workers: int,
    direction: int | None,
) -> None:
    """This process judges part 0 while forked workers judge the others."""
    _AUDIT[:] = [audit]
    context = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(workers - 1, mp_context=context) as pool:
            others = [
                pool.submit(_judge_part, sources, selection, columns, (k, workers), direction)
                for k in range(1, workers)
            ]
            for batch in _scanned_records(sources, selection, columns, (0, workers)):
                _add_records(audit, batch, direction)
            for other in others:
                audit.merge(other.result())
    finally:
        _AUDIT.clear()


def _inside(arrow: Any, selection: Any) -> Any:
    """The rows of ``arrow`` whose first_seen is in [from_ns, to_ns)."""
    import pyarrow as pa

    if selection.from_ns is None and selection.to_ns is None:
        return arrow
    from diffserv.report.filters import stamp_bounds

    bounds = stamp_bounds(selection.from_ns, selection.to_ns)
    if bounds is None:  # a bound past what a time stamp holds: nothing is inside
        return arrow.slice(0, 0)
    low, high = bounds
    first = arrow.column("first_seen")
    stamps = first.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    keep = np.asarray(first.is_valid().to_numpy(zero_copy_only=False), np.bool_)
    if low is not None:
        keep &= stamps >= low
    if high is not None:
        keep &= stamps < high
    return arrow.filter(pa.array(keep))


_T = TypeVar("_T")


def read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """The items of ``items``, made on a thread of their own at most ``depth`` ahead.

    Reading records (DuckDB, Parquet) and turning them into arrays (the address parser, numpy)
    mostly run without the GIL, so on a second core they overlap with judging the
    batch before. An error of the reading thread is raised here, in the caller's; when
    the caller stops early, the thread stops and closes ``items``.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the caller's thread
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="audit-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, value = handoff.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


def audit_sources(
    policy: Policy,
    paths: Sequence[str],
    *,
    filters: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
    direction: int | None = None,
    interface: str | None = None,
    priority: frozenset[int] = PRIORITY_DSCPS,
    top: int = 10,
    policy_name: str = "",
) -> dict[str, Any]:
    """The audit of ``paths`` against ``policy``, as JSON-ready data."""
    from diffserv.report.filters import build_selection
    from diffserv.report.groups import default_groups
    from diffserv.report.sources import is_capture

    selection = build_selection(filters, default_groups(), start=start, end=end)
    captures = [p for p in paths if p != "-" and is_capture(p)]
    records = [p for p in paths if p not in captures]
    if captures and records:
        raise UsageError(
            f"audit {captures[0]} and {records[0]} apart: a capture is judged packet by "
            "packet, flow records flow by flow"
        )
    if captures and filters:
        raise UsageError(
            f"--filter selects flow records; {captures[0]} is a capture "
            "(audit it whole, or with --from/--to)"
        )
    audit = Audit(policy, top=top, priority=priority, packets=bool(captures))
    tally = {"packets": 0, "not_ip": 0}
    args = {
        "from_ns": selection.from_ns,
        "to_ns": selection.to_ns,
        "direction": direction,
        "interface": interface,
    }
    for path in captures:
        _capture(audit, path, args, tally)
    if records:
        _judge_records(audit, records, selection, direction)
    meta = {
        "policy": policy_name,
        "sources": list(paths),
        **selection.describe(),
        "captures": captures,
        "record_sources": records,
        "packets_judged": tally["packets"],
        "packets_not_ip": tally["not_ip"],
        "records_judged": audit.records,
        "warnings": audit.warnings,
    }
    return audit.result(meta)
