"""`diffserv live` as a user meets it: the options, policy errors, a busy queue, signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import netns
from support.live_daemon import Daemon, env, mangle_rules

BAD_POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action nowhere
	}
}
"""

GOOD_POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name default
		next_action continue
	}
}
"""


def _diffserv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diffserv", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=False,
    )


def test_help_names_the_contract() -> None:
    done = _diffserv("live", "--help")
    assert done.returncode == 0
    for option in ("--queue N", "--flows DIR", "--export URL", "--metrics ADDR", "--stats-socket"):
        assert option in done.stdout


def test_policy_errors_are_reported_as_check_reports_them(tmp_path: Path) -> None:
    policy = tmp_path / "bad.conf"
    policy.write_text(BAD_POLICY)
    live, check = _diffserv("live", str(policy)), _diffserv("check", str(policy))
    assert live.returncode == check.returncode == 1
    # the same diagnostics, word for word (check adds its verdict line after them)
    assert check.stderr.startswith(live.stderr) and "nowhere" in live.stderr
    assert "Traceback" not in live.stderr


def test_queue_numbers_are_checked() -> None:
    done = _diffserv("live", "x.conf", "--queue", "70000")
    assert done.returncode == 2 and "--queue" in done.stderr and done.stderr[-1] == "\n"
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--queue-mark", "0"), "non-zero 32-bit mark"),
        (("--queue-mark", "0x1ffffffff"), "non-zero 32-bit mark"),
        (("--queue-mark", "red"), "not a mark"),
        (("--queue-mark", "0x10", "--no-queue-rules"), "choose one"),
    ],
)
def test_queue_marks_are_checked(args: tuple[str, ...], says: str) -> None:
    done = _diffserv("live", "x.conf", *args)
    assert done.returncode == 2 and says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.fixture
def solo() -> Iterator[netns.Namespace]:
    with netns.namespaces(["solo"]) as t:
        yield t["solo"]


@pytest.mark.tools
def test_a_queue_held_by_another_program_is_refused_and_nothing_installed(
    solo: netns.Namespace, tmp_path: Path
) -> None:
    policy = tmp_path / "ok.conf"
    policy.write_text(GOOD_POLICY)
    holder = solo.popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom diffserv.live.netlink import QueueSocket\n"
            "q = QueueSocket(5)\nprint('bound', flush=True)\ntime.sleep(60)\n",
        ],
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
    done = solo.run(
        [sys.executable, "-m", "diffserv", "live", str(policy), "--queue", "5"],
        env=env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: NFQUEUE queue 5: bind queue: the queue is bound by another program"
    )
    assert "DIFFSERV" not in mangle_rules(solo)


@pytest.mark.tools
def test_sigint_stops_cleanly(solo: netns.Namespace, tmp_path: Path) -> None:
    policy = tmp_path / "ok.conf"
    policy.write_text(GOOD_POLICY)
    daemon = Daemon(solo, policy)
    time.sleep(0.2)
    assert daemon.stop(signal.SIGINT) == 0, daemon.stderr
    assert "DIFFSERV" not in mangle_rules(solo)
    assert "queue 0:" in daemon.stderr  # the exit summary
