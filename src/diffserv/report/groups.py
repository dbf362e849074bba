"""DSCP groups: named sets of code points that reports show instead of single values.

A group file has one group a line, ``Name = item, item, ...``, where an item is a DSCP
in any spelling diffserv reads (EF, af21, cs5, 46, 0x2e) or an inclusive range of
values ``A-B`` (``AF11-AF13`` is DSCP 10 to 14, so it takes in 11 and 13, which no
standard names). ``#`` starts a comment. A code point belongs to one group at most,
so group shares add up to the total; code points no group lists are in ``Other``.
Without a file the groups are RFC 4594's service classes (as ``diffserv dscp``
names them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import msgspec

from diffserv.codepoints import DSCP_COUNT, parse_dscp
from diffserv.codepoints.tables import SERVICE_CLASSES
from diffserv.errors import InputDataError, UsageError

OTHER: Final = "Other"
_NAME: Final = re.compile(r"[^\s=,#][^=,#]*")


class DscpGroups(msgspec.Struct, frozen=True):
    """``names[i]`` is group i; ``of_dscp[d]`` the group index of DSCP d.

    The last name is always :data:`OTHER`, the group of every code point no line lists.
    """

    names: tuple[str, ...]
    of_dscp: tuple[int, ...]
    origin: str  # the file, or "RFC 4594 service classes"

    def members(self, index: int) -> list[int]:
        return [dscp for dscp, group in enumerate(self.of_dscp) if group == index]

    def index(self, name: str) -> int:
        """The index of group ``name`` (any case); UsageError naming the groups if none."""
        for i, known in enumerate(self.names):
            if known.casefold() == name.strip().casefold():
                return i
        raise UsageError(
            f"no DSCP group {name.strip()!r} in {self.origin} (groups: {', '.join(self.names)})"
        )


def _from_lists(lists: Sequence[tuple[str, Sequence[int]]], origin: str) -> DscpGroups:
    names = [name for name, _ in lists]
    other = len(names)
    of_dscp = [other] * DSCP_COUNT
    for index, (_, members) in enumerate(lists):
        for dscp in members:
            of_dscp[dscp] = index
    return DscpGroups((*names, OTHER), tuple(of_dscp), origin)


def default_groups() -> DscpGroups:
    """RFC 4594's service classes (with VA from RFC 5865 and LE from RFC 8622)."""
    classes: dict[str, list[int]] = {}
    for dscp, name in sorted(SERVICE_CLASSES.items(), key=lambda item: -item[0]):
        classes.setdefault(name, []).append(dscp)
    return _from_lists(list(classes.items()), "RFC 4594 service classes")


def _item(text: str) -> list[int]:
    word = text.strip()
    low, dash, high = word.partition("-")
    if dash and low.strip() and high.strip():
        first, last = parse_dscp(low), parse_dscp(high)
        if first > last:
            raise ValueError(f"range {word} runs backwards ({first} > {last})")
        return list(range(first, last + 1))
    return [parse_dscp(word)]


def parse_groups(text: str, path: str) -> DscpGroups:
    """The groups of a group file's ``text``; InputDataError naming ``path:line``."""
    lists: list[tuple[str, list[int]]] = []
    owner: dict[int, tuple[str, int]] = {}
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        name, equals, items = line.partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise InputDataError(where, "expected `Name = DSCP, DSCP-DSCP, ...`")
        if name.casefold() == OTHER.casefold():
            raise InputDataError(where, f"{OTHER} is the group of every code point not listed")
        if name.casefold() in seen:
            raise InputDataError(
                where, f"group {name} is already defined on line {seen[name.casefold()]}"
            )
        seen[name.casefold()] = number
        members: list[int] = []
        for item in items.split(","):
            if not item.strip():
                raise InputDataError(where, f"group {name}: empty item")
            try:
                values = _item(item)
            except ValueError as exc:
                raise InputDataError(where, f"group {name}: {exc}") from None
            for dscp in values:
                if dscp in owner and owner[dscp][0] != name:
                    other, line_no = owner[dscp]
                    raise InputDataError(
                        where,
                        f"DSCP {dscp} is in group {other} already (line {line_no}); "
                        "a code point belongs to one group",
                    )
                owner[dscp] = (name, number)
                if dscp not in members:
                    members.append(dscp)
        lists.append((name, members))
    if not lists:
        raise InputDataError(path, "no groups (expected lines like `Voice = EF, CS5`)")
    return _from_lists(lists, path)


def load_groups(path: str | None) -> DscpGroups:
    """The groups of the file at ``path``, or the default groups."""
    if path is None:
        return default_groups()
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except UnicodeDecodeError:
        raise InputDataError(path, "not a UTF-8 text file") from None
    except OSError as exc:
        raise UsageError(f"cannot read the group file {path}: {exc.strerror or exc}") from None
    return parse_groups(text, path)
