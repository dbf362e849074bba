"""The audit for people: rich tables on 80 columns, or one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from diffserv.audit.verdicts import VERDICTS
from diffserv.report.html import render_audit_html, write_atomically

_FLOW_COLUMNS = ("flow", "class", "expected", "observed", "packets", "bytes")


def _n(value: int) -> str:
    return f"{value:,}"


def _table(console: Console, title: str, columns: Sequence[str], rows: list[list[str]]) -> None:
    if not rows:
        return
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for column in columns:
        numeric = column in ("flows", "packets", "bytes")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _pcp(row: dict[str, Any], priorities: Sequence[int]) -> str:
    """The 802.1p part of a flow's expected or observed mark, shown when it is wrong."""
    if not row["pcp_wrong"]:
        return ""
    return "; PCP " + (" or ".join(str(p) for p in priorities) or "none")


def _flow(row: dict[str, Any]) -> str:
    ports = row["protocol"] in (6, 17, 132)
    source = f"{row['saddr']}:{row['sport']}" if ports else row["saddr"]
    target = f"{row['daddr']}:{row['dport']}" if ports else row["daddr"]
    return f"{source} > {target} {row['protocol_name']}"


def render_audit(audit: dict[str, Any], console: Console) -> None:
    """The audit as a headline and tables (only the tables that have rows)."""
    meta, verdicts = audit["meta"], audit["verdicts"]
    unit = "packets" if meta["captures"] else "flows"  # a capture is judged per packet
    counted = ", ".join(
        f"{_n(verdicts[name][unit])} {name}" for name in VERDICTS if verdicts[name][unit]
    )
    console.print(
        f"{'PASS' if meta['passed'] else 'FAIL'}: {counted or 'nothing to judge'} "
        f"({'packets' if meta['captures'] else 'flow records'}; policy {meta['policy']})"
    )
    judged = meta["judged_on"]
    if judged["egress_tos"]:
        console.print(
            f"judged on the egress ToS: {_n(judged['egress_tos'])}, on the ToS: {_n(judged['tos'])}"
        )
    _table(
        console,
        f"Per class ({unit})",
        ["class", "expected", *VERDICTS],
        [
            [c["class"], c["expected"], *(_n(c[name][unit]) for name in VERDICTS)]
            for c in audit["classes"]
        ],
    )
    _table(
        console,
        "Expected → observed (mismarked)",
        ["class", "expected", "observed", "flows", "packets", "bytes"],
        [
            [
                r["class"],
                ", ".join(r["expected"]) or "dropped",
                r["observed"],
                _n(r["flows"]),
                _n(r["packets"]),
                _n(r["bytes"]),
            ]
            for r in audit["confusion"]
        ],
    )
    for key, title in (
        ("mismarked", "Largest mismarked flows"),
        ("leaks", "Unclassified traffic with a priority mark"),
    ):
        _table(
            console,
            title,
            list(_FLOW_COLUMNS),
            [
                [
                    _flow(r),
                    f"{r['class']} ({r['filter'] or 'no filter'})",
                    (", ".join(r["expected"]) or "dropped") + _pcp(r, r["expected_pcp"]),
                    r["observed"] + _pcp(r, [r["pcp"]]),
                    _n(r["packets"]),
                    _n(r["bytes"]),
                ]
                for r in audit[key]
            ],
        )
    _table(
        console,
        "Not evaluable: a filter needs what the source lacks",
        ["filter", "class", "missing", "flows"],
        [[r["filter"], r["class"], r["missing"], _n(r["flows"])] for r in audit["not_evaluable"]],
    )
    _table(
        console,
        "ECN bleached (ECT arriving, Not-ECT leaving)",
        ["flow", "class", "ecn in", "ecn out", "bytes"],
        [
            [_flow(r), r["class"], r["ecn_in"], r["ecn_out"], _n(r["bytes"])]
            for r in audit["ecn_bleached"]
        ],
    )
    for warning in meta["warnings"]:
        console.print(f"warning: {warning}", style="yellow")


def write_audit_html(path: str, audit: dict[str, Any], *, compare: bool = False) -> None:
    """The audit as one page that needs nothing else (written whole or not at all)."""
    write_atomically(path, render_audit_html(audit, compare=compare))


def _transitions(flow: dict[str, Any]) -> str:
    parts = []
    for t in flow["transitions"]:
        verdict = {True: "", False: " NOT PRESCRIBED", None: " (not evaluable)"}.get(
            t.get("prescribed", True), ""
        )
        parts.append(f"{t['before']}→{t['after']} ×{t['packets']:,}{verdict}")
    return "; ".join(parts)


def render_compare(result: dict[str, Any], console: Console) -> None:
    """Per flow: the DSCP before → after of its matched packets, and what was lost."""
    meta, totals = result["meta"], result["totals"]
    head = "PASS" if meta["passed"] else "FAIL"
    if meta["policy"] is None:
        head = "compared"
    console.print(
        f"{head}: {_n(totals['matched'])} packets matched, {_n(totals['dscp_changed'])} "
        f"re-marked, {_n(totals['pcp_changed'])} PCP changed, {_n(totals['bleached'])} ECN "
        f"bleached; {_n(totals['only_before'])} seen only before, {_n(totals['only_after'])} "
        f"only after ({meta['before']} → {meta['after']})"
    )
    rows = []
    for flow in result["flows"]:
        if not flow["changed"] and not flow["only_before"]["packets"] and not flow["only_after"]:
            continue
        lost = flow["only_before"]
        lost_text = f"{lost['packets']:,}" if lost["packets"] else ""
        if lost.get("prescribed") is False and lost["packets"]:
            lost_text += " NOT PRESCRIBED"
        rows.append(
            [
                _flow(flow),
                ", ".join(flow["classes"]) or "—",
                _transitions(flow),
                lost_text,
                _n(flow["only_after"]) if flow["only_after"] else "",
            ]
        )
    columns = ["flow", "class", "DSCP before→after", "only before", "only after"]
    _table(console, "Flows the hop changed", columns, rows)
    for warning in meta["warnings"]:
        console.print(f"warning: {warning}", style="yellow")
