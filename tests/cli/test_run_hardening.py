"""`diffserv run` under the failures users meet: outputs that are inputs, interrupts, a
full disk, unexpected internal errors. Each test checks what is left on disk and what
the user is told, against real processes, signals, pipes and file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diffserv.cli import policy_cmd
from diffserv.cli.main import EXIT_INTERNAL, main
from diffserv.engine.graph import ActionGraph
from diffserv.engine.modules.ipgpc import Ipgpc
from support import synth

MARKING_POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action markAF11
	}
	filter {
		name webf
		class web
		dport 80
	}
}

action {
	module dscpmk
	name markAF11
	params {
		dscp_map {0-63:10}
		next_action acct
	}
}

action {
	module flowacct
	name acct
	params {
		timer 10
		timeout 1
		max_limit 100
		next_action continue
	}
}
"""

FRAMES = [synth.simple_frame(dport=80, sport=40000 + i % 50, payload_len=200) for i in range(200)]


def _packets(count: int, start_s: int = 1_700_000_000) -> list[synth.Packet]:
    # one packet every 50 ms: flows of 50 ports end after 1 s, so records are written early
    return [
        synth.Packet(FRAMES[i % len(FRAMES)], ts_ns=(start_s * 10**9) + i * 50_000_000)
        for i in range(count)
    ]


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    policy = tmp_path / "mark.conf"
    policy.write_text(MARKING_POLICY)
    capture = tmp_path / "in.pcap"
    capture.write_bytes(synth.pcap_bytes(_packets(400)))
    return {"dir": tmp_path, "policy": policy, "pcap": capture}


def _run(*args: str | Path) -> int:
    return main(["run", *(str(a) for a in args)])


def _diffserv(*args: str | Path, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "diffserv", *(str(a) for a in args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    )


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# ------------------------------------------------------------------ same files
@pytest.mark.parametrize(
    ("option", "victim"),
    [
        ("--stats", "pcap"),
        ("--stats", "output"),
        ("--stats", "policy"),
        ("--flows", "output"),
        ("--flows", "policy"),
        ("--flows", "pcap"),
        ("-o", "policy"),
    ],
)
def test_no_output_may_be_an_input_or_another_output(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], option: str, victim: str
) -> None:
    out = work["dir"] / "out.pcap"
    out.write_bytes(b"previous output")
    paths = {"pcap": work["pcap"], "output": out, "policy": work["policy"]}
    before = {name: path.read_bytes() for name, path in paths.items()}
    args: list[str | Path] = [work["policy"], work["pcap"], "-o", out, "-q"]
    if option == "-o":
        args[3] = paths[victim]
    else:
        args += [option, paths[victim]]
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert "is the same file as" in err and "refusing to overwrite it" in err
    assert {name: path.read_bytes() for name, path in paths.items()} == before


def test_same_file_is_found_through_hard_links_and_symlinks(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    flows = work["dir"] / "flows.jsonl"
    flows.write_text('{"old": "records"}\n')
    hard = work["dir"] / "hard.jsonl"
    os.link(flows, hard)
    soft = work["dir"] / "soft.json"
    soft.symlink_to(flows)
    out = work["dir"] / "o.pcap"
    assert _run(work["policy"], flows, "-o", out, "--flows", hard) == 2
    assert _run(work["policy"], work["pcap"], "-o", out, "--flows", flows, "--stats", soft) == 2
    assert flows.read_text() == '{"old": "records"}\n'
    assert not out.exists()
    assert "refusing to overwrite" in capsys.readouterr().err


def test_dev_null_takes_several_outputs(work: dict[str, Path]) -> None:
    assert _run(work["policy"], work["pcap"], "-o", "/dev/null", "--stats", "/dev/null", "-q") == 0


def test_two_outputs_to_stdout_are_refused(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = work["dir"] / "o.pcap"
    assert _run(work["policy"], work["pcap"], "-o", out, "--stats", "-", "--flows", "-") == 2
    assert "cannot both write to standard output" in capsys.readouterr().err


# ------------------------------------------------------------------ file modes
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_umask_mode(work: dict[str, Path], umask: int) -> None:
    out = work["dir"] / "o.pcap"
    stats = work["dir"] / "s.json"
    previous = os.umask(umask)
    try:
        assert _run(work["policy"], work["pcap"], "-o", out, "--stats", stats, "-q") == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(stats.stat().st_mode) == 0o666 & ~umask


def test_a_replaced_output_keeps_its_mode(work: dict[str, Path]) -> None:
    out = work["dir"] / "o.pcap"
    out.write_bytes(b"old")
    out.chmod(0o640)
    assert _run(work["policy"], work["pcap"], "-o", out, "-q") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.read_bytes()[:4] == work["pcap"].read_bytes()[:4]


# ------------------------------------------------------------------ usage limits
def test_batch_size_beyond_the_limit_is_a_usage_error(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = work["dir"] / "o.pcap"
    assert _run(work["policy"], work["pcap"], "-o", out, "--batch-size", "99999999999999") == 2
    err = capsys.readouterr().err
    assert "largest batch" in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------------ interrupts
def _endless_capture(fifo: Path, stop: threading.Event, stall_after: int | None) -> None:
    """Write a pcap stream into ``fifo`` until the reader goes away (or stall, holding it)."""
    packets = _packets(2000)
    header = synth.pcap_bytes([])
    body = synth.pcap_bytes(packets)[len(header) :]
    sent = 0
    with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as sink:
        sink.write(header)
        while not stop.is_set():
            if stall_after is not None and sent >= stall_after:
                stop.wait(30)  # keep the pipe open, send nothing: the reader blocks in read()
                break
            sink.write(body)
            sent += len(body)


@contextlib.contextmanager
def _feeding(fifo: Path, stall_after: int | None) -> Iterator[None]:
    os.mkfifo(fifo)
    stop = threading.Event()
    feeder = threading.Thread(target=_endless_capture, args=(fifo, stop, stall_after))
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # unblock an open() that nobody answered
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join(timeout=30)


def _wait_for_part_file(directory: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not _leftovers(directory):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the run: batches in flight in every thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("stall", [False, True])
def test_interrupt_stops_promptly_and_leaves_no_temporary_file(
    work: dict[str, Path], signum: int, stall: bool
) -> None:
    """Busy in every thread (rewriting path, writer and read-ahead), or stuck in read()."""
    out = work["dir"] / "out.pcap"
    out.write_bytes(b"the previous result")
    flows = work["dir"] / "flows.jsonl"
    fifo = work["dir"] / "in.fifo"
    with _feeding(fifo, stall_after=3_000_000 if stall else None):
        proc = _diffserv(
            "run", work["policy"], fifo, "-o", out, "--flows", flows, "--batch-size", "512"
        )
        _wait_for_part_file(work["dir"], proc)
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("the run hung after the signal")
    assert proc.returncode == 128 + signum
    message = err.decode()
    assert "Traceback" not in message
    assert (
        message.strip()
        .splitlines()[-1]
        .startswith(f"interrupted by {signal.Signals(signum).name} ({out} not written; ")
    )
    assert out.read_bytes() == b"the previous result"
    assert _leftovers(work["dir"]) == []
    # flows that ended before the signal were flushed and stay, complete and readable
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    assert records, "no flow record was kept"
    assert f"{flows} keeps {len(records):,} flow records" in message


# ------------------------------------------------------------------ full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 kB file system (tmpfs), so writes fail with ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        pytest.fail(f"cannot mount a tmpfs (the tests run as root): {result.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MB ext4 file system on a loop device: the O_DIRECT output path."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mount = tmp_path / "ext4"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, check=False
    )
    if result.returncode:
        pytest.fail(f"cannot mount a loop file system: {result.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _big_capture(path: Path, size: int) -> None:
    packets = _packets(max(400, size // 260))
    path.write_bytes(synth.pcap_bytes(packets))


@pytest.mark.parametrize("disk", ["small_disk", "small_ext4"])
def test_full_disk_names_the_file_removes_the_part_and_keeps_flow_records(
    work: dict[str, Path], request: pytest.FixtureRequest, disk: str
) -> None:
    mount: Path = request.getfixturevalue(disk)
    capacity = os.statvfs(mount).f_blocks * os.statvfs(mount).f_frsize
    big = work["dir"] / "big.pcap"
    _big_capture(big, 2 * capacity)
    out = mount / "out.pcap"
    flows = work["dir"] / "flows.jsonl"
    proc = _diffserv("run", work["policy"], big, "-o", out, "--flows", flows, "-q")
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the run hung on a full disk")
    message = err.decode().strip()
    assert proc.returncode == 2
    assert message.splitlines() == [message]  # one line
    assert message.startswith(f"error: cannot write {out}: No space left on device")
    assert f"{out} not written" in message
    assert list(mount.iterdir()) == [mount / "lost+found"] * (disk == "small_ext4")
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    assert records and f"{flows} keeps {len(records):,} flow records" in message


def test_stats_on_a_full_disk_say_what_was_written(work: dict[str, Path], small_disk: Path) -> None:
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (1 << 20))
    out = work["dir"] / "o.pcap"
    stats = small_disk / "stats.json"
    proc = _diffserv("run", work["policy"], work["pcap"], "-o", out, "--stats", stats, "-q")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.decode().strip() == (
        f"error: cannot write {stats}: No space left on device ({out} written)"
    )
    assert out.read_bytes()[:4] == work["pcap"].read_bytes()[:4]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_an_output_directory_that_does_not_exist_fails_before_the_run(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = work["dir"] / "o.pcap"
    stats = work["dir"] / "missing" / "s.json"
    assert _run(work["policy"], work["pcap"], "-o", out, "--stats", stats) == 2
    err = capsys.readouterr().err
    assert f"cannot write {stats}: directory {stats.parent} does not exist" in err
    assert not out.exists()


# ------------------------------------------------------------------ internal errors
def _broken_graph_run(self: object, batch: object) -> None:
    raise ZeroDivisionError("injected fault")


def test_an_internal_error_is_one_line_with_a_distinct_status(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: a defect inside the engine must not show a traceback."""

    monkeypatch.setattr(ActionGraph, "run", _broken_graph_run)
    out = work["dir"] / "o.pcap"
    assert _run(work["policy"], work["pcap"], "-o", out) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.startswith("diffserv: internal error: ZeroDivisionError: injected fault (at ")
    assert f"{work['pcap']}: near packet" in err
    assert "please report" in err and "--debug" in err
    assert not out.exists() and _leftovers(work["dir"]) == []


def test_an_operator_breaking_the_action_protocol_is_a_bug_not_a_policy_error(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's own consistency check (EngineError) reports as an internal error."""

    def backwards(self: Ipgpc, batch: object, idx: np.ndarray) -> np.ndarray:
        return np.zeros(idx.shape[0], np.int32)  # "go to action 0": ids only move forward

    monkeypatch.setattr(Ipgpc, "process", backwards)
    out = work["dir"] / "o.pcap"
    assert _run(work["policy"], work["pcap"], "-o", out) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert err.startswith("diffserv: internal error: EngineError: action ipgpc.classify: ")
    assert "invalid next action 0" in err and "please report" in err
    assert not out.exists() and _leftovers(work["dir"]) == []


def test_debug_shows_the_traceback(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(ActionGraph, "run", _broken_graph_run)
    out = work["dir"] / "o.pcap"
    assert main(["run", "--debug", str(work["policy"]), str(work["pcap"]), "-o", str(out)]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "injected fault" in err


def test_an_internal_error_in_check_names_the_file(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    def broken_check(*args: object, **kw: object) -> None:
        raise KeyError("injected")

    monkeypatch.setattr(policy_cmd, "check", broken_check)
    assert main(["check", str(work["policy"])]) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.startswith(f"diffserv: internal error: KeyError: 'injected' (at {work['policy']})")
