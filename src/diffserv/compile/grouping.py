"""Runs of rules folded into one map lookup, first-match order kept (docs/compile.md).

The rules of one hook and family, in rank order, are cut into segments. A segment is a
run of consecutive rules that test the same fields (and the same DS value sets and port
guard): one map from the tuple of those fields' values to the class answers for all of
them, provided no packet can match two of its keys (a map returns one element; nft also
refuses overlapping intervals). Two keys overlap when every field does: equal exact
values, or nested prefixes. So a rule joins the current segment unless its key overlaps
one already there; if it lies wholly inside an earlier key of the segment it can never
be the first match and is left out, otherwise a new segment starts with it. Segments
keep the rank order between them, so first-match order is preserved exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from diffserv.compile.plan import MatchRule, Prefix

# the fields a map key can hold, in the order they appear in a key
KEY_FIELDS: Final = ("saddr", "daddr", "protocol", "sport", "dport", "if_name", "uid")
_PREFIX_FIELDS: Final = frozenset({"saddr", "daddr"})

KeyValue = Prefix | int | str
Signature = tuple[tuple[str, ...], tuple[int, ...] | None, tuple[int, ...] | None, bool]


class Segment(msgspec.Struct, frozen=True):
    """Consecutive rules answered by one lookup (a single rule when ``len(rules) == 1``)."""

    fields: tuple[str, ...]  # the key fields, in KEY_FIELDS order
    dscp: tuple[int, ...] | None  # DS value sets every rule of the segment shares
    ecn: tuple[int, ...] | None
    port_guard: bool  # the rules test ports: only protocols with ports can match
    rules: tuple[MatchRule, ...]
    shadowed: tuple[MatchRule, ...] = ()  # left out: inside an earlier key of the segment

    @property
    def interval(self) -> bool:
        """Whether some key holds a prefix shorter than a whole address."""
        return any(
            isinstance(v, Prefix) and not v.full for r in self.rules for v in key_of(r, self.fields)
        )


def signature(rule: MatchRule) -> Signature:
    fields = tuple(f for f in KEY_FIELDS if getattr(rule, f) is not None)
    return fields, rule.dscp, rule.ecn, rule.has_ports


def key_of(rule: MatchRule, fields: Sequence[str]) -> tuple[KeyValue, ...]:
    return tuple(getattr(rule, f) for f in fields)


def _nested(a: Prefix, b: Prefix) -> bool:
    """Whether two prefixes of one family overlap (they are then nested)."""
    shortest = min(a.length, b.length)
    shift = a.width - shortest
    return a.value >> shift == b.value >> shift


def _within(a: Prefix, b: Prefix) -> bool:
    """Whether every address of ``a`` is in ``b``."""
    return a.length >= b.length and _nested(a, b)


_SCAN_LIMIT: Final = 4096  # keys looked through for one shorter prefix before giving up


class _Bucket:
    """The keys of a segment that share their exact fields' values, by first prefix."""

    def __init__(self) -> None:
        self.members: list[int] = []
        self.at: dict[Prefix, list[int]] = {}
        self.lengths: set[int] = set()
        self.longest = -1


class _Open:
    """The segment being built: its keys, indexed so that each rule's overlap test looks
    at the few keys it can overlap, not at all of them (10 000 rules stay fast): keys
    with the same exact values, and among those the ones whose first prefix contains the
    new one (a lookup per prefix length in use) or lies inside it (only possible when a
    longer prefix is already there)."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.prefix_at = tuple(i for i, f in enumerate(fields) if f in _PREFIX_FIELDS)
        self.exact_at = tuple(i for i, f in enumerate(fields) if f not in _PREFIX_FIELDS)
        self.rules: list[MatchRule] = []
        self.shadowed: list[MatchRule] = []
        self.keys: list[tuple[KeyValue, ...]] = []
        self.buckets: dict[tuple[KeyValue, ...], _Bucket] = {}

    def _candidates(self, key: tuple[KeyValue, ...]) -> list[int] | None:
        """Indices of the keys that may overlap ``key``; None: too many to look at."""
        bucket = self.buckets.get(tuple(key[i] for i in self.exact_at))
        if bucket is None:
            return []
        if not self.prefix_at:
            return bucket.members
        first = _p(key[self.prefix_at[0]])
        found: list[int] = []
        for length in bucket.lengths:
            if length <= first.length:
                shift = first.width - length
                masked = Prefix(first.family, first.value >> shift << shift, length)
                found.extend(bucket.at.get(masked, ()))
        if bucket.longest > first.length:
            if len(bucket.members) > _SCAN_LIMIT:
                return None
            at = self.prefix_at[0]
            found.extend(
                i
                for i in bucket.members
                if _p(self.keys[i][at]).length > first.length
                and _nested(_p(self.keys[i][at]), first)
            )
        return found

    def conflict(self, key: tuple[KeyValue, ...]) -> tuple[bool, bool]:
        """(overlaps a key of the segment, lies wholly inside one of them)."""
        candidates = self._candidates(key)
        if candidates is None:
            return True, False
        overlap = False
        for index in candidates:
            other = self.keys[index]
            if all(_nested(_p(key[i]), _p(other[i])) for i in self.prefix_at):
                if all(_within(_p(key[i]), _p(other[i])) for i in self.prefix_at):
                    return True, True
                overlap = True
        return overlap, False

    def add(self, rule: MatchRule, key: tuple[KeyValue, ...]) -> None:
        index = len(self.keys)
        self.keys.append(key)
        self.rules.append(rule)
        bucket = self.buckets.setdefault(tuple(key[i] for i in self.exact_at), _Bucket())
        bucket.members.append(index)
        if self.prefix_at:
            first = _p(key[self.prefix_at[0]])
            bucket.at.setdefault(first, []).append(index)
            bucket.lengths.add(first.length)
            bucket.longest = max(bucket.longest, first.length)


def _p(value: KeyValue) -> Prefix:
    assert isinstance(value, Prefix)
    return value


def segments(rules: Sequence[MatchRule], *, fold: bool = True) -> list[Segment]:
    """Cut rank-ordered ``rules`` (one hook, one family) into segments; ``fold=False``
    gives one segment per rule (the linear form, used by the iptables backend)."""
    out: list[Segment] = []
    current: _Open | None = None
    current_sig: Signature | None = None

    def close() -> None:
        if current is not None and current_sig is not None:
            _, dscp, ecn, guard = current_sig
            out.append(
                Segment(
                    current.fields,
                    dscp,
                    ecn,
                    guard,
                    tuple(current.rules),
                    tuple(current.shadowed),
                )
            )

    for rule in rules:
        sig = signature(rule)
        key = key_of(rule, sig[0])
        if fold and current is not None and sig == current_sig:
            overlap, inside = current.conflict(key)
            if inside:
                current.shadowed.append(rule)
                continue
            if not overlap:
                current.add(rule, key)
                continue
        close()
        current, current_sig = _Open(sig[0]), sig
        current.add(rule, key)
    close()
    return out
