"""The ``diffserv compile --check`` report: per action, what the kernel can do with it.

Each action is *exact* (the kernel does what the engine does), *approximate* (how it
differs) or *needs the daemon* (why); each class takes the worst verdict on its path,
and a class whose path is all exact runs wholly in the kernel. The report also says how
the filters fold into rules and maps per hook, and which filters can never match.
"""

from __future__ import annotations

import json
from typing import Any

from diffserv.compile.grouping import segments
from diffserv.compile.iptables_rules import iptables_plan
from diffserv.compile.plan import DAEMON, Plan
from diffserv.textfmt import text_table

_SHOWN = {"exact": "exact", "approximate": "approximate", "daemon": "needs daemon"}


def _backend_plan(plan: Plan, to: str) -> Plan:
    return iptables_plan(plan) if to == "iptables" else plan


def _layout(plan: Plan, to: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for hook in plan.hooks:
        for family in (4, 6):
            segs = segments(plan.rules_at(hook, family), fold=to == "nft")
            maps = [s for s in segs if len(s.rules) > 1]
            out.append(
                {
                    "hook": hook.name,
                    "family": f"ipv{family}",
                    "filters": sum(len(s.rules) + len(s.shadowed) for s in segs),
                    "rules": len(segs),
                    "maps": len(maps),
                    "map_elements": sum(len(s.rules) for s in maps),
                    "shadowed": sum(len(s.shadowed) for s in segs),
                }
            )
    return out


def report(plan: Plan, to: str = "nft") -> dict[str, Any]:
    """The report as data (what ``--check --json`` prints)."""
    plan = _backend_plan(plan, to)
    used = {name for cls in plan.classes for name in cls.actions}
    return {
        "backend": to,
        "actions": [
            {"name": a.name, "module": a.module, "verdict": a.verdict, "how": a.how}
            for a in plan.actions
            if a.name in used
        ],
        "classes": [
            {"name": c.name, "verdict": c.verdict, "path": list(c.actions)} for c in plan.classes
        ],
        "hooks": _layout(plan, to),
        "never_matching": [{"filter": n.filter_name, "why": n.why} for n in plan.never],
        "needs_hybrid": any(c.verdict == DAEMON for c in plan.classes),
    }


def check_json(plan: Plan, to: str = "nft") -> str:
    return json.dumps(report(plan, to), indent=2) + "\n"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_text(plan: Plan, to: str = "nft") -> str:
    data = report(plan, to)
    kernel = sum(1 for c in data["classes"] if c["verdict"] != DAEMON)
    daemon = len(data["classes"]) - kernel
    approximate = sum(1 for c in data["classes"] if c["verdict"] == "approximate")
    lines = [
        f"compile --to {to}: {_count(kernel, 'class', 'classes')} in the kernel"
        + (f" ({approximate} approximate)" if approximate else "")
        + f", {daemon} {'needs' if daemon == 1 else 'need'} the daemon"
        + (" (--hybrid queues them)" if daemon else ""),
        "",
        "actions:",
    ]
    rows = [[a["name"], a["module"], _SHOWN[a["verdict"]], a["how"]] for a in data["actions"]]
    if rows:
        lines += text_table(["ACTION", "MODULE", "VERDICT", "HOW / WHY"], rows, set(), "  ")
    else:
        lines.append("  (none: every class ends at continue or drop)")
    lines += ["", "classes:"]
    rows = [
        [c["name"], _SHOWN[c["verdict"]], " -> ".join(c["path"]) or "-"] for c in data["classes"]
    ]
    lines += text_table(["CLASS", "VERDICT", "PATH"], rows, set(), "  ")
    lines += ["", "filters:"]
    rows = [
        [
            h["hook"],
            h["family"],
            str(h["filters"]),
            str(h["rules"]),
            str(h["maps"]),
            str(h["map_elements"]),
            str(h["shadowed"]),
        ]
        for h in data["hooks"]
    ]
    lines += text_table(
        ["HOOK", "FAMILY", "FILTERS", "RULES", "MAPS", "IN MAPS", "SHADOWED"],
        rows,
        {2, 3, 4, 5, 6},
        "  ",
    )
    if not data["hooks"]:
        lines.append("  (no hook needs a chain: no class does anything in the kernel)")
    if to == "iptables":
        lines.append("  (iptables: one linear rule per filter; -m set needs ipset, not used)")
    if data["never_matching"]:
        lines += ["", "never matching on Linux:"]
        lines += [f"  filter {n['filter']}: {n['why']}" for n in data["never_matching"]]
    return "\n".join(lines) + "\n"
