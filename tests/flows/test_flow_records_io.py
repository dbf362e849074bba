"""Record files: the three formats write what flowacct expired and read back the same."""

from __future__ import annotations

import csv
import ipaddress
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.errors import HostSystemError, InputDataError, UsageError
from diffserv.flows.reader import read_records
from diffserv.flows.writers import PARQUET_ROW_GROUP, open_record_writer
from diffserv.records import (
    BASIC_FIELDS,
    EXTENDED_FIELDS,
    FlowRecords,
    format_address,
    format_addresses_utf8,
    iso_times,
    parse_address,
    parse_iso_time,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def v4(text: str) -> tuple[int, int]:
    return parse_address(text)


def records(action: str = "acct", n: int = 3) -> FlowRecords:
    s = [v4(f"10.0.{(i + 1) >> 8}.{(i + 1) & 255}") for i in range(n)]
    d = [parse_address("2001:db8::1") if i % 2 else v4("198.51.100.7") for i in range(n)]
    return FlowRecords(
        action=action,
        saddr_hi=np.array([a[0] for a in s], np.uint64),
        saddr_lo=np.array([a[1] for a in s], np.uint64),
        daddr_hi=np.array([a[0] for a in d], np.uint64),
        daddr_lo=np.array([a[1] for a in d], np.uint64),
        sport=np.arange(1000, 1000 + n).astype(np.uint16),
        dport=np.full(n, 443, np.uint16),
        protocol=np.full(n, 6, np.uint8),
        dsfield=np.array([(46 << 2 | 1) if i == 0 else 0 for i in range(n)], np.uint8),
        projid=np.array([-1] + [7] * (n - 1), np.int32),
        uid=np.array([1000] + [-1] * (n - 1), np.int32),
        npackets=np.arange(1, n + 1, dtype=np.int64),
        nbytes=np.arange(1, n + 1, dtype=np.int64) * 1500,
        first_ns=np.full(n, T0, np.int64),
        last_ns=np.full(n, T0 + 1, np.int64),
    )


def test_jsonl_extended_fields_and_values(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    with open_record_writer(str(path), "extended") as w:
        w.write(records())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(rows[0]) == list(EXTENDED_FIELDS)
    assert rows[0] == {
        "saddr": "10.0.0.1",
        "daddr": "198.51.100.7",
        "sport": 1000,
        "dport": 443,
        "protocol": 6,
        "npackets": 1,
        "nbytes": 1500,
        "action": "acct",
        "dsfield": 185,
        "dscp": 46,
        "ecn": 1,
        "first_seen": "2026-01-01T00:00:00.000000000Z",
        "last_seen": "2026-01-01T00:00:00.000000001Z",
        "projid": None,
        "uid": 1000,
    }
    assert rows[1]["daddr"] == "2001:db8::1" and rows[1]["projid"] == 7
    assert rows[1]["uid"] is None


def test_csv_basic_has_only_basic_columns(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    w = open_record_writer(str(path), "basic")
    w.write(records())
    w.close()
    w.close()  # idempotent
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(BASIC_FIELDS)
    assert lines[1] == "10.0.0.1,198.51.100.7,1000,443,6,1,1500,acct"
    assert len(lines) == 4


def test_text_files_are_flushed_as_records_expire(tmp_path: Path) -> None:
    for ext in ("jsonl", "csv"):
        path = tmp_path / f"f.{ext}"
        w = open_record_writer(str(path), "extended")
        w.write(records(n=2))
        # not closed yet: what expired is already on disk
        assert read_records(str(path)).n == 2
        w.close()


def test_parquet_types_row_groups_and_several_actions(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    with open_record_writer(str(path), "extended") as w:
        w.write(records("a", PARQUET_ROW_GROUP))
        w.write(records("b", 5))
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == PARQUET_ROW_GROUP + 5
    assert meta.num_row_groups == 2
    table = pq.read_table(path)
    assert str(table.schema.field("first_seen").type) == "timestamp[ns, tz=UTC]"
    assert table.column("first_seen").cast("int64")[0].as_py() == T0
    assert table.column("projid")[0].as_py() is None
    assert set(table.column("action").to_pylist()) == {"a", "b"}


def test_parquet_is_valid_after_an_interrupted_run(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    with pytest.raises(KeyboardInterrupt), open_record_writer(str(path), "basic") as w:
        w.write(records(n=3))
        raise KeyboardInterrupt
    assert read_records(str(path)).n == 3


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("group", ["basic", "extended"])
def test_round_trip(tmp_path: Path, ext: str, group: str) -> None:
    path = tmp_path / f"f.{ext}"
    with open_record_writer(str(path), group) as w:
        w.write(records("x", 4))
        w.write(records("y", 0))
    table = read_records(str(path))
    assert table.group == group
    assert table.n == 4
    assert table.saddr[:2] == ["10.0.0.1", "10.0.0.2"]
    assert table.daddr[1] == "2001:db8::1"
    assert table.nbytes == [1500, 3000, 4500, 6000]
    assert table.action == ["x"] * 4
    if group == "extended":
        assert table.dsfield[0] == 185
        assert table.first_ns == [T0] * 4 and table.last_ns == [T0 + 1] * 4


def test_unknown_extension_and_group_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown flow record format '\.txt'"):
        open_record_writer(str(tmp_path / "f.txt"), "basic")
    with pytest.raises(UsageError, match="basic or extended"):
        open_record_writer(str(tmp_path / "f.csv"), "full")
    with pytest.raises(UsageError):
        read_records(str(tmp_path / "f"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", '{"saddr": 1}\n', r"a\.jsonl: line 1: not a flow record file"),
        ("b.jsonl", "", None),
        (
            "c.jsonl",
            '{"saddr":"10.0.0.1","daddr":"10.0.0.2","sport":1,"dport":2,"protocol":6,'
            '"npackets":1,"nbytes":40,"action":"a"}\n{"saddr": \n',
            r"c\.jsonl: line 2: not JSON",
        ),
        (
            "d.csv",
            "saddr,daddr,sport,dport,protocol,npackets,nbytes,action\n"
            "10.0.0.1,10.0.0.2,1,2,6,1,40,a\n10.0.0.1,10.0.0.999,1,2,6,1,40,a\n",
            r"d\.csv: line 3: field daddr is not an address: '10\.0\.0\.999'",
        ),
        (
            "e.csv",
            "saddr,daddr,sport,dport,protocol,npackets,nbytes,action\n"
            "10.0.0.1,10.0.0.2,70000,2,6,1,40,a\n",
            r"e\.csv: line 2: field sport is out of range",
        ),
        (
            "f.csv",
            "saddr,daddr,sport,dport,protocol,npackets,nbytes,action\n10.0.0.1,1\n",
            r"f\.csv: line 2: 2 fields where the header has 8",
        ),
        ("g.parquet", "PAR1 garbage", r"g\.parquet: not a valid Parquet file"),
        ("h.csv", "", r"h\.csv: line 1: empty file"),
    ],
)
def test_bad_files_name_the_line(
    tmp_path: Path, name: str, content: str, message: str | None
) -> None:
    path = tmp_path / name
    path.write_text(content)
    if message is None:
        assert read_records(str(path)).n == 0
        return
    with pytest.raises(InputDataError, match=message):
        read_records(str(path))


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n\n\xff\xfe\n")
    with pytest.raises(InputDataError, match=r"x\.jsonl: line 3: not UTF-8"):
        read_records(str(path))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**128 - 1))
def test_address_text_round_trip(value: int) -> None:
    hi, lo = value >> 64, value & (2**64 - 1)
    assert parse_address(format_address(hi, lo)) == (hi, lo) or (hi == 0 and lo >> 32 == 0xFFFF)


def test_v4_mapped_prints_as_dotted_quad() -> None:
    assert format_address(*parse_address("203.0.113.9")) == "203.0.113.9"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**62))
def test_time_text_round_trip(ns: int) -> None:
    (text,) = iso_times(np.array([ns], np.int64))
    assert text.endswith("Z") and len(text) == 30
    assert parse_iso_time(text) == ns


def test_write_errors_are_host_system_errors(tmp_path: Path) -> None:
    with pytest.raises(HostSystemError, match="cannot create"):
        open_record_writer(str(tmp_path / "no" / "f.parquet"), "basic")
    with pytest.raises(HostSystemError, match="cannot create"):
        open_record_writer(str(tmp_path / "no" / "f.csv"), "basic")
    # /dev/full takes the open and fails every write with ENOSPC
    full = tmp_path / "full.jsonl"
    full.symlink_to("/dev/full")
    w = open_record_writer(str(full), "basic")
    with pytest.raises(
        HostSystemError, match=r"cannot write .*full\.jsonl: No space left on device; kept the 0 "
    ):
        w.write(records())
    with pytest.raises(HostSystemError, match="No space left"):  # and stays failed
        w.write(records())
    w.close()
    assert Path("/dev/full").exists()  # a device is never removed


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("valid")
    out: dict[str, bytes] = {}
    for ext in ("jsonl", "csv", "parquet"):
        path = d / f"v.{ext}"
        with open_record_writer(str(path), "extended") as w:
            w.write(records(n=4))
        out[ext] = path.read_bytes()
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["jsonl", "csv", "parquet"]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10**6),
)
def test_damaged_files_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory,
    valid_files: dict[str, bytes],
    ext: str,
    flips: list[tuple[int, int]],
    cut: int,
) -> None:
    data = bytearray(valid_files[ext])
    for pos, value in flips:
        data[pos % len(data)] = value
    del data[len(data) - cut % len(data) :]
    path = tmp_path_factory.mktemp("bad") / f"b.{ext}"
    path.write_bytes(bytes(data))
    try:
        table = read_records(str(path))
    except InputDataError as exc:
        assert str(exc).startswith(str(path))
        assert "\n" not in str(exc)
    else:
        assert table.n <= 4


@given(
    st.one_of(
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
        st.tuples(st.just(0), st.integers(0, 2**64 - 1)),  # ::x, ::a.b.c.d, v4-mapped
        st.tuples(st.just(0), st.integers(0, 2**32 - 1).map(lambda v: (0xFFFF << 32) | v)),
        st.tuples(  # runs of zero words in every position
            st.integers(0, 15).map(
                lambda m: sum(0x1234 << (16 * i) for i in range(4) if m >> i & 1)
            ),
            st.integers(0, 15).map(lambda m: sum(0xAB << (16 * i) for i in range(4) if m >> i & 1)),
        ),
    )
)
def test_address_text_is_rfc_5952_as_the_ipaddress_module_writes_it(pair: tuple[int, int]) -> None:
    hi, lo = pair
    value = (hi << 64) | lo
    if hi == 0 and lo >> 32 == 0xFFFF:
        expected = str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    else:
        expected = ipaddress.IPv6Address(value).compressed
    assert format_address(hi, lo) == expected


@pytest.mark.parametrize("action", ["acct", "line\nbreak"])
def test_csv_rows_are_whole_records_whatever_a_field_holds(tmp_path: Path, action: str) -> None:
    """The CSV writer writes many rows at once and cuts them into per-record lines; a
    field with a line break in it (quoted) must not cut a record in two."""
    path = tmp_path / "flows.csv"
    with open_record_writer(str(path), "extended") as w:
        w.write(records(action, 5))
        assert w.records_written == 5
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [row["action"] for row in rows] == [action] * 5


_ADDRESS_VALUES = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1).map(lambda v: (0xFFFF << 32) | v),  # IPv4 (v4-mapped)
    st.integers(0, 2**16 - 1).map(lambda v: v << 112),  # long zero runs
    st.just(0),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ADDRESS_VALUES, max_size=40))
def test_address_texts_as_arrow_buffers_equal_the_texts(values: list[int]) -> None:
    # the flow store's column buffers hold exactly the texts ipaddress writes, end to end
    hi = np.array([v >> 64 for v in values], np.uint64)
    lo = np.array([v & (2**64 - 1) for v in values], np.uint64)
    offsets, text = format_addresses_utf8(hi, lo)
    expected = [
        str(ipaddress.IPv4Address(v & 0xFFFFFFFF))
        if v >> 32 == 0xFFFF
        else ipaddress.IPv6Address(v).compressed
        for v in values
    ]
    assert offsets.tolist()[0] == 0 and len(offsets) == len(values) + 1
    got = [text[a:b].decode() for a, b in itertools.pairwise(offsets)]
    assert got == expected
    assert len(text) == offsets[-1]
