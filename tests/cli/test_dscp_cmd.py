"""`diffserv dscp`: what a user sees on stdout/stderr and the exit status, for args and pipes."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from diffserv.cli import dscp_cmd
from diffserv.cli.main import main
from diffserv.errors import UsageError

SIBLING_COMMANDS = ("diffserv.cli.policy_cmd", "diffserv.cli.run_cmd", "diffserv.cli.flows_cmd")
ALL_COMMANDS_PRESENT = all(importlib.util.find_spec(name) for name in SIBLING_COMMANDS)
needs_all_commands = pytest.mark.skipif(
    not ALL_COMMANDS_PRESENT, reason="cli/main.py imports sub-commands not written yet"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: io.StringIO | None = None) -> int:
    """Run `diffserv dscp ARGV` through dscp_cmd.register, mapping UsageError as main() does."""
    monkeypatch.setattr(sys, "stdin", stdin if stdin is not None else _Terminal(""))
    parser = _Parser(prog="diffserv")
    dscp_cmd.register(parser.add_subparsers(parser_class=_Parser))
    try:
        args = parser.parse_args(["dscp", *argv])
        status: int = args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


def as_json(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> list[Any]:
    assert run(["--json", *argv], monkeypatch) == 0
    records: list[Any] = json.loads(capsys.readouterr().out)
    return records


def test_ef_is_explained_in_every_representation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["ef"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "ef: DSCP 46 EF, ToS 184 (0xb8)"
    assert "DSCP           46   0x2e  0b101110" in out
    assert "DS byte (ToS)  184  0xb8  0b10111000" in out
    assert "Precedence     5    CRITIC/ECP" in out
    assert "ECN            0    Not-ECT" in out
    assert "ToS, any ECN   184 0xb8 Not-ECT, 185 0xb9 ECT(1), 186 0xba ECT(0), 187 0xbb CE" in out
    assert "PHB            EF: Expedited Forwarding (RFC 3246)" in out
    assert "Service class  Telephony (RFC 4594)" in out
    assert "802.1p (PCP)   5    VO Voice" in out
    assert "nft ef; iptables --set-dscp-class EF; Cisco IOS ef" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tos", "0x48"], (18, "AF21", 0x48, "Not-ECT")),
        (["--tos", "0x28"], (10, "AF11", 0x28, "Not-ECT")),
        (["EF"], (46, "EF", 0xB8, "Not-ECT")),
        (["--tos", "185"], (46, "EF", 185, "ECT(1)")),
        (["--tos", "b8"], (46, "EF", 184, "Not-ECT")),
        (["--tos", "--hex", "48"], (18, "AF21", 0x48, "Not-ECT")),
        (["ef", "--ecn", "ect1"], (46, "EF", 185, "ECT(1)")),
        (["0x2e"], (46, "EF", 184, "Not-ECT")),
        (["0b101110"], (46, "EF", 184, "Not-ECT")),
    ],
)
def test_seed_worked_examples(
    argv: list[str],
    expected: tuple[int, str, int, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [record] = as_json(argv, monkeypatch, capsys)
    assert (record["dscp"], record["name"], record["tos"], record["ecn_name"]) == expected
    assert record["tos_hex"] == f"0x{expected[2]:02x}"
    assert record["precedence"] == expected[0] >> 3
    assert record["tos_any_ecn"] == [(expected[0] << 2) + ecn for ecn in range(4)]


def test_names_in_any_case_from_any_tool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = as_json(["ef", "AF21", "cs3", "le", "va", "default", "lephb"], monkeypatch, capsys)
    assert [r["dscp"] for r in records] == [46, 18, 24, 1, 44, 0, 1]
    assert [r["input"] for r in records] == ["ef", "AF21", "cs3", "le", "va", "default", "lephb"]
    assert {"dscp", "tos", "name", "precedence", "ecn", "phb", "service_class", "pcp"} <= set(
        records[0]
    )
    assert records[4]["name"] == "VOICE-ADMIT"
    assert records[5]["name"] == "DF"


def test_a_bare_number_is_read_as_a_dscp_and_the_output_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["46"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("46: DSCP 46 EF, ToS 184 (0xb8)")
    assert "note: 46 read as a DSCP; as a ToS byte (--tos) it would be DSCP 11" in out
    [record] = as_json(["46"], monkeypatch, capsys)
    assert record["read_as"] == "dscp"
    assert record["notes"][0].startswith("46 read as a DSCP")


def test_tos_notes_warn_about_decimal_hex_names_and_minimize_cost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--tos", "48", "ef", "Minimize-Cost"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "48: DSCP 12 AF12, ToS 48 (0x30)" in out
    assert "note: 48 read as decimal (0x30); write 0x48 or use --hex for hex" in out
    assert "'ef' read as the hex byte 0xef; drop --tos" in out
    assert "Minimize-Cost: DSCP 0 DF, ToS 2 (0x02), ECN ECT(0)" in out
    assert "has been an ECN bit since RFC 3168" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["AF51"], "error: dscp: unknown DSCP name 'AF51' (AF names run AF11-AF43"),
        (["AF51"], "did you mean AF41, AF31, AF21?"),
        (["64"], "DSCP 64 is out of range 0-63"),
        (["64"], "use --tos for ToS bytes"),
        (["--tos", "0x100"], "ToS byte 0x100 is out of range 0-255"),
        (["xyz"], "unknown DSCP name 'xyz'; expected a name such as EF"),
        (["ef", "cs9"], "class selectors run CS0-CS7"),
        (["--hex", "48"], "--hex applies to --tos values"),
        (["--tos", "--ecn", "ce", "184"], "a --tos byte carries its own ECN"),
        (["ef", "--ecn", "ect2"], "--ecn: unknown ECN codepoint 'ect2'"),
        (["--table", "ef"], "--table takes no VALUE"),
        ([], "no VALUE given"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(argv, monkeypatch) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing half-printed before the error
    assert message in captured.err
    assert len(captured.err.splitlines()) == 1
    assert "Traceback" not in captured.err


def test_table_lists_all_64_dscps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--table"], monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["DSCP", "HEX", "BINARY"]
    rows = lines[1:]
    assert len(rows) == 64
    assert [int(row.split()[0]) for row in rows] == list(range(64))
    assert rows[46].split()[:7] == ["46", "0x2e", "101110", "184", "0xb8", "5", "EF"]
    assert rows[0].split()[6] == "DF"
    assert "CS0, BE, default" in rows[0]
    assert "lephb" in rows[1]
    assert rows[44].split()[6] == "VOICE-ADMIT"


def test_table_as_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    records = as_json(["--table"], monkeypatch, capsys)
    assert [r["dscp"] for r in records] == list(range(64))
    assert [r["tos"] for r in records] == [d << 2 for d in range(64)]


def test_a_piped_tos_column_is_annotated_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    column = io.StringIO("184\n185\n\n136\n# comment\n4\n")
    assert run(["--tos"], monkeypatch, stdin=column) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [["184", "EF"], ["185", "EF"], ["136", "AF41"], ["4", "LE"]]
    assert [line.split()[:2] for line in lines] == expected
    assert "ecn ECT(1)" in lines[1]
    assert lines[2].endswith("Multimedia Conferencing")


def test_bad_stdin_lines_are_reported_with_line_numbers_and_the_rest_annotated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    column = io.StringIO("184\n0x48\nxyz\n300\n40\n")
    assert run(["--tos", "-"], monkeypatch, stdin=column) == 2
    captured = capsys.readouterr()
    assert [line.split()[1] for line in captured.out.splitlines()] == ["EF", "AF21", "AF11"]
    assert captured.err.splitlines() == [
        "<stdin>:3: not a ToS byte: 'xyz'; expected 0-255 as decimal, 0x hex or bare hex (b8), "
        "or an iptables ToS name",
        "<stdin>:4: ToS byte 300 is out of range 0-255 (0x00-0xff; the DS field is 8 bits)",
    ]


def test_json_from_stdin_stays_a_valid_array_despite_bad_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    column = io.StringIO("ef\nAF99\ncs6\n")
    assert run(["--json"], monkeypatch, stdin=column) == 2
    captured = capsys.readouterr()
    assert [r["name"] for r in json.loads(captured.out)] == ["EF", "CS6"]
    assert captured.err.startswith("<stdin>:2: unknown DSCP name 'AF99'")


def test_empty_json_is_an_empty_array(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--json", "-"], monkeypatch, stdin=io.StringIO("")) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_brief_mode_for_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--brief", "af41", "cs7", "11"], monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["af41", "AF41", "dscp", "34"]
    assert lines[2].split()[:2] == ["11", "11"]
    assert lines[2].endswith("unassigned")


def test_real_pipe_in_a_subprocess() -> None:
    """A real pipe on stdin (not a terminal): bad bytes and huge lines are reported, not fatal."""
    script = (
        "import sys, argparse\n"
        "from diffserv.cli import dscp_cmd\n"
        "p = argparse.ArgumentParser(prog='diffserv')\n"
        "dscp_cmd.register(p.add_subparsers())\n"
        "a = p.parse_args(['dscp', '--tos'])\n"
        "sys.exit(a.func(a))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=b"184\n72\n\xff\xfe\n" + b"7" * 500 + b"\n40\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert [line.split()[1] for line in done.stdout.decode().splitlines()] == ["EF", "AF21", "AF11"]
    errors = done.stderr.decode().splitlines()
    assert errors[0].startswith("<stdin>:3: not a ToS byte: '\ufffd\ufffd'")
    assert errors[1] == "<stdin>:4: not a value: '7777777777777777'... (500 characters)"
    assert len(errors) == 2


@needs_all_commands
def test_through_main(capsys: pytest.CaptureFixture[str]) -> None:

    assert main(["dscp", "--json", "--tos", "0x48"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "AF21"
    assert main(["dscp", "AF51"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dscp: unknown DSCP name 'AF51'")


@needs_all_commands
def test_installed_command_in_a_subprocess() -> None:
    command = Path(sys.executable).with_name("diffserv")
    done = subprocess.run(
        [str(command), "dscp", "--tos"],
        input="0x48\n0x28\n185\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[1] for line in done.stdout.splitlines()] == ["AF21", "AF11", "EF"]
    bad = subprocess.run(
        [str(command), "dscp", "64"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: dscp: DSCP 64 is out of range 0-63")
    assert "Traceback" not in bad.stderr
