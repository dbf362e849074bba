"""``diffserv compile`` as a user sees it: --check reports, exit statuses, messages, files."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import compile_policies as cp
import pytest
from compile_policies import compile_to

from diffserv.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"

EVERY_KIND = (
    cp.HEAD
    + cp.ipgpc(
        [("a", "police"), ("b", "srtcm"), ("c", "acct"), ("d", "cos"), ("default", "continue")],
        [
            {"name": "fa", "class": "a", "dport": 1},
            {"name": "fb", "class": "b", "dport": 2},
            {"name": "fc", "class": "c", "dport": 3},
            {"name": "fd", "class": "d", "dport": 4},
            {"name": "proj", "class": "d", "projid": 4},
        ],
    )
    + cp.tokenmt("police", 8_000_004, 12_000, "mark", "drop")
    + cp.tokenmt(
        "srtcm", 8_000_000, 12_000, "mark", "drop", peak_burst=12000, yellow_action_name="continue"
    )
    + cp.flowacct("acct", "mark")
    + cp.dscpmk("mark", "0-63:46")
    + cp.dlcosmk("cos", 6)
)


def _write(tmp_path: Path, text: str, name: str = "p.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_check_lists_every_kind_of_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compile", "--check", _write(tmp_path, EVERY_KIND)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "approximate" in lines["police"] and "limit rate over 1000001 bytes/second" in out
    assert "rate x 1 s + burst = 1001501 bytes where tokenmt's holds 1500" in out
    assert "rate rounded" in lines["police"]
    assert "needs daemon" in lines["srtcm"] and "RFC 2697" in lines["srtcm"]
    assert "needs daemon" in lines["acct"] and "flow records" in lines["acct"]
    assert "exact" in lines["mark"] and "63 code points" in lines["mark"]
    assert "exact" in lines["cos"] and "meta priority set 6" in lines["cos"]
    assert out.startswith(
        "compile --to nft: 3 classes in the kernel (1 approximate), 2 need the daemon"
    )
    assert "filter proj: projid" in out


def test_check_json_and_iptables_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, EVERY_KIND)
    assert main(["compile", "--check", "--json", path]) == 0
    doc = json.loads(capsys.readouterr().out)
    verdicts = {a["name"]: a["verdict"] for a in doc["actions"]}
    assert verdicts == {
        "police": "approximate",
        "srtcm": "daemon",
        "acct": "daemon",
        "mark": "exact",
        "cos": "exact",
    }
    assert doc["needs_hybrid"] is True
    assert main(["compile", "--check", "--json", "--to", "iptables", path]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {a["name"]: a["verdict"] for a in doc["actions"]}["police"] == "daemon"
    assert main(["compile", "--check", "--to", "iptables", path]) == 0
    assert "-m set needs ipset" in capsys.readouterr().out


def test_daemon_actions_need_hybrid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.nft"
    assert main(["compile", _write(tmp_path, EVERY_KIND), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: these actions need the daemon: srtcm (tokenmt")
    assert "--hybrid" in err and "Traceback" not in err
    assert not out.exists()  # nothing written
    script = compile_to(tmp_path, EVERY_KIND, "--hybrid", "--queue", "4").read_text()
    assert "queue num 4 bypass" in script
    assert "# APPROXIMATE police: limit rate over 1000001 bytes/second" in script
    as_json = json.loads(
        compile_to(tmp_path, EVERY_KIND, "--hybrid", "--format", "json", name="j").read_text()
    )
    assert {"queue": {"num": 0, "flags": ["bypass"]}} in [
        e
        for cmd in as_json["nftables"]
        if "rule" in cmd.get("add", {})
        for e in cmd["add"]["rule"]["expr"]
    ]


def test_mark_form_writes_the_companion(tmp_path: Path) -> None:
    rules = compile_to(tmp_path, EVERY_KIND, "--hybrid", "--queue-via", "mark", "--queue", "9")
    assert "meta mark set meta mark | 0x10000000 accept" in rules.read_text()
    companion = Path(str(rules) + ".iptables").read_text()
    assert (
        "-A DIFFSERV-NFTQ -m mark --mark 0x10000000/0x10000000 -j NFQUEUE --queue-num 9 "
        "--queue-bypass" in companion
    )


def test_bad_policy_prints_check_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path, cp.HEAD + cp.ipgpc([("a", "nowhere")], []), "bad.conf")
    assert main(["compile", bad]) == 1
    compile_err = capsys.readouterr().err
    assert main(["check", bad]) == 1
    check_err = capsys.readouterr().err
    assert "nowhere" in compile_err
    first = compile_err.splitlines()[0]
    assert first in check_err.splitlines()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "pf"], "invalid choice"),
        (["--json"], "--json goes with --check"),
        (["--to", "iptables", "--format", "json"], "--format json is for --to nft"),
        (["--to", "iptables"], "writes two files"),
        (["--queue", "70000"], "must be from 0 to 65535"),
        (["--table", "bad name;"], "a table name is"),
        (["-o", "/nonexistent/dir/x"], "no such directory"),
    ],
)
def test_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    policy = _write(tmp_path, cp.mixed())
    status = main(["compile", policy, *argv])
    err = capsys.readouterr().err
    assert message in err
    assert status == 2


def test_output_file_is_replaced_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.nft"
    out.write_text("old")
    policy = _write(tmp_path, cp.mixed())
    assert main(["compile", policy, "-o", str(out)]) == 0
    assert out.read_text().startswith("# diffserv compile")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(["compile", policy]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_unreadable_policy_is_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(tmp_path / "missing.conf")]) == 2
    assert "missing.conf" in capsys.readouterr().err


def test_policy_from_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = cp.mixed().encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["compile", "-"]) == 0
    assert "table inet diffserv {" in capsys.readouterr().out


def test_a_meter_has_one_bucket_at_every_hook(tmp_path: Path) -> None:
    policy = (
        cp.HEAD
        + cp.ipgpc(
            [("a", "police"), ("default", "continue")], [{"name": "x", "class": "a", "dport": 9}]
        )
        + cp.tokenmt("police", 8000, 8000, "mark", "drop")
        + cp.dscpmk("mark", "0-63:10")
    )
    script = compile_to(tmp_path, policy).read_text()
    # input (markers do nothing there) and output/forward need chains of their own, but
    # the engine has one bucket per meter action: so has the ruleset
    assert script.count("\tlimit m0_police {") == 1
    assert script.count('limit name "m0_police"') == 2
