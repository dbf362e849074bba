"""What other layers call: a plan into a ruleset text, and the iptables queue rule.

The rule that queues the packets the table marked for the daemon (``--queue-via mark``)
has one form, ``queue_target``: the companion file ``FILE.iptables`` writes it, and the
daemon's own queue rules (``diffserv live --queue-mark``, live/rules.py) use it too.
"""

from __future__ import annotations

from typing import Final

from diffserv.compile import iptables_rules, nft_json, nft_text
from diffserv.compile.iptables_rules import queue_target
from diffserv.compile.nft_build import HybridOptions, build_ruleset
from diffserv.compile.plan import Plan

COMPANION_CHAIN: Final = "DIFFSERV-NFTQ"
_BUILTINS: Final = ("INPUT", "OUTPUT", "FORWARD")


def compile_policy(
    plan: Plan,
    to: str = "nft",
    fmt: str = "text",
    table: str = "diffserv",
    hybrid: HybridOptions | None = None,
) -> list[tuple[str, str]]:
    """The files of ``plan`` for backend ``to``, as (suffix of the output name, text):
    nft gives one (and with ``--queue-via mark`` the companion, suffix ``.iptables``),
    iptables one per family (``""`` for iptables-restore, ``.v6`` for ip6tables-restore).
    CompileRefusedError when a class needs the daemon and ``hybrid`` is None."""
    if to == "iptables":
        return [
            ("", iptables_rules.render(plan, hybrid, 4)),
            (".v6", iptables_rules.render(plan, hybrid, 6)),
        ]
    ruleset = build_ruleset(plan, table, hybrid)
    text = nft_json.render(ruleset) if fmt == "json" else nft_text.render(ruleset)
    out = [("", text)]
    if hybrid is not None and hybrid.via == "mark" and plan.daemon_classes:
        out.append((".iptables", companion_restore(hybrid)))
    return out


def companion_restore(hybrid: HybridOptions) -> str:
    """The companion as one file for ``iptables-restore --noflush`` and, unchanged,
    ``ip6tables-restore --noflush`` (the rule names no address)."""
    lines = [
        "# diffserv compile --queue-via mark: queue the packets the nft table marked",
        "# load once per family: iptables-restore --noflush FILE; ip6tables-restore --noflush FILE",
        f"# (or let the daemon install the same rule: diffserv live POLICY --queue {hybrid.queue}"
        f" --queue-mark {hybrid.mark:#x})",
        "*mangle",
        f":{COMPANION_CHAIN} - [0:0]",
        f"-A {COMPANION_CHAIN} {' '.join(queue_target(hybrid.queue, hybrid.mark))}",
        *(f"-I {builtin} 1 -j {COMPANION_CHAIN}" for builtin in _BUILTINS),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
