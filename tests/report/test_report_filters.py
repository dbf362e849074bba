"""Every --filter key and the time range select exactly the records plain Python picks."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from diffserv.errors import UsageError
from diffserv.report.choices import FILTER_KEYS
from diffserv.report.filters import build_selection
from diffserv.report.groups import default_groups
from diffserv.report.queries import Engine
from support.report_data import T0, Rec, S, engine_over, report, write_store

RECS = [
    Rec(first_ns=T0 + 3500 * S, saddr="10.1.2.3", daddr="192.0.2.9", ds=184, sport=5060, dport=5060,
        protocol=17, in_if=1, out_if=2, direction=0, vlan=10, action="acct", klass="voice"),
    Rec(first_ns=T0 + 3700 * S, saddr="10.1.3.4", daddr="10.9.0.1", ds=185, sport=50000, dport=443,
        in_if=2, out_if=3, direction=1, vlan=20, ds_out=0, exporter="192.0.2.2", domain=5),
    Rec(first_ns=T0 + 3800 * S, saddr="2001:db8:1::5", daddr="2001:db8:ff::1", ds=40, dport=80,
        source="netflow9", in_if=3, action="acct", klass="web"),
    Rec(first_ns=T0 + 7300 * S, saddr="2001:db9::1", daddr="2001:db8::99", ds=None, dscp_only=46,
        protocol=1, sport=0, dport=0, exporter="", source="flowacct"),
    Rec(first_ns=T0 + 7400 * S, saddr="172.16.0.1", daddr="172.16.0.2", ds=None, sport=123,
        dport=123, protocol=17, exporter="192.0.2.2", ds_out=72),
    Rec(first_ns=T0 + 9000 * S, saddr="10.200.0.1", daddr="8.8.8.8", ds=0x4B, sport=1024,
        dport=53, protocol=17, vlan=10),
]  # fmt: skip


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over(write_store(tmp_path_factory.mktemp("f") / "store", RECS))


def _in(net: str) -> Callable[[str], bool]:
    network = ipaddress.ip_network(net)
    return lambda a: ipaddress.ip_address(a) in network


V4NET, V6NET = _in("10.1.0.0/16"), _in("2001:db8::/32")

CASES: list[tuple[list[str], Callable[[Rec], bool]]] = [
    (["exporter=192.0.2.2"], lambda r: r.exporter == "192.0.2.2"),
    (["exporter=local"], lambda r: r.exporter == ""),
    (["source=netflow9"], lambda r: r.source == "netflow9"),
    (["interface=2"], lambda r: 2 in (r.in_if, r.out_if)),
    (["in_if=3"], lambda r: r.in_if == 3),
    (["out_if=3"], lambda r: r.out_if == 3),
    (["direction=egress"], lambda r: r.direction == 1),
    (["direction=in"], lambda r: r.direction == 0),
    (["ip_version=6"], lambda r: r.ip_version == 6),
    (["protocol=udp"], lambda r: r.protocol == 17),
    (["protocol=1"], lambda r: r.protocol == 1),
    (["dscp=EF"], lambda r: r.dscp == 46),
    (["dscp=AF11-AF13"], lambda r: r.dscp is not None and 10 <= r.dscp <= 14),
    (["dscp=unknown"], lambda r: r.dscp is None),
    (["dscp=EF", "dscp=18"], lambda r: r.dscp in (46, 18)),  # a key twice: either
    (["dscp_out=DF"], lambda r: r.dscp_out == 0),
    (["group=Telephony"], lambda r: r.dscp == 46),
    (["group_out=Low-Latency Data"], lambda r: r.dscp_out in (18, 20, 22)),
    (["tos=184"], lambda r: r.ds == 184),
    (["tos=184-185"], lambda r: r.ds in (184, 185)),
    (["tos_out=0"], lambda r: r.ds_out == 0),
    (["ecn=ECT(1)"], lambda r: r.ecn == 1),
    (["ecn=unknown"], lambda r: r.ecn is None),
    (["ecn_out=0"], lambda r: r.ds_out is not None and r.ds_out & 3 == 0),
    (["addr=10.1.2.3"], lambda r: "10.1.2.3" in (r.saddr, r.daddr)),
    (["addr=10.1.0.0/16"], lambda r: V4NET(r.saddr) or V4NET(r.daddr)),
    (["src=10.1.0.0/16"], lambda r: V4NET(r.saddr)),
    (["dst=10.0.0.0/8"], lambda r: _in("10.0.0.0/8")(r.daddr)),
    (["src=2001:db8::/32"], lambda r: V6NET(r.saddr)),
    (["addr=2001:db8:ff::/48"], lambda r: _in("2001:db8:ff::/48")(r.daddr)),
    (["src=2001:db8::/32", "src=172.16.0.1"], lambda r: V6NET(r.saddr) or r.saddr == "172.16.0.1"),
    (["dst=2001:db8:ff::1"], lambda r: r.daddr == "2001:db8:ff::1"),
    (["port=443"], lambda r: 443 in (r.sport, r.dport)),
    (["sport=1024-65535"], lambda r: r.sport >= 1024),
    (["dport=53"], lambda r: r.dport == 53),
    (["vlan=10"], lambda r: r.vlan == 10),
    (["domain=5"], lambda r: r.domain == 5),
    (["action=acct"], lambda r: r.action == "acct"),
    (["class=voice"], lambda r: r.klass == "voice"),
    (["protocol=udp", "vlan=10"], lambda r: r.protocol == 17 and r.vlan == 10),
]


def test_every_filter_key_is_covered() -> None:
    keys = {k.strip() for k in FILTER_KEYS.split(",")}
    used = {f.split("=", 1)[0] for filters, _ in CASES for f in filters}
    assert keys <= used


@pytest.mark.parametrize(("filters", "keep"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_filter_selects_what_python_selects(
    engine: Engine, filters: list[str], keep: Callable[[Rec], bool]
) -> None:
    wanted = [r for r in RECS if keep(r)]
    got = report(engine, "flows", filters=filters, top=100)
    assert got.meta["totals"]["flows"] == len(wanted)
    starts = sorted(int(row["first_seen"][11:13]) * 3600 + int(row["first_seen"][14:16]) * 60
                    + int(row["first_seen"][17:19]) for row in got.rows)  # fmt: skip
    assert starts == sorted((r.first_ns - T0) // S for r in wanted)
    assert got.meta["filters"] == [f.strip() for f in filters]


NOW = T0 + 10_000 * S


@pytest.mark.parametrize(
    ("start", "end", "low", "high"),
    [
        ("2026-01-01T01:00:00Z", "2026-01-01T02:00:00", 3600, 7200),
        (str(T0 // S + 3700), str(T0 // S + 7400), 3700, 7400),  # epoch; --to not included
        ("-2h", "now", 10_000 - 7200, 10_000),  # relative to a fixed now
        ("-1h", None, 10_000 - 3600, 10**9),
        (None, "2026-01-01T01:01:40+00:00", 0, 3700),
    ],
)
def test_time_range(
    engine: Engine, start: str | None, end: str | None, low: int, high: int
) -> None:
    got = report(engine, "top-dscp", start=start, end=end, now_ns=NOW)
    wanted = [r for r in RECS if low * S <= r.first_ns - T0 < high * S]
    assert got.meta["totals"]["flows"] == len(wanted)
    assert got.meta["totals"]["bytes"] == sum(r.bytes for r in wanted)


@pytest.mark.parametrize(
    "filters",
    [["nokey=1"], ["dscp"], ["=5"], ["dscp=EX"], ["dscp=AF13-AF11"], ["port=70000"],
     ["addr=10.0.0.300"], ["direction=up"], ["ip_version=5"], ["group=Nope"], ["source=x"],
     ["exporter=host.example"], ["ecn=5"], ["tos=256"], ["protocol=nosuch"]],
)  # fmt: skip
def test_bad_filters_are_one_line_usage_errors(filters: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        build_selection(filters, default_groups())
    assert "\n" not in str(caught.value) and str(caught.value)


@pytest.mark.parametrize(("start", "end"), [("yesterday", None), (None, "-5x"), ("now", "-1h")])
def test_bad_times_are_usage_errors(start: str | None, end: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        build_selection([], default_groups(), start=start, end=end, now_ns=NOW)
    assert "\n" not in str(caught.value)


def test_user_text_never_becomes_sql(tmp_path: Path) -> None:
    engine = engine_over(write_store(tmp_path / "s", RECS))
    got = report(engine, "flows", filters=["action=x' OR '1'='1", "class=1); DROP TABLE x;--"])
    assert got.rows == []
