"""An nftables ruleset as plain data, written out by ``nft_text`` and ``nft_json``.

One description, two spellings: the script and the libnftables JSON are both renderings
of these values, so they cannot disagree about what the ruleset does. Only the handful
of expressions the compiler emits exist here.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from diffserv.compile.plan import Prefix


class Symbol(msgspec.Struct, frozen=True):
    """A keyword value (``ipv4``, ``tcp``): bare in the script, a string in JSON."""

    text: str


class Text(msgspec.Struct, frozen=True):
    """A string value (an interface name): quoted in the script."""

    text: str


Value = int | Prefix | Symbol | Text


class Match(msgspec.Struct, frozen=True, tag=True):
    """``SELECTOR VALUE`` or ``SELECTOR { V1, V2 }`` (a set when there are several)."""

    selector: str
    values: tuple[Value, ...]


class Unfragmented(msgspec.Struct, frozen=True, tag=True):
    """The packet is not a fragment: ``ip frag-off & 0x3fff == 0`` (IPv4: no offset, no
    more-fragments bit) or ``exthdr frag missing`` (IPv6). The engine reads no ports of
    any fragment, and takes an IPv6 fragment's protocol from before its fragment header."""

    family: int


class Goto(msgspec.Struct, frozen=True, tag=True):
    """``goto CHAIN`` (``jump`` when ``back``: the chain returns here)."""

    chain: str
    back: bool = False


class Terminal(msgspec.Struct, frozen=True, tag=True):
    """``accept`` or ``drop``."""

    verdict: Literal["accept", "drop"]


Verdict = Goto | Terminal


class Lookup(msgspec.Struct, frozen=True, tag=True):
    """``SEL . SEL vmap @MAP``."""

    selectors: tuple[str, ...]
    map: str


class InlineVmap(msgspec.Struct, frozen=True, tag=True):
    """``SELECTOR vmap { V : VERDICT, ... }`` (an anonymous map)."""

    selector: str
    elements: tuple[tuple[int, Verdict], ...]


class SetDscp(msgspec.Struct, frozen=True, tag=True):
    """``ip dscp set N`` / ``ip6 dscp set N`` (the ECN bits are kept)."""

    selector: str
    value: int


class SetPriority(msgspec.Struct, frozen=True, tag=True):
    """``meta priority set 0:N``: skb->priority = N."""

    value: int


class SetMarkBit(msgspec.Struct, frozen=True, tag=True):
    """``meta mark set meta mark | BIT``."""

    bit: int


class LimitOver(msgspec.Struct, frozen=True, tag=True):
    """``limit name "NAME"``: matches while the named limit is over its rate."""

    name: str


class NamedLimit(msgspec.Struct, frozen=True):
    """``limit NAME { rate over R bytes/second burst B bytes }``: one bucket, whichever
    chain (hook) uses it, as a meter action has one state in the engine."""

    name: str
    rate: int
    burst: int


class Queue(msgspec.Struct, frozen=True, tag=True):
    """``queue num N bypass``."""

    num: int


Statement = (
    Match
    | Unfragmented
    | Lookup
    | InlineVmap
    | SetDscp
    | SetPriority
    | SetMarkBit
    | LimitOver
    | Queue
    | Verdict
)


class Rule(msgspec.Struct, frozen=True):
    statements: tuple[Statement, ...]
    comment: str | None = None


class Chain(msgspec.Struct, frozen=True):
    """A chain; a base chain has a hook and a priority."""

    name: str
    rules: tuple[Rule, ...]
    hook: str | None = None
    priority: int = 0
    notes: tuple[str, ...] = ()  # comments above the chain in the script


class Map(msgspec.Struct, frozen=True):
    """A named verdict map: key types (one per selector) and elements."""

    name: str
    types: tuple[str, ...]
    interval: bool
    elements: tuple[tuple[tuple[Value, ...], Verdict], ...]


class Ruleset(msgspec.Struct, frozen=True):
    """One ``inet`` table, replaced as a whole in one transaction."""

    table: str
    maps: tuple[Map, ...]
    chains: tuple[Chain, ...]
    notes: tuple[str, ...] = ()  # the script's header comments
    limits: tuple[NamedLimit, ...] = ()


FAMILY: Final = "inet"
# (nft spelling, JSON expression) of every selector the compiler uses
SELECTORS: Final[dict[str, dict[str, object]]] = {
    "ip saddr": {"payload": {"protocol": "ip", "field": "saddr"}},
    "ip daddr": {"payload": {"protocol": "ip", "field": "daddr"}},
    "ip6 saddr": {"payload": {"protocol": "ip6", "field": "saddr"}},
    "ip6 daddr": {"payload": {"protocol": "ip6", "field": "daddr"}},
    "ip dscp": {"payload": {"protocol": "ip", "field": "dscp"}},
    "ip6 dscp": {"payload": {"protocol": "ip6", "field": "dscp"}},
    "ip ecn": {"payload": {"protocol": "ip", "field": "ecn"}},
    "ip6 ecn": {"payload": {"protocol": "ip6", "field": "ecn"}},
    "th sport": {"payload": {"protocol": "th", "field": "sport"}},
    "th dport": {"payload": {"protocol": "th", "field": "dport"}},
    "meta l4proto": {"meta": {"key": "l4proto"}},
    "meta nfproto": {"meta": {"key": "nfproto"}},
    "meta skuid": {"meta": {"key": "skuid"}},
    "meta mark": {"meta": {"key": "mark"}},
    "meta priority": {"meta": {"key": "priority"}},
    "iifname": {"meta": {"key": "iifname"}},
    "oifname": {"meta": {"key": "oifname"}},
}
