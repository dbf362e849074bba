"""The iptables rules that send traffic to the queue, installed and removed exactly.

Each family (iptables, ip6tables) gets three chains of ours in the mangle table, each
holding one rule ``-j NFQUEUE --queue-num N --queue-bypass``, and one jump to each from
the front of the built-in chain it serves:

    INPUT   -> DIFFSERV-IN   (callout position LOCAL_IN)
    OUTPUT  -> DIFFSERV-OUT  (LOCAL_OUT)
    FORWARD -> DIFFSERV-FWD  (FWD_OUT)

Loopback traffic is left alone. With a queue mark (``diffserv live --queue-mark M``, the
hybrid setup of ``diffserv compile --hybrid --queue-via mark``) the rule queues only the
packets whose firewall mark has every bit of M set: a compiled nftables table marks the
classes the kernel cannot treat exactly, and handles everything else itself.
``--queue-bypass`` means that when no program is bound
to the queue (the daemon died, even by SIGKILL) packets carry on through the ruleset
instead of being dropped. Every command is an argument list run without a shell, with
``-w`` so it waits for the xtables lock instead of failing while another tool holds it.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from typing import Final

import msgspec

from diffserv.compile.iptables_rules import queue_target
from diffserv.errors import HostSystemError

TABLE: Final = "mangle"
PREFIX: Final = "DIFFSERV-"
# (our chain, the built-in chain that jumps to it, the interface option that skips lo)
CHAINS: Final = (
    ("DIFFSERV-IN", "INPUT", "-i"),
    ("DIFFSERV-OUT", "OUTPUT", "-o"),
    ("DIFFSERV-FWD", "FORWARD", "-o"),
)
TOOLS: Final = ("iptables", "ip6tables")
LOCK_WAIT_S: Final = "5"


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if shutil.which(p)), None
    )
    if path is None:
        raise HostSystemError(f"{name} is not installed (the live data plane needs it)")
    return path


def run_iptables(tool: str, args: Sequence[str]) -> str:
    """Run ``tool -w 5 ARGS`` (no shell); its output, or HostSystemError naming the command."""
    argv = [_tool(tool), "-w", LOCK_WAIT_S, *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostSystemError(f"{shlex.join([tool, *args])}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise HostSystemError(f"{shlex.join([tool, *args])}: {reason}")
    return done.stdout


def queue_rule(queue: int, interface_option: str, mark: int | None = None) -> list[str]:
    """The one rule of each of our chains (its match and target, after ``-A CHAIN``)."""
    return ["!", interface_option, "lo", *queue_target(queue, mark)]


class Step(msgspec.Struct, frozen=True):
    """One command that changed the ruleset and the command that takes it back."""

    tool: str
    undo: tuple[str, ...]


class InstalledRules:
    """The rules one ``install`` put in place; :meth:`remove` takes exactly those out."""

    def __init__(self, queue: int, steps: list[Step], leftovers_removed: int = 0) -> None:
        self.queue = queue
        self._steps = steps
        self.leftovers_removed = leftovers_removed

    @property
    def installed(self) -> bool:
        return bool(self._steps)

    def remove(self) -> None:
        """Undo every step, last first. Every undo is tried; the first failure is raised
        afterwards (``ipqosconf -f`` removes what is left)."""
        failure: HostSystemError | None = None
        while self._steps:
            step = self._steps.pop()
            try:
                run_iptables(step.tool, step.undo)
            except HostSystemError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def install(queue: int, mark: int | None = None) -> InstalledRules:
    """Queue INPUT, OUTPUT and FORWARD traffic (both families) to ``queue``; with ``mark``,
    only the packets carrying every bit of it.

    Chains of ours left by a daemon that could not clean up (SIGKILL) are removed first.
    All or nothing: a failing command undoes what came before it, then raises
    HostSystemError naming that command.
    """
    if not 0 <= queue <= 65535:
        raise HostSystemError(f"NFQUEUE: queue number {queue} is outside 0-65535")
    if mark is not None and not 0 < mark <= 0xFFFFFFFF:
        raise HostSystemError(f"NFQUEUE: queue mark {mark:#x} is not a non-zero 32-bit mark")
    leftovers = remove_leftovers()
    steps: list[Step] = []
    rules = InstalledRules(queue, steps, leftovers)
    try:
        for tool in TOOLS:
            for chain, builtin, option in CHAINS:
                run_iptables(tool, ["-t", TABLE, "-N", chain])
                steps.append(Step(tool, ("-t", TABLE, "-X", chain)))
                run_iptables(tool, ["-t", TABLE, "-A", chain, *queue_rule(queue, option, mark)])
                steps.append(Step(tool, ("-t", TABLE, "-F", chain)))
                run_iptables(tool, ["-t", TABLE, "-I", builtin, "1", "-j", chain])
                steps.append(Step(tool, ("-t", TABLE, "-D", builtin, "-j", chain)))
    except BaseException:
        with contextlib.suppress(HostSystemError):  # the install failure is the one to report
            rules.remove()
        raise
    return rules


def _saved(tool: str) -> str:
    save = _tool(f"{tool}-save")
    try:
        done = subprocess.run(
            [save, "-t", TABLE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostSystemError(f"{tool}-save -t {TABLE}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise HostSystemError(f"{tool}-save -t {TABLE}: {reason}")
    return done.stdout


def leftovers(saved: str) -> tuple[list[list[str]], list[str]]:
    """From ``iptables-save -t mangle`` text: the jumps into our chains (each as the
    arguments of its ``-A`` rule) and our chains' names."""
    jumps: list[list[str]] = []
    chains: list[str] = []
    for line in saved.splitlines():
        if line.startswith(":" + PREFIX):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            words = shlex.split(line)
            if len(words) >= 2 and words[1].startswith(PREFIX):
                continue  # a rule inside our own chain goes with the chain
            for i, word in enumerate(words[:-1]):
                if word in ("-j", "--jump", "-g", "--goto") and words[i + 1].startswith(PREFIX):
                    jumps.append(words[1:])
                    break
    return jumps, chains


def remove_leftovers() -> int:
    """Remove every diffserv chain (and every jump to one) from both families' mangle
    tables, whoever installed it; the number of chains and jumps removed."""
    removed = 0
    for tool in TOOLS:
        jumps, chains = leftovers(_saved(tool))
        for rule in jumps:
            run_iptables(tool, ["-t", TABLE, "-D", *rule])
            removed += 1
        for chain in chains:
            run_iptables(tool, ["-t", TABLE, "-F", chain])
        for chain in chains:
            run_iptables(tool, ["-t", TABLE, "-X", chain])
            removed += 1
    return removed
