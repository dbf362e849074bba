"""Located intermediate structures between the parser and the typed model.

The parser fills them with converted values plus the position of every token, so that
validation can point at the exact place of a problem; ``build`` then turns them into the
immutable ``Policy``.

They are slotted and keep empty collections shared until something is added, because a
large file holds one of each per action, class and filter until checking ends.
"""

from __future__ import annotations

import msgspec

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


_NO_NAMES: frozenset[str] = frozenset()


class RawItem(msgspec.Struct):
    value: SelectorValue
    name_loc: Location
    value_loc: Location


class RawClass(msgspec.Struct):
    location: Location
    name: str | None = None
    next_action: str | None = None
    enable_stats: bool = False
    name_loc: Location | None = None
    next_loc: Location | None = None


class RawFilter(msgspec.Struct):
    location: Location
    name: str | None = None
    class_name: str | None = None
    name_loc: Location | None = None
    class_loc: Location | None = None
    selectors: dict[str, RawItem] = msgspec.field(default_factory=dict)
    broken: bool = False  # a selector did not parse: kernel checks would be guesses
    instances: int = 1  # kernel filters this one becomes (one per resolved host address)


class RawAction(msgspec.Struct):
    location: Location
    name: str | None = None
    module: str | None = None
    name_loc: Location | None = None
    module_loc: Location | None = None
    global_stats: bool = False
    params: dict[str, RawItem] = msgspec.field(default_factory=dict)
    params_loc: Location | None = None
    classes: list[RawClass] = msgspec.field(default_factory=list)
    filters: list[RawFilter] = msgspec.field(default_factory=list)
    broken: bool = False  # the structure did not parse: skip checks that would cascade
    failed_params: frozenset[str] = _NO_NAMES  # params whose value was bad

    def failed(self, name: str) -> None:
        """Note that parameter ``name`` was given but did not parse."""
        if name not in self.failed_params:
            self.failed_params = self.failed_params | {name}

    @property
    def schema(self) -> ModuleSchema | None:
        if self.module is None or self.module not in MODULE_NAMES:
            return None
        return module_schema(self.module)


class ParsedFile(msgspec.Struct):
    fmt_version: str
    actions: list[RawAction]
