"""ipqosconf's transactions on the live daemon: apply, list, flush, commit.

On illumos ipqosconf diffs a file against the kernel's actions and undoes its changes on
any error. Here the "kernel configuration" is carried by one or two data planes (the
engine, ``--engine``): the running `diffserv live` daemon, reached over its control
socket (``live.control``), which swaps a whole policy atomically between two batches
(``Session.replace_policy``); and/or the policy compiled to our own nftables table
(``compile``, ``live.nft_table``), which the kernel replaces in one transaction. So a
transaction is:

1. check the file with the checker's diagnostics, compile it as the engine will and, for
   ``nft``/``auto``, to the table (``nft`` refuses what the kernel cannot run);
2. remember the running configuration (its policy text and planes, or none);
3. move the planes: load the table; a daemon that keeps its queue rules swaps the policy
   in place (keeping the state of unchanged actions); otherwise the new daemon starts
   detached on a private copy of the file, and ipqosconf waits until it answers;
4. on any failure put the remembered configuration back (the same way) or, when there was
   none, make sure nothing is left behind: no daemon, no queue rules, no table; and say
   so; if even that fails, flush everything (exit status 2).

Every run holds an exclusive lock on ``ipqosconf.lock`` beside the control socket, so two
ipqosconf runs never interleave. The functions here print nothing themselves: what is said
goes through a ``Reporter`` (``cli.ipqosconf_cmd`` sends it to stderr and syslog).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Final, Literal, Protocol

import msgspec

from diffserv.compile.api import compile_policy as compile_ruleset
from diffserv.compile.nft_build import HybridOptions, QueueVia
from diffserv.compile.plan import (
    APPROXIMATE,
    DAEMON,
    Plan,
    actions_with,
    build_plan,
    exact_only,
)
from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import compile_policy
from diffserv.errors import DiffservError, HostSystemError, PolicyFileError, UsageError
from diffserv.live import nft_table
from diffserv.live.control import ControlError, NoDaemonError, daemon_answers, request
from diffserv.live.kstat import rows
from diffserv.live.private_files import write_private
from diffserv.policy.build import check
from diffserv.policy.model import Diagnostic, Policy
from diffserv.policy.printer import format_policy

INIT_FILE: Final = "/etc/inet/ipqosinit.conf"
INIT_FILE_ENV: Final = "IPQOSCONF_INIT_FILE"
LOCK_NAME: Final = "ipqosconf.lock"
APPLIED_NAME: Final = "ipqosconf.conf"  # the daemon's private copy of the applied file
LOG_NAME: Final = "live.log"
START_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 15.0

APPLIED: Final = "IPQoS configuration applied."
UNCHANGED: Final = "Configuration failed, system state unchanged."
ROLLBACK_FAILED: Final = "Failed to rollback from failed configuration, configuration flushed."
FLUSHED: Final = "Configuration flushed."
COMMITTED: Final = "Current configuration saved to init file."
NULL_COMMIT: Final = "Can't commit a null configuration."

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_FLUSHED: Final = 2


class Reporter(Protocol):
    """Where ipqosconf's messages go (spec: errors, notices, warnings, diagnostics)."""

    def error(self, text: str) -> None: ...

    def notice(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...

    def diagnostic(self, diagnostic: Diagnostic) -> None: ...


class ApplyError(DiffservError):
    """A transaction step failed; the caller restores the previous configuration."""


def init_file(option: str | None = None) -> str:
    """The boot file: the option, else ``$IPQOSCONF_INIT_FILE``, else Solaris's path."""
    return option or os.environ.get(INIT_FILE_ENV) or INIT_FILE


# --- the lock -------------------------------------------------------------------------


@contextlib.contextmanager
def config_lock(run_dir: str) -> Iterator[None]:
    """ipqosconf's lock: a private, empty, regular file with one link, locked exclusively.

    As on Solaris, an existing lock file is trusted only if it is regular, empty, ours and
    has one link (anything else could be a planted link to a file of someone else's).
    """
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError as exc:
            raise HostSystemError(f"Bad lock file {path}: {exc.strerror or exc}") from None
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_size != 0
            or info.st_uid != os.geteuid()
            or info.st_nlink != 1
        ):
            os.close(fd)
            raise HostSystemError(f"Bad lock file {path}.") from None
    except OSError as exc:
        raise HostSystemError(f"{path}: {exc.strerror or exc}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- checking -------------------------------------------------------------------------


def validate(text: str, name: str, reporter: Reporter) -> Policy:
    """The policy of ``text``, with `diffserv check`'s diagnostics and the engine's verdict.

    Raises PolicyFileError (already reported) when the file is invalid.
    """
    result = check(text, name)
    for diagnostic in result.diagnostics:
        reporter.diagnostic(diagnostic)
    if result.policy is None:
        raise PolicyFileError(f"{name}: invalid ({result.error_count} errors)")
    try:
        compile_policy(result.policy, EngineOptions())
    except PolicyFileError as exc:
        reporter.error(str(exc))
        raise
    return result.policy


# --- the daemon -----------------------------------------------------------------------


def _remove_leftover_rules() -> int:
    """The data plane's own clean-up of queue rules (none when it is not installed)."""
    try:
        rules = importlib.import_module("diffserv.live.rules")
    except ImportError:
        return 0
    removed: int = rules.remove_leftovers()
    return removed


def live_argv(policy_file: str, control: str, queues: str = "all", mark: int = 0) -> list[str]:
    """The daemon's command line: an argument list, never shell text. ``queues`` says
    what its own queue rules take: ``all`` traffic, only ``marked`` packets (``mark``, the
    hybrid setup queueing through iptables), or ``none`` (nft's queue statement does)."""
    argv = [sys.executable, "-m", "diffserv", "live", policy_file, "--stats-socket", control]
    if queues == "marked":
        argv += ["--queue-mark", f"{mark:#x}"]
    elif queues == "none":
        argv.append("--no-queue-rules")
    return argv


def start_daemon(
    text: str,
    control: str,
    *,
    timeout: float = START_TIMEOUT_S,
    queues: str = "all",
    mark: int = 0,
) -> int:
    """Start `diffserv live` detached on ``text``; its pid once its control socket answers.

    The daemon runs in a session of its own (a terminal's hang-up never reaches it) with
    its output in ``live.log`` beside the socket. ApplyError, with the log's last line,
    when it exits or does not answer within ``timeout`` (it is then killed).
    """
    run_dir = os.path.dirname(os.path.abspath(control))
    policy_file = os.path.join(run_dir, APPLIED_NAME)
    write_private(policy_file, text)
    log_path = os.path.join(run_dir, LOG_NAME)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        child = subprocess.Popen(
            live_argv(policy_file, control, queues, mark),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise ApplyError(f"cannot start diffserv live: {exc.strerror or exc}") from None
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = child.poll()
        if status is not None:
            raise ApplyError(f"diffserv live exited with status {status}: {_last_line(log_path)}")
        if daemon_answers(control):
            return child.pid
        time.sleep(0.05)
    child.kill()
    child.wait()
    raise ApplyError(f"diffserv live did not answer on {control} within {timeout:g} s")


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no output)"


def stop_daemon(control: str, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Ask the daemon to stop and wait until its socket no longer answers; False if none."""
    try:
        request(control, {"op": "stop"})
    except NoDaemonError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon_answers(control):
            return True
        time.sleep(0.05)
    raise HostSystemError(f"{control}: the daemon did not stop within {timeout:g} s")


def running_text(control: str) -> str | None:
    """The running policy's text, or None when no daemon answers."""
    try:
        text: str = request(control, {"op": "policy"})["text"]
    except NoDaemonError:
        return None
    return text


# --- the configuration and its data planes --------------------------------------------

ENGINES: Final = ("nfqueue", "nft", "auto")
ENGINE_ENV: Final = "IPQOSCONF_ENGINE"
DEFAULT_ENGINE: Final = "nfqueue"
STATE_NAME: Final = "ipqosconf.state"
Mode = Literal["nfqueue", "nft", "hybrid"]


class Setup(msgspec.Struct, frozen=True):
    """A configuration as it runs: the policy, and which data plane carries which part.

    ``nfqueue``: the daemon queues and treats all traffic. ``nft``: the compiled table
    alone. ``hybrid``: the table treats the classes it can run exactly and hands the rest
    to the daemon (``queues`` ``marked``: through iptables rules matching ``mark``;
    ``none``: nft's own queue statement, so the daemon installs no rules).
    """

    text: str
    name: str
    mode: Mode
    script: str = ""
    queues: str = "all"
    mark: int = 0


def engine_choice(option: str | None = None) -> str:
    """The engine: the option, else ``$IPQOSCONF_ENGINE`` (the boot unit's), else nfqueue."""
    engine = option or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    return engine


def plan_setup(policy: Policy, text: str, name: str, engine: str, reporter: Reporter) -> Setup:
    """What ``engine`` makes of a checked policy. ``nft`` refuses (ApplyError, before
    anything changes) a policy with an action the kernel cannot run at all, and warns
    of approximate ones; ``auto`` keeps in the kernel only what it runs exactly."""
    if engine == "nfqueue":
        return Setup(text, name, "nfqueue")
    if engine == "nft":
        plan = build_plan(policy)
        needs = actions_with(plan, DAEMON)
        if needs:
            first = needs[0]
            raise ApplyError(
                f"--engine nft: action {first.name} ({first.module}) needs the daemon: "
                f"{first.how}; use --engine auto or nfqueue"
            )
        for action in actions_with(plan, APPROXIMATE):
            reporter.warning(f"action {action.name} is approximate in nftables: {action.how}")
        return Setup(text, name, "nft", _script(plan, None))
    plan = exact_only(build_plan(policy))
    if not plan.daemon_classes:
        return Setup(text, name, "nft", _script(plan, None))
    via: QueueVia = "nft" if nft_table.kernel_queues() else "mark"
    hybrid = HybridOptions(via=via)
    queues = "none" if via == "nft" else "marked"
    return Setup(text, name, "hybrid", _script(plan, hybrid), queues, hybrid.mark)


def _script(plan: Plan, hybrid: HybridOptions | None) -> str:
    return compile_ruleset(plan, "nft", "text", nft_table.TABLE, hybrid)[0][1]


def _state_path(control: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(control)), STATE_NAME)


def _save_state(control: str, setup: Setup | None) -> None:
    path = _state_path(control)
    if setup is None or setup.mode == "nfqueue":  # the daemon itself knows its policy
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    write_private(path, msgspec.json.encode(setup).decode())


def running(control: str) -> Setup | None:
    """The running configuration: the compiled table's (as recorded when it was loaded, if
    the table is still there), else the daemon's, else None."""
    try:
        with open(_state_path(control), "rb") as handle:
            state: Setup | None = msgspec.json.decode(handle.read(), type=Setup)
    except (OSError, msgspec.DecodeError):
        state = None
    if state is not None and nft_table.present():
        return state
    text = running_text(control)
    return None if text is None else Setup(text, "running configuration", "nfqueue")


def _enter(target: Setup, now: Setup | None, control: str, *, start_timeout: float) -> None:
    """Move the data planes from ``now`` to ``target``. The table is replaced atomically;
    a daemon that keeps its queue rules swaps policies in place (state of unchanged
    actions kept); otherwise the new plane is in place before the old one goes."""
    run_dir = os.path.dirname(os.path.abspath(control))
    daemon_now = now is not None and now.mode != "nft" and daemon_answers(control)
    if target.mode == "nft":
        nft_table.load(target.script, run_dir)
        _save_state(control, target)
        if daemon_now:
            stop_daemon(control)
        return
    if target.mode == "hybrid":
        nft_table.load(target.script, run_dir)
        _save_state(control, target)
    same_rules = (
        daemon_now and now is not None and (now.queues, now.mark) == (target.queues, target.mark)
    )
    if same_rules:
        request(control, {"op": "apply", "text": target.text, "name": target.name})
    else:
        if daemon_now:
            stop_daemon(control)
        start_daemon(
            target.text, control, timeout=start_timeout, queues=target.queues, mark=target.mark
        )
    if target.mode == "nfqueue":
        _save_state(control, None)
        nft_table.delete()


# --- the commands ---------------------------------------------------------------------


def apply_policy(
    text: str,
    name: str,
    control: str,
    reporter: Reporter,
    *,
    engine: str = DEFAULT_ENGINE,
    start_timeout: float = START_TIMEOUT_S,
) -> int:
    """``ipqosconf -a``: the exit status (0 applied, 1 failed and restored, 2 flushed)."""
    try:
        policy = validate(text, name, reporter)
    except PolicyFileError:
        return EXIT_FAILED
    try:
        target = plan_setup(policy, text, name, engine, reporter)
    except DiffservError as exc:
        reporter.error(str(exc))
        reporter.error(UNCHANGED)
        return EXIT_FAILED
    previous = running(control)
    try:
        _enter(target, previous, control, start_timeout=start_timeout)
    except (ApplyError, ControlError, HostSystemError) as exc:
        reporter.error(str(exc))
        return _restore(previous, control, reporter, start_timeout=start_timeout)
    reporter.notice(APPLIED)
    return EXIT_OK


def _restore(
    previous: Setup | None, control: str, reporter: Reporter, *, start_timeout: float
) -> int:
    """Put ``previous`` back (None: no daemon, no rules, no table); EXIT_FLUSHED if that
    fails."""
    try:
        now = running(control)
        if previous is None:
            flush(control, reporter, quiet=True)
        elif now != previous:
            _enter(previous, now, control, start_timeout=start_timeout)
    except DiffservError as exc:
        reporter.error(str(exc))
        with contextlib.suppress(DiffservError):
            flush(control, reporter, quiet=True)
        reporter.error(ROLLBACK_FAILED)
        return EXIT_FLUSHED
    reporter.error(UNCHANGED)
    return EXIT_FAILED


def list_configuration(control: str, *, statistics: bool = False) -> str:
    """``ipqosconf -l`` (``-L`` with ``statistics``): the running policy in canonical form.

    "" when nothing runs. ``-L`` adds every counter of the daemon under its kstat name as
    comment lines, so the listing still reads back as a policy; the compiled table alone
    keeps no per-action counters (``nft list table inet diffserv`` shows its rules).
    """
    setup = running(control)
    if setup is None:
        return ""
    try:
        if setup.mode == "nfqueue":
            listing: str = request(control, {"op": "policy"})["canonical"]
        else:
            policy = check(setup.text, setup.name).policy
            listing = setup.text if policy is None else format_policy(policy)
        if not statistics:
            return listing
        if setup.mode == "nft":
            return listing + "\n# statistics: none (the nftables engine counts nothing)\n"
        doc = request(control, {"op": "stat"})["stats"]
    except NoDaemonError:
        return "" if setup.mode == "nfqueue" else listing
    lines = [
        f"# {row.module}:{row.action}:{row.name}:{row.statistic} {row.value}" for row in rows(doc)
    ]
    return (
        listing + "\n# statistics (module:action:name:statistic value)\n" + "\n".join(lines) + "\n"
    )


def flush(control: str, reporter: Reporter, *, quiet: bool = False) -> None:
    """``ipqosconf -f``: stop the daemon if one runs, remove every leftover queue rule and
    the compiled table."""
    stopped = stop_daemon(control)
    removed = _remove_leftover_rules()
    table = nft_table.delete()
    _save_state(control, None)
    if not quiet:
        if stopped:
            reporter.warning("the diffserv live daemon was stopped")
        if removed:
            reporter.warning(f"{removed} leftover queue rules and chains removed")
        if table:
            reporter.warning(f"nftables table {nft_table.FAMILY} {nft_table.TABLE} deleted")
        reporter.notice(FLUSHED)


def commit(control: str, path: str, reporter: Reporter) -> int:
    """``ipqosconf -c``: write the running configuration to the boot file, atomically."""
    listing = list_configuration(control)
    if not listing:
        reporter.error(NULL_COMMIT)
        return EXIT_FAILED
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, "ipqosconf.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(listing)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise HostSystemError(f"{path}: {exc.strerror or exc}") from None
    reporter.notice(COMMITTED)
    return EXIT_OK
