"""Policies the compile tests share (text builders; each is a valid IPQoS policy)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from diffserv.cli.main import main

HEAD = "fmt_version 1.0\n\n"


def ipgpc(classes: Sequence[tuple[str, str]], filters: Sequence[dict[str, object]]) -> str:
    """The classifier action: (class, next action) pairs and filters as selector dicts
    (``name`` and ``class`` included)."""
    lines = ["action {", "\tmodule ipgpc", "\tname ipgpc.classify"]
    for name, nxt in classes:
        lines += ["\tclass {", f"\t\tname {name}", f"\t\tnext_action {nxt}", "\t}"]
    for flt in filters:
        lines.append("\tfilter {")
        lines += [f"\t\t{key} {value}" for key, value in flt.items()]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n\n"


def dscpmk(name: str, dscp_map: str, nxt: str = "continue") -> str:
    return (
        f"action {{\n\tmodule dscpmk\n\tname {name}\n\tparams {{\n"
        f"\t\tdscp_map {{{dscp_map}}}\n\t\tnext_action {nxt}\n\t}}\n}}\n\n"
    )


def dlcosmk(name: str, cos: int, nxt: str = "continue") -> str:
    return (
        f"action {{\n\tmodule dlcosmk\n\tname {name}\n\tparams {{\n"
        f"\t\tcos {cos}\n\t\tnext_action {nxt}\n\t}}\n}}\n\n"
    )


def tokenmt(name: str, rate: int, burst: int, green: str, red: str, **extra: object) -> str:
    more = "".join(f"\t\t{k} {v}\n" for k, v in extra.items())
    return (
        f"action {{\n\tmodule tokenmt\n\tname {name}\n\tparams {{\n"
        f"\t\tcommitted_rate {rate}\n\t\tcommitted_burst {burst}\n{more}"
        f"\t\tgreen_action_name {green}\n\t\tred_action_name {red}\n\t}}\n}}\n\n"
    )


def flowacct(name: str, nxt: str = "continue") -> str:
    return (
        f"action {{\n\tmodule flowacct\n\tname {name}\n\tparams {{\n"
        "\t\ttimer 1000\n\t\ttimeout 10000\n\t\tmax_limit 1000\n"
        f"\t\tnext_action {nxt}\n\t}}\n}}\n\n"
    )


def mixed() -> str:
    """Every exact kind of action and selector, both families, overlapping filters."""
    filters: list[dict[str, object]] = [
        {
            "name": "voice",
            "class": "ef",
            "daddr": "10.99.2.0/24",
            "dport": 5004,
            "protocol": 17,
            "priority": 5,
        },
        {
            "name": "voice6",
            "class": "ef",
            "daddr": "fd99:2::/64",
            "dport": 5004,
            "protocol": 17,
            "priority": 5,
        },
        {"name": "af_in", "class": "af", "dsfield": "0x28", "dsfield_mask": "0xfc"},
        {"name": "web", "class": "af", "dport": 80},
        {"name": "web2", "class": "af", "dport": 8080},
        {"name": "host", "class": "cs1", "saddr": "10.99.1.7"},
        {"name": "lan", "class": "cs1", "saddr": "10.99.1.0/24", "precedence": 5},
        {"name": "ssh", "class": "prio", "dport": 22, "protocol": 6, "if_name": "veth2a"},
        {"name": "mine", "class": "prio", "user": 0, "direction": "LOCAL_OUT"},
        {"name": "ecn_ce", "class": "cs1", "dsfield": "0x03", "dsfield_mask": "0x03"},
        {"name": "fwdin", "class": "cs1", "direction": "FWD_IN", "dport": 9},
    ]
    return (
        HEAD
        + ipgpc(
            [
                ("ef", "markEF"),
                ("af", "markAF"),
                ("cs1", "markCS1"),
                ("prio", "cos5"),
                ("default", "continue"),
            ],
            filters,
        )
        + dscpmk("markEF", "0-63:46")
        + dscpmk("markAF", "0-63:10;10:12;12:14", "cos5")
        + dscpmk("markCS1", "0-63:8")
        + dlcosmk("cos5", 5)
    )


def many(n: int) -> str:
    """``n`` filters on distinct destination address and port, four classes."""
    filters = [
        {
            "name": f"f{i}",
            "class": f"c{i % 4}",
            "daddr": f"10.{100 + i // 65000}.{i // 250 % 256}.{i % 250 + 1}",
            "dport": 1000 + i % 50000,
            "protocol": 17,
        }
        for i in range(n)
    ]
    classes = [(f"c{k}", f"m{k}") for k in range(4)] + [("default", "continue")]
    marks = "".join(dscpmk(f"m{k}", f"0-63:{(k + 1) * 8}") for k in range(4))
    return HEAD + ipgpc(classes, filters) + marks


def compile_to(tmp_path: Path, policy: str, *options: str, name: str = "out") -> Path:
    """``diffserv compile`` of ``policy`` into a file (the path; status 0 asserted)."""
    src = tmp_path / f"{name}.conf"
    src.write_text(policy)
    out = tmp_path / f"{name}.rules"
    assert main(["compile", str(src), "-o", str(out), *options]) == 0
    return out
