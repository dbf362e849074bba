"""ipgpc: every selector, ranking, default class, statistics; the index against a naive matcher."""

from __future__ import annotations

import ipaddress
from typing import Any

from engine_helpers import classes_of, classifier_policy, graph_for, make_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.columns import FLAG_HEADER_CUT, FLAG_MALFORMED
from diffserv.directions import FWD_IN, FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.policy.model import (
    Class,
    Filter,
    HostName,
)

net = ipaddress.ip_network


def classify(filters: list[Filter], packets: list[dict[str, Any]], **kw: Any) -> list[str]:
    graph = graph_for(classifier_policy(filters))
    return classes_of(graph, make_batch(packets, **kw))


def test_unmatched_packets_go_to_default() -> None:
    got = classify([Filter("f", "web", dport=80)], [{"dport": 80}, {"dport": 81}])
    assert got == ["web", "default"]


def test_no_filters_everything_default() -> None:
    assert classify([], [{"dport": 80}]) == ["default"]


def test_address_prefixes_v4_and_v6_families() -> None:
    filters = [
        Filter("v4", "four", daddr=net("10.0.0.0/8")),
        Filter("v6", "six", saddr=net("2001:db8::/32")),
        Filter("any", "anyfam", dport=9),
    ]
    got = classify(
        filters,
        [
            {"dst": "10.9.9.9"},
            {"dst": "11.0.0.1"},
            {"src": "2001:db8::5", "dst": "2001:db8::6"},
            {"src": "2001:db9::5", "dst": "2001:db8::6"},
            {"src": "2001:db9::5", "dst": "2001:db8::6", "dport": 9},
            {"src": "192.0.2.1", "dport": 9},
        ],
    )
    assert got == ["four", "default", "six", "default", "anyfam", "anyfam"]


def test_ipv4_filter_never_matches_ipv6_packet_with_same_low_bits() -> None:
    # ::a00:1 has the same low 32 bits as 10.0.0.1 but is not v4-mapped
    got = classify([Filter("v4", "four", daddr=net("10.0.0.1/32"))], [{"dst": "::a00:1"}])
    assert got == ["default"]


def test_v4_mapped_ipv6_literal_counts_as_ipv4() -> None:
    got = classify([Filter("m", "m", daddr=net("::ffff:10.0.0.0/104"))], [{"dst": "10.1.1.1"}])
    assert got == ["m"]


def test_ports_and_port_zero_never_matches() -> None:
    filters = [Filter("s", "src", sport=1024), Filter("d", "dst", dport=443)]
    got = classify(
        filters,
        [
            {"sport": 1024, "dport": 1},
            {"sport": 5, "dport": 443},
            {"sport": 0, "dport": 0},
        ],
    )
    assert got == ["src", "dst", "default"]


def test_protocol_selector() -> None:
    got = classify([Filter("p", "esp", protocol=50)], [{"proto": 50}, {"proto": 6}, {"proto": 0}])
    assert got == ["esp", "default", "default"]


def test_tcp_udp_esp_all_kept_no_hash_bug() -> None:
    filters = [Filter(f"p{p}", f"c{p}", protocol=p) for p in (6, 17, 50)]
    got = classify(filters, [{"proto": 6}, {"proto": 17}, {"proto": 50}])
    assert got == ["c6", "c17", "c50"]


def test_dsfield_mask_exact_rule() -> None:
    filters = [
        Filter("a", "a", dsfield=0x28, dsfield_mask=0xFC),
        Filter("b", "b", dsfield=0x28, dsfield_mask=0xFF, priority=5),
    ]
    # 0x29 matches A only (illumos over-matched B); 0x28 matches both: B has priority
    got = classify(filters, [{"ds": 0x29}, {"ds": 0x28}, {"ds": 0x2C}])
    assert got == ["a", "b", "default"]


def test_direction_sets_match_any_listed_value() -> None:
    filters = [Filter("o", "out", direction=LOCAL_OUT | FWD_OUT)]
    got = classify(
        filters,
        [{"dir": LOCAL_OUT}, {"dir": FWD_OUT}, {"dir": LOCAL_IN}, {"dir": FWD_IN}, {"dir": 0}],
    )
    assert got == ["out", "out", "default", "default", "default"]


def test_if_name_from_batch_interfaces() -> None:
    filters = [Filter("i", "inside", if_name="eth1")]
    got = classify(
        filters,
        [{"ifindex": 2}, {"ifindex": 1}, {"ifindex": 0}, {"ifindex": 9}],
        interfaces=("", "eth0", "eth1"),
    )
    assert got == ["inside", "default", "default", "default"]


def test_user_and_projid_unknown_never_match() -> None:
    filters = [Filter("u", "user", user=100), Filter("p", "proj", projid=7)]
    got = classify(
        filters,
        [{"uid": 100}, {"uid": -1}, {"projid": 7}, {"projid": -1}],
    )
    assert got == ["user", "default", "proj", "default"]


def test_ranking_priority_then_precedence_then_file_order() -> None:
    filters = [
        Filter("first", "first", dport=80),
        Filter("second", "second", dport=80),
        Filter("lowprec", "lowprec", dport=80, precedence=5),
        Filter("highpri", "highpri", sport=1024, priority=2, precedence=100),
    ]
    assert classify(filters, [{"dport": 80, "sport": 1024}]) == ["highpri"]
    assert classify(filters, [{"dport": 80, "sport": 9}]) == ["lowprec"]
    assert classify(filters[:2], [{"dport": 80}]) == ["first"]
    assert classify(list(reversed(filters[:2])), [{"dport": 80}]) == ["second"]


def test_ip_version_is_not_a_selector() -> None:
    got = classify([Filter("v", "v", dport=80, ip_version=1)], [{"src": "::1", "dst": "::2"}])
    assert got == ["v"]


def test_host_name_filter_one_instance_per_address() -> None:
    host = HostName("www.example", (net("192.0.2.7/32"), net("2001:db8::7/128")))
    unresolved = HostName("nowhere.example", ())
    filters = [Filter("h", "host", daddr=host), Filter("n", "never", saddr=unresolved)]
    graph = graph_for(classifier_policy(filters))
    got = classes_of(
        graph,
        make_batch(
            [{"dst": "192.0.2.7"}, {"src": "2001:db8::1", "dst": "2001:db8::7"}, {"dst": "1.2.3.4"}]
        ),
    )
    assert got == ["host", "host", "default"]
    assert graph.counters()["ipgpc.classify"]["nfilters"] == 2


def test_statistics_global_and_per_class() -> None:
    filters = [Filter("f", "web", dport=80)]
    graph = graph_for(classifier_policy(filters))
    batch = make_batch(
        [
            {"dport": 80, "len": 100, "ts": 5},
            {"dport": 80, "len": 60, "ts": 9},
            {"dport": 1, "len": 40, "ts": 7},
            {"dport": 80, "flags": FLAG_MALFORMED},
            {"ip": False},
        ]
    )
    graph.run(batch)
    counters = graph.counters()["ipgpc.classify"]
    assert dict(counters) == {
        "nfilters": 1,
        "nclasses": 2,
        "nbytes": 200,
        "npackets": 3,
        "epackets": 1,
    }
    per_class = graph.classifier.class_counters()  # type: ignore[attr-defined]
    assert per_class["web"] == {"npackets": 2, "nbytes": 160, "last_match": 9}
    assert per_class["default"] == {"npackets": 1, "nbytes": 40, "last_match": 7}
    assert list(batch.cols.class_id[3:]) == [-1, -1]
    assert graph.malformed_count == 1 and graph.malformed_numbers == [4]
    assert graph.not_ip.packets == 1


def test_malformed_frame_without_ip_version_counts_as_ipgpc_error() -> None:
    graph = graph_for(classifier_policy([Filter("f", "web", dport=80)]))
    batch = make_batch([{"ip": False, "flags": FLAG_MALFORMED}, {"ip": False}])
    graph.run(batch)
    assert graph.counters()["ipgpc.classify"]["epackets"] == 1
    assert graph.not_ip.packets == 1
    assert list(batch.cols.action) == [-2, -2] and list(batch.cols.new_ds) == [-1, -1]


def test_class_default_may_be_redefined() -> None:
    filters = [Filter("f", "web", dport=80)]
    policy = classifier_policy(
        filters, classes=[Class("web", "ipp.continue"), Class("default", "ipp.drop")]
    )
    graph = graph_for(policy)
    batch = make_batch([{"dport": 80}, {"dport": 81}])
    graph.run(batch)
    assert list(batch.cols.action) == [-2, -4]


# ---------------------------------------------------------------- reference comparison

V4_NETS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.0.2.0/24"]
V6_NETS = ["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::3/128"]
V4_HOSTS = ["10.1.2.3", "10.1.9.9", "10.200.0.1", "192.0.2.77", "8.8.8.8"]
V6_HOSTS = ["2001:db8:1::3", "2001:db8:2::1", "2001:dead::1"]

filters_st = st.lists(
    st.builds(
        dict,
        saddr=st.none() | st.sampled_from(V4_NETS + V6_NETS),
        daddr=st.none() | st.sampled_from(V4_NETS + V6_NETS),
        proto=st.none() | st.sampled_from([6, 17]),
        sport=st.none() | st.sampled_from([53, 80]),
        dport=st.none() | st.sampled_from([53, 80, 443]),
        ds=st.none()
        | st.tuples(st.sampled_from([0, 0x28, 0xB8]), st.sampled_from([0xFC, 0xFF, 0xE0])),
        direction=st.none() | st.sampled_from([LOCAL_OUT, LOCAL_IN, LOCAL_OUT | FWD_OUT]),
        priority=st.none() | st.integers(0, 2),
        precedence=st.none() | st.integers(0, 2),
    ),
    max_size=12,
)

packet_st = st.builds(
    dict,
    v6=st.booleans(),
    s=st.integers(0, 4),
    d=st.integers(0, 4),
    proto=st.sampled_from([6, 17, 1]),
    sport=st.sampled_from([0, 53, 80]),
    dport=st.sampled_from([0, 53, 80, 443]),
    ds=st.sampled_from([0, 0x28, 0x29, 0xB8, 0xBB]),
    dir=st.sampled_from([LOCAL_OUT, LOCAL_IN, FWD_OUT]),
)


def _filter_of(i: int, spec: dict[str, Any]) -> Filter | None:
    s, d = spec["saddr"], spec["daddr"]
    if s and d and net(s).version != net(d).version:
        d = None
    ds = spec["ds"]
    flt = Filter(
        f"f{i}",
        f"c{i}",
        saddr=net(s) if s else None,
        daddr=net(d) if d else None,
        protocol=spec["proto"],
        sport=spec["sport"],
        dport=spec["dport"],
        dsfield=ds[0] if ds else None,
        dsfield_mask=ds[1] if ds else None,
        direction=spec["direction"],
        priority=spec["priority"],
        precedence=spec["precedence"],
    )
    return flt


def _naive(filters: list[Filter], p: dict[str, Any]) -> str:
    src = ipaddress.ip_address(p["src"])
    dst = ipaddress.ip_address(p["dst"])
    best: tuple[int, int, int] | None = None
    winner = "default"
    for order, f in enumerate(filters):
        ok = True
        for sel, addr in ((f.saddr, src), (f.daddr, dst)):
            if sel is not None and (sel.version != addr.version or addr not in sel):  # type: ignore[union-attr,operator]
                ok = False
        if f.protocol is not None and f.protocol != p["proto"]:
            ok = False
        if f.sport is not None and (p["sport"] == 0 or f.sport != p["sport"]):
            ok = False
        if f.dport is not None and (p["dport"] == 0 or f.dport != p["dport"]):
            ok = False
        if f.dsfield_mask and (p["ds"] & f.dsfield_mask) != ((f.dsfield or 0) & f.dsfield_mask):
            ok = False
        if f.direction is not None and not (f.direction & p["dir"]):
            ok = False
        if ok:
            rank = (-f.effective_priority, f.effective_precedence, order)
            if best is None or rank < best:
                best, winner = rank, f.class_name
    return winner


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters_st, st.lists(packet_st, min_size=1, max_size=30))
def test_index_agrees_with_naive_matcher(
    specs: list[dict[str, Any]], pkts: list[dict[str, Any]]
) -> None:
    filters = [f for i, spec in enumerate(specs) if (f := _filter_of(i, spec)) is not None]
    packets = []
    for p in pkts:
        hosts = V6_HOSTS if p["v6"] else V4_HOSTS
        packets.append(
            {
                "src": hosts[p["s"] % len(hosts)],
                "dst": hosts[p["d"] % len(hosts)],
                "proto": p["proto"],
                "sport": p["sport"],
                "dport": p["dport"],
                "ds": p["ds"],
                "dir": p["dir"],
            }
        )
    got = classify(filters, packets)
    assert got == [_naive(filters, p) for p in packets]


# Packets that differ in exactly one thing a filter can select on, interleaved in one
# batch: each must get the class it gets alone (nothing learnt from one row of a batch may
# answer for another).
_NEAR_TWINS: list[dict[str, Any]] = [
    {"dport": 80},
    {"dport": 80, "sport": 5060},
    {"dport": 80, "proto": 6},
    {"dport": 80, "ds": 0xB8},
    {"dport": 80, "dir": LOCAL_IN},
    {"dport": 80, "dir": FWD_OUT},
    {"dport": 80, "ifindex": 1},
    {"dport": 80, "uid": 1001},
    {"dport": 80, "projid": 7},
    {"dport": 80, "src": "10.1.2.3"},
    {"dport": 80, "dst": "2001:db8::80", "src": "2001:db8::1"},
    {"dport": 80, "flags": FLAG_HEADER_CUT},
    {"dport": 0, "proto": 1},
]
_TWIN_FILTERS = [
    Filter("web", "web", dport=80),
    Filter("sip", "voice", sport=5060, precedence=1),
    Filter("tcp", "tcp", dport=80, protocol=6, precedence=1),
    Filter("ef", "marked", dsfield=0xB8, dsfield_mask=0xFC, precedence=1),
    Filter("in", "inbound", direction=LOCAL_IN, precedence=1),
    Filter("eth1", "eth1", if_name="eth1", precedence=1),
    Filter("user", "user", user=1001, precedence=1),
    Filter("proj", "proj", projid=7, precedence=1),
    Filter("net10", "net10", saddr=ipaddress.ip_network("10.0.0.0/8"), precedence=1),
    Filter("v6", "v6", daddr=ipaddress.ip_network("2001:db8::/32"), precedence=1),
    Filter("icmp", "icmp", protocol=1, precedence=1),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(_NEAR_TWINS) - 1), min_size=64, max_size=400))
def test_a_batch_classifies_each_packet_as_a_batch_of_one_would(order: list[int]) -> None:
    packets = _NEAR_TWINS + [_NEAR_TWINS[i] for i in order]  # every twin, then repeats
    interfaces = ("", "eth1")
    whole = classes_of(graph_for(classifier_policy(_TWIN_FILTERS)), make_batch(packets, interfaces))
    alone_graph = graph_for(classifier_policy(_TWIN_FILTERS))
    alone = [classes_of(alone_graph, make_batch([p], interfaces))[0] for p in packets]
    assert whole == alone
    assert len(set(whole)) > 5  # the twins really fall in different classes
