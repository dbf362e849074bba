"""`ipqosconf` -a/-l/-L/-f/-c against a running daemon (a real Session over a capture).

Each ipqosconf runs as its own process in a network namespace of its own (``unshare -n``),
so whatever it might do to queue rules (flush, rollback) can only touch that empty
namespace, never the host's; the control socket is a file, which the namespace does not
hide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctl_support import POLICY, CaptureTarget, private_dir, write_traffic

from diffserv.live.control import ControlServer, request, serve_control
from diffserv.policy.build import check
from support.tools import require_tool, unavailable

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def isolated() -> list[str]:
    """The prefix that runs a command in a fresh, empty network namespace."""
    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        unavailable("ipqosconf tests need root (a network namespace per run)")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        unavailable(f"unshare -n does not work here: {probe.stderr.decode().strip()}")
    return [unshare, "-n"]


class Ipqosconf:
    def __init__(self, prefix: list[str], sock: str, init_file: str) -> None:
        self.prefix = prefix
        self.sock = sock
        self.init_file = init_file

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": SRC, "IPQOSCONF_INIT_FILE": self.init_file}
        return subprocess.run(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "diffserv.cli.ipqosconf_cmd",
                *args,
                "--stats-socket",
                self.sock,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def ipqosconf(isolated: list[str], tmp_path: Path) -> Ipqosconf:
    sock = str(private_dir(tmp_path) / "live.sock")
    return Ipqosconf(isolated, sock, str(tmp_path / "etc" / "ipqosinit.conf"))


@pytest.fixture
def daemon(ipqosconf: Ipqosconf, tmp_path: Path) -> Iterator[tuple[CaptureTarget, ControlServer]]:
    policy = tmp_path / "edge.conf"
    policy.write_text(POLICY)
    target = CaptureTarget(str(policy), write_traffic(tmp_path / "traffic.pcap"))
    server = serve_control(target, ipqosconf.sock)
    target.on_stop.append(server.close)
    yield target, server
    server.close()


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_apply_swaps_the_running_policy_and_keeps_unchanged_state(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer], tmp_path: Path
) -> None:
    target, _ = daemon
    meter_before = dict(target.snapshot().actions["meter"].counters)
    changed = POLICY.replace("0-63:46", "0-63:34")
    done = ipqosconf("-v", "-a", _write(tmp_path, "new.conf", changed))
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "Notice: IPQoS configuration applied.\n"
    assert target.text == changed
    after = target.snapshot()
    assert after.actions["meter"].counters == meter_before  # unchanged: its state carried
    assert after.actions["ef"].counters["npackets"] == 0  # changed: starts afresh
    assert after.packets == 200


def test_apply_from_stdin_is_silent_without_v(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer]
) -> None:
    target, _ = daemon
    changed = POLICY.replace("0-63:10", "0-63:12")
    done = ipqosconf("-a", "-", stdin=changed)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert target.text == changed


def test_an_invalid_file_gets_the_checker_diagnostics_and_changes_nothing(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer], tmp_path: Path
) -> None:
    target, _ = daemon
    bad = _write(tmp_path, "bad.conf", POLICY.replace("dport 80", "dport 99999"))
    done = ipqosconf("-a", bad)
    assert done.returncode == 1
    expected = check(Path(bad).read_text(), bad).diagnostics[0]
    assert f"{bad}:{expected.location.line}:" in done.stderr  # type: ignore[union-attr]
    assert "error:" in done.stderr
    assert target.text == POLICY


def test_a_failed_swap_restores_and_says_so(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer], tmp_path: Path
) -> None:
    """The daemon refuses a request too large for its socket: nothing may have changed."""
    target, _ = daemon
    huge = POLICY + "# " + "x" * (5 << 20) + "\n"  # valid, but larger than one request
    done = ipqosconf("-a", _write(tmp_path, "huge.conf", huge))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: request too large",
        "Error: Configuration failed, system state unchanged.",
    ]
    assert target.text == POLICY
    assert request(ipqosconf.sock, {"op": "ping"})["ok"]


def test_list_prints_the_canonical_form_and_long_list_adds_statistics(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer]
) -> None:
    target, _ = daemon
    listed = ipqosconf("-l")
    assert listed.returncode == 0
    assert listed.stdout.startswith("fmt_version 1.0\n\naction {\n\tmodule ipgpc\n")
    assert check(listed.stdout, "<listing>").policy == target.policy
    assert ipqosconf().stdout == listed.stdout  # no option means -l
    verbose = ipqosconf("-L")
    assert verbose.returncode == 0
    assert verbose.stdout.startswith(listed.stdout)
    assert "# dscpmk:ef:dscpmk_stats:npackets 50\n" in verbose.stdout
    assert check(verbose.stdout, "<listing>").policy == target.policy  # comments only


def test_list_with_nothing_running_prints_nothing(ipqosconf: Ipqosconf) -> None:
    done = ipqosconf("-l")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_commit_writes_the_boot_file_atomically(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer]
) -> None:
    os.makedirs(os.path.dirname(ipqosconf.init_file))
    done = ipqosconf("-c")
    assert (done.returncode, done.stderr) == (0, "")
    saved = Path(ipqosconf.init_file)
    assert saved.read_text() == ipqosconf("-l").stdout
    assert (saved.stat().st_mode & 0o777) == 0o644
    assert not (saved.parent / "ipqosconf.tmp").exists()


def test_commit_with_nothing_running_is_refused(ipqosconf: Ipqosconf) -> None:
    done = ipqosconf("-c")
    assert done.returncode == 1
    assert done.stderr == "Error: Can't commit a null configuration.\n"
    assert not os.path.exists(ipqosconf.init_file)


def test_flush_stops_the_daemon_and_works_when_nothing_runs(
    ipqosconf: Ipqosconf, daemon: tuple[CaptureTarget, ControlServer]
) -> None:
    target, _ = daemon
    done = ipqosconf("-f")
    assert (done.returncode, done.stderr) == (0, "")
    assert target.stopped.is_set()
    assert not os.path.exists(ipqosconf.sock)
    again = ipqosconf("-f")
    assert (again.returncode, again.stderr) == (0, "")


@pytest.mark.parametrize(
    "args",
    [
        ("-a",),
        ("-l", "-f"),
        ("-v", "-l"),
        ("-s", "-f"),
        ("-l", "extra"),
        ("-x",),
        ("--engine", "nft", "-l"),
    ],
)
def test_usage_errors_print_the_usage_and_exit_1(
    ipqosconf: Ipqosconf, args: tuple[str, ...]
) -> None:
    done = ipqosconf(*args)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "usage:\n\tipqosconf [-sv] [--engine nfqueue|nft|auto] -a file|-\n"
    )


def test_an_unknown_engine_is_one_line_and_changes_nothing(
    ipqosconf: Ipqosconf, tmp_path: Path
) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY)
    done = ipqosconf("--engine", "kernel", "-a", str(policy))
    assert done.returncode == 1
    assert done.stderr == "Error: --engine kernel: choose one of nfqueue, nft, auto\n"
