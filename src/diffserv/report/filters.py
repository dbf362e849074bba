"""What a report covers: a time range and ``--filter KEY=VALUE`` conditions, made SQL.

Every value is parsed and checked here, in Python, and reaches the SQL engine only as
a bound parameter (or, for IPv6 prefixes, as the constants of a function diffserv
registers): user input is never SQL text. The same key given twice means either
value (``dscp=EF dscp=CS5``); different keys must all hold. A record belongs to the
time range ``[from, to)`` when its first packet does, so every record counts in
exactly one of any series of adjacent ranges and their sums add up.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from diffserv.codepoints import parse_dscp, parse_ecn, parse_tos
from diffserv.errors import UsageError
from diffserv.flows.schema import SOURCES
from diffserv.report.choices import FILTER_KEYS
from diffserv.report.groups import DscpGroups
from diffserv.report.names import parse_protocol

_NS: Final = 1_000_000_000
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_RELATIVE: Final = re.compile(r"-\s*(\d+)\s*([smhdw])")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class PrefixFunction(msgspec.Struct, frozen=True):
    """``name(address_text)`` is true for addresses in ``network`` (an IPv6 prefix).

    Backends register one such function per IPv6 prefix of a filter; the name is
    diffserv's own (``ds_in_prefix_<n>``), never user text.
    """

    name: str
    network: str


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def stamp_bounds(from_ns: int | None, to_ns: int | None) -> tuple[int | None, int | None] | None:
    """``[from_ns, to_ns)`` as bounds on a time stamp of the store (int64 nanoseconds):
    None when no time stamp can be inside; else (low, high), each None where that side
    leaves out no time stamp at all."""
    if (from_ns is not None and from_ns > _INT64_MAX) or (
        to_ns is not None and to_ns <= _INT64_MIN
    ):
        return None
    low = None if from_ns is None or from_ns <= _INT64_MIN else from_ns
    high = None if to_ns is None or to_ns > _INT64_MAX else to_ns
    return low, high


class Selection(msgspec.Struct, frozen=True):
    """The records a report reads: ``where`` (SQL over the ``flows`` view) with ``params``."""

    from_ns: int | None
    to_ns: int | None
    filters: tuple[tuple[str, str], ...]
    where: str
    params: tuple[Any, ...]
    functions: tuple[PrefixFunction, ...]
    summary: bool = True  # `where` reads only columns a rollup keeps (no address, no port)

    def describe(self) -> dict[str, Any]:
        """The selection as a report's ``meta`` shows it."""
        return {
            "from_ns": self.from_ns,
            "to_ns": self.to_ns,
            "filters": [f"{key}={value}" for key, value in self.filters],
        }


def parse_time(text: str, option: str, now_ns: int) -> int:
    """ns since the epoch of an ISO 8601 time (UTC when no offset is given), of epoch
    seconds (``1767225600``, decimals allowed), or of a time relative to now (``-15m``,
    ``-2h``, ``-7d``, ``now``)."""
    word = text.strip()
    if word == "now":
        return now_ns
    relative = _RELATIVE.fullmatch(word)
    if relative:
        return now_ns - int(relative.group(1)) * _UNITS[relative.group(2)] * _NS
    if re.fullmatch(r"\d+(\.\d{1,9})?", word):
        whole, _, fraction = word.partition(".")
        return int(whole) * _NS + int(fraction.ljust(9, "0") or 0)
    try:
        moment = datetime.fromisoformat(word)
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected an ISO 8601 time (2026-01-01T06:00Z), epoch "
            "seconds, or a time before now such as -15m, -2h, -7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def _number(text: str, high: int) -> int:
    word = text.strip()
    if not word.isdigit() or int(word) > high:
        raise ValueError(f"expected a number 0-{high}")
    return int(word)


def _range(text: str, parse: Callable[[str], int]) -> tuple[int, int]:
    low, dash, high = text.strip().partition("-")
    if dash and low.strip() and high.strip():
        first, last = parse(low), parse(high)
        if first > last:
            raise ValueError(f"range {text} runs backwards")
        return first, last
    value = parse(text)
    return value, value


def _between(column: str, bounds: tuple[int, int]) -> tuple[str, tuple[Any, ...]]:
    if bounds[0] == bounds[1]:
        return f"{column} = ?", (bounds[0],)
    return f"{column} BETWEEN ? AND ?", bounds


_IPV4_NUMBER: Final = (
    "(TRY_CAST(split_part({c}, '.', 1) AS BIGINT) * 16777216"
    " + TRY_CAST(split_part({c}, '.', 2) AS BIGINT) * 65536"
    " + TRY_CAST(split_part({c}, '.', 3) AS BIGINT) * 256"
    " + TRY_CAST(split_part({c}, '.', 4) AS BIGINT))"
)


class _Compiler:
    """Turns one ``KEY=VALUE`` after another into SQL with parameters."""

    def __init__(self, groups: DscpGroups) -> None:
        self.groups = groups
        self.functions: list[PrefixFunction] = []
        self.summary = True

    def address(self, columns: Sequence[str], text: str) -> tuple[str, tuple[Any, ...]]:
        self.summary = False
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError("expected an IPv4 or IPv6 address or prefix") from None
        if network.num_addresses == 1:  # the store's text is canonical: compare text
            address = str(network.network_address)
            return " OR ".join(f"{c} = ?" for c in columns), (address,) * len(columns)
        if network.version == 4:
            low = int(network.network_address)
            high = int(network.broadcast_address)
            parts = [
                f"(ip_version = 4 AND {_IPV4_NUMBER.format(c=c)} BETWEEN ? AND ?)" for c in columns
            ]
            return " OR ".join(parts), (low, high) * len(columns)
        function = PrefixFunction(f"ds_in_prefix_{len(self.functions)}", str(network))
        self.functions.append(function)
        return " OR ".join(f"{function.name}({c})" for c in columns), ()

    def condition(self, key: str, value: str) -> tuple[str, tuple[Any, ...]]:
        """SQL for one filter, or ValueError / UsageError saying what is wrong."""
        if key == "exporter":
            word = value.strip()
            if word in ("", "local", "-"):
                return "exporter = ?", ("",)
            try:
                return "exporter = ?", (str(ipaddress.ip_address(word)),)
            except ValueError:
                raise ValueError("expected an exporter address (or `local`)") from None
        if key == "source":
            if value not in SOURCES:
                raise ValueError(f"expected one of {', '.join(SOURCES)}")
            return "source = ?", (value,)
        if key in ("interface", "if"):
            number = _number(value, 2**32 - 1)
            return "(in_if = ? OR out_if = ?)", (number, number)
        if key in ("in_if", "out_if", "vlan", "domain"):
            return f"{key} = ?", (_number(value, 2**32 - 1),)
        if key == "direction":
            word = value.strip().lower()
            if word in ("ingress", "in", "0"):
                return "direction = 0", ()
            if word in ("egress", "out", "1"):
                return "direction = 1", ()
            raise ValueError("expected ingress or egress")
        if key in ("ip_version", "version", "ipv"):
            if value.strip() not in ("4", "6"):
                raise ValueError("expected 4 or 6")
            return "ip_version = ?", (int(value),)
        if key in ("protocol", "proto"):
            return "protocol = ?", (parse_protocol(value),)
        if key in ("dscp", "dscp_in", "dscp_out"):
            column = "dscp_out" if key == "dscp_out" else "dscp_in"
            if value.strip().lower() == "unknown":
                return f"{column} IS NULL", ()
            return _between(column, _range(value, parse_dscp))
        if key in ("group", "group_out"):
            column = "dscp_out" if key == "group_out" else "dscp_in"
            members = self.groups.members(self.groups.index(value))
            if not members:
                return "FALSE", ()
            return f"{column} IN ({', '.join('?' * len(members))})", tuple(members)
        if key in ("tos", "ds", "tos_out", "ds_out"):
            column = "ds_out" if key.endswith("_out") else "ds_in"
            return _between(column, _range(value, parse_tos))
        if key in ("ecn", "ecn_out"):
            column = "ecn_out" if key == "ecn_out" else "ecn_in"
            if value.strip().lower() == "unknown":
                return f"{column} IS NULL", ()
            return f"{column} = ?", (parse_ecn(value),)
        if key in ("addr", "host", "address"):
            return self.address(("saddr", "daddr"), value)
        if key in ("src", "saddr"):
            return self.address(("saddr",), value)
        if key in ("dst", "daddr"):
            return self.address(("daddr",), value)
        if key in ("port", "sport", "dport"):
            self.summary = False
        if key == "port":
            number = _number(value, 65_535)
            return "(sport = ? OR dport = ?)", (number, number)
        if key in ("sport", "dport"):
            return _between(key, _range(value, lambda v: _number(v, 65_535)))
        if key == "action":
            return "action = ?", (value,)
        if key == "class":
            return "flow_class = ?", (value,)
        raise UsageError(f"--filter {key}={value}: no filter {key!r} (filters: {FILTER_KEYS})")


def build_selection(
    filters: Sequence[str],
    groups: DscpGroups,
    *,
    start: str | None = None,
    end: str | None = None,
    now_ns: int | None = None,
) -> Selection:
    """The selection of ``--from``, ``--to`` and ``--filter`` options (UsageError if wrong)."""
    now = time.time_ns() if now_ns is None else now_ns
    from_ns = parse_time(start, "--from", now) if start is not None else None
    to_ns = parse_time(end, "--to", now) if end is not None else None
    if from_ns is not None and to_ns is not None and to_ns <= from_ns:
        raise UsageError(f"--to {end} is not after --from {start}")
    compiler = _Compiler(groups)
    by_key: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    given: list[tuple[str, str]] = []
    for text in filters:
        key, equals, value = text.partition("=")
        key = key.strip().lower()
        if not equals or not key:
            raise UsageError(f"--filter {text!r}: expected KEY=VALUE (keys: {FILTER_KEYS})")
        try:
            condition = compiler.condition(key, value)
        except ValueError as exc:
            raise UsageError(f"--filter {text}: {exc}") from None
        given.append((key, value.strip()))
        by_key.setdefault(key, []).append(condition)
    parts: list[str] = []
    params: list[Any] = []
    if from_ns is not None:
        parts.append("first_ns >= ?")
        params.append(from_ns)
    if to_ns is not None:
        parts.append("first_ns < ?")
        params.append(to_ns)
    for conditions in by_key.values():
        parts.append("(" + " OR ".join(f"({sql})" for sql, _ in conditions) + ")")
        for _, values in conditions:
            params.extend(values)
    return Selection(
        from_ns=from_ns,
        to_ns=to_ns,
        filters=tuple(given),
        where=" AND ".join(parts) if parts else "TRUE",
        params=tuple(params),
        functions=tuple(compiler.functions),
        summary=compiler.summary,
    )
