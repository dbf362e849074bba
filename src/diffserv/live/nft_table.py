"""The compiled nftables table ipqosconf installs (``--engine nft`` and ``auto``).

The table is one of our own (``inet diffserv``) and the compiled script replaces it in one
transaction, so loading is atomic: a packet sees the old ruleset or the new one, never a
mix, and a script the kernel refuses leaves the old table in place. Every command is an
argument list run without a shell; the script goes through a private file beside the
control socket, never through a command line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from typing import Final

from diffserv.errors import HostSystemError
from diffserv.live.private_files import write_private

TABLE: Final = "diffserv"
FAMILY: Final = "inet"
SCRIPT_NAME: Final = "ipqosconf.nft"
QUEUE_PROBE: Final = (
    "table inet diffserv_probe {\n"
    "\tchain c {\n\t\ttype filter hook output priority 0; policy accept;\n"
    "\t\tmeta mark 0x1 queue num 0 bypass\n\t}\n}\n"
)


def _nft() -> str:
    path = shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None
    )
    if path is None:
        raise HostSystemError("nft is not installed (the kernel engine needs nftables)")
    return path


def _run(args: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_nft(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostSystemError(f"{shlex.join(['nft', *args])}: {exc}") from None


def _reason(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    return (errors or lines or [f"exit status {done.returncode}"])[0]


def load(script: str, run_dir: str) -> None:
    """Load a compiled script (which replaces our table atomically); HostSystemError with
    nft's first error line when the kernel refuses it (the old table then stays)."""
    path = os.path.join(run_dir, SCRIPT_NAME)
    write_private(path, script)
    done = _run(["-f", path])
    if done.returncode != 0:
        raise HostSystemError(f"nft -f {path}: {_reason(done)}")


def present(table: str = TABLE) -> bool:
    """Whether our table is loaded."""
    return _run(["list", "table", FAMILY, table]).returncode == 0


def delete(table: str = TABLE) -> bool:
    """Delete our table (nothing else); False when it was not there."""
    if not present(table):
        return False
    done = _run(["delete", "table", FAMILY, table])
    if done.returncode != 0:
        raise HostSystemError(f"nft delete table {FAMILY} {table}: {_reason(done)}")
    return True


def kernel_queues() -> bool:
    """Whether this kernel runs nft's ``queue`` statement (``nft_queue``); some build it
    out, and then the hybrid setup queues through an iptables rule matching a mark. The
    probe is a check-only transaction: nothing is loaded."""
    return _run(["-c", "-f", "-"], stdin=QUEUE_PROBE).returncode == 0
