"""Every report's figures over a store of known records, against plain Python sums."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from report_records import MIN, T0, records, write_store

from diffserv.cli.main import main
from diffserv.errors import InputDataError, UsageError
from diffserv.report.choices import REPORTS
from diffserv.report.duckdb_engine import DuckDBEngine
from diffserv.report.filters import build_selection
from diffserv.report.groups import default_groups, parse_groups
from diffserv.report.queries import Report, ReportRequest, run_report
from diffserv.report.sources import SourceSet

RECORDS = records()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("report") / "store", RECORDS)


@pytest.fixture(scope="module")
def engine(store: Path) -> DuckDBEngine:
    return DuckDBEngine(SourceSet([str(store)]).resolve)


def report(engine: DuckDBEngine, name: str, *filters: str, **options: Any) -> Report:
    groups = options.pop("groups", default_groups())
    start, end = options.pop("start", None), options.pop("end", None)
    selection = build_selection(list(filters), groups, start=start, end=end, now_ns=T0)
    return run_report(engine, ReportRequest(name, selection, groups, **options))


def scaled(row: dict[str, Any]) -> tuple[int, int]:
    return row["packets"] * row["sampling"], row["bytes"] * row["sampling"]


def sums(rows: list[dict[str, Any]], key: Any) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        packets, nbytes = scaled(row)
        acc = out[key(row)]
        acc[0] += 1
        acc[1] += packets
        acc[2] += nbytes
    return dict(out)


def test_top_dscp_is_the_plain_sum_with_184_and_185_one_row(engine: DuckDBEngine) -> None:
    got = report(engine, "top-dscp", top=100)
    want = sums(RECORDS, lambda r: r["dscp_in"])
    rows = [r for r in got.rows if r["side"] == "in"]
    assert {r["dscp"]: [r["flows"], r["packets"], r["bytes"]] for r in rows} == want
    ef = next(r for r in rows if r["dscp"] == 46)
    assert ef["name"] == "EF" and ef["service_class"] == "Telephony"
    total = sum(v[2] for v in want.values())
    assert got.meta["totals"]["bytes"] == total
    assert ef["share"] == round(100 * want[46][2] / total, 2)
    span = max(r["last_ns"] for r in RECORDS) - min(r["first_ns"] for r in RECORDS)
    assert ef["avg_bps"] == want[46][2] * 8 * 10**9 // span
    unknown = next(r for r in rows if r["dscp"] is None)  # D sends no ToS: not DSCP 0
    assert unknown["name"] == "unknown" and unknown["flows"] == 2
    # bytes order, then the egress marks as their own rows
    assert [r["bytes"] for r in rows] == sorted((r["bytes"] for r in rows), reverse=True)
    out = {r["dscp"]: r["bytes"] for r in got.rows if r["side"] == "out"}
    assert out[36] == 4 * 120_000 * 10 and got.meta["egress_marks"] is True


def test_sampled_records_are_scaled_and_the_report_says_so(engine: DuckDBEngine) -> None:
    got = report(engine, "top-dscp", "dscp=AF41")
    assert got.meta["sampled_records"] == 4
    assert "scaled" in got.meta["note"]
    row = next(r for r in got.rows if r["side"] == "in")
    assert (row["packets"], row["bytes"]) == (4 * 100 * 10, 4 * 120_000 * 10)


def test_peak_is_the_busiest_interval(engine: DuckDBEngine) -> None:
    got = report(engine, "top-dscp", "dscp=EF", interval_s=60)
    row = next(r for r in got.rows if r["side"] == "in")
    per_minute: dict[int, int] = defaultdict(int)
    for r in RECORDS:
        if r["dscp_in"] == 46:
            per_minute[(r["first_ns"] - T0) // MIN] += r["bytes"]
    span_start = min(r["first_ns"] for r in RECORDS if r["dscp_in"] == 46)
    span_end = max(r["last_ns"] for r in RECORDS if r["dscp_in"] == 46)
    rates = []
    for minute, nbytes in per_minute.items():
        start = T0 + minute * MIN
        length = min(start + MIN, span_end) - max(start, span_start)
        rates.append(nbytes * 8 * 10**9 // length)
    assert row["peak_bps"] == max(rates)
    assert row["peak_bps"] >= row["avg_bps"]


def test_apps_and_conversations_inside_each_dscp(engine: DuckDBEngine) -> None:
    apps = report(engine, "apps", top=1)
    ef = [r for r in apps.rows if r["dscp"] == 46]
    assert len(ef) == 1  # --top per DSCP
    assert (ef[0]["protocol_name"], ef[0]["port"]) == ("udp", 5004)  # lower non-zero port
    ef_bytes = sum(r["bytes"] for r in RECORDS if r["dscp_in"] == 46)
    assert ef[0]["share_of_dscp"] == round(100 * 9_000 / ef_bytes, 2)
    icmp = next(r for r in report(engine, "apps", "protocol=icmp").rows)
    assert icmp["port"] is None and icmp["service"] is None
    talks = report(engine, "conversations", "dscp=CS0", top=10)
    pairs = {(r["addr_a"], r["addr_b"]): r["bytes"] for r in talks.rows}
    want = sums(
        [r for r in RECORDS if r["dscp_in"] == 0],
        lambda r: tuple(sorted((r["saddr"], r["daddr"]))),
    )
    assert pairs == {k: v[2] for k, v in want.items()}


def test_timeline_puts_each_record_in_the_interval_of_its_first_packet(
    engine: DuckDBEngine,
) -> None:
    got = report(engine, "timeline", interval_s=120)
    want = sums(RECORDS, lambda r: ((r["first_ns"] - T0) // (2 * MIN), r["dscp_in"]))
    assert {
        ((r["start_ns"] - T0) // (2 * MIN), r["dscp"]): [r["flows"], r["packets"], r["bytes"]]
        for r in got.rows
    } == want
    assert all(r["bps"] == r["bytes"] * 8 // 120 for r in got.rows)


def test_groups_default_and_from_a_file(engine: DuckDBEngine) -> None:
    rfc = {
        r["group"]: r["bytes"] for r in report(engine, "groups", top=50).rows if r["side"] == "in"
    }
    assert rfc["Telephony"] == sum(r["bytes"] for r in RECORDS if r["dscp_in"] == 46)
    groups = parse_groups("Voice = EF, CS5\nBulk = AF11-AF13, LE\n", "g.txt")
    got = report(engine, "groups", top=50, groups=groups)
    by = {r["group"]: r["bytes"] for r in got.rows if r["side"] == "in"}
    assert by["Bulk"] == 3 * 700  # B's DSCP 10
    assert sum(by.values()) == got.meta["totals"]["bytes"]
    assert "Other" in by and "unknown" in by
    apps = report(engine, "apps", "group=Voice", key="group", groups=groups)
    assert {r["group"] for r in apps.rows} == {"Voice"}


def test_tos_view_keeps_the_whole_byte(engine: DuckDBEngine) -> None:
    rows = {r["tos"]: r for r in report(engine, "tos", top=50).rows}
    assert rows[184]["name"] == rows[185]["name"] == "EF"
    assert rows[185]["ecn_name"] == "ECT(1)" and rows[184]["precedence_name"] == "CRITIC/ECP"
    assert rows[184]["flows"] == rows[185]["flows"] == 3
    assert rows[72]["tos_bits"] == ["Maximize-Throughput"]


def test_ecn_is_unknown_for_dscp_only_exporters(engine: DuckDBEngine) -> None:
    rows = report(engine, "ecn", "exporter=192.0.2.2").rows
    assert {r["ecn_name"] for r in rows} == {"unknown"}
    a = {(r["dscp"], r["ecn_name"]): r["flows"] for r in report(engine, "ecn").rows}
    assert a[(46, "ECT(1)")] == 3 and a[(34, "CE")] == 1 and a[(34, "ECT(0)")] == 3


def test_remark_matrix_and_flows_that_changed(engine: DuckDBEngine) -> None:
    got = report(engine, "remark")
    assert [(r["in_name"], r["out_name"], r["changed"], r["flows"]) for r in got.rows] == [
        ("AF41", "AF42", True, 4)
    ]
    changed = got.extra["changed_flows"]
    assert [(c["saddr"], c["marks"]) for c in changed] == [("10.0.0.7", ["DF", "AF21", "DF"])]


def test_silent_exporters(engine: DuckDBEngine) -> None:
    got = report(engine, "silent-exporters")
    found = {(r["exporter"], r["level"], r["status"], tuple(r["interfaces"])) for r in got.rows}
    assert found == {
        ("192.0.2.3", "exporter", "ToS always 0", ()),
        ("192.0.2.4", "exporter", "no ToS field", ()),
        ("192.0.2.1", "interface", "ToS always 0", (9,)),
    }
    assert got.meta["exporters_checked"] == 4


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        (["exporter=192.0.2.2"], lambda r: r["exporter"] == "192.0.2.2"),
        (["dscp=EF", "dscp=AF41"], lambda r: r["dscp_in"] in (46, 34)),
        (["dscp=AF11-AF13"], lambda r: r["dscp_in"] is not None and 10 <= r["dscp_in"] <= 14),
        (["dscp=unknown"], lambda r: r["dscp_in"] is None),
        (["addr=10.0.0.0/24"], lambda r: "10.0.0." in r["saddr"] + r["daddr"]),
        (["src=2001:db8::/48"], lambda r: r["saddr"] == "2001:db8::1"),
        (["dst=2001:db8:1::2"], lambda r: r["daddr"] == "2001:db8:1::2"),
        (["protocol=udp", "interface=3"], lambda r: r["protocol"] == 17 and r["in_if"] == 3),
        (["ip_version=6"], lambda r: ":" in r["saddr"]),
        (["direction=ingress"], lambda r: r["direction"] == 0),
        (["ecn=CE"], lambda r: r["ecn_in"] == 3),
        (["tos=185"], lambda r: r["ds_in"] == 185),
        (["port=22"], lambda r: 22 in (r["sport"], r["dport"])),
        (["dport=1000-2000"], lambda r: 1000 <= r["dport"] <= 2000),
        (["source=netflow9"], lambda r: r["source"] == "netflow9"),
        (["dscp_out=AF42"], lambda r: r["dscp_out"] == 36),
    ],
)
def test_filters_select_what_plain_python_selects(
    engine: DuckDBEngine, filters: list[str], match: Any
) -> None:
    got = report(engine, "top-dscp", *filters, top=100)
    want = [r for r in RECORDS if match(r)]
    assert got.meta["totals"]["flows"] == len(want)
    assert got.meta["totals"]["bytes"] == sum(scaled(r)[1] for r in want)


def test_time_range_counts_a_record_by_its_first_packet(engine: DuckDBEngine) -> None:
    cut = T0 + 2 * MIN
    early = report(engine, "top-dscp", end="2026-01-01T00:02:00Z").meta["totals"]["flows"]
    late = report(engine, "top-dscp", start=str(cut // 10**9)).meta["totals"]["flows"]
    assert early == sum(1 for r in RECORDS if r["first_ns"] < cut)
    assert early + late == len(RECORDS)
    # now = T0: a minute before it takes in every record, the future none
    assert report(engine, "top-dscp", start="-1m").meta["totals"]["flows"] == len(RECORDS)
    assert report(engine, "top-dscp", start="now").meta["totals"]["flows"] == sum(
        1 for r in RECORDS if r["first_ns"] >= T0
    )


@pytest.mark.parametrize(
    "bad",
    ["dscp=EFF", "nokey=1", "addr=10.0.0.300", "protocol=nope", "direction=up", "justtext"],
)
def test_bad_filters_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="--filter"):
        build_selection([bad], default_groups())


def test_group_file_mistakes_name_the_line() -> None:
    with pytest.raises(InputDataError, match=r"g:2: .*DSCP 46 is in group A already \(line 1\)"):
        parse_groups("A = EF\nB = CS5, 46\n", "g")
    with pytest.raises(InputDataError, match=r"g:1: group A: unknown DSCP name"):
        parse_groups("A = EX\n", "g")
    with pytest.raises(InputDataError, match=r"g:1: expected"):
        parse_groups("no equals here\n", "g")


def test_cli_json_csv_and_exit_status(
    store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["report", str(store), "--report", "apps", "--json", "--top", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == "apps" and out["rows"] and "totals" in out["meta"]
    assert main(["report", str(store), "--report", "ecn", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dscp,name,service_class,group,ecn,ecn_name")
    assert len(lines) == 1 + len(report_rows(store, "ecn"))
    assert main(["report", str(store), "--filter", "dscp=bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    groups = tmp_path / "groups.txt"
    groups.write_text("A = EF\nB = 46\n")
    assert main(["report", str(store), "--groups", str(groups), "--report", "groups"]) == 2
    assert f"{groups}:2:" in capsys.readouterr().err


def report_rows(store: Path, name: str) -> list[dict[str, Any]]:
    return report(DuckDBEngine(SourceSet([str(store)]).resolve), name).rows


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_fits_80_columns(
    store: Path, name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["report", str(store), "--report", name]) == 0
    text = capsys.readouterr().out
    assert text.strip()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
