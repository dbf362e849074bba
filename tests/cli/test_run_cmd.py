"""`diffserv run` end to end: output bytes, tshark's independent view, stats, exit codes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from diffserv.capture import open_capture
from diffserv.cli.interrupts import interrupts_unwind
from diffserv.cli.main import main
from diffserv.cli.outputs import AtomicFile
from diffserv.cli.run_cmd import _Progress
from diffserv.errors import Interrupted
from diffserv.packet.checksum import internet_checksum
from support import synth
from support.tools import require_tool

POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	params {
		global_stats true
	}
	class {
		name web
		next_action markAF11
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
		name vlan
		next_action cos5
	}
	filter {
		name webf
		class web
		dport 80
	}
	filter {
		name voicef
		class voice
		protocol udp
		dport 5060
	}
	filter {
		name junkf
		class junk
		dport 666
	}
	filter {
		name vlanf
		class vlan
		dport 8080
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
	name markEF
	params {
		dscp_map {0-63:46}
		dscp_detailed_stats true
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

ARP = bytes.fromhex(
    "ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c0000202"
)


def _frames() -> list[bytes]:
    f = synth.simple_frame
    frames = []
    for i in range(40):
        kind = i % 8
        ecn = i % 4
        if kind == 0:
            frames.append(f(dport=80, ecn=ecn, dscp=i % 64))
        elif kind == 1:
            frames.append(f(proto="udp", dport=5060, ecn=ecn))
        elif kind == 2:
            frames.append(f(version=6, dport=80, ecn=ecn, dscp=8))
        elif kind == 3:
            frames.append(f(dport=666))
        elif kind == 4:
            frames.append(ARP)
        elif kind == 5:
            frames.append(f(dport=8080, vlans=[synth.Vlan(vid=10, pcp=1)]))
        elif kind == 6:
            frames.append(f(version=6, proto="udp", dport=5060, dscp=0, ecn=ecn))
        else:
            frames.append(f(dport=443, dscp=26, ecn=ecn))
    return frames


# expected (dscp, pcp) per kind after the run; None = dropped
def _expected(i: int) -> tuple[int, int | None] | None:
    kind = i % 8
    return {
        0: (10, None),
        1: (46, None),
        2: (10, None),
        3: None,
        4: (-1, None),
        5: (0, 5),
        6: (46, None),
        7: (26, None),
    }[kind]


def _kept_input() -> bytes:
    """The input capture without the packets the policy drops."""
    return synth.pcap_bytes(
        [
            synth.Packet(f, ts_ns=1_700_000_000_000_000_000 + i * 1000)
            for i, f in enumerate(_frames())
            if _expected(i) is not None
        ]
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY)
    pcap = tmp_path / "in.pcap"
    pcap.write_bytes(synth.pcap_bytes(_frames()))
    pcapng = tmp_path / "in.pcapng"
    pcapng.write_bytes(synth.simple_pcapng(_frames()))
    return {"policy": policy, "pcap": pcap, "pcapng": pcapng, "dir": tmp_path}


def _run(*args: str | Path) -> int:
    return main(["run", *(str(a) for a in args)])


def test_run_writes_marked_capture_and_stats(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "out.pcap"
    stats_path = files["dir"] / "s.json"
    assert _run(files["policy"], files["pcap"], "-o", out, "--stats", stats_path) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["packets"] == 40 and stats["dropped"] == 5 and stats["written"] == 35
    assert stats["not_ip"]["packets"] == 5
    assert stats["classes"]["web"]["packets"] == 10
    assert stats["classes"]["voice"]["packets"] == 10
    assert stats["classes"]["default"]["packets"] == 5
    assert stats["actions"]["markEF"]["module"] == "dscpmk"
    assert stats["actions"]["markEF"]["counters"]["dscp_changed"] == 10
    assert stats["actions"]["markEF"]["detailed"]["dscpmk_dscp0x2e"]["npackets"] == 10
    assert stats["actions"]["cos5"]["counters"] == {
        "npackets": 5,
        "ipackets": 0,
        "epackets": 0,
        "usr_pri": 5,
        "b_band": 160,
        "dl_max": 5,
    }
    assert stats["actions"]["ipgpc.classify"]["counters"]["npackets"] == 35
    err = capsys.readouterr().err
    assert "web" in err and "AF11 (10)" in err and "dropped 5" in err
    # every byte except DS bytes, checksums and PCP is the input's, dropped records removed
    reader_in = _kept_input()
    data = out.read_bytes()
    assert len(data) == len(reader_in)
    diff = [i for i, (a, b) in enumerate(zip(data, reader_in, strict=True)) if a != b]
    assert diff  # something was marked
    assert not list(files["dir"].glob(".out.pcap.*"))


def test_batch_size_does_not_change_output(files: dict[str, Path]) -> None:
    outs = []
    for size in ("1", "7", "65536"):
        out = files["dir"] / f"out{size}.pcapng"
        stats = files["dir"] / f"s{size}.json"
        assert (
            _run(
                files["policy"],
                files["pcapng"],
                "-o",
                out,
                "--batch-size",
                size,
                "-q",
                "--stats",
                stats,
            )
            == 0
        )
        doc = json.loads(stats.read_text())
        doc.pop("elapsed_s")
        doc.pop("output")
        outs.append((out.read_bytes(), doc))
    assert outs[0] == outs[1] == outs[2]


def test_stdout_output(files: dict[str, Path], capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert _run(files["policy"], files["pcap"], "-o", "-", "-q") == 0
    assert capsysbinary.readouterr().out[:4] == b"\xd4\xc3\xb2\xa1"


def test_invalid_policy_exit_1_with_diagnostics(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = files["dir"] / "bad.conf"
    bad.write_text(POLICY.replace("next_action markAF11", "next_action nowhere"))
    out = files["dir"] / "never.pcap"
    assert _run(bad, files["pcap"], "-o", out) == 1
    err = capsys.readouterr().err
    assert "bad.conf:" in err and "nowhere" in err
    assert not out.exists()


def test_unreadable_input_exit_2_no_half_file(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "never.pcap"
    assert _run(files["policy"], files["dir"] / "missing.pcap", "-o", out) == 2
    assert capsys.readouterr().err.count("\n") == 1
    garbage = files["dir"] / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all")
    assert _run(files["policy"], garbage, "-o", out) == 2
    assert not out.exists()
    assert not [p for p in files["dir"].iterdir() if p.name.startswith(".never")]


def test_truncated_capture_keeps_everything_before_the_cut(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A capture cut inside its last record: exit 2 with one error line naming the
    packet, and every packet before the cut processed and written (nothing lost)."""
    cut = files["dir"] / "cut.pcap"
    cut.write_bytes(files["pcap"].read_bytes()[:-7])
    out = files["dir"] / "partial.pcap"
    stats = files["dir"] / "s.json"
    assert _run(files["policy"], cut, "-o", out, "-q", "--stats", stats) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "packet 40" in err
    with open_capture(out) as reader:
        numbers = [int(n) for batch in reader for n in batch.cols.number]
    kept = [i for i in range(39) if _expected(i) is not None]
    assert len(numbers) == len(kept)
    assert json.loads(stats.read_text())["packets"] == 39


def test_usage_errors_exit_2(files: dict[str, Path]) -> None:
    assert _run(files["policy"], files["pcap"]) == 2  # no -o
    assert _run(files["policy"], files["pcap"], "-o", "x", "--batch-size", "0") == 2
    assert _run(files["policy"], files["pcap"], "-o", "x", "--direction", "up") == 2


def test_inbound_direction_is_never_marked(files: dict[str, Path]) -> None:
    out = files["dir"] / "in-dir.pcap"
    stats = files["dir"] / "s.json"
    assert (
        _run(
            files["policy"],
            files["pcap"],
            "-o",
            out,
            "-q",
            "--direction",
            "local-in",
            "--stats",
            stats,
        )
        == 0
    )
    doc = json.loads(stats.read_text())
    assert doc["actions"]["markAF11"]["counters"]["ipackets"] == 10
    assert doc["actions"]["markAF11"]["counters"]["dscp_changed"] == 0
    assert out.read_bytes() == _kept_input()


@pytest.mark.tools
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tshark_sees_dscp_ecn_pcp_and_good_checksums(files: dict[str, Path], fmt: str) -> None:
    tshark = require_tool("tshark")
    out = files["dir"] / f"out.{fmt}"
    assert _run(files["policy"], files[fmt], "-o", out, "-q") == 0
    fields = [
        "ip.dsfield.dscp",
        "ip.dsfield.ecn",
        "ip.checksum.status",
        "ipv6.tclass.dscp",
        "ipv6.tclass.ecn",
        "vlan.priority",
    ]
    cmd = [
        tshark,
        "-r",
        str(out),
        "-o",
        "ip.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]
    for name in fields:
        cmd += ["-e", name]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [line.split("|") for line in result.stdout.splitlines()]
    expected = [(i, e) for i in range(40) if (e := _expected(i)) is not None]
    assert len(rows) == len(expected)
    for (i, (dscp, pcp)), row in zip(expected, rows, strict=True):
        v4_dscp, v4_ecn, status, v6_dscp, v6_ecn, vlan_pri = row
        ecn = i % 4 if i % 8 in (0, 1, 2, 6, 7) else 0
        if dscp < 0:
            assert row == [""] * 6, i
            continue
        if v4_dscp:
            assert (int(v4_dscp), int(v4_ecn)) == (dscp, ecn), i
            assert status in {"1", "2", "Good"}, (i, status)
        else:
            assert (int(v6_dscp), int(v6_ecn)) == (dscp, ecn), i
        if pcp is not None:
            assert int(vlan_pri) == pcp, i


def test_module_entry_point_has_no_traceback(files: dict[str, Path]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffserv",
            "run",
            str(files["policy"]),
            "/nonexistent.pcap",
            "-o",
            str(files["dir"] / "o.pcap"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")


def _pcap_records(data: bytes) -> list[bytes]:
    """Frames of a little-endian classic pcap file (independent of our reader)."""
    frames = []
    pos = 24
    while pos < len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], "little")
        frames.append(data[pos + 16 : pos + 16 + caplen])
        pos += 16 + caplen
    return frames


def test_every_rewritten_ipv4_checksum_equals_full_recomputation(files: dict[str, Path]) -> None:
    frames = [synth.simple_frame(dport=80, dscp=d, ecn=d % 4, payload_len=d) for d in range(64)] + [
        synth.simple_frame(proto="udp", dport=5060, dscp=d) for d in range(0, 64, 3)
    ]
    src = files["dir"] / "many.pcap"
    src.write_bytes(synth.pcap_bytes(frames))
    out = files["dir"] / "many-out.pcap"
    assert _run(files["policy"], src, "-o", out, "-q") == 0
    got = _pcap_records(out.read_bytes())
    assert len(got) == len(frames)
    rewritten = 0
    for before, after in zip(frames, got, strict=True):
        header = bytearray(after[14:34])
        if header[1] != before[15]:
            rewritten += 1
        stored = int.from_bytes(header[10:12], "big")
        header[10:12] = b"\0\0"
        assert stored == internet_checksum(bytes(header))
        assert after[:15] == before[:15] and after[16:24] == before[16:24]
        assert after[26:] == before[26:]
    assert rewritten > 70


def test_pcapng_inbound_packets_are_not_marked(tmp_path: Path) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY)
    frame = synth.simple_frame(dport=80, ecn=1)
    packets = [
        synth.Packet(
            frame, ts_ns=1000 + i, epb_flags=synth.EPB_INBOUND if i % 2 else synth.EPB_OUTBOUND
        )
        for i in range(6)
    ]
    src = tmp_path / "dir.pcapng"
    src.write_bytes(synth.simple_pcapng(packets))
    stats = tmp_path / "s.json"
    assert _run(policy, src, "-o", tmp_path / "o.pcapng", "-q", "--stats", stats) == 0
    counters = json.loads(stats.read_text())["actions"]["markAF11"]["counters"]
    assert counters["ipackets"] == 3 and counters["dscp_changed"] == 3


IFACE_POLICY = """\
fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class {
		name lan
		next_action tag
	}
	filter {
		name lanf
		class lan
		if_name lo
	}
}
action {
	module dlcosmk
	name tag
	params {
		cos 2
		next_action continue
	}
}
"""


@pytest.mark.parametrize(("mode", "pcp"), [("illumos", 0), ("plain", 2)])
def test_interface_option_and_cos_mode(tmp_path: Path, mode: str, pcp: int) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(IFACE_POLICY)
    frames = [synth.simple_frame(vlans=[synth.Vlan(vid=7, pcp=6)]) for _ in range(3)]
    src = tmp_path / "v.pcap"
    src.write_bytes(synth.pcap_bytes(frames))
    out = tmp_path / "o.pcap"
    stats = tmp_path / "s.json"
    args = [policy, src, "-o", out, "-q", "--stats", stats, "--cos-mode", mode]
    assert _run(*args) == 0  # no --interface: the filter cannot match
    assert json.loads(stats.read_text())["classes"]["lan"]["packets"] == 0
    assert _run(*args, "--interface", "lo") == 0
    assert json.loads(stats.read_text())["classes"]["lan"]["packets"] == 3
    for frame in _pcap_records(out.read_bytes()):
        assert frame[14] >> 5 == pcp
        assert int.from_bytes(frame[14:16], "big") & 0x0FFF == 7


def test_malformed_packets_reported_and_passed_unmodified(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = synth.ethernet(synth.ipv4("192.0.2.1", "198.51.100.1", synth.tcp(1, 80), ihl=3))
    frames = [synth.simple_frame(dport=80), bad, synth.simple_frame(dport=80), bad]
    src = files["dir"] / "bad.pcap"
    src.write_bytes(synth.pcap_bytes(frames))
    out = files["dir"] / "bad-out.pcap"
    stats = files["dir"] / "s.json"
    assert _run(files["policy"], src, "-o", out, "--stats", stats) == 0
    doc = json.loads(stats.read_text())
    assert doc["malformed"] == {"count": 2, "first": [2, 4]}
    assert doc["actions"]["ipgpc.classify"]["counters"]["epackets"] == 2
    assert doc["not_ip"]["packets"] == 0
    assert "malformed 2 (passed unmodified): packets 2, 4" in capsys.readouterr().err
    got = _pcap_records(out.read_bytes())
    assert got[1] == bad and got[3] == bad


def test_flows_option_writes_records(tmp_path: Path) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(
        POLICY.replace(
            "{0-63:10}\n\t\tnext_action continue", "{0-63:10}\n\t\tnext_action acct"
        ).rstrip()
        + "\n\naction {\n\tmodule flowacct\n\tname acct\n\tparams {\n\t\tmax_limit 100\n"
        "\t\tnext_action continue\n\t}\n}\n"
    )
    src = tmp_path / "in.pcap"
    src.write_bytes(synth.pcap_bytes(_frames()))
    flows = tmp_path / "flows.jsonl"
    assert _run(policy, src, "-o", tmp_path / "o.pcap", "-q", "--flows", flows) == 0
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    assert records  # web traffic went through flowacct
    assert sum(int(r.get("npackets", r.get("packets", 0))) for r in records) == 10


def test_stdout_conflicts_are_usage_errors(files: dict[str, Path]) -> None:
    assert _run(files["policy"], files["pcap"], "-o", "-", "--stats", "-") == 2


def test_bundled_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    policy = root / "policies" / "enterprise-edge.conf"
    capture = root / "captures" / "edge.pcapng"
    if not policy.exists():
        pytest.skip("example policy not present")
    stats = tmp_path / "s.json"
    args = [policy, capture, "-o", tmp_path / "o.pcapng", "--direction", "fwd-out"]
    assert _run(*args, "--stats", stats) == 0
    doc = json.loads(stats.read_text())
    assert doc["packets"] == doc["written"] > 1000
    assert doc["malformed"]["count"] == 1
    assert doc["classes"]["voice"]["packets"] > 0
    assert "DSCP before" in capsys.readouterr().err


def test_bundled_example_independent_of_batch_size(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    policy = root / "policies" / "enterprise-edge.conf"
    if not policy.exists():
        pytest.skip("example policy not present")
    results = []
    for size in ("1", "7", "65536"):
        out = tmp_path / f"o{size}.pcapng"
        stats = tmp_path / f"s{size}.json"
        flows = tmp_path / f"f{size}.jsonl"
        args = [policy, root / "captures" / "edge.pcapng", "-o", out, "--direction", "fwd-out"]
        args += ["-q", "--batch-size", size, "--stats", stats, "--flows", flows]
        assert _run(*args) == 0
        doc = json.loads(stats.read_text())
        for key in ("elapsed_s", "output"):
            doc.pop(key)
        results.append((out.read_bytes(), doc, flows.read_text()))
    assert results[0] == results[1] == results[2]


def test_progress_line_starts_late_and_stops_cleanly() -> None:

    progress = _Progress("big.pcap")
    progress.update(10, 0.1)
    assert progress._bar is None  # short runs never show it
    progress.update(1_000_000, 2.0)
    assert progress._bar is not None
    progress.stop()


def test_sigterm_unwinds_so_the_partial_output_is_removed(tmp_path: Path) -> None:

    target = AtomicFile(str(tmp_path / "o.pcap"))
    with pytest.raises(Interrupted) as info, interrupts_unwind():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:
            target.abort()
            raise
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored afterwards
    assert list(tmp_path.iterdir()) == []


def test_pipe_stdin_to_stdout(files: dict[str, Path]) -> None:
    data = files["pcap"].read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "diffserv", "run", str(files["policy"]), "-", "-o", "-"],
        input=data,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(_kept_input())
    assert result.stderr.decode().startswith("standard input: 40 packets")
    assert "\x1b[" not in result.stderr.decode()  # no progress bar when stderr is not a TTY


def test_output_must_not_overwrite_input(files: dict[str, Path]) -> None:
    before = files["pcap"].read_bytes()
    assert _run(files["policy"], files["pcap"], "-o", files["pcap"]) == 2
    link = files["dir"] / "link.pcap"
    link.symlink_to(files["pcap"])
    assert _run(files["policy"], files["pcap"], "-o", link) == 2
    assert files["pcap"].read_bytes() == before


def test_failed_run_leaves_no_flow_file(files: dict[str, Path]) -> None:
    flows = files["dir"] / "flows.jsonl"
    assert (
        _run(files["policy"], files["dir"] / "missing.pcap", "-o", "x.pcap", "--flows", flows) == 2
    )
    assert not flows.exists()


def test_trace_shows_each_packet_path(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stats = files["dir"] / "s.json"
    args = [files["policy"], files["pcap"], "-o", files["dir"] / "o.pcap", "-q", "--trace", "6"]
    assert _run(*args, "--batch-size", "4", "--stats", stats) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (
        "packet 1: 192.0.2.1:40000 > 198.51.100.1:80 proto 6: class web → markAF11 → continue; "
        "DS 0x00 → 0x28"
    )
    assert lines[3] == (
        "packet 4: 192.0.2.1:40000 > 198.51.100.1:666 proto 6: class junk → drop; DS 0x00"
    )
    assert lines[4] == "packet 5: not IP: passed unchanged"
    assert lines[5].endswith("class vlan → cos5 → continue; DS 0x00, PCP 5")
    assert len(lines) == 6
    assert json.loads(stats.read_text())["trace"]["5"] == ["not IP: passed unchanged"]


def test_output_to_a_fifo_is_written_in_place_never_renamed_over(
    files: dict[str, Path],
) -> None:
    """-o /dev/null or a FIFO must stay what it is: no temp file renamed onto it."""

    fifo = files["dir"] / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert _run(files["policy"], files["pcap"], "-o", fifo, "-q") == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received and received[0][:4] == files["pcap"].read_bytes()[:4]
    assert not [p for p in files["dir"].iterdir() if p.name.endswith(".part")]
