"""An nft script of a ruleset, loadable with ``nft -f`` as one transaction.

The script first makes sure the table exists (``table inet T {}``), deletes it, and then
declares it whole: nft reads a file as one transaction, so the old table is replaced
atomically and no packet ever sees half a ruleset, and no other table is touched. Inside
the table every chain is declared empty before the maps and the rules that name it.
"""

from __future__ import annotations

from collections.abc import Iterator

from diffserv.compile.nft_build import address_text
from diffserv.compile.plan import Prefix
from diffserv.compile.ruleset import (
    FAMILY,
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


def value_text(value: Value) -> str:
    if isinstance(value, Prefix):
        return address_text(value)
    if isinstance(value, Symbol):
        return value.text
    if isinstance(value, Text):
        return f'"{value.text}"'
    return str(value)


def _values(values: tuple[Value, ...]) -> str:
    if len(values) == 1:
        return value_text(values[0])
    return "{ " + ", ".join(value_text(v) for v in values) + " }"


def verdict_text(verdict: Verdict) -> str:
    if isinstance(verdict, Goto):
        return f"{'jump' if verdict.back else 'goto'} {verdict.chain}"
    return verdict.verdict


def statement_text(stmt: Statement) -> str:
    if isinstance(stmt, Match):
        return f"{stmt.selector} {_values(stmt.values)}"
    if isinstance(stmt, Unfragmented):
        return "ip frag-off & 0x3fff == 0" if stmt.family == 4 else "exthdr frag missing"
    if isinstance(stmt, Lookup):
        return f"{' . '.join(stmt.selectors)} vmap @{stmt.map}"
    if isinstance(stmt, InlineVmap):
        pairs = ", ".join(f"{v} : {verdict_text(t)}" for v, t in stmt.elements)
        return f"{stmt.selector} vmap {{ {pairs} }}"
    if isinstance(stmt, SetDscp):
        return f"{stmt.selector} set {stmt.value}"
    if isinstance(stmt, SetPriority):
        return f"meta priority set 0:{stmt.value:x}"
    if isinstance(stmt, SetMarkBit):
        return f"meta mark set meta mark | {stmt.bit:#x}"
    if isinstance(stmt, LimitOver):
        return f'limit name "{stmt.name}"'
    if isinstance(stmt, Queue):
        return f"queue num {stmt.num} bypass"
    if isinstance(stmt, Goto | Terminal):
        return verdict_text(stmt)
    raise AssertionError(stmt)


def rule_text(rule: Rule) -> str:
    text = " ".join(statement_text(s) for s in rule.statements if not _empty_vmap(s))
    if rule.comment:
        text += f' comment "{rule.comment}"'
    return text


def _empty_vmap(stmt: Statement) -> bool:
    return isinstance(stmt, InlineVmap) and not stmt.elements


def _map_lines(m: Map) -> Iterator[str]:
    yield f"\tmap {m.name} {{"
    yield f"\t\ttype {' . '.join(m.types)} : verdict"
    if m.interval:
        yield "\t\tflags interval"
    if m.elements:
        yield "\t\telements = {"
        last = len(m.elements) - 1
        for i, (key, verdict) in enumerate(m.elements):
            comma = "," if i < last else ""
            keys = " . ".join(value_text(v) for v in key)
            yield f"\t\t\t{keys} : {verdict_text(verdict)}{comma}"
        yield "\t\t}"
    yield "\t}"


def _chain_lines(chain: Chain) -> Iterator[str]:
    for note in chain.notes:
        yield f"\t# {note}"
    yield f"\tchain {chain.name} {{"
    if chain.hook is not None:
        yield f"\t\ttype filter hook {chain.hook} priority {chain.priority}; policy accept;"
    for rule in chain.rules:
        if all(_empty_vmap(s) for s in rule.statements):
            continue
        yield f"\t\t{rule_text(rule)}"
    yield "\t}"


def script_lines(ruleset: Ruleset) -> Iterator[str]:
    table = f"{FAMILY} {ruleset.table}"
    for note in ruleset.notes:
        yield f"# {note}"
    yield f"table {table} {{}}"
    yield f"delete table {table}"
    yield f"table {table} {{"
    for chain in ruleset.chains:
        if chain.hook is None:
            yield f"\tchain {chain.name} {{}}"
    for limit in ruleset.limits:
        yield f"\tlimit {limit.name} {{"
        yield f"\t\trate over {limit.rate} bytes/second burst {limit.burst} bytes"
        yield "\t}"
    for m in ruleset.maps:
        yield from _map_lines(m)
    for chain in ruleset.chains:
        yield from _chain_lines(chain)
    yield "}"


def render(ruleset: Ruleset) -> str:
    """The whole script."""
    return "\n".join(script_lines(ruleset)) + "\n"
