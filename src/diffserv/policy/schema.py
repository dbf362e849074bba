"""Module parameter schemas as data: the illumos ``<module>.types`` files plus the kernel rules.

One declarative table per IPQoS module says, for every parameter, where it may be written
(``params`` or ``filter``), its value type and range, its default, whether the kernel create
routine requires it, whether it names another action, and a line of help for ``explain``.
The parser, validator, printer and explainer all read these tables; nothing else hard-codes
parameter names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

import msgspec

from diffserv.directions import DIRECTIONS
from diffserv.policy.model import (
    GREEN,
    IP_V4,
    IP_V6,
    PRECEDENCE_UNSET,
    RED,
    YELLOW,
    Action,
    ParamValue,
)

PARAMS: Final = "params"
FILTER: Final = "filter"

UINT32_MAX: Final = 0xFFFFFFFF
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
ARRAY_SIZE: Final = 64
MAX_NAME_LENGTH: Final = 23
# ipgpc's default table size is the prime 10007; "count + 1 >= limit" leaves 10006 usable.
MAX_FILTERS: Final = 10006
MAX_CLASSES: Final = 10006  # the permanent `default` class counts


class ParamType(Enum):
    """Value types of the types files, named as ipqosconf names them."""

    UINT8 = "uint8"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    BOOLEAN = "boolean"
    STRING = "string"
    ACTION = "action"
    ADDRESS = "address"
    PORT = "port"
    PROTOCOL = "protocol"
    ENUM = "enum"
    IFNAME = "ifname"
    MINDEX = "mindex"
    INT_ARRAY = "int_array"
    USER = "user"


INTEGER_TYPES: Final = frozenset(
    {ParamType.UINT8, ParamType.INT16, ParamType.UINT16, ParamType.INT32, ParamType.UINT32}
)

# Numeric ranges of the integer types (read strictly, as docs/policy.md says).
TYPE_RANGES: Final[Mapping[ParamType, tuple[int, int]]] = MappingProxyType(
    {
        ParamType.UINT8: (0, 255),
        ParamType.INT16: (-32767, 32767),
        ParamType.UINT16: (0, 65535),
        ParamType.INT32: (INT32_MIN, INT32_MAX),
        ParamType.UINT32: (0, UINT32_MAX),
    }
)


class ParamSpec(msgspec.Struct, frozen=True):
    """One parameter of one module.

    ``minimum``/``maximum`` bound integer values (and array values); ``enum`` lists the
    symbolic names of enum-typed values (and of enum-valued array entries) with their bits;
    ``default`` is the value the module uses when the file leaves the parameter unset
    (``None`` = wildcard or "no default"); ``unit`` is for explain (``bit/s``, ``ms``...).
    """

    name: str
    place: str
    type: ParamType
    help: str
    required: bool = False
    default: ParamValue | None = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[tuple[str, int], ...] = ()
    array_size: int = 0
    unit: str = ""

    @property
    def is_action(self) -> bool:
        return self.type is ParamType.ACTION

    @property
    def enum_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.enum)

    def enum_value(self, name: str) -> int | None:
        for key, value in self.enum:
            if key == name:
                return value
        return None

    def enum_name(self, value: int) -> str | None:
        for key, bits in self.enum:
            if bits == value:
                return key
        return None


class ModuleSchema(msgspec.Struct, frozen=True):
    """Everything the language knows about one module."""

    name: str
    description: str
    params: tuple[ParamSpec, ...]  # place "params", canonical order (global_stats excluded)
    filter_params: tuple[ParamSpec, ...] = ()  # place "filter", canonical order
    permanent_classes: tuple[str, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        index = _PARAM_INDEX.get(self.name)
        if index is not None and index[0] is self:
            return index[1].get(name)
        for spec in self.params:
            if spec.name == name:
                return spec
        return None

    def filter_param(self, name: str) -> ParamSpec | None:
        index = _PARAM_INDEX.get(self.name)
        if index is not None and index[0] is self:
            return index[2].get(name)
        for spec in self.filter_params:
            if spec.name == name:
                return spec
        return None

    def lookup(self, name: str, place: str) -> ParamSpec | None:
        return self.param(name) if place == PARAMS else self.filter_param(name)

    @property
    def param_order(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.params)

    @property
    def filter_order(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.filter_params)

    @property
    def required_params(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.params if spec.required)

    @property
    def action_params(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.params if spec.is_action)


# --- defaults of the arrays -------------------------------------------------------------

IDENTITY_DSCP_MAP: Final[tuple[int, ...]] = tuple(range(ARRAY_SIZE))


def _default_color_map() -> tuple[int, ...]:
    colours = [GREEN] * ARRAY_SIZE
    for dscp in (12, 20, 28, 36):  # AF12, AF22, AF32, AF42
        colours[dscp] = YELLOW
    for dscp in (14, 22, 30, 38):  # AF13, AF23, AF33, AF43
        colours[dscp] = RED
    return tuple(colours)


# tokenmtddi.c default_dscp_to_colour (docs/meters.md, "tokenmt").
DEFAULT_COLOR_MAP: Final[tuple[int, ...]] = _default_color_map()

COLOR_NAMES: Final[tuple[tuple[str, int], ...]] = (
    ("GREEN", GREEN),
    ("YELLOW", YELLOW),
    ("RED", RED),
)

# dlcosmk `cos` is an index into these two maps (dlcosmk.types).
COS_BBAND_MAP: Final[tuple[int, ...]] = (0, 0, 0, 96, 128, 160, 192, 224)
COS_DLPRI_MAP: Final[tuple[int, ...]] = (0, 0, 0, 3, 4, 5, 6, 7)

DIRECTION_NAMES: Final[tuple[tuple[str, int], ...]] = tuple(
    (direction.keyword, direction.value) for direction in DIRECTIONS
)
IP_VERSION_NAMES: Final[tuple[tuple[str, int], ...]] = (("V4", IP_V4), ("V6", IP_V6))

# Generic items (name, global_stats, next_action, ...), shared by every module.
GLOBAL_STATS: Final = ParamSpec(
    "global_stats",
    PARAMS,
    ParamType.BOOLEAN,
    "export the action's statistics (kstat); ipgpc counts nothing without it",
    default=False,
)
ENABLE_STATS: Final = ParamSpec(
    "enable_stats",
    "class",
    ParamType.BOOLEAN,
    "per-class statistics; needs global_stats true on the action",
    default=False,
)


def _action(name: str, help_text: str, *, required: bool) -> ParamSpec:
    return ParamSpec(name, PARAMS, ParamType.ACTION, help_text, required=required)


def _u32(
    name: str, help_text: str, *, required: bool = False, unit: str = "", default: int | None = None
) -> ParamSpec:
    return ParamSpec(
        name,
        PARAMS,
        ParamType.UINT32,
        help_text,
        required=required,
        default=default,
        minimum=0,
        maximum=UINT32_MAX,
        unit=unit,
    )


IPGPC: Final = ModuleSchema(
    name="ipgpc",
    description="IP generic packet classifier: sorts packets into classes by header fields",
    params=(),
    filter_params=(
        ParamSpec(
            "user",
            FILTER,
            ParamType.USER,
            "sending user of locally generated traffic: a user name known to this host, or "
            "a numeric uid (accepted even when this host's passwd lacks it)",
            minimum=INT32_MIN,
            maximum=INT32_MAX,
        ),
        ParamSpec(
            "projid",
            FILTER,
            ParamType.INT32,
            "project id of the sending process; -1 is a wildcard",
            minimum=INT32_MIN,
            maximum=INT32_MAX,
        ),
        ParamSpec("if_name", FILTER, ParamType.IFNAME, "interface the packet crosses"),
        ParamSpec(
            "direction",
            FILTER,
            ParamType.ENUM,
            "where the packet is seen: LOCAL_IN, LOCAL_OUT, FWD_IN, FWD_OUT",
            enum=DIRECTION_NAMES,
        ),
        ParamSpec(
            "protocol",
            FILTER,
            ParamType.PROTOCOL,
            "IP protocol (name from /etc/protocols or number 1..255)",
            minimum=1,
            maximum=255,
        ),
        ParamSpec(
            "dsfield",
            FILTER,
            ParamType.UINT8,
            "whole DS (TOS/traffic class) byte to match, ECN bits included; needs dsfield_mask",
            minimum=0,
            maximum=255,
        ),
        ParamSpec(
            "dsfield_mask",
            FILTER,
            ParamType.UINT8,
            "bits of the DS byte compared with dsfield",
            minimum=0,
            maximum=255,
        ),
        ParamSpec("saddr", FILTER, ParamType.ADDRESS, "source address, prefix or host name"),
        ParamSpec("daddr", FILTER, ParamType.ADDRESS, "destination address, prefix or host name"),
        ParamSpec(
            "sport",
            FILTER,
            ParamType.PORT,
            "source port (service name or 1..65535)",
            minimum=1,
            maximum=65535,
        ),
        ParamSpec(
            "dport",
            FILTER,
            ParamType.PORT,
            "destination port (service name or 1..65535)",
            minimum=1,
            maximum=65535,
        ),
        ParamSpec(
            "priority",
            FILTER,
            ParamType.UINT32,
            "filter rank: the highest priority among matching filters wins",
            default=0,
            minimum=0,
            maximum=UINT32_MAX,
        ),
        ParamSpec(
            "precedence",
            FILTER,
            ParamType.UINT32,
            "tie-break among equal priorities: the lowest precedence wins",
            default=PRECEDENCE_UNSET,
            minimum=0,
            maximum=UINT32_MAX,
        ),
        ParamSpec(
            "ip_version",
            FILTER,
            ParamType.ENUM,
            "address families for host-name lookup and consistency checks (not a selector)",
            enum=IP_VERSION_NAMES,
        ),
    ),
    permanent_classes=("default",),
)

TOKENMT: Final = ModuleSchema(
    name="tokenmt",
    description="token bucket meter: single-rate (RFC 2697) or two-rate (RFC 2698) three colour",
    params=(
        _action(
            "red_action_name", "next action for packets over the peak/excess burst", required=True
        ),
        _action(
            "yellow_action_name",
            "next action for yellow packets; needs peak_burst",
            required=False,
        ),
        _action("green_action_name", "next action for conforming packets", required=True),
        _u32("committed_rate", "committed information rate (CIR)", required=True, unit="bit/s"),
        _u32("committed_burst", "committed burst size (CBS)", required=True, unit="bit"),
        _u32("peak_rate", "peak information rate (PIR); makes the meter two-rate", unit="bit/s"),
        _u32(
            "peak_burst",
            "peak burst (PBS, two-rate) or excess burst (EBS, single-rate)",
            unit="bit",
        ),
        ParamSpec(
            "color_aware",
            PARAMS,
            ParamType.BOOLEAN,
            "take the colour already marked in the DSCP into account (color_map)",
            default=False,
        ),
        ParamSpec(
            "color_map",
            PARAMS,
            ParamType.INT_ARRAY,
            "colour of each incoming DSCP in colour-aware mode",
            default=DEFAULT_COLOR_MAP,
            enum=COLOR_NAMES,
            array_size=ARRAY_SIZE,
        ),
    ),
)

TSWTCLMT: Final = ModuleSchema(
    name="tswtclmt",
    description="time sliding window three colour meter (RFC 2859)",
    params=(
        _action("red_action_name", "next action above the peak rate", required=True),
        _action("yellow_action_name", "next action between committed and peak rate", required=True),
        _action("green_action_name", "next action at or below the committed rate", required=True),
        _u32("committed_rate", "committed target rate (CTR)", required=True, unit="bit/s"),
        _u32(
            "peak_rate",
            "peak target rate (PTR); at least committed_rate",
            required=True,
            unit="bit/s",
        ),
        ParamSpec(
            "window",
            PARAMS,
            ParamType.UINT32,
            "averaging window of the rate estimator (at least 1 ms)",
            required=True,
            minimum=0,
            maximum=UINT32_MAX,
            unit="ms",
        ),
    ),
)

DSCPMK: Final = ModuleSchema(
    name="dscpmk",
    description="DSCP marker (RFC 2474): rewrites the DS field, keeping the ECN bits",
    params=(
        _action("next_action", "action after marking", required=True),
        ParamSpec(
            "dscp_map",
            PARAMS,
            ParamType.INT_ARRAY,
            "outgoing DSCP for each incoming DSCP (default: unchanged)",
            default=IDENTITY_DSCP_MAP,
            minimum=0,
            maximum=63,
            array_size=ARRAY_SIZE,
        ),
        ParamSpec(
            "dscp_detailed_stats",
            PARAMS,
            ParamType.BOOLEAN,
            "per-outgoing-DSCP packet counters",
            default=False,
        ),
    ),
)

DLCOSMK: Final = ModuleSchema(
    name="dlcosmk",
    description="802.1D user priority (VLAN PCP) marker",
    params=(
        _action("next_action", "action after marking", required=True),
        ParamSpec(
            "cos",
            PARAMS,
            ParamType.MINDEX,
            "class of service 0..7 (user priority); 1 and 2 map to 0 on illumos",
            required=True,
            minimum=0,
            maximum=len(COS_BBAND_MAP) - 1,
        ),
    ),
)

FLOWACCT: Final = ModuleSchema(
    name="flowacct",
    description="flow accounting: records per-flow packet and byte counts",
    params=(
        _action("next_action", "action after accounting", required=True),
        _u32("timer", "interval between scans of the flow table", unit="ms", default=15000),
        _u32("timeout", "idle time after which a flow is written out", unit="ms", default=60000),
        _u32("max_limit", "maximum number of flow items in the table", required=True),
    ),
)

# Names people write for a parameter that has another name here (for "did you mean" hints);
# `uid` is what ipqosconf.1.sample wrote for `user` (docs/policy.md).
PARAM_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "uid": "user",
        "username": "user",
        "project": "projid",
        "interface": "if_name",
        "ifname": "if_name",
        "dev": "if_name",
        "proto": "protocol",
        "dscp": "dsfield",
        "tos": "dsfield",
        "src": "saddr",
        "dst": "daddr",
        "source": "saddr",
        "destination": "daddr",
        "src_port": "sport",
        "dst_port": "dport",
        "port": "dport",
        "cir": "committed_rate",
        "pir": "peak_rate",
        "cbs": "committed_burst",
        "pbs": "peak_burst",
        "ebs": "peak_burst",
        "colour_map": "color_map",
        "colour_aware": "color_aware",
        "next": "next_action",
        "dlpri": "cos",
        "pcp": "cos",
    }
)

MODULES: Final[Mapping[str, ModuleSchema]] = MappingProxyType(
    {schema.name: schema for schema in (IPGPC, TOKENMT, TSWTCLMT, DSCPMK, DLCOSMK, FLOWACCT)}
)
MODULE_NAMES: Final[tuple[str, ...]] = tuple(MODULES)

# Parameter look-up by name for the built-in schemas (checked per value of a policy file).
_PARAM_INDEX: dict[str, tuple[ModuleSchema, dict[str, ParamSpec], dict[str, ParamSpec]]] = {
    schema.name: (
        schema,
        {spec.name: spec for spec in schema.params},
        {spec.name: spec for spec in schema.filter_params},
    )
    for schema in MODULES.values()
}


def module_schema(module: str) -> ModuleSchema:
    """The schema of ``module``; raises ``KeyError`` for a module diffserv does not know."""
    return MODULES[module]


def lookup_param(module: str, name: str, place: str = PARAMS) -> ParamSpec | None:
    """The spec of parameter ``name`` of ``module`` at ``place``, or None."""
    schema = MODULES.get(module)
    if schema is None:
        return None
    if place == PARAMS and name == GLOBAL_STATS.name:
        return GLOBAL_STATS
    return schema.lookup(name, place)


def is_action_param(module: str, name: str) -> bool:
    """Whether ``name`` in the params of ``module`` refers to another action."""
    spec = lookup_param(module, name, PARAMS)
    return spec is not None and spec.is_action


def action_references(action: Action) -> Iterator[str]:
    """Every action ``action`` refers to: its classes' next_action, then action params."""
    for cls in action.classes:
        yield cls.next_action
    for key, value in action.params:
        if isinstance(value, str) and is_action_param(action.module, key):
            yield value


def param_order(module: str) -> tuple[str, ...]:
    """Canonical order of a module's params (global_stats excluded: it is printed first)."""
    schema = MODULES.get(module)
    return () if schema is None else schema.param_order


def filter_order(module: str) -> tuple[str, ...]:
    """Canonical order of a module's filter selectors (after ``name`` and ``class``)."""
    schema = MODULES.get(module)
    return () if schema is None else schema.filter_order


def param_names(module: str, place: str = PARAMS) -> tuple[str, ...]:
    """Every name valid at ``place`` in ``module`` (for "did you mean" hints)."""
    schema = MODULES.get(module)
    if schema is None:
        return ()
    if place == PARAMS:
        return (GLOBAL_STATS.name, *schema.param_order)
    return schema.filter_order
