"""Flow records through the policy's filters: every selector, the ranking, every case a
record cannot judge, and agreement with the real engine on one packet per flow."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.audit.classify import Classified, RecordClassifier
from diffserv.capture import open_capture
from diffserv.columns import PacketBatch
from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.engine.session import Session, drive
from diffserv.errors import PolicyFileError
from diffserv.flows.schema import UNKNOWN, FlowBatch, make_batch
from diffserv.policy.build import parse
from diffserv.policy.model import Action, Class, Filter, HostName, Policy
from support import synth

net = ipaddress.ip_network
ALL4 = LOCAL_IN | LOCAL_OUT | FWD_IN | FWD_OUT


def policy_of(filters: list[Filter]) -> Policy:
    names = dict.fromkeys(f.class_name for f in filters if f.class_name != "default")
    classes = tuple(Class(name, "ipp.continue") for name in names)
    return Policy(
        actions=(Action("ipgpc.classify", "ipgpc", classes=classes, filters=tuple(filters)),)
    )


def words(text: str) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(text)
    value = int(ip) | (0xFFFF << 32) if ip.version == 4 else int(ip)
    return ip.version, value >> 64, value & ((1 << 64) - 1)


def records(rows: list[dict[str, Any]]) -> FlowBatch:
    """Records from dicts (src, dst, proto, sport, dport, ds, dscp, prec, dir, in_if, ...)."""
    n = len(rows)
    cols: dict[str, list[int]] = {}

    def put(name: str, value: int) -> None:
        cols.setdefault(name, []).append(value)

    for row in rows:
        ver, shi, slo = words(row.get("src", "192.0.2.1"))
        _, dhi, dlo = words(row.get("dst", "198.51.100.1"))
        put("ip_version", row.get("version", ver))
        put("saddr_hi", shi)
        put("saddr_lo", slo)
        put("daddr_hi", dhi)
        put("daddr_lo", dlo)
        put("protocol", row.get("proto", 17))
        put("sport", row.get("sport", 1024))
        put("dport", row.get("dport", 80))
        ds = row.get("ds", 0)
        put("ds_in", ds)
        put("dscp_in", row.get("dscp", ds >> 2 if ds >= 0 else UNKNOWN))
        put("prec_in", row.get("prec", ds >> 5 if ds >= 0 else UNKNOWN))
        for name in ("direction", "in_if", "out_if", "uid", "projid"):
            put(name, row.get(name, UNKNOWN))
    given = {name: np.array(values) for name, values in cols.items()}
    given["first_ns"] = np.arange(n, dtype=np.int64)
    given["last_ns"] = np.arange(n, dtype=np.int64)
    given["packets"] = np.ones(n, np.uint64)
    given["bytes"] = np.full(n, 100, np.uint64)
    return make_batch("ipfix", "192.0.2.9", 0, n, given)


def run(
    filters: list[Filter], rows: list[dict[str, Any]], **kw: Any
) -> tuple[RecordClassifier, Classified]:
    rc = RecordClassifier(policy_of(filters), **kw)
    return rc, rc.classify(records(rows))


def classes(filters: list[Filter], rows: list[dict[str, Any]], **kw: Any) -> list[str]:
    """Class per record, '?<filter>' where a filter above the decision cannot be judged."""
    rc, got = run(filters, rows, **kw)
    out = []
    for c, b in zip(got.class_index.tolist(), got.blocked_by.tolist(), strict=True):
        out.append(rc.classes[c] if b < 0 else "?" + rc.filters[b].name)
    return out


# ---- every selector ------------------------------------------------------------------


def test_addresses_prefixes_and_families() -> None:
    filters = [
        Filter("v4", "four", daddr=net("10.0.0.0/8")),
        Filter("v6", "six", saddr=net("2001:db8::/32")),
    ]
    got = classes(
        filters,
        [
            {"dst": "10.9.9.9"},
            {"dst": "11.0.0.1"},
            {"src": "2001:db8::5", "dst": "2001:db8::6"},
            {"src": "2001:db9::5", "dst": "::a00:1"},  # low bits of 10.0.0.1, not v4-mapped
        ],
    )
    assert got == ["four", "default", "six", "default"]


def test_host_names_match_every_resolved_address_and_unresolved_never() -> None:
    both = HostName("web", (net("192.0.2.80/32"), net("2001:db8::80/128")))
    filters = [Filter("h", "web", daddr=both), Filter("gone", "lost", daddr=HostName("x", ()))]
    got = classes(
        filters,
        [
            {"dst": "192.0.2.80"},
            {"src": "2001:db8::1", "dst": "2001:db8::80"},
            {"dst": "192.0.2.81"},
        ],
    )
    assert got == ["web", "web", "default"]


def test_protocol_and_ports() -> None:
    filters = [Filter("tcp", "t", protocol=6, dport=443), Filter("s", "src", sport=53)]
    got = classes(
        filters,
        [
            {"proto": 6, "dport": 443},
            {"proto": 17, "dport": 443},
            {"proto": 17, "sport": 53},
            {"proto": 132, "sport": 53},
        ],
    )
    assert got == ["t", "default", "src", "src"]


def test_ports_of_protocols_without_ports_are_zero_whatever_the_record_says() -> None:
    # NetFlow puts ICMP type/code in dport: the engine's ICMP packets have no ports
    got = classes(
        [Filter("d", "d", dport=2048)], [{"proto": 1, "dport": 2048}, {"proto": 6, "dport": 2048}]
    )
    assert got == ["default", "d"]


def test_dsfield_under_its_mask() -> None:
    filters = [Filter("ef", "ef", dsfield=0xB8, dsfield_mask=0xFC)]
    got = classes(filters, [{"ds": 0xB8}, {"ds": 0xBA}, {"ds": 0x28}])
    assert got == ["ef", "ef", "default"]


def test_direction_pairs() -> None:
    filters = [
        Filter("in", "inbound", direction=LOCAL_IN | FWD_IN, dport=1),
        Filter("out", "outbound", direction=LOCAL_OUT | FWD_OUT, dport=2),
        Filter("any", "anywhere", direction=ALL4, dport=3),
    ]
    got = classes(
        filters,
        [
            {"dport": 1, "direction": 0},
            {"dport": 1, "direction": 1},
            {"dport": 2, "direction": 1},
            {"dport": 2, "direction": 0},
            {"dport": 3},  # direction unknown: all four positions still match
        ],
    )
    assert got == ["inbound", "default", "outbound", "default", "anywhere"]


def test_if_name_through_the_interface_map() -> None:
    filters = [Filter("wan", "w", if_name="eth0")]
    rows = [
        {"direction": 0, "in_if": 2, "out_if": 3},
        {"direction": 1, "in_if": 2, "out_if": 3},
        {"direction": 1, "in_if": 3, "out_if": 2},
        {"in_if": 3, "out_if": 4},  # unknown direction, neither is eth0
        {"in_if": 2, "out_if": 2},  # unknown direction, both are eth0
    ]
    got = classes(filters, rows, interfaces={2: "eth0", 3: "eth1", 4: "eth2"})
    assert got == ["w", "default", "w", "default", "w"]


def test_user_and_projid() -> None:
    filters = [Filter("u", "user", user=100), Filter("p", "proj", projid=7)]
    rows = [{"uid": 100, "projid": 1}, {"uid": 5, "projid": 7}, {"uid": 5, "projid": 1}]
    assert classes(filters, rows) == ["user", "proj", "default"]


# ---- the ranking ---------------------------------------------------------------------


def test_priority_then_precedence_then_file_order() -> None:
    filters = [
        Filter("first", "a", dport=80),
        Filter("tie", "b", dport=80),
        Filter("prec", "c", dport=80, precedence=5),
        Filter("prio", "d", sport=9, priority=2),
    ]
    rc, got = run(filters, [{"dport": 80, "sport": 1}, {"dport": 80, "sport": 9}])
    assert [rc.classes[c] for c in got.class_index] == ["c", "d"]
    assert got.filter_index.tolist() == [2, 3]
    rc, got = run(filters[:2], [{"dport": 80}])
    assert got.filter_index.tolist() == [0] and rc.classes[got.class_index[0]] == "a"


def test_default_class_has_no_filter() -> None:
    rc, got = run([Filter("f", "web", dport=80)], [{"dport": 81}])
    assert got.filter_index.tolist() == [-1] and got.blocked_by.tolist() == [-1]
    assert rc.classes[got.class_index[0]] == "default"
    assert rc.filters[0].name == "f" and got.missing == [""]


# ---- what a record cannot tell -------------------------------------------------------


def test_unknown_user_blocks_only_when_ranked_above() -> None:
    above = [Filter("u", "user", user=100, priority=5), Filter("w", "web", dport=80)]
    _, got = run(above, [{"dport": 80}, {"dport": 80, "uid": 3}])
    assert got.blocked_by.tolist() == [0, -1]
    assert got.missing == ["user", ""]
    below = [Filter("w", "web", dport=80, priority=5), Filter("u", "user", user=100)]
    assert classes(below, [{"dport": 80}]) == ["web"]


def test_a_filter_whose_known_selectors_fail_does_not_block() -> None:
    filters = [Filter("u", "user", user=100, dport=22), Filter("w", "web", dport=80)]
    assert classes(filters, [{"dport": 80}, {"dport": 22}]) == ["web", "?u"]


def test_unknown_projid_blocks_even_the_default_class() -> None:
    _, got = run([Filter("p", "proj", projid=7)], [{}])
    assert got.blocked_by.tolist() == [0] and got.missing == ["projid"]


def test_if_name_without_a_map_or_unknown_ifindex() -> None:
    filters = [Filter("wan", "w", if_name="eth0")]
    assert classes(filters, [{"direction": 0, "in_if": 2}]) == ["?wan"]
    mapped = {2: "eth0"}
    rows = [{"direction": 0, "in_if": 9}, {"direction": 0}, {"in_if": 2, "out_if": 5}]
    assert classes(filters, rows, interfaces=mapped) == ["?wan", "?wan", "?wan"]
    assert run(filters, rows, interfaces=mapped)[1].missing == ["if_name"]


def test_direction_a_record_cannot_tell() -> None:
    filters = [
        Filter("li", "li", direction=LOCAL_IN, dport=1),
        Filter("lo", "lo", direction=LOCAL_OUT, dport=2),
    ]
    rows = [
        {"dport": 1, "direction": 0},
        {"dport": 1, "direction": 1},
        {"dport": 2},
        {"dport": 2, "direction": 0},
    ]
    assert classes(filters, rows) == ["?li", "default", "?lo", "default"]
    assert run(filters, rows)[1].missing == ["direction", "direction"]


def test_dsfield_unknown_and_partly_known() -> None:
    dscp_only = [Filter("ef", "ef", dsfield=0xB8, dsfield_mask=0xFC)]
    with_ecn = [Filter("ce", "ce", dsfield=0x03, dsfield_mask=0x03)]
    prec = [Filter("p5", "p5", dsfield=0xA0, dsfield_mask=0xE0)]
    # IE 195: the DSCP without ECN
    ie195 = {"ds": UNKNOWN, "dscp": 46, "prec": 5}
    assert classes(dscp_only, [ie195, {**ie195, "dscp": 10}]) == ["ef", "default"]
    assert classes(with_ecn, [ie195]) == ["?ce"]
    assert classes(prec, [{"ds": UNKNOWN, "dscp": UNKNOWN, "prec": 5}]) == ["p5"]
    assert classes(dscp_only, [{"ds": UNKNOWN, "dscp": UNKNOWN, "prec": 5}]) == ["?ef"]
    assert classes(dscp_only, [{"ds": UNKNOWN, "dscp": UNKNOWN, "prec": 4}]) == ["default"]
    assert run(with_ecn, [ie195])[1].missing == ["dsfield"]


def test_ports_not_exported() -> None:
    filters = [Filter("d", "dns", dport=53, priority=1), Filter("t", "tcp", protocol=6)]
    got = classes(filters, [{"proto": 6, "dport": 0}, {"proto": 1, "dport": 0}])
    assert got == ["?d", "default"]
    assert run(filters, [{"proto": 6, "dport": 0}])[1].missing == ["dport", ""]


def test_missing_names_every_selector_lacked() -> None:
    filters = [Filter("x", "x", user=1, direction=LOCAL_IN, dport=5)]
    _, got = run(filters, [{"proto": 6, "dport": 0, "direction": 0}])
    assert got.missing == ["user, direction, dport"]


def test_no_classifier_is_a_policy_error() -> None:
    with pytest.raises(PolicyFileError, match=r"ipgpc\.classify"):
        RecordClassifier(Policy(actions=()))


def test_parsed_policy_and_large_batch_chunks() -> None:
    policy = parse(
        """fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class { name web next_action continue }
	filter { name w class web daddr 10.0.0.0/8 dport 80 }
}
""",
        "t.conf",
    )
    rc = RecordClassifier(policy)
    n = 600_000  # more than one chunk
    rows = records([{"dst": "10.1.2.3", "dport": 80}, {"dst": "10.1.2.3", "dport": 81}])
    big = make_batch("ipfix", "", 0, n, {k: np.resize(v, n) for k, v in rows.columns.items()})
    got = rc.classify(big)
    assert got.class_index.tolist()[:4] == [0, 1, 0, 1] and got.class_index.tolist()[-2:] == [0, 1]
    assert int(np.count_nonzero(got.filter_index == 0)) == n // 2


# ---- the oracle: the real engine on one packet per flow --------------------------------

V4_POOL = ["10.0.0.1", "10.0.1.1", "10.1.0.1", "192.0.2.7"]
V6_POOL = ["2001:db8::1", "2001:db8:1::1", "2001:db9::1"]
PREFIXES = [
    net("10.0.0.0/8"),
    net("10.0.0.0/24"),
    net("10.0.1.1/32"),
    net("192.0.2.0/24"),
    net("2001:db8::/32"),
    net("2001:db8::1/128"),
]
PORTS = [53, 80, 443]
PROTOCOLS = [6, 17, 132, 1]
DIRECTION_SETS = [
    LOCAL_IN,
    LOCAL_OUT,
    FWD_IN,
    FWD_OUT,
    LOCAL_IN | FWD_IN,
    LOCAL_OUT | FWD_OUT,
    ALL4,
    LOCAL_IN | LOCAL_OUT,
]


@st.composite
def filters_(draw: st.DrawFn) -> list[Filter]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        kw: dict[str, Any] = {}
        if draw(st.booleans()):
            kw[draw(st.sampled_from(["saddr", "daddr"]))] = draw(st.sampled_from(PREFIXES))
        if draw(st.booleans()):
            kw["protocol"] = draw(st.sampled_from(PROTOCOLS))
        if draw(st.booleans()):
            kw[draw(st.sampled_from(["sport", "dport"]))] = draw(st.sampled_from(PORTS))
        if draw(st.booleans()):
            kw["dsfield"] = draw(st.integers(0, 255))
            kw["dsfield_mask"] = draw(st.sampled_from([0xFC, 0xE0, 0x03, 0xFF, 0x10]))
        if draw(st.booleans()):
            kw["direction"] = draw(st.sampled_from(DIRECTION_SETS))
        if not kw:
            kw["dport"] = draw(st.sampled_from(PORTS))
        kw["priority"] = draw(st.sampled_from([None, 1, 2]))
        kw["precedence"] = draw(st.sampled_from([None, 1, 2]))
        out.append(Filter(f"f{i}", draw(st.sampled_from(["a", "b", "c"])), **kw))
    return out


@st.composite
def flows_(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        v6 = draw(st.booleans())
        pool = V6_POOL if v6 else V4_POOL
        out.append(
            {
                "src": draw(st.sampled_from(pool)),
                "dst": draw(st.sampled_from(pool)),
                "proto": draw(st.sampled_from(PROTOCOLS)),
                "sport": draw(st.sampled_from([*PORTS, 40000])),
                "dport": draw(st.sampled_from([*PORTS, 40001])),
                "ds": draw(st.integers(0, 255)),
            }
        )
    return out


class _Classes:
    """A packet sink keeping the class the engine gave every packet."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def write(self, batch: PacketBatch) -> None:
        self.ids.extend(batch.cols.class_id[: batch.n].tolist())

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


def _frame(flow: dict[str, Any]) -> bytes:
    proto = flow["proto"]
    v6 = ":" in flow["src"]
    l4 = {
        6: lambda: synth.tcp(flow["sport"], flow["dport"]),
        17: lambda: synth.udp(flow["sport"], flow["dport"]),
        132: lambda: synth.sctp(flow["sport"], flow["dport"]),
        1: synth.icmp,  # protocol 1 in IPv6 too: the record says 1, so must the packet
    }[proto]()
    build = synth.ipv6 if v6 else synth.ipv4
    return synth.ethernet(
        build(flow["src"], flow["dst"], l4, dscp=flow["ds"] >> 2, ecn=flow["ds"] & 3)
    )


def engine_classes(
    policy: Policy, flows: list[dict[str, Any]], direction: int, path: Path
) -> list[str]:
    synth.write_pcap(path, [_frame(f) for f in flows])
    sink = _Classes()
    with open_capture(path, direction=direction) as reader:
        session = Session(policy, packet_sink=sink)
        drive(session, reader)
        names = [cls.name for cls in session.graph.classifier.classes]  # type: ignore[attr-defined]
    return [names[i] for i in sink.ids]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=filters_(), flows=flows_(), egress=st.booleans())
def test_agrees_with_the_engine_on_one_packet_per_flow(
    tmp_path: Path, filters: list[Filter], flows: list[dict[str, Any]], egress: bool
) -> None:
    policy = policy_of(filters)
    rc = RecordClassifier(policy)
    # a record's port fields for ICMP are what a NetFlow exporter might put there
    got = rc.classify(records([{**f, "direction": int(egress)} for f in flows]))
    positions = (LOCAL_OUT, FWD_OUT) if egress else (LOCAL_IN, FWD_IN)
    for position in positions:
        seen = engine_classes(policy, flows, position, tmp_path / "flows.pcap")
        for i, (cls, blocked) in enumerate(
            zip(got.class_index.tolist(), got.blocked_by.tolist(), strict=True)
        ):
            if blocked < 0:
                assert rc.classes[cls] == seen[i], (i, flows[i], position)
