"""Every figure of every report, checked against plain Python over the records written.

The records go through the real flow store and the real DuckDB engine; the expected
values come from :func:`support.report_data.sums` and the documented rules written out
again here (service port, address pairs, first-packet buckets, edge-clipped peaks).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from diffserv.cli.main import main
from diffserv.report.groups import default_groups, parse_groups
from diffserv.report.queries import Engine
from support.collecting import Nfcapd, free_udp_port, nfdump_json
from support.report_data import (
    T0,
    Rec,
    S,
    counters,
    engine_over,
    report,
    service_port,
    share,
    sums,
    write_store,
)
from support.tools import require_tool

INTERVAL = 60


def _records() -> list[Rec]:
    """A mix of marks, protocols, sampling and exporters over two store hours."""
    recs: list[Rec] = []
    marks: list[dict[str, Any]] = [
        {"ds": 184},  # EF
        {"ds": 185},  # EF with ECT(1): still DSCP 46
        {"ds": 0},
        {"ds": 40},  # AF11
        {"ds": 72},  # AF21
        {"ds": 0x2B},  # AF11 (10) + CE? no: 0x2b = DSCP 10, ECN 3
        {"ds": None, "dscp_only": 46},  # IE 195 only: EF, ECN unknown
        {"ds": None, "dscp_only": 34},  # AF41 from IE 195
        {"ds": None},  # no mark exported
        {"ds": 4},  # DSCP 1 (LE), ECN 0
    ]
    protocols = [(6, 51000, 443), (17, 5060, 5060), (1, 0, 0), (132, 0, 3868), (17, 0, 53)]
    for i in range(120):
        mark = marks[i % len(marks)]
        proto, sport, dport = protocols[i % len(protocols)]
        recs.append(
            Rec(
                first_ns=T0 + 3000 * S + i * 37 * S + (i * 7919) % S,
                saddr=f"10.0.{i % 3}.{1 + i % 5}",
                daddr="192.0.2.10" if i % 4 else "10.0.0.1",
                sport=sport + i % 2,
                dport=dport,
                protocol=proto,
                packets=1 + (i * 13) % 97,
                bytes=64 + (i * 7717) % 150_000,
                duration_ns=(i % 9) * S,
                sampling=100 if i % 11 == 0 else (1 if i % 11 == 1 else None),
                exporter=["192.0.2.1", "192.0.2.2", "2001:db8::7"][i % 3],
                in_if=i % 4,
                **mark,
            )
        )
    # IPv6 traffic too (conversations keep text addresses)
    for i in range(12):
        recs.append(
            Rec(
                first_ns=T0 + 3100 * S + i * 11 * S,
                saddr=f"2001:db8::{i % 4 + 1:x}",
                daddr="2001:db8:1::1",
                protocol=17,
                sport=443,
                dport=50000 + i,
                ds=0xB8 if i % 2 else 0x48,
                bytes=5000 + i,
                packets=5,
            )
        )
    return recs


RECS = _records()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over(write_store(tmp_path_factory.mktemp("exact") / "store", RECS))


def _span(recs: list[Rec]) -> tuple[int, int]:
    start = min(r.first_ns for r in recs)
    return start, max(r.last_ns for r in recs) - start


def _peak(recs: list[Rec], interval_s: int, start: int, span: int) -> int:
    """The documented peak: an interval at the span's edge counts for its part inside."""
    interval = interval_s * S
    buckets: Counter[int] = Counter()
    for rec in recs:
        buckets[rec.first_ns - rec.first_ns % interval] += rec.s_bytes
    end = start + span
    rates = []
    for t, nbytes in buckets.items():
        length = min(t + interval, end) - max(t, start)
        rates.append(nbytes * 8 * S // (length if length > 0 else interval))
    return max(rates)


def test_totals_and_sampling_meta(engine: Engine) -> None:
    got = report(engine, "top-dscp")
    (total,) = sums(RECS, lambda r: 0).values()
    assert got.meta["totals"] == total
    sampled = sum(1 for r in RECS if r.scale > 1)
    assert sampled > 0
    assert got.meta["sampled_records"] == sampled
    assert got.meta["note"].startswith(f"{sampled:,} sampled records")
    # sampling 1 and "not exported" count as they are; N scales packets and bytes
    assert total["packets"] != sum(r.packets for r in RECS)
    assert total["flows"] == len(RECS)


def test_unsampled_records_have_no_note(tmp_path: Path) -> None:
    recs = [Rec(first_ns=T0 + i * S, sampling=1) for i in range(3)]
    got = report(engine_over(write_store(tmp_path / "s", recs)), "top-dscp")
    assert got.meta["sampled_records"] == 0
    assert "note" not in got.meta
    assert got.meta["totals"]["bytes"] == 3000


@pytest.mark.parametrize("by", ["bytes", "packets", "flows"])
def test_top_dscp_rows(engine: Engine, by: str) -> None:
    got = report(engine, "top-dscp", top=100, by=by, interval_s=INTERVAL)
    expected = sums(RECS, lambda r: r.dscp)
    total = sum(c[by] for c in expected.values())
    start, span = _span(RECS)
    assert got.meta["span_ns"] == span
    assert {row["dscp"]: counters(row) for row in got.rows} == expected
    for row in got.rows:
        assert row["side"] == "in"
        assert row["share"] == share(expected[row["dscp"]][by], total)
        assert row["avg_bps"] == expected[row["dscp"]]["bytes"] * 8 * S // span
        mine = [r for r in RECS if r.dscp == row["dscp"]]
        assert row["peak_bps"] == _peak(mine, INTERVAL, start, span)
        assert row["peak_bps"] >= row["avg_bps"]
    values = [row[by] for row in got.rows]
    assert values == sorted(values, reverse=True)
    # the mark is read from the whole byte: 184 and 185 are one EF row; IE 195 joins it
    ef = next(row for row in got.rows if row["dscp"] == 46)
    assert ef["name"] == "EF"
    assert ef["flows"] == sum(1 for r in RECS if r.ds in (184, 185) or r.dscp_only == 46)
    unknown = next(row for row in got.rows if row["dscp"] is None)
    assert unknown["name"] == "unknown"
    assert unknown["flows"] == sum(1 for r in RECS if r.dscp is None)


def test_top_dscp_top_cuts_rows(engine: Engine) -> None:
    got = report(engine, "top-dscp", top=2)
    expected = sorted(sums(RECS, lambda r: r.dscp).items(), key=lambda kv: -kv[1]["bytes"])
    assert [row["dscp"] for row in got.rows] == [k for k, _ in expected[:2]]


def test_tos_keeps_whole_bytes_apart(engine: Engine) -> None:
    got = report(engine, "tos", top=100)
    # one row per byte; records with only IE 195 are rows of no byte and their DSCP
    expected = sums(RECS, lambda r: (r.ds, r.dscp))
    total = sum(c["bytes"] for c in expected.values())
    assert {(row["tos"], row["dscp"]): counters(row) for row in got.rows} == expected
    by_tos = {row["tos"]: row for row in got.rows if row["tos"] is not None}
    assert by_tos[184]["dscp"] == by_tos[185]["dscp"] == 46
    assert (by_tos[184]["ecn_name"], by_tos[185]["ecn_name"]) == ("Not-ECT", "ECT(1)")
    assert by_tos[185]["tos_hex"] == "0xb9"
    assert by_tos[184]["precedence"] == 5
    for row in got.rows:
        assert row["share"] == share(expected[(row["tos"], row["dscp"])]["bytes"], total)


def _within(got: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for row in got:
        out.setdefault(row[key], []).append(row)
    return out


@pytest.mark.parametrize("top", [1, 3, 100])
def test_apps_per_dscp(engine: Engine, top: int) -> None:
    got = report(engine, "apps", top=top)
    expected = sums(RECS, lambda r: (r.dscp, r.protocol, service_port(r)))
    per_dscp = sums(RECS, lambda r: r.dscp)
    total = sum(c["bytes"] for c in per_dscp.values())
    for dscp, rows in _within(got.rows, "dscp").items():
        mine = sorted(
            ((k, c) for k, c in expected.items() if k[0] == dscp),
            key=lambda kv: (-kv[1]["bytes"], -kv[1]["packets"], -kv[1]["flows"]),
        )
        assert len(rows) == min(top, len(mine))
        for row, (k, c) in zip(rows, mine, strict=False):
            assert (row["protocol"], row["port"]) == k[1:]
            assert counters(row) == c
            assert row["share_of_dscp"] == share(c["bytes"], per_dscp[dscp]["bytes"])
            assert row["share_of_total"] == share(c["bytes"], total)
    assert set(_within(got.rows, "dscp")) == set(per_dscp)
    # ICMP has no service port; SCTP and a zero source port take the other port
    ports = {(row["protocol"], row["port"]) for row in report(engine, "apps", top=100).rows}
    assert (1, None) in ports and (132, 3868) in ports and (17, 53) in ports
    assert (6, 443) in ports and (17, 5060) in ports


def test_conversations_are_unordered_pairs(engine: Engine) -> None:
    got = report(engine, "conversations", top=100)
    expected = sums(RECS, lambda r: (r.dscp, min(r.saddr, r.daddr), max(r.saddr, r.daddr)))
    per_dscp = sums(RECS, lambda r: r.dscp)
    total = sum(c["bytes"] for c in per_dscp.values())
    assert {(row["dscp"], row["addr_a"], row["addr_b"]): counters(row) for row in got.rows} == (
        expected
    )
    for row in got.rows:
        part = expected[(row["dscp"], row["addr_a"], row["addr_b"])]["bytes"]
        assert row["share_of_dscp"] == share(part, per_dscp[row["dscp"]]["bytes"])
        assert row["share_of_total"] == share(part, total)
    two = report(engine, "conversations", top=2)
    for rows in _within(two.rows, "dscp").values():
        assert len(rows) <= 2


@pytest.mark.parametrize("interval_s", [1, 60, 300, None])
def test_timeline_buckets_by_first_packet(engine: Engine, interval_s: int | None) -> None:
    got = report(engine, "timeline", interval_s=interval_s)
    step = got.meta["interval_s"]
    if interval_s is None:  # auto: the shortest step keeping the series within 500
        _, span = _span(RECS)
        assert step == min(s for s in (1, 10, 60, 300, 900, 3600) if span <= s * S * 500)
    else:
        assert step == interval_s
    interval = step * S
    expected = sums(RECS, lambda r: (r.first_ns - r.first_ns % interval, r.dscp))
    assert {(row["start_ns"], row["dscp"]): counters(row) for row in got.rows} == expected
    for row in got.rows:
        assert row["bps"] == row["bytes"] * 8 // step
    starts = [row["start_ns"] for row in got.rows]
    assert starts == sorted(starts)


def test_groups_default_rfc4594(engine: Engine) -> None:
    groups = default_groups()
    got = report(engine, "groups", top=100)
    expected = sums(
        RECS, lambda r: None if r.dscp is None else groups.names[groups.of_dscp[r.dscp]]
    )
    assert {row["group"] if row["dscps"] or row["group"] != "unknown" else None: counters(row)
            for row in got.rows} == expected  # fmt: skip
    assert got.meta["groups"] == "RFC 4594 service classes"
    by_name = {row["group"]: row for row in got.rows}
    assert "EF" in by_name["Telephony"]["dscps"]


def test_groups_of_a_file_with_ranges_and_other(engine: Engine) -> None:
    text = "Voice = EF, CS5  # real-time\nData = AF11-AF13, 34\n\nLow=LE\n"
    groups = parse_groups(text, "g.txt")
    got = report(engine, "groups", groups=groups, top=100)

    def name(rec: Rec) -> str | None:
        if rec.dscp is None:
            return None
        if rec.dscp in (46, 40):
            return "Voice"
        if 10 <= rec.dscp <= 14 or rec.dscp == 34:
            return "Data"
        return "Low" if rec.dscp == 1 else "Other"

    expected = sums(RECS, name)
    got_rows = {None if row["group"] == "unknown" else row["group"]: row for row in got.rows}
    assert {k: counters(v) for k, v in got_rows.items()} == expected
    assert got_rows["Data"]["dscps"] == ["AF11", "11", "AF12", "13", "AF13", "AF41"]
    assert "DF" in got_rows["Other"]["dscps"]
    total = sum(c["bytes"] for c in expected.values())
    assert sum(row["share"] for row in got.rows) == pytest.approx(100, abs=0.05)
    for key, row in got_rows.items():
        assert row["share"] == share(expected[key]["bytes"], total)
    # --key group keys the other per-mark reports the same way
    apps = report(engine, "apps", groups=groups, key="group", top=100)
    assert {row["group"] for row in apps.rows} == {"Voice", "Data", "Low", "Other", "unknown"}
    assert "share_of_group" in apps.columns


def test_ecn_unknown_for_ie195_only(engine: Engine) -> None:
    got = report(engine, "ecn")
    expected = sums(RECS, lambda r: (r.dscp, r.ecn))
    assert {(row["dscp"], row["ecn"]): counters(row) for row in got.rows} == expected
    names = {(row["dscp"], row["ecn"]): row["ecn_name"] for row in got.rows}
    assert names[(46, None)] == "unknown"  # IE 195 EF: the DSCP, no ECN
    assert names[(34, None)] == "unknown"
    assert names[(46, 1)] == "ECT(1)"
    assert names[(10, 3)] == "CE"
    per_dscp = sums(RECS, lambda r: r.dscp)
    for row in got.rows:
        part = expected[(row["dscp"], row["ecn"])]["bytes"]
        assert row["share_of_dscp"] == share(part, per_dscp[row["dscp"]]["bytes"])


def test_flows_report_lists_the_largest_records(engine: Engine) -> None:
    got = report(engine, "flows", top=5)
    largest = sorted(RECS, key=lambda r: (-r.s_bytes, r.first_ns))[:5]
    assert [(row["bytes"], row["packets"], row["saddr"]) for row in got.rows] == [
        (r.s_bytes, r.s_packets, r.saddr) for r in largest
    ]
    assert [row["dscp"] for row in got.rows] == [r.dscp for r in largest]
    by_packets = report(engine, "flows", top=3, by="packets")
    assert [row["packets"] for row in by_packets.rows] == sorted(
        (r.s_packets for r in RECS), reverse=True
    )[:3]


REMARK = [
    # one 5-tuple re-marked AF11 -> DF by a meter half of the time, egress marks known
    Rec(first_ns=T0 + i * S, ds=40, ds_out=40 if i % 2 else 0, sport=1000, bytes=100 + i)
    for i in range(6)
] + [
    # a marker changing its mind during a flow's life: EF, EF, CS5, EF
    Rec(first_ns=T0 + (10 + i) * S, ds=d, ds_out=d, sport=2000, bytes=10)
    for i, d in enumerate([184, 184, 160, 185])
] + [
    Rec(first_ns=T0 + 30 * S, ds=72, ds_out=None, sport=3000),  # no egress mark
    Rec(first_ns=T0 + 31 * S, ds=None, ds_out=None, sport=4000),
]  # fmt: skip


def test_remark_matrix_and_changed_flows(tmp_path: Path) -> None:
    engine = engine_over(write_store(tmp_path / "r", REMARK))
    got = report(engine, "remark", top=10)
    both = [r for r in REMARK if r.dscp is not None and r.dscp_out is not None]
    expected = sums(both, lambda r: (r.dscp, r.dscp_out))
    total = sum(c["bytes"] for c in expected.values())
    assert {(row["in_dscp"], row["out_dscp"]): counters(row) for row in got.rows} == expected
    for row in got.rows:
        assert row["changed"] == (row["in_dscp"] != row["out_dscp"])
        part = expected[(row["in_dscp"], row["out_dscp"])]["bytes"]
        assert row["share"] == share(part, total)
    changed = {row["sport"]: row for row in got.to_json()["changed_flows"]}
    assert set(changed) == {2000}  # AF11 -> DF happened on egress only: one DSCP in
    assert changed[2000]["dscps"] == [46, 40, 46]
    assert changed[2000]["marks"] == ["EF", "CS5", "EF"]
    assert counters(changed[2000]) == {"flows": 4, "packets": 40, "bytes": 40}
    assert got.meta["egress_marks"] is True
    # top-dscp shows both sides once egress marks exist (records without one: unknown)
    sides = report(engine, "top-dscp", top=100)
    out = {row["dscp"]: counters(row) for row in sides.rows if row["side"] == "out"}
    assert out == sums(REMARK, lambda r: r.dscp_out)
    into = {row["dscp"]: counters(row) for row in sides.rows if row["side"] == "in"}
    assert into == sums(REMARK, lambda r: r.dscp)


SILENT = (
    # an exporter whose template has no ToS field at all
    [Rec(first_ns=T0 + i * S, ds=None, exporter="198.51.100.1", in_if=3) for i in range(3)]
    # one that sends the field, always 0
    + [Rec(first_ns=T0 + i * S, ds=0, exporter="198.51.100.2", in_if=7) for i in range(4)]
    # a good exporter with one interface that never marks
    + [Rec(first_ns=T0 + i * S, ds=184, exporter="198.51.100.3", in_if=1) for i in range(2)]
    + [Rec(first_ns=T0 + i * S, ds=0, exporter="198.51.100.3", in_if=2, bytes=7) for i in range(5)]
    # egress marks count as marks: an exporter marking only on the way out is not silent
    + [Rec(first_ns=T0, ds=0, ds_out=184, exporter="198.51.100.4", in_if=9)]
)


def test_silent_exporters(tmp_path: Path) -> None:
    engine = engine_over(write_store(tmp_path / "s", SILENT))
    got = report(engine, "silent-exporters")
    rows = {(row["level"], row["exporter"]): row for row in got.rows}
    assert set(rows) == {
        ("exporter", "198.51.100.1"),
        ("exporter", "198.51.100.2"),
        ("interface", "198.51.100.3"),
    }
    none = rows[("exporter", "198.51.100.1")]
    assert (none["status"], none["flows"], none["unknown_flows"], none["zero_flows"]) == (
        "no ToS field",
        3,
        3,
        0,
    )
    assert none["interfaces"] == [3]
    zero = rows[("exporter", "198.51.100.2")]
    assert (zero["status"], zero["flows"], zero["zero_flows"], zero["bytes"]) == (
        "ToS always 0",
        4,
        4,
        4000,
    )
    port = rows[("interface", "198.51.100.3")]
    assert (port["interfaces"], port["flows"], port["bytes"]) == ([2], 5, 35)
    assert got.meta["exporters_checked"] == 4
    assert got.meta["interfaces_checked"] == 5


@pytest.mark.tools
def test_top_dscp_matches_nfdump_on_the_same_export(tmp_path: Path) -> None:
    """The store exported over IPFIX to a real nfcapd: nfdump's per-ToS sums, read as DSCP."""
    recs = [Rec(first_ns=T0 + i * S, ds=[184, 185, 0, 40, 72][i % 5], bytes=100 + i)
            for i in range(40)]  # fmt: skip
    store = write_store(tmp_path / "store", recs)
    port = free_udp_port()
    collector = Nfcapd(require_tool("nfcapd"), tmp_path, port)
    try:
        assert main(["export", f"{store}/", "--to", f"ipfix://127.0.0.1:{port}", "-q"]) == 0
        time.sleep(0.3)  # the last datagrams are still in nfcapd's socket buffer
    finally:
        collector.stop()
    nfdump: Counter[int] = Counter()
    for record in nfdump_json(require_tool("nfdump"), collector.spool):
        nfdump[record["src_tos"] >> 2] += record["in_bytes"]
    got = report(engine_over(store), "top-dscp")
    assert {row["dscp"]: row["bytes"] for row in got.rows} == dict(nfdump)
    assert sum(nfdump.values()) == sum(r.bytes for r in recs)
