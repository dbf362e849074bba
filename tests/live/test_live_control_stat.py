"""`diffserv stat` and the Prometheus endpoint, read from a running session."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from ctl_support import POLICY, CaptureTarget, private_dir, write_traffic

from diffserv.cli.main import main
from diffserv.errors import UsageError
from diffserv.live.control import serve_control
from diffserv.live.kstat import Selector
from diffserv.live.metrics import parse_metrics_address, serve_metrics


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, str, str]:
    """(policy, capture, output) paths for the same traffic in a run and a daemon."""
    policy = tmp_path / "edge.conf"
    policy.write_text(POLICY)
    return str(policy), write_traffic(tmp_path / "traffic.pcap"), str(tmp_path / "out.pcap")


def test_stat_json_is_the_run_stats_document(
    setup: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, capture, output = setup
    stats_file = tmp_path / "stats.json"
    assert main(["run", policy, capture, "-o", output, "--stats", str(stats_file), "-q"]) == 0
    expected = json.loads(stats_file.read_text())
    sock = str(private_dir(tmp_path) / "live.sock")
    capsys.readouterr()
    with serve_control(CaptureTarget(policy, capture, output), sock):
        assert main(["stat", "--json", "--stats-socket", sock]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got.pop("elapsed_s") >= 0
    expected.pop("elapsed_s")
    assert got == expected
    assert got["actions"]["meter"]["counters"]["red_packets"] > 0  # the traffic is metered


def test_stat_prints_kstat_rows_and_selects_like_kstat(
    setup: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, capture, output = setup
    sock = str(private_dir(tmp_path) / "live.sock")
    with serve_control(CaptureTarget(policy, capture, output), sock):
        assert main(["stat", "--stats-socket", sock]) == 0
        every = capsys.readouterr().out.splitlines()
        assert "diffserv:session:totals:packets\t200" in every
        assert "dscpmk:ef:dscpmk_stats:npackets\t50" in every
        assert "ipgpc:ipgpc.classify:voice:npackets\t50" in every
        assert "dscpmk:ef:dscpmk_dscp0x2e:npackets\t50" in every
        assert main(["stat", "tokenmt", "--stats-socket", sock]) == 0
        meter = capsys.readouterr().out.splitlines()
        assert meter and all(line.startswith("tokenmt:meter:tokenmt statistics:") for line in meter)
        assert len(meter) == 7
        assert main(["stat", "dscpmk:*:dscpmk_stats:dscp_changed", "--stats-socket", sock]) == 0
        assert sorted(capsys.readouterr().out.splitlines()) == [
            f"dscpmk:{name}:dscpmk_stats:dscp_changed\t{n}"
            for name, n in sorted(
                (row.action, row.value)
                for row in Selector("dscpmk", "", "dscpmk_stats", "dscp_changed").select(
                    CaptureTarget(policy, capture, output).snapshot().to_json()
                )
            )
        ]
        assert main(["stat", "ipgpc::web", "--json", "--stats-socket", sock]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert list(doc["actions"]) == ["ipgpc.classify"]
        assert list(doc["actions"]["ipgpc.classify"]["classes"]) == ["web"]
        assert doc["actions"]["ipgpc.classify"]["counters"] == {}
        assert main(["stat", "nosuch", "--stats-socket", sock]) == 1
        assert "no counter matches 'nosuch'" in capsys.readouterr().err


def test_stat_without_a_daemon_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = str(private_dir(tmp_path) / "live.sock")
    assert main(["stat", "--stats-socket", sock]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {sock}: no diffserv live daemon is running "
        "(nothing answers on its control socket)\n"
    )


def test_a_bad_selector_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="MODULE"):
        Selector.parse("a:b:c:d:e")


def test_metrics_endpoint_serves_the_counters_over_http(setup: tuple[str, str, str]) -> None:
    policy, capture, output = setup
    target = CaptureTarget(policy, capture, output)
    with serve_metrics(target, "127.0.0.1:0") as server:
        assert server.host == "127.0.0.1"
        first = httpx.get(server.url, timeout=10)
        assert first.status_code == 200
        text = first.text
        assert re.search(r"^# TYPE diffserv_session_packets(_total)? counter$", text, re.M)
        assert "diffserv_session_packets_total 200.0" in text
        assert 'diffserv_dscpmk_npackets_total{action="ef"} 50.0' in text
        assert (
            'diffserv_ipgpc_class_npackets_total{action="ipgpc.classify",class="voice"} 50.0'
            in text
        )
        assert 'diffserv_dscpmk_dscp_npackets_total{action="ef",dscp="0x2e"} 50.0' in text
        assert "# TYPE diffserv_ipgpc_nfilters gauge" in text
        red = target.snapshot().actions["meter"].counters["red_packets"]
        assert f'diffserv_tokenmt_red_packets_total{{action="meter"}} {float(red)}' in text
        target.feed()  # more traffic: the next scrape sees it
        again = httpx.get(server.url, timeout=10).text
        assert "diffserv_session_packets_total 400.0" in again


def test_metrics_addresses_default_to_the_loopback() -> None:
    assert parse_metrics_address("9464") == ("127.0.0.1", 9464)
    assert parse_metrics_address("[::1]:9464") == ("::1", 9464)
    assert parse_metrics_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    for bad in ("localhost:9464", "127.0.0.1:70000", "127.0.0.1:x"):
        with pytest.raises(UsageError, match="--metrics"):
            parse_metrics_address(bad)
