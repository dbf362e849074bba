"""What other layers call: a plan into a ruleset text, and the companion iptables rules.

``live`` installs the companion rule of ``--queue-via mark`` itself, with argument lists
(``companion_rules``), never through a shell.
"""

from __future__ import annotations

from typing import Final

from diffserv.compile import iptables_rules, nft_json, nft_text
from diffserv.compile.nft_build import HybridOptions, build_ruleset
from diffserv.compile.plan import APPROXIMATE, DAEMON, EXACT, Plan, Verdict

COMPANION_CHAIN: Final = "DIFFSERV-NFTQ"
_TOOLS: Final = ("iptables", "ip6tables")
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


def policy_verdict(plan: Plan) -> Verdict:
    """The worst verdict of any class: ``exact`` when the whole policy runs in the kernel
    as the engine runs it (what ``ipqosconf --engine auto`` asks)."""
    verdicts = {c.verdict for c in plan.classes}
    return DAEMON if DAEMON in verdicts else APPROXIMATE if APPROXIMATE in verdicts else EXACT


def companion_rule(hybrid: HybridOptions) -> list[str]:
    """The match and target of the companion rule (after ``-A CHAIN``)."""
    mark = f"{hybrid.mark:#x}/{hybrid.mark:#x}"
    return [
        "-m",
        "mark",
        "--mark",
        mark,
        "-j",
        "NFQUEUE",
        "--queue-num",
        str(hybrid.queue),
        "--queue-bypass",
    ]


def companion_rules(hybrid: HybridOptions) -> list[tuple[str, list[str]]]:
    """(tool, arguments) of every command installing the companion of ``--queue-via
    mark`` in the mangle table of both families: our chain, its rule, one jump from the
    front of INPUT, OUTPUT and FORWARD. The nft base chains run at mangle - 1, so the
    mark is set before these chains see the packet."""
    out: list[tuple[str, list[str]]] = []
    for tool in _TOOLS:
        out.append((tool, ["-t", "mangle", "-N", COMPANION_CHAIN]))
        out.append((tool, ["-t", "mangle", "-A", COMPANION_CHAIN, *companion_rule(hybrid)]))
        out.extend(
            (tool, ["-t", "mangle", "-I", builtin, "1", "-j", COMPANION_CHAIN])
            for builtin in _BUILTINS
        )
    return out


def companion_restore(hybrid: HybridOptions) -> str:
    """The companion as one file for ``iptables-restore --noflush`` and, unchanged,
    ``ip6tables-restore --noflush`` (the rule names no address)."""
    lines = [
        "# diffserv compile --queue-via mark: queue the packets the nft table marked",
        "# load once per family: iptables-restore --noflush FILE; ip6tables-restore --noflush FILE",
        "*mangle",
        f":{COMPANION_CHAIN} - [0:0]",
        f"-A {COMPANION_CHAIN} {' '.join(companion_rule(hybrid))}",
        *(f"-I {builtin} 1 -j {COMPANION_CHAIN}" for builtin in _BUILTINS),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
