"""`diffserv flows`: the report engine's tables over records written by `diffserv run --flows`."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffserv.cli.main import main
from diffserv.engine.modules.flowacct import FlowTable
from support import synth

T0 = 1_767_225_600_000_000_000

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action markaf11
	}
	filter {
		name webf
		class web
		dport 80
	}
	class {
		name default
		next_action acct_other
	}
}

action {
	module dscpmk
	name markaf11
	params {
		dscp_map {0-63:10}
		next_action acct_web
	}
}

action {
	module flowacct
	name acct_web
	params {
		timer 1000
		timeout 2000
		max_limit 1000
		next_action continue
	}
}

action {
	module flowacct
	name acct_other
	params {
		max_limit 1
		next_action continue
	}
}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("flows")
    packets = []
    for i in range(40):
        web = i % 2 == 1
        frame = synth.simple_frame(
            src=f"10.0.0.{i % 4 + 1}",
            proto="tcp" if web else "udp",
            dport=80 if web else 53,
            dscp=46 if i % 3 == 0 else 0,
            payload_len=100,
        )
        # a 5 s gap after packet 19 lets the web flows time out mid-run
        ts = T0 + i * 300_000_000 + (5_000_000_000 if i >= 20 else 0)
        packets.append(synth.Packet(frame, ts_ns=ts))
    synth.write_file(d / "in.pcap", synth.pcap_bytes(packets, nanosecond=True))
    (d / "acct.conf").write_text(POLICY)
    return d


def reports(text: str) -> dict[str, Any]:
    """The reports of `diffserv flows --json` output, by name."""
    document = json.loads(text)
    assert list(document) == ["reports"]
    assert list(document["reports"]) == ["top-dscp", "apps", "conversations", "flows"]
    out: dict[str, Any] = document["reports"]
    return out


def run_with_flows(d: Path, name: str, acct: str = "extended") -> Path:
    out = d / name
    argv = ["run", str(d / "acct.conf"), str(d / "in.pcap"), "-o", str(d / "out.pcap")]
    status = main([*argv, "-q", "--flows", str(out), "--acct", acct])
    assert status == 0
    return out


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_run_writes_records_and_flows_summarises_them(
    workdir: Path, ext: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_with_flows(workdir, f"f.{ext}")
    capsys.readouterr()
    assert main(["flows", str(path), "--json"]) == 0
    found = reports(capsys.readouterr().out)
    # max_limit 1 on acct_other: only the first udp item (10.0.0.1, EF) fits; the
    # packets of other udp items fail (epackets) and are dropped
    assert found["top-dscp"]["meta"]["totals"] == {"flows": 5, "packets": 24, "bytes": 3312}
    dscp = {r["name"]: r for r in found["top-dscp"]["rows"]}
    assert dscp["AF11"]["packets"] == 20 and dscp["AF11"]["dscp"] == 10
    assert dscp["AF11"]["flows"] == 4  # two flows, each expired by the timer once
    assert dscp["EF"]["packets"] == 4 and dscp["EF"]["bytes"] == 4 * 128
    web = next(r for r in found["apps"]["rows"] if r["port"] == 80)
    assert (web["protocol_name"], web["packets"], web["bytes"]) == ("tcp", 20, 2800)
    assert web["share_of_total"] == 84.54
    # the flows report lists records: each web flow was expired twice, 5 packets each
    assert [r["bytes"] for r in found["flows"]["rows"][:4]] == [700] * 4
    assert main(["flows", str(path), "--action", "acct_web", "--json"]) == 0
    totals = reports(capsys.readouterr().out)["apps"]["meta"]["totals"]
    assert totals == {"flows": 4, "packets": 20, "bytes": 20 * 140}


def test_text_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = run_with_flows(workdir, "t.jsonl")
    capsys.readouterr()
    assert main(["flows", str(path), "--top", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{path}\n")
    assert text.count("5 records, 24 packets, 3.3 kB") == 4  # one preamble per report
    for title in ("Top DSCP", "Applications per DSCP", "Conversations per DSCP", "Flow records"):
        assert title in text
    assert "AF11 (10)" in text
    flows_table = text.split("Flow records")[1].splitlines()
    assert len([line for line in flows_table if "2026-01-01" in line]) == 1  # --top 1


def test_basic_records_are_refused_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_with_flows(workdir, "b.csv", acct="basic")
    capsys.readouterr()
    assert main(["flows", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {path}: basic flow records have no times or DS byte to report; "
        "write them with --acct extended\n"
    )


def test_corrupt_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"saddr":"10.0.0.1"}\n')
    assert main(["flows", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {bad}: line 1: not a flow record file")


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.txt").write_text("not records\n")
    assert main(["flows", str(tmp_path / "x.txt")]) == 2
    assert "use .jsonl, .csv or .parquet" in capsys.readouterr().err
    assert main(["flows", str(tmp_path / "x.csv"), "--top", "0"]) == 2
    assert "--top" in capsys.readouterr().err
    missing = tmp_path / "missing.csv"
    assert main(["flows", str(missing)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_run_rejects_unknown_record_extension(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(workdir / "acct.conf"), str(workdir / "in.pcap"), "-o"]
    status = main([*argv, str(workdir / "o.pcap"), "-q", "--flows", str(workdir / "f.xml")])
    assert status == 2
    assert "unknown flow record format '.xml'" in capsys.readouterr().err


def test_records_to_stdout_and_summary_from_stdin(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["run", str(workdir / "acct.conf"), str(workdir / "in.pcap"), "-o"]
    assert main([*argv, str(workdir / "o.pcap"), "-q", "--flows", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0])["action"] in {"acct_web", "acct_other"}
    stdin = io.TextIOWrapper(io.BytesIO("\n".join(lines).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["flows", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("standard input\n") and "5 records, 24 packets" in out


def test_action_filter_and_sort(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = run_with_flows(workdir, "a.jsonl")
    capsys.readouterr()
    assert main(["flows", str(path), "--action", "acct_other", "--sort", "packets", "--json"]) == 0
    found = reports(capsys.readouterr().out)
    meta = found["top-dscp"]["meta"]
    assert meta["by"] == "packets" and meta["filters"] == ["action=acct_other"]
    assert meta["totals"] == {"flows": 1, "packets": 4, "bytes": 512}
    assert [(r["name"], r["packets"], r["share"]) for r in found["top-dscp"]["rows"]] == [
        ("EF", 4, 100.0)
    ]
    assert [r["ecn_name"] for r in found["flows"]["rows"]] == ["Not-ECT"]
    assert main(["flows", str(path), "--action", "acct_other", "--action", "acct_web"]) == 0
    assert "24 packets" in capsys.readouterr().out
    assert main(["flows", str(path), "--action", "acct_nope"]) == 2
    err = capsys.readouterr().err
    assert "no records of action 'acct_nope' (actions in the file: acct_other, acct_web)" in err


def test_ctrl_c_leaves_a_valid_parquet_file_with_what_expired(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    def interrupted(self: FlowTable) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(FlowTable, "flush", interrupted)
    out = workdir / "ctrl-c.parquet"
    argv = ["run", str(workdir / "acct.conf"), str(workdir / "in.pcap"), "-o"]
    assert main([*argv, str(workdir / "o.pcap"), "-q", "--flows", str(out)]) == 130
    capsys.readouterr()
    # the two web flows the timer expired at the 5 s gap are there; the rest was
    # still in the table when the run was interrupted
    assert main(["flows", str(out), "--json"]) == 0
    totals = reports(capsys.readouterr().out)["top-dscp"]["meta"]["totals"]
    assert (totals["flows"], totals["packets"]) == (2, 10)


def test_several_files_are_summed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = run_with_flows(workdir, "m1.jsonl")
    parquet = run_with_flows(workdir, "m2.parquet")
    basic = run_with_flows(workdir, "m3.csv", acct="basic")
    capsys.readouterr()
    assert main(["flows", str(jsonl), str(parquet), "--json"]) == 0
    totals = reports(capsys.readouterr().out)["flows"]["meta"]["totals"]
    assert (totals["flows"], totals["packets"], totals["bytes"]) == (10, 48, 2 * 3312)
    assert main(["flows", str(jsonl), str(basic)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{basic}: basic flow records have no times" in err


EXTENDED_RECORD = (
    '{"saddr":"10.0.0.1","daddr":"10.0.0.2","sport":1,"dport":80,"protocol":6,'
    '"npackets":NPACKETS,"nbytes":NBYTES,"action":"a","dsfield":0,"dscp":0,"ecn":0,'
    '"first_seen":"2026-01-01T00:00:00Z","last_seen":"LAST","projid":null,"uid":null}\n'
)


def record_line(npackets: str = "1", nbytes: str = "40", last: str = "2026-01-01T00:00:01Z") -> str:
    return (
        EXTENDED_RECORD.replace("NPACKETS", npackets)
        .replace("NBYTES", nbytes)
        .replace("LAST", last)
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (record_line(nbytes="9" * 5000), "field nbytes is out of range (0..9223372036854775807)"),
        (record_line(last="9999-01-01T00:00:00Z"), "field last_seen is out of range"),
        ("[" * 100_000 + "\n", "not a flow record (JSON nested too deeply)"),
    ],
    ids=["huge-number", "year-9999", "deep-nesting"],
)
def test_unreadable_numbers_and_nesting_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_text(record_line() * 16 + line)
    assert main(["flows", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}: line 17: {message}")
    assert captured.err.count("\n") == 1


def test_parquet_times_beyond_int64_name_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    path = tmp_path / "flows.parquet"
    rows = [json.loads(record_line()) for _ in range(3)]
    table = pa.Table.from_pylist(rows).drop_columns(["first_seen", "last_seen"])
    table = table.append_column("first_seen", pa.array([0, 1, 2**63], pa.uint64()))
    table = table.append_column("last_seen", pa.array([5, 5, 2**64 - 1], pa.uint64()))
    pq.write_table(table, path)
    assert main(["flows", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: row 3: field first_seen is out of range")
    assert err.count("\n") == 1


def test_json_totals_are_exact_beyond_int64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.jsonl"
    big = str(2**63 - 1)
    path.write_text(record_line(big, big) * 3)
    assert main(["flows", str(path), "--json"]) == 0
    found = reports(capsys.readouterr().out)
    total = 3 * (2**63 - 1)  # beyond int64: DuckDB sums HUGEINT, Python ints in JSON
    assert found["top-dscp"]["meta"]["totals"] == {"flows": 3, "packets": total, "bytes": total}
    top = found["top-dscp"]["rows"][0]
    assert (top["bytes"], top["share"]) == (total, 100.0)
    assert top["avg_bps"] == total * 8  # over the records' 1 s span
    assert found["apps"]["rows"][0]["bytes"] == total
    assert found["conversations"]["rows"][0]["packets"] == total
    assert found["flows"]["rows"][0]["bytes"] == 2**63 - 1
