"""ipqosconf's transactions on the live daemon: apply, list, flush, commit.

On illumos ipqosconf diffs a file against the kernel's actions and undoes its changes on
any error. Here the "kernel configuration" is the policy of the running `diffserv live`
daemon, reached over its control socket (``live.control``), and the daemon swaps a whole
policy atomically between two batches (``Session.replace_policy``), so a transaction is:

1. check the file with the checker's diagnostics, and compile it as the engine will;
2. remember the running configuration (its policy text, or none);
3. a daemon answers: hand it the new policy (one atomic swap that keeps the state of
   unchanged actions); none answers: start `diffserv live` detached on a private copy of
   the file and wait until its control socket answers;
4. on any failure put the remembered configuration back (re-apply it, restart the daemon
   on it, or, when there was none, make sure nothing is left behind: no daemon and no
   queue rules) and say so; if even that fails, flush everything (exit status 2).

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
from typing import Final, Protocol

from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import compile_policy
from diffserv.errors import DiffservError, HostSystemError, PolicyFileError
from diffserv.live.control import ControlError, NoDaemonError, daemon_answers, request
from diffserv.live.kstat import rows
from diffserv.policy.build import check
from diffserv.policy.model import Diagnostic, Policy

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


def live_argv(policy_file: str, control: str) -> list[str]:
    """The daemon's command line: an argument list, never shell text."""
    return [sys.executable, "-m", "diffserv", "live", policy_file, "--stats-socket", control]


def _write_private(path: str, text: str) -> None:
    temporary = f"{path}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def start_daemon(text: str, control: str, *, timeout: float = START_TIMEOUT_S) -> int:
    """Start `diffserv live` detached on ``text``; its pid once its control socket answers.

    The daemon runs in a session of its own (a terminal's hang-up never reaches it) with
    its output in ``live.log`` beside the socket. ApplyError, with the log's last line,
    when it exits or does not answer within ``timeout`` (it is then killed).
    """
    run_dir = os.path.dirname(os.path.abspath(control))
    policy_file = os.path.join(run_dir, APPLIED_NAME)
    _write_private(policy_file, text)
    log_path = os.path.join(run_dir, LOG_NAME)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        child = subprocess.Popen(
            live_argv(policy_file, control),
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


# --- the commands ---------------------------------------------------------------------


def apply_policy(
    text: str,
    name: str,
    control: str,
    reporter: Reporter,
    *,
    start_timeout: float = START_TIMEOUT_S,
) -> int:
    """``ipqosconf -a``: the exit status (0 applied, 1 failed and restored, 2 flushed)."""
    try:
        validate(text, name, reporter)
    except PolicyFileError:
        return EXIT_FAILED
    previous = running_text(control)
    try:
        if previous is None:
            start_daemon(text, control, timeout=start_timeout)
        else:
            request(control, {"op": "apply", "text": text, "name": name})
    except (ApplyError, ControlError, HostSystemError) as exc:
        reporter.error(str(exc))
        return _restore(previous, control, reporter, start_timeout=start_timeout)
    reporter.notice(APPLIED)
    return EXIT_OK


def _restore(
    previous: str | None, control: str, reporter: Reporter, *, start_timeout: float
) -> int:
    """Put ``previous`` back (None: no daemon, no rules); EXIT_FLUSHED if that fails."""
    try:
        now = running_text(control)
        if previous is None:
            if now is not None:
                stop_daemon(control)
            _remove_leftover_rules()
        elif now is None:
            start_daemon(previous, control, timeout=start_timeout)
        elif now != previous:
            request(control, {"op": "apply", "text": previous, "name": "previous configuration"})
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

    "" when nothing runs. ``-L`` adds every counter under its kstat name as comment lines,
    so the listing still reads back as a policy.
    """
    try:
        listing: str = request(control, {"op": "policy"})["canonical"]
        if not statistics:
            return listing
        doc = request(control, {"op": "stat"})["stats"]
    except NoDaemonError:
        return ""
    lines = [
        f"# {row.module}:{row.action}:{row.name}:{row.statistic} {row.value}" for row in rows(doc)
    ]
    return (
        listing + "\n# statistics (module:action:name:statistic value)\n" + "\n".join(lines) + "\n"
    )


def flush(control: str, reporter: Reporter, *, quiet: bool = False) -> None:
    """``ipqosconf -f``: stop the daemon if one runs, then remove every leftover queue rule."""
    stopped = stop_daemon(control)
    removed = _remove_leftover_rules()
    if not quiet:
        if stopped:
            reporter.warning("the diffserv live daemon was stopped")
        if removed:
            reporter.warning(f"{removed} leftover queue rules and chains removed")
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
