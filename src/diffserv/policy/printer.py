"""Canonical text of a policy, in the ``ipqosconf -l`` listing layout.

``diffserv fmt`` and every tool that writes a policy back out use this, so a file reads the
same whoever produced it, diffs stay small, and ``parse(format_policy(p)) == p`` holds for
every valid policy. Where the listing format of illumos cannot be read back (the comma-less
``ip_version { V4 V6 }``, §13.11) the printer writes what the parser accepts.

Order: actions, classes and filters in file order (the model keeps it); parameters and
selectors in the module schema's order; in each block ``name`` comes first.
"""

from __future__ import annotations

import functools
import pwd
import socket
from collections.abc import Iterable
from pathlib import Path

from diffserv.policy import hosts
from diffserv.policy.model import (
    CONTINUE,
    DEFER,
    DROP,
    Action,
    Address,
    Class,
    Filter,
    HostName,
    ParamValue,
    Policy,
)
from diffserv.policy.schema import (
    DIRECTION_NAMES,
    GLOBAL_STATS,
    IP_VERSION_NAMES,
    ParamSpec,
    ParamType,
    lookup_param,
    param_order,
)

INDENT = "\t"

# How virtual actions are written. `defer` is not translated back by ipqosconf (only
# `continue` and `drop` are), so the deferred action keeps its full name to parse back.
VIRTUAL_SPELLING = {CONTINUE: "continue", DROP: "drop", DEFER: DEFER}


def quote(token: str) -> str:
    """``token`` as the lexer reads it back: double-quoted if it holds blanks or braces."""
    if token == "" or any(ch.isspace() or ch in "{}" for ch in token):
        return f'"{token}"'
    return token


def action_ref(name: str) -> str:
    """An action reference as written in a file (virtual actions by their short names)."""
    return quote(VIRTUAL_SPELLING.get(name, name))


def format_bool(value: bool) -> str:
    return "true" if value else "false"


# --- names of numbers (system databases, checked to read back to the same number) -------


@functools.cache
def _protocol_names(path: str = "/etc/protocols") -> dict[int, str]:
    """number → first name, from /etc/protocols then the parser's built-in table."""
    candidates: list[tuple[str, int]] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[1].isdigit():
            candidates.append((fields[0], int(fields[1])))
    candidates.extend(hosts.FALLBACK_PROTOCOLS.items())
    names: dict[int, str] = {}
    for name, number in candidates:
        if number not in names and hosts.protocol_number(name) == number:
            names[number] = name
    return names


def protocol_name(number: int) -> str:
    """The protocol name of ``number`` if the parser reads it back to it, else the number."""
    return _protocol_names().get(number, str(number))


@functools.cache
def _fallback_services() -> dict[int, str]:
    names: dict[int, str] = {}
    for name, port in hosts.FALLBACK_SERVICES.items():
        names.setdefault(port, name)
    return names


@functools.cache
def service_name(port: int) -> str:
    """The service name of ``port`` (tcp, then udp) if the parser reads it back, else the number."""
    candidates: list[str] = []
    for proto in ("tcp", "udp"):
        try:
            candidates.append(socket.getservbyport(port, proto))
        except (OSError, OverflowError):
            continue
    if port in _fallback_services():
        candidates.append(_fallback_services()[port])
    for name in candidates:
        if quote(name) == name and hosts.service_port(name) == port:
            return name
    return str(port)


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The passwd name of ``uid`` if that name maps back to the same uid, else the number."""
    try:
        name = pwd.getpwuid(uid).pw_name
        if hosts.user_id(name) == uid and not name[:1].isdigit() and quote(name) == name:
            return name
    except (KeyError, OverflowError):
        pass
    return str(uid)


def format_address(address: Address) -> str:
    """A host name as its name, a prefix as ``addr/prefixlen``."""
    if isinstance(address, HostName):
        return quote(address.name)
    return f"{address.network_address}/{address.prefixlen}"


def format_enum(value: int, names: Iterable[tuple[str, int]]) -> str:
    """Enum bits by name: one name bare, several as ``{ A, B }`` (with the comma, §13.11)."""
    chosen = [name for name, bits in names if value & bits]
    rest = value & ~sum(bits for _, bits in names)
    if rest or not chosen:
        raise ValueError(f"enum value {value:#x} has no name")
    if len(chosen) == 1:
        return chosen[0]
    return "{ " + ", ".join(chosen) + " }"


def format_ranges(indexes: Iterable[int]) -> str:
    """Sorted indexes as ``a-b,c`` ranges."""
    parts: list[str] = []
    run: list[int] = []
    for index in sorted(indexes):
        if run and index == run[-1] + 1:
            run.append(index)
            continue
        if run:
            parts.append(_run_text(run))
        run = [index]
    if run:
        parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def array_entries(values: tuple[int, ...], spec: ParamSpec | None) -> list[str]:
    """``ranges:value`` entries grouped by value, values ascending (names for enum arrays)."""
    by_value: dict[int, list[int]] = {}
    for index, value in enumerate(values):
        by_value.setdefault(value, []).append(index)
    entries = []
    for value in sorted(by_value):
        label = str(value)
        if spec is not None and spec.enum:
            label = spec.enum_name(value) or label
        entries.append(f"{format_ranges(by_value[value])}:{label}")
    return entries


def format_param_value(module: str, name: str, value: ParamValue, depth: int = 2) -> str:
    """One params value as text; arrays span several lines indented at ``depth`` tabs."""
    spec = lookup_param(module, name)
    if isinstance(value, bool):
        return format_bool(value)
    if isinstance(value, tuple):
        pad = INDENT * (depth + 1)
        body = ";\n".join(pad + entry for entry in array_entries(value, spec))
        return "{\n" + body + "\n" + INDENT * depth + "}"
    if isinstance(value, str):
        if spec is not None and spec.type is ParamType.ACTION:
            return action_ref(value)
        return quote(value)
    if spec is not None and spec.type is ParamType.ENUM:
        return format_enum(value, spec.enum)
    return str(value)


def filter_items(flt: Filter) -> list[tuple[str, str]]:
    """A filter's selectors as (name, text) in schema order, wildcards left out."""
    items: list[tuple[str, str]] = []

    def add(name: str, text: str | None) -> None:
        if text is not None:
            items.append((name, text))

    add("user", None if flt.user is None else user_name(flt.user))
    add("projid", None if flt.projid is None else str(flt.projid))
    add("if_name", None if flt.if_name is None else quote(flt.if_name))
    add("direction", None if flt.direction is None else format_enum(flt.direction, DIRECTION_NAMES))
    add("protocol", None if flt.protocol is None else protocol_name(flt.protocol))
    add("dsfield", None if flt.dsfield is None else str(flt.dsfield))
    add("dsfield_mask", None if flt.dsfield_mask is None else str(flt.dsfield_mask))
    add("saddr", None if flt.saddr is None else format_address(flt.saddr))
    add("daddr", None if flt.daddr is None else format_address(flt.daddr))
    add("sport", None if flt.sport is None else service_name(flt.sport))
    add("dport", None if flt.dport is None else service_name(flt.dport))
    add("priority", None if flt.priority is None else str(flt.priority))
    add("precedence", None if flt.precedence is None else str(flt.precedence))
    add(
        "ip_version",
        None if flt.ip_version is None else format_enum(flt.ip_version, IP_VERSION_NAMES),
    )
    return items


def _ordered_params(action: Action) -> list[tuple[str, ParamValue]]:
    order = {name: i for i, name in enumerate(param_order(action.module))}
    return sorted(action.params, key=lambda item: order.get(item[0], len(order)))


def format_class(cls: Class, depth: int = 1) -> list[str]:
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    return [
        f"{pad}class {{",
        f"{inner}name {quote(cls.name)}",
        f"{inner}next_action {action_ref(cls.next_action)}",
        f"{inner}enable_stats {format_bool(cls.enable_stats)}",
        f"{pad}}}",
    ]


def format_filter(flt: Filter, depth: int = 1) -> list[str]:
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    lines = [
        f"{pad}filter {{",
        f"{inner}name {quote(flt.name)}",
        f"{inner}class {quote(flt.class_name)}",
    ]
    lines.extend(f"{inner}{name} {text}" for name, text in filter_items(flt))
    lines.append(f"{pad}}}")
    return lines


def format_action(action: Action) -> str:
    """One ``action { … }`` block, without a trailing newline."""
    lines = ["action {", f"{INDENT}module {action.module}", f"{INDENT}name {quote(action.name)}"]
    lines += ["", f"{INDENT}params {{"]
    lines.append(f"{INDENT * 2}{GLOBAL_STATS.name} {format_bool(action.global_stats)}")
    for name, value in _ordered_params(action):
        lines.append(f"{INDENT * 2}{name} {format_param_value(action.module, name, value)}")
    lines.append(f"{INDENT}}}")
    for cls in action.classes:
        lines.append("")
        lines.extend(format_class(cls))
    for flt in action.filters:
        lines.append("")
        lines.extend(format_filter(flt))
    lines.append("}")
    return "\n".join(lines)


def format_policy(policy: Policy) -> str:
    """The whole policy in canonical form, ending with one newline."""
    blocks = [f"fmt_version {policy.fmt_version}"]
    blocks.extend(format_action(action) for action in policy.actions)
    return "\n\n".join(blocks) + "\n"
