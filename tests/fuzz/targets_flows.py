"""Fuzz targets for `diffserv flows`: a record file of each format, read and made store rows.

Each input is written to one reused temporary file with the format's extension and
goes through what `diffserv flows` does with it before the SQL engine: ``read_records``
and, for extended records, ``table_batches`` and ``batch_to_table`` (the Arrow table
of the store's schema that DuckDB reads), whose counters must be the records' exact
sums. The reports themselves are tested in tests/flows/test_flows_hardening.py: one
DuckDB per case would slow fuzzing tenfold. Seeds are files our own writers produced
plus near misses of them.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from harness import SCRATCH_DIR, FuzzTarget, remove_scratch, scratch_path

from diffserv.flows.export import table_batches
from diffserv.flows.reader import read_records
from diffserv.flows.store_arrow import batch_to_table
from diffserv.flows.writers import open_record_writer
from diffserv.records import GROUP_EXTENDED, TIME_MAX_NS, TIME_MIN_NS, FlowRecords, parse_address


def exercise(path: str) -> None:
    """What `diffserv flows PATH` does with a file before its SQL runs."""
    table = read_records(path)
    if table.group != GROUP_EXTENDED:
        return  # refused in one line by the report's sources
    stored = [batch_to_table(batch) for batch in table_batches(table, chunk=7)]
    for field, column in (("npackets", "packets"), ("nbytes", "bytes")):
        total = sum(v for t in stored for v in t.column(column).to_pylist())
        if total != sum(getattr(table, field)):
            raise AssertionError(f"store rows' {column} differ from the records' exact sums")
    if sum(t.num_rows for t in stored) != table.n:
        raise AssertionError("store rows are not one per record")
    if stored:
        pa.concat_tables(stored)  # what the sources hand DuckDB


def _runner(ext: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        path = scratch_path(ext)
        with open(path, "wb") as f:
            f.write(data)
        try:
            exercise(path)
        finally:  # atheris ends with _exit (no atexit): leave nothing behind
            remove_scratch(path)

    return run


def sample_records(action: str, n: int, extreme: bool = False) -> FlowRecords:
    """``n`` records of a few flows; ``extreme`` puts every field at the end of its range."""
    addrs = [parse_address(a) for a in ("10.0.0.1", "192.0.2.7", "2001:db8::1", "::ffff:0:1")]
    s = [addrs[i % 4] for i in range(n)]
    d = [addrs[(i + 1) % 4] for i in range(n)]
    big = 2**63 - 1
    first = np.array([TIME_MIN_NS if extreme else 1_767_225_600 * 10**9 + i for i in range(n)])
    last = np.array([TIME_MAX_NS if extreme else 1_767_225_601 * 10**9 + i for i in range(n)])
    return FlowRecords(
        action=action,
        saddr_hi=np.array([a[0] for a in s], np.uint64),
        saddr_lo=np.array([a[1] for a in s], np.uint64),
        daddr_hi=np.array([a[0] for a in d], np.uint64),
        daddr_lo=np.array([a[1] for a in d], np.uint64),
        sport=np.array([65535 if extreme else 40000 + i for i in range(n)], np.uint16),
        dport=np.array([0 if extreme else (443, 53, 80)[i % 3] for i in range(n)], np.uint16),
        protocol=np.array([255 if extreme else (6, 17, 1)[i % 3] for i in range(n)], np.uint8),
        dsfield=np.array(
            [255 if extreme else (0, 46 << 2 | 1, 10 << 2)[i % 3] for i in range(n)], np.uint8
        ),
        projid=np.array([2**31 - 1 if extreme else -1 for _ in range(n)], np.int32),
        uid=np.array([0 if extreme else 1000 for _ in range(n)], np.int32),
        npackets=np.array([big if extreme else i + 1 for i in range(n)], np.int64),
        nbytes=np.array([big if extreme else (i + 1) * 1500 for i in range(n)], np.int64),
        first_ns=first.astype(np.int64),
        last_ns=last.astype(np.int64),
    )


def written_files(ext: str) -> list[bytes]:
    """Files our writer makes: basic and extended, ordinary and extreme values, empty."""
    out: list[bytes] = []
    with tempfile.TemporaryDirectory(dir=SCRATCH_DIR) as d:
        for i, (group, batches) in enumerate(
            [
                ("extended", [sample_records("acct_af1", 5), sample_records("acct_ef", 2)]),
                ("basic", [sample_records("acct", 4)]),
                ("extended", [sample_records("x", 2, extreme=True)]),
                ("basic", [sample_records("x", 2, extreme=True)]),
                ("extended", []),
            ]
        ):
            path = os.path.join(d, f"seed{i}.{ext}")
            with open_record_writer(path, group) as writer:
                for batch in batches:
                    writer.write(batch)
            with open(path, "rb") as f:
                out.append(f.read())
    return out


def _text_near_misses(valid: bytes) -> list[bytes]:
    lines = valid.splitlines(keepends=True)
    first, rest = lines[0], b"".join(lines[1:])
    return [
        valid[: len(valid) // 2],
        b"\xef\xbb\xbf" + valid,
        valid.replace(b"1500", b"9" * 30),
        valid.replace(b"1500", b"-1"),
        valid.replace(b"2026-", b"9999-"),
        valid.replace(b"2026-01-01", b"2026-02-30"),
        valid.replace(b"10.0.0.1", b"10.0.0.999"),
        valid.replace(b"acct_af1", b"acct\\u0000"),
        valid.replace(b"\n", b"\r\n"),
        first + b"\x00" + rest,
        first + b"\xff\xfe" + rest,
        first + first,
    ]


def jsonl_seeds() -> list[bytes]:
    files = written_files("jsonl")
    valid = files[0]
    record = valid.splitlines()[0]
    return [
        *files,
        *_text_near_misses(valid),
        valid.replace(b"1500", b"1" * 5000),
        valid.replace(b'"nbytes":1500', b'"nbytes":1.5e3'),
        valid.replace(b'"nbytes":1500', b'"nbytes":NaN'),
        valid.replace(b'"nbytes":1500', b'"nbytes":[[[[1500]]]]'),
        valid.replace(b'"first_seen":"2026-01-01T00:00:00.000000000Z"', b'"first_seen":1'),
        record.replace(b'"first_seen":"', b'"first_seen":18446744073709551615,"x":"'),
        b"[" * 5000 + b"]" * 5000 + b"\n",
        b'{"saddr":' * 3000 + b"\n",
        b"[]\n",
        b"null\n",
        record[:-1] + b',"extra":{"a":[1,2,{"b":null}]}}\n',
    ]


def csv_seeds() -> list[bytes]:
    files = written_files("csv")
    valid = files[0]
    header, _, body = valid.partition(b"\n")
    return [
        *files,
        *_text_near_misses(valid),
        header + b"\n" + body.replace(b",", b",,", 1),
        header + b"\n10.0.0.1\n",
        header + b'\n"unterminated\n',
        header + b"\n" + b"9" * 5000 + b"\n",
        header.replace(b"saddr", b"\xef\xbb\xbfsaddr") + b"\n" + body,
        header + b"\n" + bytes(range(256)) + b"\n",
    ]


def _foreign_parquet() -> list[bytes]:
    """Parquet files of the right field names but other Arrow types and encodings."""

    base = {
        "saddr": ["10.0.0.1", "10.0.0.2"],
        "daddr": ["192.0.2.1", "2001:db8::1"],
        "sport": [1, 2],
        "dport": [443, 53],
        "protocol": [6, 17],
        "npackets": [1, 2],
        "nbytes": [40, 80],
        "action": ["a", "b"],
        "dsfield": [0, 184],
        "first_seen": [0, 1],
        "last_seen": [5, 6],
    }
    variants: list[dict[str, object]] = [
        {"nbytes": pa.array([2**64 - 1, 1], pa.uint64())},
        {"first_seen": pa.array([2**63, 2**64 - 1], pa.uint64())},
        {"last_seen": pa.array([10**12, 10**12], pa.timestamp("s", tz="UTC"))},
        {"sport": pa.array(["1", "2"])},
        {"action": pa.array(["a", "b"]).dictionary_encode()},
        {"saddr": pa.array(["10.0.0.1", None])},
        {"dport": pa.array([[1], [2, 3]], pa.list_(pa.int64()))},
        {"nbytes": pa.array([1.5, 2.0])},
        {"protocol": pa.array([True, False])},
        {"daddr": pa.array([b"\x00", b"\xff"], pa.binary())},
        {"dsfield": pa.array([None, None], pa.null())},
    ]
    out: list[bytes] = []
    for variant in variants:
        columns = dict(base, **variant)
        buf = io.BytesIO()
        pq.write_table(pa.table(columns), buf)
        out.append(buf.getvalue())
    return out


def parquet_seeds() -> list[bytes]:
    files = written_files("parquet")
    valid = files[0]
    return [
        *files,
        *_foreign_parquet(),
        valid[: len(valid) // 2],
        valid[:-8] + b"\xff\xff\xff\x7fPAR1",
        b"PAR1" + b"\x00" * 64 + b"PAR1",
        b"PAR1",
        b"",
    ]


TARGETS: list[FuzzTarget] = [
    FuzzTarget("flows-jsonl", _runner("jsonl"), jsonl_seeds),
    FuzzTarget("flows-csv", _runner("csv"), csv_seeds),
    FuzzTarget("flows-parquet", _runner("parquet"), parquet_seeds),
]
