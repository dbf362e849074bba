"""The marks a policy allows per class, checked on policy text and against the real engine.

The hand-written cases pin the semantics one module at a time; the oracle property runs
random small policies through the compiled action graph and requires every packet it
writes to carry a mark ``expected_marks`` allows (soundness), and the coverage tests drive
simple meters to every colour and require every allowed mark to appear (completeness).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.audit.expect import (
    TABLE_FULL,
    ClassMarks,
    TooManyPathsError,
    expected_marks,
)
from diffserv.columns import ACTION_CONTINUE, PacketBatch
from diffserv.directions import LOCAL_IN, LOCAL_OUT
from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import compile_policy
from diffserv.errors import DiffservError
from diffserv.policy.build import parse
from diffserv.policy.model import DEFAULT_CLASS

AF11, AF12, AF13, AF21, AF22, AF23, EF, CS6 = 10, 12, 14, 18, 20, 22, 46, 48


def policy_text(classes: dict[str, str], *actions: str) -> str:
    """A policy with one class per entry (class -> next action), selected by UDP port."""
    blocks = [
        f"\tclass {{\n\t\tname {c}\n\t\tnext_action {nxt}\n\t}}\n" for c, nxt in classes.items()
    ]
    filters = [
        f"\tfilter {{\n\t\tname f_{c}\n\t\tclass {c}\n\t\tprotocol udp\n\t\tdport {port}\n\t}}\n"
        for port, c in enumerate(classes, start=PORT_BASE)
        if c != DEFAULT_CLASS
    ]
    head = "fmt_version 1.0\n\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n"
    return head + "".join(blocks + filters) + "}\n" + "".join(actions)


PORT_BASE = 5000


def action(module: str, name: str, **params: object) -> str:
    lines = "".join(f"\t\t{key} {value}\n" for key, value in params.items())
    return f"\naction {{\n\tmodule {module}\n\tname {name}\n\tparams {{\n{lines}\t}}\n}}\n"


def dscpmk(name: str, dscp_map: str, nxt: str = "continue") -> str:
    return action("dscpmk", name, dscp_map=f"{{{dscp_map}}}", next_action=nxt)


def marker_to(dscp: int, nxt: str = "continue") -> str:
    return dscpmk(f"mark{dscp}", f"0-63:{dscp}", nxt)


def marks_of(text: str, **options: str) -> dict[str, ClassMarks]:
    return expected_marks(parse(text, "test.conf"), **options)


SRTCM3 = {"committed_rate": 8000, "committed_burst": 1000, "peak_burst": 1000}
TRTCM = {"committed_rate": 8000, "committed_burst": 1000, "peak_rate": 8000, "peak_burst": 2000}
TWO_OUTCOMES = {"committed_rate": 8000, "committed_burst": 1000}


def meter(
    name: str,
    kind: dict[str, int],
    green: str,
    red: str,
    yellow: str | None = None,
    **extra: object,
) -> str:
    params: dict[str, object] = dict(kind)
    params["green_action_name"] = green
    if yellow is not None:
        params["yellow_action_name"] = yellow
    params["red_action_name"] = red
    params.update(extra)
    return action("tokenmt", name, **params)


def three_colour_policy(kind: dict[str, int] = SRTCM3, **extra: object) -> str:
    return policy_text(
        {"web": "m1"},
        meter("m1", kind, "mark10", "mark14", "mark12", **extra),
        marker_to(AF11),
        marker_to(AF12),
        marker_to(AF13),
    )


# --- hand-written policies ----------------------------------------------------------------


def test_class_straight_to_a_marker_allows_only_that_mark() -> None:
    marks = marks_of(policy_text({"voice": "mark46"}, marker_to(EF)))
    voice = marks["voice"]
    assert all(voice.allowed_dscps(d) == {EF} for d in range(64))
    assert voice.marks() and not voice.can_drop() and not voice.always_dropped()
    assert voice.describe() == "EF"
    assert [p.actions for p in voice.paths] == [("mark46",)]


def test_default_class_exists_and_continues_unchanged() -> None:
    marks = marks_of(policy_text({"voice": "mark46"}, marker_to(EF)))
    assert list(marks) == ["voice", DEFAULT_CLASS]
    default = marks[DEFAULT_CLASS]
    assert default.next_action == "ipp.continue"
    assert default.allowed_dscps(AF11) == {AF11}
    assert not default.marks() and default.describe() == "unchanged"


def test_redefined_default_class_is_walked() -> None:
    marks = marks_of(policy_text({DEFAULT_CLASS: "mark0"}, marker_to(0)))
    assert list(marks) == [DEFAULT_CLASS]
    assert marks[DEFAULT_CLASS].allowed_dscps(EF) == {0}


def test_three_colour_tokenmt_allows_af11_af12_af13() -> None:
    web = marks_of(three_colour_policy())["web"]
    assert web.allowed_dscps(0) == {AF11, AF12, AF13}
    assert [p.outcomes for p in web.paths] == [("green",), ("yellow",), ("red",)]
    assert web.describe() == "AF11, AF12 or AF13 (meter m1 green/yellow/red)"


def test_two_rate_tokenmt_has_three_outcomes() -> None:
    web = marks_of(three_colour_policy(TRTCM))["web"]
    assert web.allowed_dscps(EF) == {AF11, AF12, AF13}


def test_two_outcome_tokenmt_has_no_yellow() -> None:
    text = policy_text(
        {"web": "m1"},
        meter("m1", TWO_OUTCOMES, "mark10", "mark14"),
        marker_to(AF11),
        marker_to(AF13),
    )
    web = marks_of(text)["web"]
    assert web.allowed_dscps(0) == {AF11, AF13}
    assert web.describe() == "AF11 or AF13 (meter m1 green/red)"


def test_tswtclmt_branches_three_ways() -> None:
    tsw = action(
        "tswtclmt",
        "t1",
        committed_rate=8000,
        peak_rate=16000,
        window=100,
        green_action_name="mark18",
        yellow_action_name="mark20",
        red_action_name="mark22",
    )
    text = policy_text({"web": "t1"}, tsw, marker_to(AF21), marker_to(AF22), marker_to(AF23))
    web = marks_of(text)["web"]
    assert web.allowed_dscps(CS6) == {AF21, AF22, AF23}
    assert web.describe() == "AF21, AF22 or AF23 (meter t1 green/yellow/red)"


def test_chained_markers_compose_their_maps() -> None:
    text = policy_text(
        {"web": "first"},
        dscpmk("first", "0-9:10;46:48", "second"),
        dscpmk("second", "10:12;48:0"),
    )
    web = marks_of(text)["web"]
    assert web.allowed_dscps(3) == {AF12}  # 3 -> 10 -> 12
    assert web.allowed_dscps(EF) == {0}  # 46 -> 48 -> 0
    assert web.allowed_dscps(CS6) == {0}  # 48 untouched by the first, then -> 0
    assert web.allowed_dscps(AF11) == {AF12}
    assert web.allowed_dscps(20) == {20}
    assert web.paths[0].markers == ("first", "second")


def test_markers_that_compose_to_the_identity_leave_the_dscp_unchanged() -> None:
    text = policy_text(
        {"web": "there"}, dscpmk("there", "10:12;12:10", "back"), dscpmk("back", "10:12;12:10")
    )
    web = marks_of(text)["web"]
    assert web.paths[0].dscp_map is None and not web.marks()
    assert web.describe() == "unchanged"


def test_class_to_continue_is_unchanged() -> None:
    web = marks_of(policy_text({"web": "continue"}))["web"]
    assert web.allowed_dscps(EF) == {EF} and web.describe() == "unchanged"
    assert web.allowed_pcps(3) == frozenset({3}) and web.allowed_pcps(None) is None


def test_class_to_drop_is_always_dropped() -> None:
    web = marks_of(policy_text({"web": "drop"}))["web"]
    assert web.always_dropped() and web.can_drop()
    assert web.allowed_dscps(EF) == frozenset()
    assert web.describe() == "dropped"


def test_red_to_drop_while_green_and_yellow_mark() -> None:
    text = policy_text(
        {"web": "m1"},
        meter("m1", SRTCM3, "mark10", "drop", "mark12"),
        marker_to(AF11),
        marker_to(AF12),
    )
    web = marks_of(text)["web"]
    assert web.allowed_dscps(0) == {AF11, AF12}
    assert web.can_drop() and not web.always_dropped()
    assert web.describe() == "AF11 or AF12 (meter m1 green/yellow); dropped when meter m1 red"


def test_dlcosmk_sets_the_pcp_and_untagged_frames_get_none() -> None:
    text = policy_text({"web": "pcp5"}, action("dlcosmk", "pcp5", cos=5, next_action="continue"))
    web = marks_of(text)["web"]
    assert web.allowed_pcps(0) == frozenset({5})
    assert web.allowed_pcps(None) is None
    assert web.allowed_pcps(0, inbound=True) == frozenset({0})
    assert web.allowed_dscps(EF) == {EF} and not web.marks() and web.marks_pcp()
    assert web.describe() == "unchanged with PCP 5"


def test_dlcosmk_cos_mode_decides_the_pcp_of_cos_1_and_2() -> None:
    text = policy_text({"web": "bk"}, action("dlcosmk", "bk", cos=1, next_action="continue"))
    assert marks_of(text)["web"].allowed_pcps(7) == frozenset({0})  # illumos sends cos 1 as 0
    assert marks_of(text, cos_mode="plain")["web"].allowed_pcps(7) == frozenset({1})


def test_pcp_and_dscp_come_in_pairs() -> None:
    text = policy_text(
        {"web": "m1"},
        meter("m1", TWO_OUTCOMES, "ef", "df"),
        dscpmk("ef", "0-63:46", "pcp6"),
        action("dlcosmk", "pcp6", cos=6, next_action="continue"),
        dscpmk("df", "0-63:0"),
    )
    web = marks_of(text)["web"]
    assert web.allowed_marks(AF11, 2) == {(EF, 6), (0, 2)}
    assert (EF, 2) not in web.allowed_marks(AF11, 2)
    assert web.allowed_pcps(2) == frozenset({2, 6})
    assert web.describe() == "EF with PCP 6 or DF (meter m1 green/red)"


def test_flowacct_in_the_middle_passes_through_and_can_drop_when_full() -> None:
    acct = action("flowacct", "acct", max_limit=100, next_action="mark46")
    web = marks_of(policy_text({"web": "acct"}, acct, marker_to(EF)))["web"]
    assert web.allowed_dscps(0) == {EF}
    assert [(p.actions, p.ending) for p in web.paths] == [
        (("acct",), TABLE_FULL),
        (("acct", "mark46"), "ipp.continue"),
    ]
    assert web.can_drop() and not web.always_dropped()
    assert web.describe() == "EF"


def test_inbound_packets_are_never_remarked() -> None:
    web = marks_of(three_colour_policy())["web"]
    assert web.allowed_dscps(EF, inbound=True) == {EF}
    assert web.describe(EF, inbound=True) == "unchanged (meter m1 green/yellow/red)"


def test_colour_aware_tokenmt_never_improves_the_incoming_colour() -> None:
    trtcm = marks_of(three_colour_policy(TRTCM, color_aware="true"))["web"]
    assert trtcm.allowed_dscps(0) == {AF11, AF12, AF13}  # DF is green
    assert trtcm.allowed_dscps(AF12) == {AF12, AF13}  # yellow: never green
    assert trtcm.allowed_dscps(AF13) == {AF13}  # red stays red
    assert trtcm.describe(AF12) == "AF12 or AF13 (meter m1 yellow/red)"
    srtcm = marks_of(three_colour_policy(SRTCM3, color_aware="true"))["web"]
    assert srtcm.allowed_dscps(AF12) == {AF12, AF13}
    assert srtcm.allowed_dscps(AF13) == {AF13}
    two = policy_text(
        {"web": "m1"},
        meter("m1", TWO_OUTCOMES, "mark10", "mark14", color_aware="true"),
        marker_to(AF11),
        marker_to(AF13),
    )
    assert marks_of(two)["web"].allowed_dscps(AF12) == {AF13}  # no yellow: red


def test_outcomes_no_colour_allows_are_not_paths() -> None:
    web = marks_of(three_colour_policy(TRTCM, color_aware="true", color_map="{0-63:RED}"))["web"]
    assert [p.outcomes for p in web.paths] == [("red",)]
    assert web.describe() == "AF13 (meter m1 red)"
    assert web.allowed_dscps(0) == {AF13}


def test_colour_blind_meter_ignores_the_colour_map() -> None:
    web = marks_of(three_colour_policy(TRTCM, color_map="{0-63:RED}"))["web"]
    assert web.allowed_dscps(AF13) == {AF11, AF12, AF13}


def test_colour_aware_meter_reads_the_dscp_an_earlier_marker_wrote() -> None:
    text = policy_text(
        {"web": "pre"},
        dscpmk("pre", "46:14", "m1"),  # EF is re-marked AF13 (red) before the meter
        meter("m1", TRTCM, "mark10", "mark14", "mark12", color_aware="true"),
        marker_to(AF11),
        marker_to(AF12),
        marker_to(AF13),
    )
    web = marks_of(text)["web"]
    assert web.allowed_dscps(EF) == {AF13}
    assert web.allowed_dscps(0) == {AF11, AF12, AF13}
    assert web.allowed_dscps(EF, inbound=True) == {EF}  # unmarked: the meter sees EF (green)
    assert len(web.out_paths(EF, inbound=True)) == 3


def test_non_constant_map_makes_the_allowed_set_depend_on_the_incoming_dscp() -> None:
    text = policy_text({"web": "scrub"}, dscpmk("scrub", "46:0;48:0;56:0"))
    web = marks_of(text)["web"]
    assert web.allowed_dscps(EF) == {0}
    assert web.allowed_dscps(CS6) == {0}
    assert web.allowed_dscps(AF11) == {AF11}
    assert web.describe() == "re-mapped by scrub"
    assert web.describe(EF) == "DF" and web.describe(AF11) == "AF11"


def test_a_class_with_too_many_paths_is_refused_in_one_line() -> None:
    chain = [meter(f"m{i}", SRTCM3, f"m{i + 1}", f"m{i + 1}", f"m{i + 1}") for i in range(8)]
    text = policy_text(
        {"web": "m0"}, *chain[:-1], meter("m7", SRTCM3, "continue", "continue", "continue")
    )
    with pytest.raises(TooManyPathsError, match="class web: more than 4096 paths") as caught:
        marks_of(text)
    assert isinstance(caught.value, DiffservError)


def test_a_dscp_outside_0_63_is_refused() -> None:
    web = marks_of(policy_text({"web": "continue"}))["web"]
    with pytest.raises(ValueError, match="DSCP 64"):
        web.allowed_dscps(64)


# --- the real engine as the oracle ---------------------------------------------------------


@dataclass
class Pkt:
    cls: int  # index of the class (its UDP port offset); -1 for no filter: default
    ds: int
    inbound: bool = False
    pcp: int | None = None  # None: untagged
    ts_ns: int = 0
    size: int = 100  # IP length, bytes
    sport: int = 1024


def run_engine(
    text: str, packets: list[Pkt]
) -> tuple[list[str], list[int | None], list[int | None]]:
    """Per packet: its class, the DSCP it was written with (None: dropped) and its PCP."""
    policy = parse(text, "oracle.conf")
    graph = compile_policy(policy, EngineOptions())
    n = len(packets)
    batch = PacketBatch.allocate(np.zeros(16, np.uint8), n)
    batch.interfaces = ("",)
    v4 = 0xFFFF << 32
    for i, p in enumerate(packets):
        cols = batch.cols
        cols.number[i] = i + 1
        cols.ts_ns[i] = p.ts_ns
        cols.ip_version[i] = 4
        cols.saddr_lo[i] = int(ipaddress.IPv4Address("192.0.2.1")) | v4
        cols.daddr_lo[i] = int(ipaddress.IPv4Address("198.51.100.1")) | v4
        cols.l3_off[i] = 14
        cols.protocol[i] = 17
        cols.sport[i] = p.sport
        cols.dport[i] = PORT_BASE + p.cls if p.cls >= 0 else 9
        cols.ds_byte[i] = p.ds
        cols.direction[i] = LOCAL_IN if p.inbound else LOCAL_OUT
        cols.ip_len[i] = p.size
        cols.wire_len[i] = p.size + 14
        cols.vlan_off[i] = 12 if p.pcp is not None else -1
    graph.run(batch)
    classes = graph.classifier.classes  # type: ignore[attr-defined]
    names = [classes[c].name for c in batch.cols.class_id]
    current = batch.current_ds()
    dscps: list[int | None] = []
    pcps: list[int | None] = []
    for i, p in enumerate(packets):
        written = int(batch.cols.action[i]) == ACTION_CONTINUE
        dscps.append(int(current[i]) >> 2 if written else None)
        new_pcp = int(batch.cols.new_pcp[i])
        pcps.append(new_pcp if new_pcp >= 0 else p.pcp)
    return names, dscps, pcps


def test_the_engine_harness_sees_marks_and_drops() -> None:
    text = policy_text({"voice": "mark46", "bulk": "drop"}, marker_to(EF))
    names, dscps, _ = run_engine(text, [Pkt(0, 0), Pkt(1, 0), Pkt(-1, 0x29)])
    assert names == ["voice", "bulk", DEFAULT_CLASS]
    assert dscps == [EF, None, AF11]


# Random policies: each class a tree of actions, built as text.


@dataclass
class Builder:
    actions: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def fresh(self) -> str:
        name = f"a{len(self.names)}"
        self.names.append(name)
        return name


COLOURS = ("GREEN", "YELLOW", "RED")


@st.composite
def chain(draw: st.DrawFn, builder: Builder, depth: int) -> str:
    """The name of an action (or virtual action) heading a random subtree."""
    kinds = ["continue", "drop", "dscpmk", "dlcosmk", "flowacct"]
    if depth > 0:
        kinds += ["srtcm2", "srtcm3", "trtcm", "tswtclmt"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("continue", "drop"):
        return kind
    name = builder.fresh()
    if kind == "dscpmk":
        values = draw(
            st.lists(st.sampled_from([0, 10, 12, 14, 46, 48, 1]), min_size=64, max_size=64)
        )
        entries = ";".join(f"{d}:{v}" for d, v in enumerate(values))
        const = draw(st.booleans())
        dscp_map = f"0-63:{values[0]}" if const else entries
        nxt = draw(chain(builder, depth))
        builder.actions.append(dscpmk(name, dscp_map, nxt))
    elif kind == "dlcosmk":
        cos = draw(st.integers(0, 7))
        nxt = draw(chain(builder, depth))
        builder.actions.append(action("dlcosmk", name, cos=cos, next_action=nxt))
    elif kind == "flowacct":
        nxt = draw(chain(builder, depth))
        limit = draw(st.integers(1, 3))
        builder.actions.append(action("flowacct", name, max_limit=limit, next_action=nxt))
    elif kind == "tswtclmt":
        g, y, r = (draw(chain(builder, depth - 1)) for _ in range(3))
        builder.actions.append(
            action(
                "tswtclmt",
                name,
                committed_rate=8000,
                peak_rate=80000,
                window=10,
                green_action_name=g,
                yellow_action_name=y,
                red_action_name=r,
            )
        )
    else:
        kind_params = {"srtcm2": TWO_OUTCOMES, "srtcm3": SRTCM3, "trtcm": TRTCM}[kind]
        g = draw(chain(builder, depth - 1))
        yellow = draw(chain(builder, depth - 1)) if kind != "srtcm2" else None
        r = draw(chain(builder, depth - 1))
        extra: dict[str, object] = {}
        if draw(st.booleans()):
            colours = draw(st.lists(st.sampled_from(COLOURS), min_size=64, max_size=64))
            extra["color_aware"] = "true"
            extra["color_map"] = "{" + ";".join(f"{d}:{c}" for d, c in enumerate(colours)) + "}"
        builder.actions.append(meter(name, kind_params, g, r, yellow, **extra))
    return name


@st.composite
def random_policy(draw: st.DrawFn) -> tuple[str, int]:
    builder = Builder()
    n_classes = draw(st.integers(1, 3))
    heads = {f"c{i}": draw(chain(builder, 2)) for i in range(n_classes)}
    return policy_text(heads, *builder.actions), n_classes


@st.composite
def traffic(draw: st.DrawFn, n_classes: int) -> list[Pkt]:
    n = draw(st.integers(1, 60))
    packets: list[Pkt] = []
    ts = 0
    for _ in range(n):
        ts += draw(st.sampled_from([0, 0, 1_000, 50_000_000, 2_000_000_000]))
        packets.append(
            Pkt(
                cls=draw(st.integers(-1, n_classes - 1)),
                ds=draw(st.integers(0, 255)),
                inbound=draw(st.booleans()),
                pcp=draw(st.one_of(st.none(), st.integers(0, 7))),
                ts_ns=ts,
                size=draw(st.sampled_from([40, 100, 125, 1500])),
                sport=draw(st.integers(1024, 1030)),
            )
        )
    return packets


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_packet_the_engine_writes_carries_an_allowed_mark(data: st.DataObject) -> None:
    text, n_classes = data.draw(random_policy())
    packets = data.draw(traffic(n_classes))
    marks = marks_of(text)
    names, dscps, pcps = run_engine(text, packets)
    for p, cls, dscp, pcp in zip(packets, names, dscps, pcps, strict=True):
        expected = marks[cls]
        if dscp is None:
            assert expected.can_drop(), (cls, p)
            continue
        assert not expected.always_dropped(), (cls, p)
        assert (dscp, pcp) in expected.allowed_marks(p.ds >> 2, p.pcp, inbound=p.inbound), (
            cls,
            p,
            expected.describe(p.ds >> 2, inbound=p.inbound),
        )


# Completeness: meters pushed to every colour give every allowed mark.


def bursts(
    dscps: list[int], *, each: int, inbound: bool = False, pcp: int | None = None
) -> list[Pkt]:
    """For each DSCP, a burst of ``each`` packets at one instant, then a long quiet time.

    After 1000 idle seconds every bucket (8 kbit/s, bursts of at most 2000 bits) is full
    and tswtclmt's average is back near zero; within a burst the buckets run dry.
    """
    packets: list[Pkt] = []
    for k, dscp in enumerate(dscps):
        packets.extend(
            Pkt(0, dscp << 2, inbound=inbound, pcp=pcp, ts_ns=k * 1_000_000_000_000)
            for _ in range(each)
        )
    return packets


def observed(text: str, packets: list[Pkt]) -> dict[int, set[tuple[int, int | None]]]:
    names, dscps, pcps = run_engine(text, packets)
    seen: dict[int, set[tuple[int, int | None]]] = defaultdict(set)
    for p, dscp, pcp in zip(packets, dscps, pcps, strict=True):
        if dscp is not None:
            seen[p.ds >> 2].add((dscp, pcp))
    assert set(names) == {"web"}
    return seen


SAMPLE_DSCPS = [0, AF11, AF12, AF13, EF, 21, 43]

TSW = action(
    "tswtclmt",
    "m1",
    committed_rate=8000,
    peak_rate=80000,
    window=10,
    green_action_name="mark10",
    yellow_action_name="mark12",
    red_action_name="mark14",
)
SIMPLE_METERS = {
    "srtcm three outcomes": three_colour_policy(SRTCM3),
    "trtcm": three_colour_policy(TRTCM),
    "trtcm colour-aware": three_colour_policy(TRTCM, color_aware="true"),
    "srtcm colour-aware, own map": three_colour_policy(
        SRTCM3, color_aware="true", color_map="{0-20,22:GREEN;21,23-42:RED;43-63:YELLOW}"
    ),
    "two outcomes": policy_text(
        {"web": "m1"},
        meter("m1", TWO_OUTCOMES, "mark10", "mark14", color_aware="true"),
        marker_to(AF11),
        marker_to(AF13),
    ),
    "tswtclmt": policy_text({"web": "m1"}, TSW, marker_to(AF11), marker_to(AF12), marker_to(AF13)),
    "meter then dlcosmk on one branch": policy_text(
        {"web": "m1"},
        meter("m1", TRTCM, "mark46", "drop", "pcp3"),
        marker_to(EF, "pcp3"),
        action("dlcosmk", "pcp3", cos=3, next_action="continue"),
    ),
}


@pytest.mark.parametrize("name", list(SIMPLE_METERS))
def test_meters_pushed_to_every_colour_give_exactly_the_allowed_marks(name: str) -> None:
    text = SIMPLE_METERS[name]
    web = marks_of(text)["web"]
    each = 400 if "tswtclmt" in name else 6  # tswtclmt's yellow is a random draw
    seen = observed(text, bursts(SAMPLE_DSCPS, each=each, pcp=1))
    for dscp in SAMPLE_DSCPS:
        assert seen[dscp] == web.allowed_marks(dscp, 1), (name, dscp)


def test_inbound_bursts_through_a_colour_aware_meter_stay_unmarked() -> None:
    text = three_colour_policy(TRTCM, color_aware="true")
    web = marks_of(text)["web"]
    seen = observed(text, bursts(SAMPLE_DSCPS, each=6, inbound=True))
    for dscp in SAMPLE_DSCPS:
        assert seen[dscp] == {(dscp, None)} == web.allowed_marks(dscp, None, inbound=True)
