"""`diffserv report` as a user runs it: outputs, exit codes, every kind of source."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffserv.report.choices import REPORTS
from support.collecting import run_diffserv
from support.exports import dscp_mix_capture
from support.policies import account_everything
from support.report_data import T0, Rec, S, sums, write_store

RECS = [
    Rec(first_ns=T0 + i * 7 * S, ds=[184, 185, 0, 40, None][i % 5], ds_out=0 if i % 3 else None,
        bytes=100 * (i + 1), in_if=i % 2, exporter=["192.0.2.1", "192.0.2.2"][i % 2])
    for i in range(30)
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("cli") / "store", RECS)


def _json(*args: str) -> dict[str, object]:
    done = run_diffserv(["report", *args, "--json"])
    assert done.returncode == 0, done.stderr
    value: dict[str, object] = json.loads(done.stdout)
    return value


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_as_json_csv_and_80_columns(store: Path, name: str) -> None:
    data = _json(str(store), "--report", name)
    assert "rows" in data and "meta" in data and data["report"] == name
    done = run_diffserv(["report", str(store), "--report", name, "--csv"])
    assert done.returncode == 0, done.stderr
    header = next(csv.reader(io.StringIO(done.stdout)))
    rows = data["rows"]
    assert isinstance(rows, list)
    if rows:
        assert header == list(rows[0])
    os.environ["COLUMNS"] = "80"
    try:
        text = run_diffserv(["report", str(store), "--report", name])
    finally:
        del os.environ["COLUMNS"]
    assert text.returncode == 0, text.stderr
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


@pytest.mark.parametrize(
    "args",
    [
        ["--filter", "dscp=XX"],
        ["--from", "yesterday"],
        ["--interval", "0"],
        ["--top", "0"],
        ["--master", "local[2]"],
        ["--report", "nope"],
    ],
)
def test_usage_errors_exit_2_without_traceback(store: Path, args: list[str]) -> None:
    done = run_diffserv(["report", str(store), *args])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_missing_source_and_bad_group_file(store: Path, tmp_path: Path) -> None:
    done = run_diffserv(["report", str(tmp_path / "nothing.parquet")])
    assert done.returncode == 2 and "No such file" in done.stderr
    groups = tmp_path / "g.txt"
    groups.write_text("A = EF\nB = EF\n")
    done = run_diffserv(["report", str(store), "--groups", str(groups)])
    assert done.returncode != 0 and f"{groups}:2" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_store_file_and_multiple_sources_sum(store: Path) -> None:
    (file,) = sorted(store.glob("**/*.parquet"))
    one = _json(str(file))["meta"]
    two = _json(str(store), str(file))["meta"]
    assert isinstance(one, dict) and isinstance(two, dict)
    total = sums(RECS, lambda r: 0)[0]
    assert one["totals"] == total
    assert two["totals"] == {k: 2 * v for k, v in total.items()}


def test_non_store_parquet_in_a_store_dir_is_refused(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "date=2026-01-01" / "hour=0").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), bad / "date=2026-01-01" / "hour=0" / "x.parquet")
    done = run_diffserv(["report", str(bad)])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_capture_equals_the_records_of_run(tmp_path: Path) -> None:
    capture = dscp_mix_capture(tmp_path / "mix.pcap")
    policy = tmp_path / "acct.conf"
    policy.write_text(account_everything(timeout_ms=60_000, max_limit=16_000_000))
    sources = []
    for suffix in (".jsonl", ".csv", ".parquet"):
        records = tmp_path / f"flows{suffix}"
        done = run_diffserv(["run", str(policy), capture, "-o", str(tmp_path / "o.pcap"), "-q",
                             "--flows", str(records), "--acct", "extended"])  # fmt: skip
        assert done.returncode == 0, done.stderr
        sources.append(str(records))
    reports = [_json(source, "--report", "tos", "--top", "64") for source in (capture, *sources)]
    first = reports[0]
    assert isinstance(first["rows"], list) and first["rows"]
    for other in reports[1:]:
        assert other["rows"] == first["rows"]
        assert other["meta"]["totals"] == first["meta"]["totals"]  # type: ignore[index]


def test_basic_record_file_is_refused_in_one_line(tmp_path: Path) -> None:
    capture = dscp_mix_capture(tmp_path / "mix.pcap")
    policy = tmp_path / "acct.conf"
    policy.write_text(account_everything(timeout_ms=60_000))
    records = tmp_path / "basic.jsonl"
    done = run_diffserv(["run", str(policy), capture, "-o", str(tmp_path / "o.pcap"), "-q",
                         "--flows", str(records), "--acct", "basic"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_diffserv(["report", str(records)])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(records) in done.stderr
