"""Located intermediate structures between the parser and the typed model.

The parser fills them with converted values plus the position of every token, so that
validation can point at the exact place of a problem; ``build`` then turns them into the
immutable ``Policy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffserv.policy.model import CONTINUE, DROP, HostName, IPNetwork, Location, ParamValue
from diffserv.policy.schema import MODULE_NAMES, ModuleSchema, module_schema

# A selector value: the converted value, or an unresolved host name (resolved at filter end).
SelectorValue = ParamValue | IPNetwork | HostName


def translate_reference(name: str) -> str:
    """``continue``/``drop`` become ``ipp.continue``/``ipp.drop``; ``defer`` is not translated."""
    if name == "continue":
        return CONTINUE
    if name == "drop":
        return DROP
    return name


@dataclass
class RawItem:
    value: SelectorValue
    name_loc: Location
    value_loc: Location


@dataclass
class RawClass:
    location: Location
    name: str | None = None
    next_action: str | None = None
    enable_stats: bool = False
    name_loc: Location | None = None
    next_loc: Location | None = None


@dataclass
class RawFilter:
    location: Location
    name: str | None = None
    class_name: str | None = None
    name_loc: Location | None = None
    class_loc: Location | None = None
    selectors: dict[str, RawItem] = field(default_factory=dict)
    broken: bool = False  # a selector did not parse: kernel checks would be guesses
    instances: int = 1  # kernel filters this one becomes (one per resolved host address)


@dataclass
class RawAction:
    location: Location
    name: str | None = None
    module: str | None = None
    name_loc: Location | None = None
    module_loc: Location | None = None
    global_stats: bool = False
    params: dict[str, RawItem] = field(default_factory=dict)
    params_loc: Location | None = None
    classes: list[RawClass] = field(default_factory=list)
    filters: list[RawFilter] = field(default_factory=list)
    broken: bool = False  # the structure did not parse: skip checks that would cascade
    failed_params: set[str] = field(default_factory=set)  # params whose value was bad

    @property
    def schema(self) -> ModuleSchema | None:
        if self.module is None or self.module not in MODULE_NAMES:
            return None
        return module_schema(self.module)


@dataclass
class ParsedFile:
    fmt_version: str
    actions: list[RawAction]
