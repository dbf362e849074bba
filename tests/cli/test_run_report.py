"""The terminal summary: generic over operators' counters, DSCP names, malformed numbers."""

from __future__ import annotations

from typing import Any

from diffserv.cli.report import format_summary
from diffserv.engine.stats import ActionStats, ClassStats, SessionStats, Transition, Volume


def _stats(**extra: Any) -> SessionStats:
    fields: dict[str, Any] = {
        "policy": "p.conf",
        "input": "in.pcap",
        "output": "out.pcap",
        "elapsed_s": 0.5,
        "packets": 1000,
        "bytes": 500_000,
        "written": 900,
        "not_ip": Volume(3, 180),
        "malformed": 0,
        "malformed_first": (),
        "truncated": 0,
        "header_cut": 0,
        "length_from_frame": 0,
        "outcomes": {"continue": Volume(900), "drop": Volume(100), "defer": Volume()},
        "classes": {
            "web": ClassStats(600, 300_000, 0, "meter"),
            "default": ClassStats(397, 190_000, 0, "continue"),
        },
        "actions": {
            "ipgpc.classify": ActionStats("ipgpc", {"npackets": 997}),
            "meter": ActionStats(
                "tokenmt",
                {
                    "green_packets": 300,
                    "yellow_packets": 200,
                    "red_packets": 100,
                    "green_bits": 1_200_000,
                    "yellow_bits": 800_000,
                    "red_bits": 400_000,
                    "epackets": 0,
                },
            ),
            "custom": ActionStats("newmod", {"widgets": 7}),
        },
        "dscp_transitions": (Transition(0, 46, 500), Transition(10, 10, 400)),
    }
    fields.update(extra)
    return SessionStats(**fields)


def test_summary_lines() -> None:
    text = format_summary(_stats())
    assert text.splitlines()[0] == "in.pcap: 1,000 packets (500.0 kB) in 0.50 s, 2,000 packets/s"
    assert "written 900, dropped 100, not IP 3 (passed unchanged)" in text
    assert "green 50.0% pkts / 50.0% bytes, yellow 33.3% pkts / 33.3% bytes" in text
    assert "red 16.7% pkts / 16.7% bytes" in text
    assert "widgets 7" in text
    assert "EF (46)" in text
    web = next(line for line in text.splitlines() if line.strip().startswith("web"))
    assert "600" in web and "60.2%" in web and "meter" in web
    assert "AF11 (10)" not in text  # unchanged DSCPs are not listed


def test_summary_malformed_numbers() -> None:
    text = format_summary(_stats(malformed=12, malformed_first=(3, 9)))
    assert "malformed 12 (passed unmodified): packets 3, 9 …" in text


def test_summary_snap_length_header_cut_and_offload_counts() -> None:
    text = format_summary(_stats(truncated=7, header_cut=3, length_from_frame=2))
    assert (
        "  cut by the snap length: 7 (classified), 3 of them inside the IP header "
        "(only the DS byte was there to classify on)"
    ) in text.splitlines()
    assert "  IP length 0 (segmentation offload): 2, length taken from the frame" in text
    plain = format_summary(_stats(truncated=7, header_cut=0, length_from_frame=0))
    assert "  cut by the snap length: 7 (classified)" in plain.splitlines()
    assert "offload" not in plain and "inside the IP header" not in plain
    assert "snap length" not in format_summary(_stats())
