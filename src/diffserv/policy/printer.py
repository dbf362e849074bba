"""Canonical text of a policy, in the ``ipqosconf -l`` listing layout.

``diffserv fmt`` and every tool that writes a policy back out use this, so a file reads the
same whoever produced it, diffs stay small, and ``parse(format_policy(p)) == p`` holds for
every valid policy. Where the listing format of illumos cannot be read back (the comma-less
``ip_version { V4 V6 }``; docs/policy.md) the printer writes what the parser accepts.

Order: actions, classes and filters in file order (the model keeps it); parameters and
selectors in the module schema's order; in each block ``name`` comes first.
"""

from __future__ import annotations

from collections.abc import Iterable

from diffserv.policy.hosts import HostDatabase, host_database
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


def protocol_name(number: int, hosts: HostDatabase | None = None) -> str:
    """The protocol name of ``number`` if the parser reads it back to it, else the number."""
    database = host_database(hosts)
    for name in database.protocol_names(number):
        if database.protocol_number(name) == number:
            return name
    return str(number)


def service_name(port: int, hosts: HostDatabase | None = None) -> str:
    """The service name of ``port`` (tcp, then udp) if the parser reads it back, else the number."""
    database = host_database(hosts)
    for name in database.service_names(port):
        if quote(name) == name and database.service_port(name) == port:
            return name
    return str(port)


def user_name(uid: int, hosts: HostDatabase | None = None) -> str:
    """The passwd name of ``uid`` if that name maps back to the same uid, else the number."""
    database = host_database(hosts)
    for name in database.user_names(uid):
        if database.user_id(name) == uid and not name[:1].isdigit() and quote(name) == name:
            return name
    return str(uid)


def format_address(address: Address) -> str:
    """A host name as its name, a prefix as ``addr/prefixlen``."""
    if isinstance(address, HostName):
        return quote(address.name)
    return f"{address.network_address}/{address.prefixlen}"


def format_enum(value: int, names: Iterable[tuple[str, int]]) -> str:
    """Enum bits by name: one bare, several as ``{ A, B }`` with the comma (docs/policy.md)."""
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


def filter_items(flt: Filter, hosts: HostDatabase | None = None) -> list[tuple[str, str]]:
    """A filter's selectors as (name, text) in schema order, wildcards left out (numbers
    written as the names ``hosts`` reads back to them)."""
    database = host_database(hosts)
    items: list[tuple[str, str]] = []

    def add(name: str, text: str | None) -> None:
        if text is not None:
            items.append((name, text))

    add("user", None if flt.user is None else user_name(flt.user, database))
    add("projid", None if flt.projid is None else str(flt.projid))
    add("if_name", None if flt.if_name is None else quote(flt.if_name))
    add("direction", None if flt.direction is None else format_enum(flt.direction, DIRECTION_NAMES))
    add("protocol", None if flt.protocol is None else protocol_name(flt.protocol, database))
    add("dsfield", None if flt.dsfield is None else str(flt.dsfield))
    add("dsfield_mask", None if flt.dsfield_mask is None else str(flt.dsfield_mask))
    add("saddr", None if flt.saddr is None else format_address(flt.saddr))
    add("daddr", None if flt.daddr is None else format_address(flt.daddr))
    add("sport", None if flt.sport is None else service_name(flt.sport, database))
    add("dport", None if flt.dport is None else service_name(flt.dport, database))
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


def format_filter(flt: Filter, depth: int = 1, hosts: HostDatabase | None = None) -> list[str]:
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    lines = [
        f"{pad}filter {{",
        f"{inner}name {quote(flt.name)}",
        f"{inner}class {quote(flt.class_name)}",
    ]
    lines.extend(f"{inner}{name} {text}" for name, text in filter_items(flt, hosts))
    lines.append(f"{pad}}}")
    return lines


def format_action(action: Action, hosts: HostDatabase | None = None) -> str:
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
        lines.extend(format_filter(flt, hosts=hosts))
    lines.append("}")
    return "\n".join(lines)


def format_policy(policy: Policy, hosts: HostDatabase | None = None) -> str:
    """The whole policy in canonical form, ending with one newline.

    Numbers are written as names where ``hosts`` (the built-in tables when None) reads the name
    back to the same number.
    """
    database = host_database(hosts)
    blocks = [f"fmt_version {policy.fmt_version}"]
    blocks.extend(format_action(action, database) for action in policy.actions)
    return "\n\n".join(blocks) + "\n"
