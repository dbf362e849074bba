"""diffserv check / fmt / explain: exit statuses, messages, files rewritten or not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from diffserv.cli import main as cli_main
from diffserv.cli import policy_cmd
from diffserv.errors import InputDataError
from diffserv.policy import load
from diffserv.policy.build import UnreadablePolicyError

VALID = """\
fmt_version 1.0
action {
    module ipgpc
    name ipgpc.classify
    class { name voice next_action markEF }
    filter { name rtp class voice protocol udp sport 5004 }
}
action {
    module dscpmk
    name markEF
    params { dscp_map {0-63:46} next_action continue }
}
"""

INVALID = """\
fmt_version 1.0
action {
    module ipgpc
    name ipgpc.classify
    class { name voice next_action continue }
    filter { name rtp class voice protocl udp }
}
"""

UNRESOLVED = """\
fmt_version 1.0
action {
    module ipgpc
    name ipgpc.classify
    class { name web next_action continue }
    filter { name w class web daddr w.x.y.z }
}
"""

OFFLINE = ["--host", "known.example=192.0.2.1"]  # a static resolver: no DNS in tests


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli_main.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_valid_prints_one_ok_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ok.conf", VALID)
    status, out, err = run(["check", path], capsys)
    assert status == 0
    assert out == f"{path}: ok (2 actions, 1 class, 1 filter)\n"
    assert err == ""


def test_check_invalid_prints_compiler_style_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "bad.conf", INVALID)
    status, out, err = run(["check", path], capsys)
    assert status == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:6:")
    assert ": error: " in lines[0] and "protocl" in lines[0]
    assert "filter { name rtp class voice protocl udp }" in lines[1]
    assert lines[2].strip() == "^"
    assert "hint:" in err and "protocol" in err
    assert err.rstrip().endswith(f"{path}: invalid (1 error)")
    assert "Traceback" not in err


def test_check_several_files_worst_status_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.conf", VALID)
    bad = write(tmp_path, "bad.conf", INVALID)
    status, out, _ = run(["check", good, bad], capsys)
    assert status == 1
    assert f"{good}: ok" in out
    status, _, err = run(["check", good, str(tmp_path / "missing.conf")], capsys)
    assert status == 2
    assert f"error: cannot read {tmp_path / 'missing.conf'}: No such file or directory" in err


def test_an_unreadable_policy_is_the_same_error_as_an_unreadable_capture(tmp_path: Path) -> None:
    # one reader for every policy file: the commands, `run` and diffserv.policy.load
    with pytest.raises(InputDataError) as info:
        policy_cmd.load_policy(str(tmp_path / "gone.conf"))
    assert isinstance(info.value, UnreadablePolicyError)
    assert str(info.value) == f"cannot read {tmp_path / 'gone.conf'}: No such file or directory"
    assert policy_cmd.UnreadableFileError is UnreadablePolicyError
    with pytest.raises(UnreadablePolicyError, match="is a directory"):
        load(tmp_path)


def test_check_directory_is_unreadable_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["check", str(tmp_path)], capsys)
    assert status == 2
    assert "is a directory" in err


def test_check_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VALID))
    status, out, _ = run(["check", "-"], capsys)
    assert status == 0
    assert out.startswith("<stdin>: ok (")


def test_warning_is_ok_unless_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "w.conf", UNRESOLVED)
    status, out, err = run(["check", *OFFLINE, path], capsys)
    assert status == 0
    assert out.startswith(f"{path}: ok (") and out.rstrip().endswith(", 1 warning")
    assert f"{path}:6:" in err and "warning:" in err and "w.x.y.z" in err
    status, _, err = run(["check", "--strict", *OFFLINE, path], capsys)
    assert status == 1
    assert "error:" in err and "w.x.y.z" in err


def test_check_json_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.conf", INVALID)
    good = write(tmp_path, "good.conf", VALID)
    status, out, err = run(["check", "--json", good, bad], capsys)
    assert status == 1
    data = json.loads(out)
    assert len(data) == 1
    assert data[0]["severity"] == "error"
    assert data[0]["file"] == bad
    assert data[0]["line"] == 6
    assert "protocl" in data[0]["message"]
    assert err == ""


def test_check_bad_host_option_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "ok.conf", VALID)
    status, _, err = run(["check", "--host", "nonsense", path], capsys)
    assert status == 2
    assert "--host expects NAME=ADDR" in err


def test_check_without_files_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["check"], capsys)
    assert status == 2
    assert "error:" in err


def test_fmt_prints_canonical_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.conf", VALID)
    status, out, _ = run(["fmt", path], capsys)
    assert status == 0
    assert out.startswith("fmt_version 1.0\n\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n")
    assert "\t\tsport 5004\n" in out
    canonical = write(tmp_path, "c.conf", out)
    status, again, _ = run(["fmt", canonical], capsys)
    assert again == out


def test_fmt_check_and_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.conf", VALID)
    status, out, err = run(["fmt", "--check", path], capsys)
    assert status == 1
    assert err == f"{path}: not in canonical form\n"
    assert out == ""
    status, out, _ = run(["fmt", "--check", "--diff", path], capsys)
    assert status == 1
    assert out.startswith(f"--- {path}\n+++ {path} (canonical)\n")
    _, canonical, _ = run(["fmt", path], capsys)
    done = write(tmp_path, "done.conf", canonical)
    status, out, err = run(["fmt", "--check", done], capsys)
    assert (status, out, err) == (0, "", "")


def test_fmt_in_place_rewrites_only_valid_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.conf", VALID)
    bad = write(tmp_path, "bad.conf", INVALID)
    Path(good).chmod(0o640)
    status, out, err = run(["fmt", "--in-place", good, bad], capsys)
    assert status == 1
    assert out == ""
    assert f"{bad}: not formatted: the file is invalid" in err
    assert Path(bad).read_text(encoding="utf-8") == INVALID
    rewritten = Path(good).read_text(encoding="utf-8")
    assert rewritten.startswith("fmt_version 1.0\n\naction {\n\tmodule ipgpc")
    assert Path(good).stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.conf", "good.conf"]
    status, _, _ = run(["fmt", "--check", good], capsys)
    assert status == 0


def test_fmt_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path, "a.conf", VALID)
    b = write(tmp_path, "b.conf", VALID)
    assert run(["fmt", a, b], capsys)[0] == 2
    assert run(["fmt", "--in-place", "--check", a], capsys)[0] == 2
    status, _, err = run(["fmt", "--in-place", "-"], capsys)
    assert status == 2 and "standard input" in err


def test_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.conf", VALID)
    status, out, err = run(["explain", path], capsys)
    assert status == 0
    assert out.startswith(f"{path}: 2 actions, 1 class, 1 filter\n")
    assert "filter rtp: UDP from port 5004" in out
    assert "→ markEF [dscpmk]: mark DSCP: every DSCP → EF (46) (ECN kept)" in out
    assert err == ""


def test_explain_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.conf", INVALID)
    status, out, err = run(["explain", path], capsys)
    assert status == 1
    assert out == ""
    assert f"{path}: invalid, nothing to explain" in err


def test_fmt_in_place_follows_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = write(tmp_path, "real.conf", VALID)
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    assert run(["fmt", "--in-place", str(link)], capsys)[0] == 0
    assert link.is_symlink()
    assert Path(real).read_text(encoding="utf-8").startswith("fmt_version 1.0\n\naction {\n")


def test_check_json_reports_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.conf")
    status, out, _ = run(["check", "--json", missing], capsys)
    assert status == 2
    data = json.loads(out)
    assert data[0]["file"] == missing
    assert data[0]["severity"] == "error"
    assert "cannot read" in data[0]["message"]


def test_fmt_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VALID))
    status, out, _ = run(["fmt", "-"], capsys)
    assert status == 0
    assert out.startswith("fmt_version 1.0\n")
