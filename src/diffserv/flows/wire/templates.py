"""Template memory of the NetFlow v9 / IPFIX decoder: parsing template records and keeping them.

A data record means nothing without its template, and templates come from the network,
so this module parses them defensively (every count and length checked against the set
it sits in) and keeps them under two bounds: a per-exporter limit and a total, so a
template flood costs a fixed amount of memory and is counted instead of remembered.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from diffserv.flows.wire.elements import VARIABLE_LENGTH, element

# One template field: (enterprise, element id, length). NetFlow v9 option *scope* fields
# are not information elements (their type 1 is "System", not octetDeltaCount): they get
# the enterprise SCOPE_V9 so that no lookup in the element table can ever match them.
Field = tuple[int, int, int]
SCOPE_V9: Final = -1

# Template ids of IPFIX (RFC 7011 §3.4.1) and NetFlow v9 (RFC 3954 §5.2).
IPFIX_TEMPLATE_SET: Final = 2
IPFIX_OPTIONS_SET: Final = 3
V9_TEMPLATE_SET: Final = 0
V9_OPTIONS_SET: Final = 1
MIN_DATA_SET: Final = 256
ENTERPRISE_BIT: Final = 0x8000

_HH: Final = struct.Struct("!HH")
_HHH: Final = struct.Struct("!HHH")
_I: Final = struct.Struct("!I")


class Template(msgspec.Struct, frozen=True):
    """One (options) template as received: its fields in record order.

    ``min_length`` is the shortest possible record (a variable-length field counts one
    byte, its length octet); for a template without variable-length fields it is the
    record length. ``scope_count`` is the number of leading scope fields (options
    templates only).
    """

    template_id: int
    fields: tuple[Field, ...]
    options: bool = False
    scope_count: int = 0
    min_length: int = 0
    variable: bool = False
    skipped_enterprise: int = 0  # enterprise fields the element table does not know
    fixed: Template | None = None  # variable-length templates: the fields kept per record

    @property
    def record_length(self) -> int:
        return self.min_length


def make_template(
    template_id: int, fields: tuple[Field, ...], *, options: bool = False, scope_count: int = 0
) -> Template:
    """A template with its derived lengths (the one way a Template is built)."""
    variable = any(length == VARIABLE_LENGTH for _, _, length in fields)
    min_length = sum(1 if length == VARIABLE_LENGTH else length for _, _, length in fields)
    skipped = sum(1 for e, i, _ in fields if e not in (0, SCOPE_V9) and element(e, i) is None)
    fixed = None
    if variable:
        kept = tuple(f for f in fields if f[2] != VARIABLE_LENGTH)
        fixed = make_template(template_id, kept)
    return Template(template_id, fields, options, scope_count, min_length, variable, skipped, fixed)


class Withdrawal(msgspec.Struct, frozen=True):
    """An IPFIX template withdrawal: one id, or every (options) template of the domain."""

    template_id: int
    every: bool  # template id 2 (templates) or 3 (options templates) with field count 0
    options: bool


class TemplateError(msgspec.Struct, frozen=True):
    """A template record that cannot be used; ``fatal`` means the rest of the set is lost."""

    message: str
    fatal: bool


Parsed = Template | Withdrawal | TemplateError


def _check(template: Template, where: str, *, ipfix: bool) -> TemplateError | None:
    """Why a structurally complete template is refused (None: it is fine)."""
    if template.template_id < MIN_DATA_SET:
        return TemplateError(f"{where}: template id {template.template_id} is below 256", False)
    for _, element_id, length in template.fields:
        if length == 0:
            return TemplateError(f"{where}: field {element_id} has length 0", False)
        if length == VARIABLE_LENGTH and not ipfix:
            return TemplateError(f"{where}: field {element_id} has length 65535", False)
    if template.options and ipfix and template.scope_count == 0:
        return TemplateError(f"{where}: options template has no scope field", False)
    if template.scope_count > len(template.fields):
        return TemplateError(f"{where}: scope count {template.scope_count} exceeds fields", False)
    return None


def parse_ipfix_set(data: bytes, start: int, end: int, *, options: bool) -> list[Parsed]:
    """The template records of an IPFIX (options) template set ``data[start:end]``.

    Fewer than four bytes left, or a record of zeros (template id 0), is padding.
    """
    out: list[Parsed] = []
    off = start
    kind = "options template" if options else "template"
    while end - off >= 4:
        template_id, count = _HH.unpack_from(data, off)
        where = f"{kind} {template_id} at offset {off}"
        if template_id == 0:
            break  # padding
        if count == 0:
            every = template_id == (IPFIX_OPTIONS_SET if options else IPFIX_TEMPLATE_SET)
            if not every and template_id < MIN_DATA_SET:
                out.append(TemplateError(f"{where}: withdrawal of reserved id", False))
            else:
                out.append(Withdrawal(template_id, every, options))
            off += 4
            continue
        scope = 0
        pos = off + 4
        if options:
            if end - off < 6:
                out.append(TemplateError(f"{where}: no scope field count", True))
                break
            scope = _HHH.unpack_from(data, off)[2]
            pos = off + 6
        fields: list[Field] = []
        for _ in range(count):
            if end - pos < 4:
                out.append(TemplateError(f"{where}: field count {count} too big for the set", True))
                return out
            element_id, length = _HH.unpack_from(data, pos)
            pos += 4
            enterprise = 0
            if element_id & ENTERPRISE_BIT:
                if end - pos < 4:
                    message = f"{where}: field count {count} too big for the set"
                    out.append(TemplateError(message, True))
                    return out
                enterprise = _I.unpack_from(data, pos)[0]
                element_id &= ~ENTERPRISE_BIT
                pos += 4
            fields.append((enterprise, element_id, length))
        off = pos
        template = make_template(template_id, tuple(fields), options=options, scope_count=scope)
        out.append(_check(template, where, ipfix=True) or template)
    return out


def parse_v9_set(data: bytes, start: int, end: int, *, options: bool) -> list[Parsed]:
    """The template records of a NetFlow v9 template (0) or options template (1) flowset."""
    out: list[Parsed] = []
    off = start
    while end - off >= 4:
        template_id, count = _HH.unpack_from(data, off)
        if template_id == 0:
            break  # padding
        if options:
            where = f"options template {template_id} at offset {off}"
            if end - off < 6:
                out.append(TemplateError(f"{where}: no option length", True))
                break
            scope_bytes, option_bytes = _HH.unpack_from(data, off + 2)
            if scope_bytes % 4 or option_bytes % 4:
                message = f"{where}: scope/option lengths {scope_bytes}/{option_bytes} not x4"
                out.append(TemplateError(message, True))
                break
            scope, count, pos = scope_bytes // 4, (scope_bytes + option_bytes) // 4, off + 6
        else:
            where = f"template {template_id} at offset {off}"
            scope, pos = 0, off + 4
        if count == 0:
            out.append(TemplateError(f"{where}: no fields", False))
            off = pos
            continue
        if end - pos < 4 * count:
            out.append(TemplateError(f"{where}: field count {count} too big for the flowset", True))
            break
        fields: list[Field] = []
        for i in range(count):
            element_id, length = _HH.unpack_from(data, pos + 4 * i)
            fields.append((SCOPE_V9 if i < scope else 0, element_id, length))
        off = pos + 4 * count
        template = make_template(template_id, tuple(fields), options=options, scope_count=scope)
        out.append(_check(template, where, ipfix=False) or template)
    return out


# The key of a template inside one exporter's memory: (version, domain, template id).
TemplateKey = tuple[int, int, int]


class TemplateStore:
    """The templates of every exporter, bounded per exporter and in total.

    An exporter is the collector-side key "ADDR:PORT"; a template is replaced by a newer
    one with the same key (refresh) without counting against the bounds twice.
    """

    def __init__(self, *, per_exporter: int, total: int) -> None:
        self.per_exporter = per_exporter
        self.total_limit = total
        self.total = 0
        self._by_exporter: dict[str, dict[TemplateKey, Template]] = {}

    def table(self, exporter: str) -> dict[TemplateKey, Template]:
        """The live templates of ``exporter`` (the decoder reads this dict directly)."""
        found = self._by_exporter.get(exporter)
        if found is None:
            found = self._by_exporter[exporter] = {}
        return found

    def add(self, exporter: str, key: TemplateKey, template: Template) -> bool:
        """Keep ``template`` under ``key``; False (refused) when a bound is reached."""
        table = self.table(exporter)
        old = table.get(key)
        if old is not None:
            if old != template:
                table[key] = template  # an unchanged refresh keeps the old object
            return True
        if len(table) >= self.per_exporter or self.total >= self.total_limit:
            return False
        table[key] = template
        self.total += 1
        return True

    def forget(self, exporter: str) -> None:
        """Drop every template of ``exporter`` (the decoder forgot the exporter)."""
        table = self._by_exporter.pop(exporter, None)
        if table is not None:
            self.total -= len(table)

    def withdraw(self, exporter: str, version: int, domain: int, withdrawal: Withdrawal) -> int:
        """Forget the withdrawn template(s); how many were live."""
        table = self.table(exporter)
        if not withdrawal.every:
            gone = table.pop((version, domain, withdrawal.template_id), None)
            self.total -= gone is not None
            return int(gone is not None)
        keys = [
            k
            for k, t in table.items()
            if k[0] == version and k[1] == domain and t.options == withdrawal.options
        ]
        for k in keys:
            del table[k]
        self.total -= len(keys)
        return len(keys)


_H: Final = struct.Struct("!H")


def walk(
    data: bytes, pos: int, end: int, fields: tuple[Field, ...]
) -> list[tuple[int, int]] | None:
    """(start, length) of each field of the record at ``pos``; None if it runs past ``end``.

    Variable-length fields (RFC 7011 §7) take one length octet, or 255 and two more.
    """
    spans: list[tuple[int, int]] = []
    for _, _, declared in fields:
        length = declared
        if declared == VARIABLE_LENGTH:
            if pos >= end:
                return None
            length = data[pos]
            pos += 1
            if length == 255:
                if end - pos < 2:
                    return None
                length = _H.unpack_from(data, pos)[0]
                pos += 2
        spans.append((pos, length))
        pos += length
    if pos > end:
        return None
    return spans
