"""`diffserv run --flows DIR/` writes the flow store with the records `--flows f.parquet` gets."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import numpy as np
import pytest

from diffserv.cli.main import main
from diffserv.flows.reader import read_records
from diffserv.flows.store import read_store, store_files
from diffserv.flows.writers import StoreRecordWriter, open_record_writer
from diffserv.records import RECORD_COLUMNS, FlowRecords
from support import synth
from support.policies import account_everything

POLICY = account_everything(timeout_ms=600_000)

T0 = 1_767_225_600_000_000_000 - 1_800_000_000_000  # 23:30: the records cross midnight


def make_capture(path: Path) -> None:
    rng = random.Random(5)
    packets = []
    ts = T0
    for _ in range(900):
        ts += rng.randrange(1, 8_000_000_000)
        host = rng.randrange(10)
        v6 = host >= 7
        frame = synth.simple_frame(
            version=6 if v6 else 4,
            proto="tcp" if host % 2 else "udp",
            src=f"2001:db8::{host}" if v6 else f"10.2.0.{host}",
            dst="2001:db8::ff" if v6 else "192.168.9.9",
            sport=30000 + host,
            dport=443,
            dscp=rng.choice([0, 10, 34, 46]),
            ecn=rng.choice([0, 0, 1, 3]),
            payload_len=rng.randrange(0, 1200),
        )
        packets.append(synth.Packet(frame, ts_ns=ts))
    synth.write_file(path, synth.pcap_bytes(packets, nanosecond=True))


def run(tmp_path: Path, capture: Path, flows: str) -> int:
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    out = tmp_path / "out.pcap"
    return main(["run", str(policy), str(capture), "-o", str(out), "-q", "--flows", flows])


def test_store_holds_the_records_of_the_parquet_file(tmp_path: Path) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    assert run(tmp_path, capture, str(tmp_path / "f.parquet")) == 0
    store = tmp_path / "store"
    assert run(tmp_path, capture, f"{store}/") == 0
    records = read_records(str(tmp_path / "f.parquet"))
    expected = sorted(
        zip(
            records.saddr,
            records.daddr,
            records.sport,
            records.dport,
            records.protocol,
            records.dsfield,
            records.npackets,
            records.nbytes,
            records.first_ns,
            records.last_ns,
            records.action,
            strict=True,
        )
    )
    assert len(expected) > 40
    table = read_store(str(store))
    got = sorted(
        zip(
            *(
                table.column(name).cast("int64").to_pylist()
                if name.endswith("_seen")
                else table.column(name).to_pylist()
                for name in (
                    "saddr",
                    "daddr",
                    "sport",
                    "dport",
                    "protocol",
                    "ds_in",
                    "packets",
                    "bytes",
                    "first_seen",
                    "last_seen",
                    "action",
                )
            ),
            strict=True,
        )
    )
    assert got == expected
    assert set(table.column("source").to_pylist()) == {"flowacct"}
    assert len({Path(p).parent.parent.name for p in store_files(str(store))}) == 2  # two dates
    # a second run into the same directory adds its files beside the first run's
    assert run(tmp_path, capture, str(store)) == 0
    with duckdb.connect() as con:
        glob = f"read_parquet('{store}/**/*.parquet', hive_partitioning = true)"
        ((count, ecn_known),) = con.sql(f"SELECT count(*), count(ecn_in) FROM {glob}").fetchall()
    assert count == ecn_known == 2 * len(expected)


def test_a_policy_that_does_not_load_creates_no_store(tmp_path: Path) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    bad = tmp_path / "bad.conf"
    bad.write_text("fmt_version 1.0\naction {\n")
    status = main(
        [
            "run",
            str(bad),
            str(capture),
            "-o",
            str(tmp_path / "o.pcap"),
            "--flows",
            str(tmp_path / "store") + "/",
        ]
    )
    assert status == 1
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("suffix", ["/", ""])
def test_an_existing_directory_is_a_store(tmp_path: Path, suffix: str) -> None:
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    store = tmp_path / "existing"
    store.mkdir()
    assert run(tmp_path, capture, str(store) + suffix) == 0
    assert read_store(str(store)).num_rows > 40


def test_the_run_sink_keeps_expired_records_on_abort(tmp_path: Path) -> None:
    """Ctrl-C: the session aborts its record sink, which writes out what it was handed."""
    rows = np.zeros((3, len(RECORD_COLUMNS)), np.int64)
    rows[:, RECORD_COLUMNS.index("saddr_lo")] = (0xFFFF << 32) | 0x0A000001
    rows[:, RECORD_COLUMNS.index("npackets")] = 1
    rows[:, RECORD_COLUMNS.index("first_ns")] = T0
    rows[:, RECORD_COLUMNS.index("last_ns")] = T0
    writer = open_record_writer(f"{tmp_path / 'store'}/", "basic")
    assert isinstance(writer, StoreRecordWriter)
    writer.write(FlowRecords.from_matrix("acct", rows))
    writer.abort()
    assert writer.records_written == 3 and not writer.removed
    assert read_store(str(tmp_path / "store")).column("action").to_pylist() == ["acct"] * 3
    empty = open_record_writer(str(tmp_path / "empty") + "/", "extended")
    empty.abort()
    assert empty.removed and not (tmp_path / "empty").exists()


def test_store_records_say_the_direction_and_class_of_the_run(tmp_path: Path) -> None:
    # the same origin an export carries: --direction fwd-out is egress, and the one ipgpc
    # class whose packets reach the flowacct action is the records' class
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    policy = tmp_path / "acct.conf"
    policy.write_text(POLICY)
    store = tmp_path / "store"
    argv = ["run", str(policy), str(capture), "-o", str(tmp_path / "o.pcap"), "-q"]
    assert main([*argv, "--direction", "fwd-out", "--flows", f"{store}/"]) == 0
    rows = duckdb.sql(
        "SELECT DISTINCT direction, class, action, source FROM read_parquet("
        f"'{store}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert rows == [(1, "default", "acct", "flowacct")]
    unknown = tmp_path / "unknown"
    assert main([*argv, "--flows", f"{unknown}/"]) == 0
    rows = duckdb.sql(
        f"SELECT DISTINCT direction FROM read_parquet('{unknown}/**/*.parquet')"
    ).fetchall()
    assert rows == [(None,)]
