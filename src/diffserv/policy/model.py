"""The typed, immutable model of an IPQoS policy.

This is the only thing downstream code (engine, explain, printer, nftables
compiler) consumes. Locations are carried for messages but never take part in
equality, so ``parse(print(policy)) == policy`` compares meaning only.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from typing import ClassVar, Final

import msgspec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Virtual actions (illumos ipp.h). Written `continue`/`drop` in files, they are
# stored under their full names, as ipqosconf translates them.
CONTINUE: Final = "ipp.continue"
DROP: Final = "ipp.drop"
DEFER: Final = "ipp.defer"
VIRTUAL_ACTIONS: Final = frozenset({CONTINUE, DROP, DEFER})

CLASSIFIER_ACTION: Final = "ipgpc.classify"
DEFAULT_CLASS: Final = "default"


# ipgpc `ip_version` enum bits.
IP_V4: Final = 0x01
IP_V6: Final = 0x02

# tokenmt color_map values.
GREEN: Final = 1
YELLOW: Final = 2
RED: Final = 4

PRECEDENCE_UNSET: Final = 0xFFFFFFFF

# A parameter value in its real type: int (numbers, enum bit sets, booleans as
# bool), str (strings, action references by full name), or a 64-entry tuple of
# ints (dscp_map, color_map, with the module default filled in for entries the
# file leaves unset).
ParamValue = int | bool | str | tuple[int, ...]


class _ComparedByMeaning(msgspec.Struct, frozen=True):
    """A value whose fields named in ``NOT_COMPARED`` (where it was written, what it was
    read from) take no part in == or hash; the other fields are compared in order."""

    NOT_COMPARED: ClassVar[frozenset[str]] = frozenset({"location"})

    def _meaning(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _compared_fields(type(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ComparedByMeaning) or type(other) is not type(self):
            return NotImplemented
        return self._meaning() == other._meaning()

    def __hash__(self) -> int:
        return hash(self._meaning())


@functools.cache
def _compared_fields(cls: type[_ComparedByMeaning]) -> tuple[str, ...]:
    return tuple(name for name in cls.__struct_fields__ if name not in cls.NOT_COMPARED)


class Location(msgspec.Struct, frozen=True):
    """Where something was written: file name, 1-based line and column."""

    filename: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}"


class HostName(msgspec.Struct, frozen=True):
    """An address given as a host name, with what it resolved to at load time.

    One kernel filter instance exists per resolved address; an empty tuple
    means the name did not resolve (the filter then never matches, and a
    warning was reported).
    """

    name: str
    addresses: tuple[IPNetwork, ...]


Address = IPNetwork | HostName


class Filter(_ComparedByMeaning, frozen=True):
    """One ipgpc filter. ``None`` means the selector is a wildcard."""

    name: str
    class_name: str
    user: int | None = None
    projid: int | None = None
    if_name: str | None = None
    direction: int | None = None  # OR of LOCAL_IN/LOCAL_OUT/FWD_IN/FWD_OUT
    protocol: int | None = None
    dsfield: int | None = None
    dsfield_mask: int | None = None
    saddr: Address | None = None
    daddr: Address | None = None
    sport: int | None = None
    dport: int | None = None
    priority: int | None = None
    precedence: int | None = None
    ip_version: int | None = None  # OR of IP_V4/IP_V6
    location: Location | None = None

    @property
    def effective_priority(self) -> int:
        return 0 if self.priority is None else self.priority

    @property
    def effective_precedence(self) -> int:
        return PRECEDENCE_UNSET if self.precedence is None else self.precedence


class Class(_ComparedByMeaning, frozen=True):
    """A traffic class of an action (only ipgpc uses them in practice)."""

    name: str
    next_action: str  # an action name or one of VIRTUAL_ACTIONS
    enable_stats: bool = False
    location: Location | None = None


class Action(_ComparedByMeaning, frozen=True):
    """A named instance of an IPQoS module with its parameters.

    ``params`` holds only the parameters the file sets (beside global_stats),
    in the module schema's order, with values converted to their real types.
    Defaults are the schema's business (see ``policy.schema``), and what the parameters
    mean together is ``policy.interpret``'s; the actions one refers to are
    ``schema.action_references(action)``.
    """

    name: str
    module: str
    global_stats: bool = False
    params: tuple[tuple[str, ParamValue], ...] = ()
    classes: tuple[Class, ...] = ()
    filters: tuple[Filter, ...] = ()
    location: Location | None = None

    @property
    def param_map(self) -> Mapping[str, ParamValue]:
        return dict(self.params)

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.params)

    def get(self, name: str) -> ParamValue | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def int_param(self, name: str, default: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            if default is None:
                raise KeyError(f"action {self.name}: parameter {name} is not set")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"action {self.name}: parameter {name} is not an integer")
        return value

    def bool_param(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise TypeError(f"action {self.name}: parameter {name} is not a boolean")
        return value

    def ref_param(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"action {self.name}: parameter {name} is not an action reference")
        return value

    def array_param(self, name: str) -> tuple[int, ...] | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, tuple):
            raise TypeError(f"action {self.name}: parameter {name} is not an array")
        return value


class Diagnostic(msgspec.Struct, frozen=True):
    """One message about a policy file, in compiler style."""

    severity: str  # "error" | "warning"
    message: str
    location: Location | None = None
    source_line: str | None = None
    hint: str | None = None


class Policy(_ComparedByMeaning, frozen=True):
    """A whole, validated configuration: actions in file order.

    ``source`` (the text it was read from) and ``warnings`` take no part in == or hash.
    """

    NOT_COMPARED = frozenset({"source", "warnings"})

    actions: tuple[Action, ...]
    fmt_version: str = "1.0"
    source: str | None = None
    warnings: tuple[Diagnostic, ...] = ()

    def action(self, name: str) -> Action:
        for action in self.actions:
            if action.name == name:
                return action
        raise KeyError(name)

    @property
    def classifier(self) -> Action:
        return self.action(CLASSIFIER_ACTION)
