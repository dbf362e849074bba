"""The libnftables JSON form of a ruleset (``nft -j -f FILE``), built as data.

The same commands as the script, in the same single transaction: add the table (so the
delete cannot fail), delete it, add it again with its chains, maps and rules.
"""

from __future__ import annotations

import json
from typing import Any

from diffserv.compile.nft_build import address_text
from diffserv.compile.plan import Prefix
from diffserv.compile.ruleset import (
    FAMILY,
    SELECTORS,
    Chain,
    Goto,
    InlineVmap,
    LimitOver,
    Lookup,
    Map,
    Match,
    Queue,
    Rule,
    Ruleset,
    SetDscp,
    SetMarkBit,
    SetPriority,
    Statement,
    Symbol,
    Terminal,
    Text,
    Unfragmented,
    Value,
    Verdict,
)

Json = Any  # a JSON value


def value_json(value: Value) -> Json:
    if isinstance(value, Prefix):
        if value.full:
            return address_text(value)
        addr = address_text(Prefix(value.family, value.value, value.width))
        return {"prefix": {"addr": addr, "len": value.length}}
    if isinstance(value, Symbol | Text):
        return value.text
    return value


def verdict_json(verdict: Verdict) -> Json:
    if isinstance(verdict, Goto):
        return {"jump" if verdict.back else "goto": {"target": verdict.chain}}
    return {verdict.verdict: None}


def _key(selectors: tuple[str, ...]) -> Json:
    if len(selectors) == 1:
        return SELECTORS[selectors[0]]
    return {"concat": [SELECTORS[s] for s in selectors]}


def statement_json(stmt: Statement) -> Json:
    if isinstance(stmt, Match):
        right = (
            value_json(stmt.values[0])
            if len(stmt.values) == 1
            else {"set": [value_json(v) for v in stmt.values]}
        )
        return {"match": {"op": "==", "left": SELECTORS[stmt.selector], "right": right}}
    if isinstance(stmt, Unfragmented):
        if stmt.family == 4:
            frag = {"payload": {"protocol": "ip", "field": "frag-off"}}
            return {"match": {"op": "==", "left": {"&": [frag, 0x3FFF]}, "right": 0}}
        return {"match": {"op": "==", "left": {"exthdr": {"name": "frag"}}, "right": False}}
    if isinstance(stmt, Lookup):
        return {"vmap": {"key": _key(stmt.selectors), "data": f"@{stmt.map}"}}
    if isinstance(stmt, InlineVmap):
        pairs = [[v, verdict_json(t)] for v, t in stmt.elements]
        return {"vmap": {"key": SELECTORS[stmt.selector], "data": {"set": pairs}}}
    if isinstance(stmt, SetDscp):
        return {"mangle": {"key": SELECTORS[stmt.selector], "value": stmt.value}}
    if isinstance(stmt, SetPriority):
        return {"mangle": {"key": SELECTORS["meta priority"], "value": f"0:{stmt.value:x}"}}
    if isinstance(stmt, SetMarkBit):
        mark = SELECTORS["meta mark"]
        return {"mangle": {"key": mark, "value": {"|": [mark, stmt.bit]}}}
    if isinstance(stmt, LimitOver):
        return {"limit": stmt.name}
    if isinstance(stmt, Queue):
        return {"queue": {"num": stmt.num, "flags": ["bypass"]}}
    if isinstance(stmt, Goto | Terminal):
        return verdict_json(stmt)
    raise AssertionError(stmt)


def _rule(table: str, chain: str, rule: Rule) -> Json:
    body: dict[str, Json] = {
        "family": FAMILY,
        "table": table,
        "chain": chain,
        "expr": [statement_json(s) for s in rule.statements],
    }
    if rule.comment:
        body["comment"] = rule.comment
    return {"add": {"rule": body}}


def _chain(table: str, chain: Chain) -> Json:
    body: dict[str, Json] = {"family": FAMILY, "table": table, "name": chain.name}
    if chain.hook is not None:
        body |= {"type": "filter", "hook": chain.hook, "prio": chain.priority}
        body["policy"] = "accept"
    return {"add": {"chain": body}}


def _map(table: str, m: Map) -> Json:
    types: Json = list(m.types) if len(m.types) > 1 else m.types[0]
    body: dict[str, Json] = {
        "family": FAMILY,
        "table": table,
        "name": m.name,
        "type": types,
        "map": "verdict",
    }
    if m.interval:
        body["flags"] = ["interval"]
    if m.elements:
        body["elem"] = [
            [
                {"concat": [value_json(v) for v in key]} if len(key) > 1 else value_json(key[0]),
                verdict_json(verdict),
            ]
            for key, verdict in m.elements
        ]
    return {"add": {"map": body}}


def commands(ruleset: Ruleset) -> list[Json]:
    table = {"family": FAMILY, "name": ruleset.table}
    out: list[Json] = [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    # the order the script creates them in (so both list alike): the chains rules jump
    # to, then the base chains
    out.extend(_chain(ruleset.table, c) for c in ruleset.chains if c.hook is None)
    out.extend(_chain(ruleset.table, c) for c in ruleset.chains if c.hook is not None)
    for limit in ruleset.limits:
        body: dict[str, Json] = {"family": FAMILY, "table": ruleset.table, "name": limit.name}
        body |= {"rate": limit.rate, "rate_unit": "bytes", "per": "second", "inv": True}
        body |= {"burst": limit.burst, "burst_unit": "bytes"}
        out.append({"add": {"limit": body}})
    out.extend(_map(ruleset.table, m) for m in ruleset.maps)
    for chain in ruleset.chains:
        out.extend(_rule(ruleset.table, chain.name, r) for r in chain.rules)
    return out


def render(ruleset: Ruleset) -> str:
    """The whole JSON document (one object per line of the command list)."""
    return json.dumps({"nftables": commands(ruleset)}, indent=1) + "\n"
