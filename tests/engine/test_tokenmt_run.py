"""Meters through `diffserv run`: a capture in, re-marked packets and meter counters out."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from diffserv.cli.main import main
from support import synth

BASE_NS = 1_767_225_600 * 1_000_000_000
SEC = 1_000_000_000
AF11, AF12, AF13 = 10, 12, 14

HEAD = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action meter1
	}
	filter {
		name webf
		class web
		dport 80
	}
}
"""
MARKERS = "".join(
    f"""
action {{
	module dscpmk
	name mark{dscp}
	params {{
		dscp_map {{0-63:{dscp}}}
		next_action continue
	}}
}}
"""
    for dscp in (AF11, AF12, AF13)
)
TOKENMT = """
action {
	module tokenmt
	name meter1
	params {
		committed_rate 8000
		committed_burst 8000
		peak_rate 16000
		peak_burst 16000
		green_action_name mark10
		yellow_action_name mark12
		red_action_name mark14
	}
}
"""
TSWTCLMT = """
action {
	module tswtclmt
	name meter1
	params {
		committed_rate 2000000
		peak_rate 4000000
		window 100
		green_action_name mark10
		yellow_action_name mark12
		red_action_name mark14
	}
}
"""


def _frame(i: int) -> bytes:
    # 500-byte IP datagrams: IPv4 20 + TCP 20 + 460, IPv6 40 + TCP 20 + 440
    if i % 2:
        return synth.simple_frame(version=6, dport=80, payload_len=440)
    return synth.simple_frame(version=4, dport=80, payload_len=460)


def _capture(path: Path, times: list[int]) -> Path:
    packets = [synth.Packet(_frame(i), ts_ns=BASE_NS + t) for i, t in enumerate(times)]
    path.write_bytes(synth.pcap_bytes(packets, nanosecond=True))
    return path


def _dscps(pcap: Path) -> list[int]:
    data = pcap.read_bytes()
    offset, out = 24, []
    while offset < len(data):
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + incl]
        if frame[14] >> 4 == 4:
            out.append(frame[15] >> 2)
        else:
            out.append((((frame[14] & 0x0F) << 4) | (frame[15] >> 4)) >> 2)
        offset += 16 + incl
    return out


def _run(tmp_path: Path, meter: str, times: list[int], *extra: str) -> tuple[list[int], dict]:
    policy = tmp_path / "meter.conf"
    policy.write_text(HEAD + MARKERS + meter)
    capture = _capture(tmp_path / "in.pcap", times)
    out, stats = tmp_path / "out.pcap", tmp_path / "stats.json"
    args = [str(policy), str(capture), "-o", str(out), "--stats", str(stats), "-q", *extra]
    assert main(["run", *args]) == 0
    counters = json.loads(stats.read_text())["actions"]["meter1"]["counters"]
    return _dscps(out), counters


def test_trtcm_colours_become_af1x_marks_for_ipv4_and_ipv6(tmp_path: Path) -> None:
    times = [0] * 5 + [SEC // 4, SEC // 2]
    dscps, counters = _run(tmp_path, TOKENMT, times)
    assert dscps == [AF11, AF11, AF12, AF12, AF13, AF12, AF11]
    assert counters == {
        "red_packets": 1,
        "yellow_packets": 3,
        "green_packets": 3,
        "red_bits": 4000,
        "yellow_bits": 12000,
        "green_bits": 12000,
        "epackets": 0,
    }


def test_tswtclmt_run_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    times = [i * 500_000 for i in range(400)]  # 8 Mbit/s against CTR 2M, PTR 4M
    first, counters = _run(tmp_path, TSWTCLMT, times, "--seed", "7")
    again, _ = _run(tmp_path, TSWTCLMT, times, "--seed", "7")
    other, _ = _run(tmp_path, TSWTCLMT, times, "--seed", "8")
    assert first == again
    assert first != other
    assert set(first) == {AF11, AF12, AF13}
    assert counters["green_packets"] + counters["yellow_packets"] + counters["red_packets"] == 400
