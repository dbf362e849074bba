"""`audit --compare`: two captures of the same traffic matched packet by packet.

The AFTER side is made by the real `diffserv run` of a marking policy, or by the test
re-marking frames itself with the project's own rewriter; what the comparison reports
is checked against changes worked out here from the frames and the policy's table.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffserv.audit.compare import Comparison, FlowChange, FlowKey, compare_captures
from diffserv.capture import open_capture
from diffserv.cli.main import main
from diffserv.errors import InputDataError, UsageError
from diffserv.packet.checksum import internet_checksum
from diffserv.packet.decode import decode_frames
from diffserv.packet.rewrite import apply_marks
from diffserv.records import format_addresses
from support import synth

POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action markAF41
	}
	class {
		name voice
		next_action markEF
	}
	class {
		name junk
		next_action drop
	}
	class {
		name tagged
		next_action cos5
	}
	filter {
		name webf
		class web
		protocol tcp
		dport 443
	}
	filter {
		name voicef
		class voice
		protocol udp
		dport 5004
	}
	filter {
		name junkf
		class junk
		dport 666
	}
	filter {
		name taggedf
		class tagged
		dport 8080
	}
}

action {
	module dscpmk
	name markAF41
	params {
		dscp_map {0-63:34}
		next_action continue
	}
}

action {
	module dscpmk
	name markEF
	params {
		dscp_map {0-63:46}
		next_action continue
	}
}

action {
	module dlcosmk
	name cos5
	params {
		cos 5
		next_action continue
	}
}
"""

# (version, proto, src, dst, sport, dport, dscp, ecn, vlan pcp or None) and what POLICY
# does to it: (new dscp or None = unchanged, new pcp or None, dropped)
FLOWS = [
    ((4, "tcp", "10.0.0.1", "10.9.0.1", 40001, 443, 0, 0, None), (34, None, False)),
    ((4, "tcp", "10.9.0.1", "10.0.0.1", 443, 40001, 0, 0, None), (None, None, False)),
    ((4, "udp", "10.0.0.2", "10.9.0.2", 30000, 5004, 10, 1, None), (46, None, False)),
    ((4, "tcp", "10.0.0.3", "10.9.0.3", 40003, 666, 8, 0, None), (None, None, True)),
    ((4, "tcp", "10.0.0.4", "10.9.0.4", 40004, 8080, 18, 2, 1), (None, 5, False)),
    ((4, "tcp", "10.0.0.5", "10.9.0.5", 40005, 22, 10, 0, None), (None, None, False)),
    ((6, "tcp", "2001:db8::5", "2001:db8::9", 40006, 443, 46, 0, None), (34, None, False)),
    ((6, "udp", "2001:db8::6", "2001:db8::9", 40007, 5004, 0, 3, None), (46, None, False)),
]
ARP = bytes.fromhex(
    "ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c0000202"
)


def _frame(flow: tuple[object, ...], i: int, *, dscp: int | None = None) -> bytes:
    """Packet ``i`` of ``flow``: its own TCP sequence number or UDP payload and IPv4 id."""
    version, proto, src, dst, sport, dport, base_dscp, ecn, pcp = flow
    assert isinstance(sport, int) and isinstance(dport, int)
    payload = i.to_bytes(4, "big") * (3 + i % 4)
    l4 = (
        synth.tcp(sport, dport, payload, seq=1000 + 100 * i)
        if proto == "tcp"
        else synth.udp(sport, dport, payload)
    )
    mark = base_dscp if dscp is None else dscp
    assert isinstance(mark, int) and isinstance(ecn, int)
    if version == 4:
        packet = synth.ipv4(str(src), str(dst), l4, dscp=mark, ecn=ecn, ident=7 + i)
    else:
        packet = synth.ipv6(str(src), str(dst), l4, dscp=mark, ecn=ecn)
    vlans = [synth.Vlan(vid=20, pcp=pcp)] if isinstance(pcp, int) else []
    return synth.ethernet(packet, vlans=vlans)


def _traffic(rounds: int) -> tuple[list[bytes], list[int | None]]:
    """Frames in round-robin flow order (with an ARP frame now and then), and each one's flow."""
    frames: list[bytes] = []
    flows: list[int | None] = []
    for r in range(rounds):
        for index, (flow, _) in enumerate(FLOWS):
            frames.append(_frame(flow, r))
            flows.append(index)
        if r % 3 == 0:
            frames.append(ARP)
            flows.append(None)
    return frames, flows


def _frames_of(path: Path) -> list[bytes]:
    """Every frame of a capture, read with the project's reader."""
    out = []
    with open_capture(path) as reader:
        for batch in reader:
            for off, length in zip(
                batch.cols.pkt_off.tolist(), batch.cols.cap_len.tolist(), strict=True
            ):
                out.append(bytes(batch.buf[off : off + length]))
    return out


def _run(policy: Path, before: Path, after: Path) -> None:
    assert main(["run", str(policy), str(before), "-o", str(after), "-q"]) == 0


def _key(flow: tuple[object, ...]) -> FlowKey:
    version, proto, src, dst, sport, dport = flow[:6]
    assert isinstance(version, int) and isinstance(sport, int) and isinstance(dport, int)
    return FlowKey(version, str(src), str(dst), sport, dport, 6 if proto == "tcp" else 17)


def _by_key(result: Comparison) -> dict[FlowKey, FlowChange]:
    return {flow.key: flow for flow in result.flows}


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "mark.conf"
    path.write_text(POLICY)
    return path


def test_run_changes_exactly_what_the_policy_marks(tmp_path: Path, policy: Path) -> None:
    frames, flows = _traffic(rounds=6)
    before = Path(synth.write_pcap(tmp_path / "before.pcap", frames))
    after = tmp_path / "after.pcap"
    _run(policy, before, after)

    result = compare_captures(str(before), str(after))

    # packet numbers on each side, worked out from which flows the policy drops
    after_number: dict[int, int] = {}
    written = 0
    for i, index in enumerate(flows):
        if index is None or not FLOWS[index][1][2]:
            written += 1
            after_number[i + 1] = written
    assert [flow.key for flow in result.flows] == [_key(flow) for flow, _ in FLOWS]
    for index, ((flow, (dscp, pcp, dropped)), change) in enumerate(
        zip(FLOWS, result.flows, strict=True)
    ):
        numbers = [i + 1 for i, of in enumerate(flows) if of == index]
        old_dscp, old_ecn, old_pcp = flow[6], flow[7], flow[8]
        assert isinstance(old_dscp, int)
        assert change.packets_before == 6
        assert change.dscp_before == {old_dscp: 6}
        if dropped:
            assert (change.packets_after, change.matched, change.only_before) == (0, 0, 6)
            assert change.first_only_before == numbers
            assert change.transitions == {} and change.dscp_after == {}
            continue
        new_dscp = old_dscp if dscp is None else dscp
        assert (change.packets_after, change.matched, change.only_before) == (6, 6, 0)
        assert change.only_after == 0
        assert change.dscp_after == {new_dscp: 6}
        assert change.transitions == {(old_dscp, new_dscp): 6}
        assert change.ecn_transitions == {(old_ecn, old_ecn): 6}  # dscpmk keeps ECN
        if old_pcp is None:
            assert change.pcp_transitions is None
        else:
            assert change.pcp_transitions == {(old_pcp, pcp): 6}
        if new_dscp != old_dscp or pcp is not None:
            assert change.changed == 6
            assert change.first_changed == [(n, after_number[n]) for n in numbers]
        else:
            assert change.changed == 0 and change.first_changed == []
    totals = result.totals
    assert totals.packets_before == len(frames) and totals.packets_after == written
    assert totals.not_compared_before == totals.not_compared_after == 2  # the ARP frames
    assert (totals.matched, totals.only_before, totals.only_after) == (42, 6, 0)
    assert (totals.changed, totals.dscp_changed, totals.pcp_changed) == (30, 24, 6)
    assert totals.bleached == totals.evicted == 0
    assert result.warnings == []


def test_pcapng_before_and_pcap_after_match(tmp_path: Path, policy: Path) -> None:
    frames, _ = _traffic(rounds=3)
    before_ng = Path(synth.write_pcapng(tmp_path / "before.pcapng", frames))
    after_ng = tmp_path / "after.pcapng"
    _run(policy, before_ng, after_ng)
    after_pcap = Path(synth.write_pcap(tmp_path / "after.pcap", _frames_of(after_ng)))
    before_pcap = Path(synth.write_pcap(tmp_path / "before.pcap", frames))

    across = compare_captures(str(before_ng), str(after_pcap))
    same = compare_captures(str(before_pcap), str(after_ng))
    assert across.flows == same.flows and across.totals == same.totals
    assert across.totals.matched == 21 and across.totals.only_before == 3


def test_reordered_after_packets_within_the_window_still_match(tmp_path: Path) -> None:
    frames = [_frame(FLOWS[0][0], i) for i in range(40)]
    marked = [_frame(FLOWS[0][0], i, dscp=i % 64) for i in range(40)]
    # AFTER holds packet k at position order[k]: blocks of 5 reversed
    order = [block + 4 - j for block in range(0, 40, 5) for j in range(5)]
    before = synth.write_pcap(tmp_path / "b.pcap", frames)
    after = synth.write_pcap(tmp_path / "a.pcap", [marked[k] for k in order])

    (flow,) = compare_captures(before, after, window=5).flows
    assert flow.matched == 40 and flow.only_before == flow.only_after == 0
    assert flow.transitions == {(0, 0): 1} | {(0, i): 1 for i in range(1, 40)}
    pairs = sorted((order[a] + 1, a + 1) for a in range(40) if order[a] != 0)
    assert sorted(flow.first_changed) == sorted(
        [(b, a) for b, a in sorted(pairs, key=lambda p: p[1])][:10]
    )


def test_packets_out_of_place_beyond_the_window_count_unmatched_and_matching_goes_on(
    tmp_path: Path,
) -> None:
    frames = [_frame(FLOWS[5][0], i) for i in range(60)]
    # packets 11-20 (indexes 10-19) come after packet 50: ten wait, in a window of 8
    order = [*range(10), *range(20, 50), *range(10, 20), *range(50, 60)]
    before = synth.write_pcap(tmp_path / "b.pcap", frames)
    after = synth.write_pcap(tmp_path / "a.pcap", [frames[k] for k in order])

    # the block fits a window of 16: every packet matches
    wide = compare_captures(before, after, window=16)
    assert wide.totals.matched == 60 and wide.warnings == []
    assert wide.flows[0].first_changed == []

    result = compare_captures(before, after, window=8)
    (flow,) = result.flows
    assert flow.matched + flow.only_after == 60 == flow.matched + flow.only_before
    assert flow.first_only_before[:10] == list(range(11, 21))  # the ten that waited
    assert result.totals.late > 0 and flow.only_after <= 3 * 8
    assert any("larger window" in warning for warning in result.warnings)
    # then the files are in step again: 100 more packets on both sides all match
    more = [_frame(FLOWS[5][0], i) for i in range(60, 160)]
    before_more = synth.write_pcap(tmp_path / "b2.pcap", frames + more)
    after_more = synth.write_pcap(tmp_path / "a2.pcap", [frames[k] for k in order] + more)
    longer = compare_captures(before_more, after_more, window=8)
    assert longer.totals.matched == result.totals.matched + 100


def test_a_drop_run_longer_than_the_window_costs_about_its_length_after_it(
    tmp_path: Path,
) -> None:
    kept = [_frame(FLOWS[0][0], i) for i in range(200)]
    dropped = [_frame(FLOWS[3][0], i) for i in range(30)]
    frames = kept[:20] + dropped + kept[20:]
    before = synth.write_pcap(tmp_path / "b.pcap", frames)
    after = synth.write_pcap(tmp_path / "a.pcap", kept)

    result = compare_captures(before, after, window=8)
    flows = _by_key(result)
    web, junk = flows[_key(FLOWS[0][0])], flows[_key(FLOWS[3][0])]
    assert junk.only_before == 30 and junk.matched == 0
    assert web.matched + web.only_after == 200 and web.matched + web.only_before == 200
    assert web.only_after <= 30 + 2 * 8  # then the files are in step again
    assert web.first_only_after[0] == 21
    # a window the run fits in matches every packet kept
    assert compare_captures(before, after, window=31).totals.matched == 200


def test_a_burst_seen_only_after_does_not_disturb_the_rest(tmp_path: Path) -> None:
    frames = [_frame(FLOWS[1][0], i) for i in range(50)]
    foreign = [_frame(FLOWS[6][0], i) for i in range(6)]
    before = synth.write_pcap(tmp_path / "b.pcap", frames)
    after = synth.write_pcap(tmp_path / "a.pcap", frames[:25] + foreign + frames[25:])

    flows = _by_key(compare_captures(before, after, window=8))
    assert flows[_key(FLOWS[1][0])].matched == 50
    extra = flows[_key(FLOWS[6][0])]
    assert (extra.packets_before, extra.only_after) == (0, 6)
    assert extra.first_only_after == list(range(26, 32))


def test_retransmitted_duplicates_match_in_order(tmp_path: Path) -> None:
    flow = FLOWS[5][0]
    other = FLOWS[1][0]
    # three copies of one segment (identical but for the DS byte), with other traffic around
    before = [_frame(flow, 1, dscp=d) for d in (1, 2, 3)]
    after = [_frame(flow, 1, dscp=d) for d in (11, 12, 13)]
    before_frames = [_frame(other, 0), before[0], _frame(other, 1), before[1], before[2]]
    after_frames = [after[0], _frame(other, 0), after[1], _frame(other, 1), after[2]]
    b = synth.write_pcap(tmp_path / "b.pcap", before_frames)
    a = synth.write_pcap(tmp_path / "a.pcap", after_frames)
    for window in (2, 8):  # a search for the first copy reads two packets
        change = _by_key(compare_captures(b, a, window=window))[_key(flow)]
        assert change.transitions == {(1, 11): 1, (2, 12): 1, (3, 13): 1}, window
        assert change.first_changed == [(2, 1), (4, 3), (5, 5)]


def test_ecn_bleaching_and_ttl_do_not_hide_a_packet(tmp_path: Path) -> None:
    flow = FLOWS[2][0]
    frames = [_frame(flow, i) for i in range(4)]  # ECT(1)
    hop = []
    for frame in frames:
        ip = bytearray(frame[14:])
        ip[1] = (ip[1] & 0xFC) if frame is frames[0] else ip[1]  # bleach the first
        ip[8] -= 1  # TTL
        ip[10:12] = b"\0\0"
        ip[10:12] = internet_checksum(bytes(ip[:20])).to_bytes(2, "big")
        hop.append(frame[:14] + bytes(ip))
    b = synth.write_pcap(tmp_path / "b.pcap", frames)
    a = synth.write_pcap(tmp_path / "a.pcap", hop)
    result = compare_captures(b, a)
    (change,) = result.flows
    assert change.matched == 4 and change.changed == 0
    assert change.ecn_transitions == {(1, 0): 1, (1, 1): 3}
    assert result.totals.bleached == 1


def test_a_truncated_capture_is_one_line_naming_file_and_packet(tmp_path: Path) -> None:
    frames = [_frame(FLOWS[0][0], i) for i in range(5)]
    before = synth.write_pcap(tmp_path / "b.pcap", frames)
    data = synth.pcap_bytes(frames)
    after = synth.write_file(tmp_path / "a.pcap", data[:-10])
    with pytest.raises(InputDataError) as caught:
        compare_captures(before, after)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{after}: packet 5")
    with pytest.raises(InputDataError, match="cannot open"):
        compare_captures(before, str(tmp_path / "missing.pcap"))
    with pytest.raises(UsageError):
        compare_captures(before, before, window=0)


# ------------------------------------------------------------------ the property
_POOL = [FLOWS[0][0], FLOWS[2][0], FLOWS[4][0], FLOWS[6][0], FLOWS[7][0]]


def _v6_extended(i: int) -> bytes:
    """An IPv6 TCP segment behind a hop-by-hop header (identity needs the extension walk)."""
    l4 = synth.tcp(40100, 443, bytes([i % 251]) * 20, seq=5000 + i)
    ip = synth.ipv6("2001:db8::77", "2001:db8::9", l4, extensions=[synth.hop_by_hop()])
    return synth.ethernet(ip)


def _remark(frames: list[bytes], ds: list[int], pcp: list[int]) -> list[bytes]:
    """Frames with new DS bytes / PCPs written by the project's rewriter (checksum kept valid)."""
    batch = decode_frames(frames)
    batch.cols.new_ds[:] = np.array(ds, np.int16)
    batch.cols.new_pcp[:] = np.array(pcp, np.int8)
    apply_marks(batch)
    cols = batch.cols
    return [
        bytes(batch.buf[o : o + n])
        for o, n in zip(cols.pkt_off.tolist(), cols.cap_len.tolist(), strict=True)
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kinds=st.lists(st.integers(0, len(_POOL)), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_comparison_recovers_exactly_the_applied_changes(
    tmp_path: Path, kinds: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    frames, flow_of = [], []
    for i, kind in enumerate(kinds):
        frames.append(_v6_extended(i) if kind == len(_POOL) else _frame(_POOL[kind], i))
        flow_of.append(kind)
    old = decode_frames(frames).cols
    old_ds = old.ds_byte.tolist()
    vlan = old.vlan_off.tolist()
    old_pcp = [frame[14] >> 5 if v >= 0 else -1 for frame, v in zip(frames, vlan, strict=True)]
    new_ds = [rng.choice([-1, rng.randrange(256)]) for _ in frames]
    new_pcp = [rng.choice([-1, rng.randrange(8)]) for _ in frames]
    hop = _remark(frames, new_ds, new_pcp)
    kept = [i for i in range(len(frames)) if rng.random() > 0.2]
    for j in range(0, len(kept) - 1, 2):  # swap neighbours now and then
        if rng.random() < 0.3:
            kept[j], kept[j + 1] = kept[j + 1], kept[j]
    b = synth.write_pcap(tmp_path / "b.pcap", frames)
    a = synth.write_pcap(tmp_path / "a.pcap", [hop[i] for i in kept])

    result = compare_captures(b, a, window=8)

    expected: dict[int, dict[str, Any]] = {}
    for kind in flow_of:
        expected.setdefault(kind, {"t": {}, "e": {}, "p": {}, "only": [], "changed": []})
    for i in range(len(frames)):
        if i not in kept:
            expected[flow_of[i]]["only"].append(i + 1)
    for position, i in enumerate(kept):
        e = expected[flow_of[i]]
        after_ds = old_ds[i] if new_ds[i] < 0 else new_ds[i]
        dscp = (old_ds[i] >> 2, after_ds >> 2)
        _bump(e["t"], dscp)
        _bump(e["e"], (old_ds[i] & 3, after_ds & 3))
        changed = dscp[0] != dscp[1]
        if old_pcp[i] >= 0:
            pcp = (old_pcp[i], old_pcp[i] if new_pcp[i] < 0 else new_pcp[i])
            _bump(e["p"], pcp)
            changed |= pcp[0] != pcp[1]
        if changed:
            e["changed"].append((i + 1, position + 1))
    assert [flow.key for flow in result.flows] == [
        _key_of(frames[flow_of.index(kind)]) for kind in expected
    ]
    for kind, change in zip(expected, result.flows, strict=True):
        e = expected[kind]
        assert change.matched == sum(e["t"].values())
        assert change.only_after == 0
        assert change.only_before == len(e["only"])
        assert change.first_only_before == e["only"][:10]
        assert change.transitions == e["t"]
        assert change.ecn_transitions == e["e"]
        assert change.pcp_transitions == (e["p"] or None)
        assert change.changed == len(e["changed"])
        assert change.first_changed == e["changed"][:10]
    assert result.totals.only_after == result.totals.late == 0


def _bump(table: dict[tuple[int, int], int], key: tuple[int, int]) -> None:
    table[key] = table.get(key, 0) + 1


def _key_of(frame: bytes) -> FlowKey:
    """The flow of a frame, read back with the project's decoder."""
    cols = decode_frames([frame]).cols
    (saddr,) = format_addresses(cols.saddr_hi, cols.saddr_lo)
    (daddr,) = format_addresses(cols.daddr_hi, cols.daddr_lo)
    return FlowKey(
        int(cols.ip_version[0]),
        saddr,
        daddr,
        int(cols.sport[0]),
        int(cols.dport[0]),
        int(cols.protocol[0]),
    )
