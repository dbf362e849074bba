"""`diffserv audit`: the marks of real traffic against the policy, hidden-oracle style.

Traffic is generated, marked by the real `diffserv run`, then known packets are given a
wrong mark (or a packet the policy drops is slipped in); the audit must find exactly
those, and nothing else, with the class, filter and marks it was held to. The same
marked traffic exported by the real softflowd as IPFIX and collected by `diffserv
collect` must get the same verdict per flow as the capture.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from diffserv.audit import sources as audit_sources
from diffserv.capture import open_capture
from diffserv.cli.main import main
from support import synth
from support.browser import browser, keep, wait_for
from support.collecting import Collect, free_udp_port, run_diffserv
from support.report_data import T0, Rec, S, write_store
from support.tools import require_tool

POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name voice
		next_action markEF
	}
	class {
		name web
		next_action markAF41
	}
	class {
		name bulk
		next_action meter
	}
	class {
		name junk
		next_action drop
	}
	filter {
		name voice_rtp
		class voice
		protocol udp
		dport 5004
	}
	filter {
		name web_https
		class web
		protocol tcp
		dport 443
	}
	filter {
		name bulk_smb
		class bulk
		protocol tcp
		dport 445
	}
	filter {
		name junk_port
		class junk
		dport 666
	}
}

action {
	module tokenmt
	name meter
	params {
		committed_rate 64000
		committed_burst 8000
		peak_rate 128000
		peak_burst 16000
		green_action_name markAF11
		yellow_action_name markAF12
		red_action_name markAF13
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
	module dscpmk
	name markAF41
	params {
		dscp_map {0-63:34}
		next_action continue
	}
}

action {
	module dscpmk
	name markAF11
	params {
		dscp_map {0-63:10}
		next_action continue
	}
}

action {
	module dscpmk
	name markAF12
	params {
		dscp_map {0-63:12}
		next_action continue
	}
}

action {
	module dscpmk
	name markAF13
	params {
		dscp_map {0-63:14}
		next_action continue
	}
}
"""

# name -> (protocol, source, destination, sport, dport, DSCP sent)
FLOWS: dict[str, tuple[str, str, str, int, int, int]] = {
    "voice": ("udp", "10.1.0.1", "10.9.0.1", 30000, 5004, 0),
    "web": ("tcp", "10.1.0.3", "10.9.0.3", 40001, 443, 0),
    "bulk": ("tcp", "10.1.0.2", "10.9.0.2", 40000, 445, 0),
    "plain": ("tcp", "10.1.0.5", "10.9.0.5", 40005, 22, 10),  # default: left as sent
    "junk": ("tcp", "10.1.0.6", "10.9.0.6", 40006, 666, 0),  # dropped
    "leak": ("udp", "10.1.0.66", "10.9.0.9", 7000, 7000, 46),  # EF, trusted by no filter
}
PACKETS = 30
ALLOWED = {"voice": {46}, "web": {34}, "bulk": {10, 12, 14}}


def frame(name: str, i: int, dscp: int | None = None) -> bytes:
    proto, src, dst, sport, dport, sent = FLOWS[name]
    payload = bytes([i]) * (200 + 40 * (i % 5))
    l4 = (
        synth.tcp(sport, dport, payload, seq=1 + 1000 * i)
        if proto == "tcp"
        else synth.udp(sport, dport, payload)
    )
    packet = synth.ipv4(src, dst, l4, dscp=sent if dscp is None else dscp, ident=100 + i)
    return synth.ethernet(packet)


def traffic(names: list[str]) -> list[synth.Packet]:
    """PACKETS packets of each flow, interleaved, 1 ms apart."""
    out = []
    for i in range(PACKETS):
        for k, name in enumerate(names):
            out.append(synth.Packet(frame(name, i), ts_ns=T0 + (i * len(names) + k) * 1_000_000))
    return out


def marks_of(path: Path) -> list[tuple[bytes, int]]:
    """Every frame of a capture with the DSCP it carries (Ethernet + IPv4 only)."""
    out = []
    with open_capture(path) as reader:
        for batch in reader:
            c = batch.cols
            for j in range(batch.n):
                off, length = int(c.pkt_off[j]), int(c.cap_len[j])
                out.append((bytes(batch.buf[off : off + length]), int(c.ds_byte[j]) >> 2))
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The policy, the traffic sent, and what `diffserv run` made of it."""
    tmp = tmp_path_factory.mktemp("audit")
    policy = tmp / "policy.conf"
    policy.write_text(POLICY)
    names = ["voice", "web", "bulk", "plain", "junk"]
    sent = tmp / "sent.pcap"
    synth.write_pcap(sent, traffic(names))
    marked = tmp / "marked.pcap"
    assert main(["run", str(policy), str(sent), "-o", str(marked), "-q"]) == 0
    return {"tmp": tmp, "policy": policy, "sent": sent, "marked": marked, "names": names}


def audit_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status = main(["audit", *argv, "--json", "--top", "50"])
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    return status, json.loads(out)


def test_what_run_marked_conforms(
    scene: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, audit = audit_json(capsys, str(scene["policy"]), str(scene["marked"]))
    assert status == 0 and audit["meta"]["passed"]
    v = audit["verdicts"]
    assert v["conforming"]["packets"] == 4 * PACKETS  # junk was dropped by run
    assert v["mismarked"]["packets"] == v["leak"]["packets"] == v["not-evaluable"]["packets"] == 0
    per_class = {c["class"]: c for c in audit["classes"]}
    assert {name: per_class[name]["conforming"]["flows"] for name in per_class} == {
        "voice": 1, "web": 1, "bulk": 1, "default": 1
    }  # fmt: skip
    marks = {dscp for _, dscp in marks_of(scene["marked"])}
    assert {10, 12, 14} <= marks  # the meter gave all three colours: all three conform
    assert per_class["bulk"]["expected"].startswith("AF11, AF12 or AF13")


def test_unmarked_traffic_is_mismarked_per_class(
    scene: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, audit = audit_json(capsys, str(scene["policy"]), str(scene["sent"]))
    assert status == 1
    confusion = {(r["class"], r["observed"]): r for r in audit["confusion"]}
    assert confusion[("voice", "DF")]["expected"] == ["EF"]
    assert confusion[("bulk", "DF")]["expected"] == ["AF11", "AF12", "AF13"]
    assert confusion[("junk", "DF")]["expected"] == []  # the policy drops it all
    assert {k: r["packets"] for k, r in confusion.items()} == {
        ("voice", "DF"): PACKETS, ("web", "DF"): PACKETS, ("bulk", "DF"): PACKETS,
        ("junk", "DF"): PACKETS,
    }  # fmt: skip


def test_corrupted_packets_are_found_exactly(
    scene: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-mark known packets of the marked capture wrongly: the audit names exactly those."""
    frames = marks_of(scene["marked"])
    by_frame = {f: i for i, (f, _) in enumerate(frames)}
    wrong = {("voice", 3): 18, ("voice", 17): 18, ("web", 5): 0, ("bulk", 8): 46}
    packets = [f for f, _ in frames]
    for (name, i), dscp in wrong.items():
        _, original = frames[by_frame[_marked_frame(frames, name, i)]]
        packets[by_frame[_marked_frame(frames, name, i)]] = frame(name, i, dscp)
        assert original != dscp
    packets.append(frame("junk", 99))  # one packet of a class the policy drops
    bad = scene["tmp"] / "corrupted.pcap"
    synth.write_pcap(bad, packets)
    status, audit = audit_json(capsys, str(scene["policy"]), str(bad))
    assert status == 1 and not audit["meta"]["passed"]
    assert audit["verdicts"]["mismarked"]["packets"] == len(wrong) + 1
    assert audit["verdicts"]["conforming"]["packets"] == 4 * PACKETS - len(wrong)
    found = {(r["class"], r["observed"]): (r["expected"], r["packets"]) for r in audit["confusion"]}
    assert found == {
        ("voice", "AF21"): (["EF"], 2),
        ("web", "DF"): (["AF41"], 1),
        ("bulk", "EF"): (["AF11", "AF12", "AF13"], 1),
        ("junk", "DF"): ([], 1),
    }
    flows = {
        (r["class"], r["filter"], r["saddr"], r["dport"]): r["packets"] for r in audit["mismarked"]
    }
    assert flows == {
        ("voice", "voice_rtp", "10.1.0.1", 5004): 2,
        ("web", "web_https", "10.1.0.3", 443): 1,
        ("bulk", "bulk_smb", "10.1.0.2", 445): 1,
        ("junk", "junk_port", "10.1.0.6", 666): 1,
    }
    per_class = {c["class"]: c for c in audit["classes"]}
    assert per_class["voice"]["mismarked"] == {
        "flows": 1,
        "packets": 2,
        "bytes": per_class["voice"]["mismarked"]["bytes"],
    }
    assert per_class["voice"]["conforming"]["packets"] == PACKETS - 2


def _marked_frame(frames: list[tuple[bytes, int]], name: str, i: int) -> bytes:
    """The frame `diffserv run` wrote for packet ``i`` of flow ``name`` (it has the
    flow's allowed mark, so regenerate it with each allowed DSCP and find it)."""
    candidates = {frame(name, i, dscp) for dscp in ALLOWED.get(name, {FLOWS[name][5]})}
    (found,) = [f for f, _ in frames if f in candidates]
    return found


def test_unclassified_priority_marks_are_a_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.conf"
    policy.write_text(POLICY)
    sent = tmp_path / "sent.pcap"
    synth.write_pcap(sent, traffic(["voice", "plain", "leak"]))
    marked = tmp_path / "marked.pcap"
    assert main(["run", str(policy), str(sent), "-o", str(marked), "-q"]) == 0
    status, audit = audit_json(capsys, str(policy), str(marked))
    assert status == 1
    assert audit["verdicts"]["leak"] == {
        "flows": 1, "packets": PACKETS, "bytes": audit["verdicts"]["leak"]["bytes"]
    }  # fmt: skip
    (leak,) = audit["leaks"]
    assert (leak["saddr"], leak["observed"], leak["class"], leak["filter"]) == (
        "10.1.0.66", "EF", "default", None
    )  # fmt: skip
    assert audit["verdicts"]["conforming"]["packets"] == 2 * PACKETS
    # the same traffic, when only CS6/CS7 count as priority: conforming (left as sent)
    status, audit = audit_json(capsys, str(policy), str(marked), "--priority", "CS6,CS7")
    assert status == 0 and audit["verdicts"]["leak"]["packets"] == 0


def test_a_selector_the_source_lacks_is_named_never_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter on the sending user ranks first: no captured packet can be judged."""
    text = POLICY.replace(
        "\tfilter {\n\t\tname voice_rtp",
        "\tfilter {\n\t\tname admins\n\t\tclass web\n\t\tuser 0\n\t\tpriority 1\n\t}\n"
        "\tfilter {\n\t\tname voice_rtp",
    )
    policy = tmp_path / "policy.conf"
    policy.write_text(text)
    sent = tmp_path / "sent.pcap"
    synth.write_pcap(sent, traffic(["voice", "plain"]))
    status, audit = audit_json(capsys, str(policy), str(sent))
    assert status == 0  # nothing evaluable is wrong
    assert audit["verdicts"]["not-evaluable"]["packets"] == 2 * PACKETS
    assert audit["not_evaluable"] == [
        {"filter": "admins", "class": "web", "missing": "user", "flows": 2,
         "packets": 2 * PACKETS, "bytes": audit["verdicts"]["not-evaluable"]["bytes"]}
    ]  # fmt: skip


def test_flow_records_with_egress_marks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Where the exporter sends the egress ToS, that is judged, on the arrival mark."""
    recs = [
        Rec(first_ns=T0, saddr="10.1.0.1", daddr="10.9.0.1", protocol=17, sport=30000,
            dport=5004, ds=0, ds_out=184),  # voice: DF in, EF out: conforms
        Rec(first_ns=T0 + S, saddr="10.1.0.1", daddr="10.9.0.1", protocol=17, sport=30001,
            dport=5004, ds=0, ds_out=72),  # voice left as AF21: mismarked
        Rec(first_ns=T0 + 2 * S, saddr="10.1.0.3", daddr="10.9.0.3", protocol=6, sport=40001,
            dport=443, ds=136),  # web, no egress mark: judged on the ToS (AF41)
        Rec(first_ns=T0 + 3 * S, saddr="10.1.0.3", daddr="10.9.0.3", protocol=6, sport=40002,
            dport=443, ds=None),  # no ToS exported at all
    ]  # fmt: skip
    store = write_store(tmp_path / "store", recs)
    policy = tmp_path / "policy.conf"
    policy.write_text(POLICY)
    status, audit = audit_json(capsys, str(policy), str(store))
    assert status == 1
    v = audit["verdicts"]
    assert (v["conforming"]["flows"], v["mismarked"]["flows"], v["no-mark"]["flows"]) == (2, 1, 1)
    (wrong,) = audit["mismarked"]
    assert (wrong["sport"], wrong["observed"], wrong["arrived"], wrong["mark_from"]) == (
        30001, "AF21", "DF", "egress ToS"
    )  # fmt: skip
    assert audit["meta"]["judged_on"] == {"tos": 1, "egress_tos": 2}
    # the report filters select records as `diffserv report` does
    status, audit = audit_json(capsys, str(policy), str(store), "--filter", "dport=443")
    assert status == 0 and audit["verdicts"]["conforming"]["flows"] == 1


def test_softflowd_records_get_the_capture_verdicts(
    scene: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The marked capture, one flow re-marked wholly wrong, exported by the real
    softflowd as IPFIX into `diffserv collect`: the same verdict per flow as the capture."""
    softflowd = require_tool("softflowd")
    frames = marks_of(scene["marked"])
    web = {frame("web", i, 34) for i in range(PACKETS)}
    packets = [frame("web", frames_index, 0) if f in web else f
               for frames_index, f in _numbered(frames)]  # fmt: skip
    capture = scene["tmp"] / "web_wrong.pcap"
    synth.write_pcap(
        capture, [synth.Packet(p, ts_ns=T0 + k * 1_000_000) for k, p in enumerate(packets)]
    )
    port = free_udp_port()
    collect = Collect(scene["tmp"], [port], "-q", name="softflowd")
    try:
        done = subprocess.run(
            [softflowd, "-r", str(capture), "-n", f"127.0.0.1:{port}", "-v", "10", "-A", "milli"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        collect.wait_records(4)
        status, err = collect.stop()
        assert status == 0, err
    finally:
        collect.kill()
    s_status, from_capture = audit_json(capsys, str(scene["policy"]), str(capture))
    r_status, from_records = audit_json(capsys, str(scene["policy"]), str(collect.store))
    assert s_status == r_status == 1

    def verdicts(audit: dict[str, Any]) -> dict[str, dict[str, int]]:
        return {c["class"]: {k: c[k]["flows"] for k in ("conforming", "mismarked")}
                for c in audit["classes"]}  # fmt: skip

    assert verdicts(from_records) == verdicts(from_capture)
    assert verdicts(from_capture)["web"] == {"conforming": 0, "mismarked": 1}
    assert from_records["meta"]["records_judged"] >= 4


def _numbered(frames: list[tuple[bytes, int]]) -> list[tuple[int, bytes]]:
    """(packet number within its flow, frame) — every flow sends its packets in turn."""
    seen: dict[bytes, int] = {}
    out = []
    for f, _ in frames:
        key = f[26:38]  # IPv4 addresses and ports (Ethernet + 20-byte IPv4 header)
        out.append((seen.get(key, 0), f))
        seen[key] = seen.get(key, 0) + 1
    return out


def test_compare_names_the_hop_changes_the_policy_does_not_prescribe(
    scene: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, sent, marked = (str(scene[k]) for k in ("policy", "sent", "marked"))
    status = main(["audit", "--compare", sent, marked, policy, "--json"])
    good = json.loads(capsys.readouterr().out)
    assert status == 0 and good["meta"]["passed"]
    junk = next(f for f in good["flows"] if f["dport"] == 666)
    assert junk["only_before"] == {"packets": PACKETS, "prescribed": True}
    voice = next(f for f in good["flows"] if f["dport"] == 5004)
    assert [
        (t["before"], t["after"], t["packets"], t["prescribed"]) for t in voice["transitions"]
    ] == [("DF", "EF", PACKETS, True)]
    # a hop that re-marks one voice packet AF21 instead
    frames = marks_of(scene["marked"])
    target = _marked_frame(frames, "voice", 7)
    after = scene["tmp"] / "hop.pcap"
    synth.write_pcap(after, [frame("voice", 7, 18) if f == target else f for f, _ in frames])
    status = main(["audit", "--compare", sent, str(after), policy, "--json"])
    bad = json.loads(capsys.readouterr().out)
    assert status == 1 and bad["meta"]["not_prescribed_packets"] == 1
    voice = next(f for f in bad["flows"] if f["dport"] == 5004)
    found = {
        (t["before"], t["after"]): (t["packets"], t["prescribed"]) for t in voice["transitions"]
    }
    assert found == {("DF", "EF"): (PACKETS - 1, True), ("DF", "AF21"): (1, False)}
    # without a policy: the changes, no verdict
    assert main(["audit", "--compare", sent, str(after)]) == 0
    assert "DF→AF21 ×1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["audit", "{policy}", "/nonexistent.pcap"], "No such file"),
        (["audit", "{policy}", "{truncated}"], "truncated.pcap"),
        (["audit", "{broken}", "{sent}"], "broken.conf"),
        (["audit", "{policy}", "{sent}", "--filter", "dscp=EF"], "--filter"),
        (["audit", "{policy}"], "expected POLICY SOURCE"),
        (["audit", "--compare", "{sent}"], "BEFORE AFTER"),
        (["audit", "{policy}", "{sent}", "--priority", "XX"], "--priority"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    scene: dict[str, Any], argv: list[str], needle: str
) -> None:
    tmp = scene["tmp"]
    truncated = tmp / "truncated.pcap"
    truncated.write_bytes(scene["sent"].read_bytes()[:-37])
    broken = tmp / "broken.conf"
    broken.write_text("fmt_version 1.0\naction {\n")
    names = {
        "policy": scene["policy"],
        "sent": scene["sent"],
        "truncated": truncated,
        "broken": broken,
    }
    done = run_diffserv([a.format(**names) for a in argv])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert needle in done.stderr


def test_html_page_is_self_contained(scene: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    assert main(["audit", str(scene["policy"]), str(scene["sent"]), "--html", str(page)]) == 1
    text = page.read_text()
    assert "diffserv marking audit: FAIL" in text
    assert "<script src=" not in text and "Plotly" in text and "renderAudit" in text


def test_verdicts_do_not_depend_on_batch_size(
    scene: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    recs = [
        Rec(first_ns=T0 + i * S, saddr=f"10.1.0.{i % 7 + 1}", daddr="10.9.0.1", protocol=17,
            sport=30000 + i % 5, dport=5004 if i % 3 else 443, ds=[0, 184, 72, 136][i % 4],
            bytes=1000 + i % 4, packets=1 + i % 3)
        for i in range(500)
    ]  # fmt: skip
    store = write_store(tmp_path / "store", recs)
    runs = []
    for rows, packets in ((262_144, 65_536), (7, 5), (64, 1)):
        monkeypatch.setattr(audit_sources, "_RECORD_BATCH_ROWS", rows)
        monkeypatch.setattr(audit_sources, "_CAPTURE_BATCH", packets)
        _, records = audit_json(capsys, str(scene["policy"]), str(store), "--top", "3")
        _, capture = audit_json(capsys, str(scene["policy"]), str(scene["sent"]), "--top", "3")
        runs.append((records, capture))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][0]["verdicts"]["mismarked"]["flows"] > 0


PCP_POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name tagged
		next_action cos5
	}
	filter {
		name tagged_8080
		class tagged
		dport 8080
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


def tagged(i: int, pcp: int) -> bytes:
    """Packet ``i`` of the one tagged flow PCP_POLICY gives priority 5, tagged ``pcp``."""
    packet = synth.ipv4("10.2.0.1", "10.9.0.1", synth.tcp(40000, 8080, bytes([i]) * 100,
                        seq=1 + 200 * i), ident=i)  # fmt: skip
    return synth.ethernet(packet, vlans=[synth.Vlan(vid=20, pcp=pcp)])


def test_an_802_1p_priority_the_policy_does_not_set_is_mismarked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "cos.conf"
    policy.write_text(PCP_POLICY)

    sent = tmp_path / "sent.pcap"
    synth.write_pcap(sent, [tagged(i, 0) for i in range(10)])
    marked = tmp_path / "marked.pcap"
    assert main(["run", str(policy), str(sent), "-o", str(marked), "-q"]) == 0
    status, audit = audit_json(capsys, str(policy), str(marked))
    assert status == 0 and audit["verdicts"]["conforming"]["packets"] == 10
    frames = [f for f, _ in marks_of(marked)]
    frames[4] = tagged(4, 3)  # one frame left with priority 3
    wrong = tmp_path / "wrong.pcap"
    synth.write_pcap(wrong, frames)
    status, audit = audit_json(capsys, str(policy), str(wrong))
    assert status == 1 and audit["verdicts"]["mismarked"]["packets"] == 1
    (flow,) = audit["mismarked"]
    assert (flow["pcp"], flow["pcp_wrong"], flow["class"]) == (3, True, "tagged")
    assert flow["expected_pcp"] == [5]  # what cos5 writes
    assert main(["audit", str(policy), str(wrong)]) == 1
    text = capsys.readouterr().out
    assert "; PCP 5" in text and "; PCP 3" in text  # expected and observed, side by side


def test_html_page_renders_in_chromium(scene: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    assert main(["audit", str(scene["policy"]), str(scene["sent"]), "--html", str(page)]) == 1
    driver = browser()
    try:
        driver.get(page.as_uri())
        bars = wait_for(
            driver,
            "const d = document.getElementById('chart-classes');"
            "return d && d.data ? d.data.map((t) => [t.name, t.x, t.y]) : null;",
        )
        mismarked = {name: dict(zip(x, y, strict=True)) for name, x, y in bars}["mismarked"]
        assert mismarked["voice"] > 0 and mismarked["junk"] > 0
        verdict = driver.find_element("id", "verdict").text
        assert verdict.startswith("FAIL: 1 conforming, 4 mismarked")  # flows of the capture
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#table-confusion tr')].slice(1)"
            ".map((tr) => [...tr.children].map((td) => td.textContent))"
        )
        assert {tuple(r[:3]) for r in rows} == {
            ("voice", "EF", "DF"),
            ("web", "AF41", "DF"),
            ("bulk", "AF11, AF12, AF13", "DF"),
            ("junk", "", "DF"),
        }
        keep(driver, tmp_path / "audit.png")
    finally:
        driver.quit()


def test_compare_judges_the_hop_s_802_1p_priorities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "cos.conf"
    policy.write_text(PCP_POLICY)

    sent = tmp_path / "sent.pcap"
    synth.write_pcap(sent, [tagged(i, 0) for i in range(10)])
    marked = tmp_path / "marked.pcap"
    assert main(["run", str(policy), str(sent), "-o", str(marked), "-q"]) == 0
    assert main(["audit", "--compare", str(sent), str(marked), str(policy), "--json"]) == 0
    (flow,) = json.loads(capsys.readouterr().out)["flows"]
    assert flow["pcp"] == [{"before": 0, "after": 5, "packets": 10, "prescribed": True}]
    frames = [f for f, _ in marks_of(marked)]
    frames[6] = tagged(6, 2)  # the hop gave one frame priority 2
    wrong = tmp_path / "wrong.pcap"
    synth.write_pcap(wrong, frames)
    assert main(["audit", "--compare", str(sent), str(wrong), str(policy), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    (flow,) = result["flows"]
    assert {(p["after"], p["prescribed"]): p["packets"] for p in flow["pcp"]} == {
        (5, True): 9, (2, False): 1
    }  # fmt: skip
    assert result["meta"]["not_prescribed_packets"] == 1
