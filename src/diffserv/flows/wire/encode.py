"""IPFIX, NetFlow v9 and NetFlow v5 encoders: flow-store batches in, UDP payloads out.

Sans-I/O: an encoder keeps what a stream of export messages needs (sequence numbers,
the templates it has defined, the action and class names it has announced, when it
last refreshed them) and turns each :class:`~diffserv.flows.schema.FlowBatch` into
whole datagrams; sending them is the exporter's business. Records are packed with
numpy structured arrays, one per template, so no Python object is made per record;
the Python work is per datagram. Element ids and lengths come from :mod:`.elements`.
The decisions (templates, times, sequence numbers, refresh) are in docs/wire.md.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.flows.schema import UNKNOWN, FlowBatch
from diffserv.flows.wire.elements import Element, named

IPFIX_VERSION: Final = 10
NETFLOW9_VERSION: Final = 9
NETFLOW5_VERSION: Final = 5

IPFIX_HEADER: Final = struct.Struct("!HHIII")  # version, length, export time, sequence, domain
V9_HEADER: Final = struct.Struct("!HHIIII")  # version, count, uptime, unix secs, sequence, id
V5_HEADER: Final = struct.Struct("!HHIIIIBBH")
SET_HEADER: Final = struct.Struct("!HH")  # set (flowset) id, length

IPFIX_TEMPLATE_SET: Final = 2
IPFIX_OPTIONS_TEMPLATE_SET: Final = 3
V9_TEMPLATE_FLOWSET: Final = 0
FIRST_DATA_SET: Final = 256  # template ids and data set ids start here (both protocols)

V5_RECORD_BYTES: Final = 48
V5_MAX_RECORDS: Final = 30  # what NetFlow v5 collectors accept in one packet

DEFAULT_REFRESH_DATAGRAMS: Final = 20
DEFAULT_REFRESH_NS: Final = 60 * 1_000_000_000
MIN_PAYLOAD: Final = 508  # an IPv6 datagram in the smallest --mtu (576) still holds a template

BOOT_LEAD_MS: Final = 86_400_000  # v9/v5: the boot is a day before the exporter's start
NO_ID: Final = 0xFFFF  # an action/class id that is not in any record (never sent as data)
MAX_NAME_BYTES: Final = 255  # names travel in the one-byte length form of a string field

_NS_PER_MS: Final = 1_000_000
_MS_PER_S: Final = 1000
_U32: Final = 1 << 32
_U32_MAX: Final = _U32 - 1
_ENTERPRISE_BIT: Final = 0x8000

_V5_DTYPE: Final = np.dtype(
    [
        ("srcaddr", ">u4"),
        ("dstaddr", ">u4"),
        ("nexthop", ">u4"),
        ("input", ">u2"),
        ("output", ">u2"),
        ("dpkts", ">u4"),
        ("doctets", ">u4"),
        ("first", ">u4"),
        ("last", ">u4"),
        ("srcport", ">u2"),
        ("dstport", ">u2"),
        ("pad1", "u1"),
        ("tcp_flags", "u1"),
        ("prot", "u1"),
        ("tos", "u1"),
        ("src_as", ">u2"),
        ("dst_as", ">u2"),
        ("src_mask", "u1"),
        ("dst_mask", "u1"),
        ("pad2", ">u2"),
    ]
)
assert _V5_DTYPE.itemsize == V5_RECORD_BYTES

Columns = dict[str, NDArray[Any]]


# --------------------------------------------------------------------- record fields
class _Optional(msgspec.Struct, frozen=True):
    """Elements a record carries only where their value is known (a template variant).

    An unknown value is never sent as a made-up number: a record whose direction is
    unknown uses a template without flowDirection, and so on.
    """

    elements: tuple[str, ...]
    known: Callable[[Columns], NDArray[np.bool_]]


def _known(name: str) -> Callable[[Columns], NDArray[np.bool_]]:
    def test(columns: Columns) -> NDArray[np.bool_]:
        known: NDArray[np.bool_] = columns[name] >= 0
        return known

    return test


def _only(name: str, unless: str) -> Callable[[Columns], NDArray[np.bool_]]:
    """``name`` is known while ``unless`` (which would carry it already) is not."""

    def test(columns: Columns) -> NDArray[np.bool_]:
        known: NDArray[np.bool_] = (columns[name] >= 0) & (columns[unless] < 0)
        return known

    return test


_IPFIX_OPTIONAL: Final = (
    _Optional(("ipClassOfService", "ipDiffServCodePoint"), _known("ds_in")),
    _Optional(("ipDiffServCodePoint",), _only("dscp_in", "ds_in")),
    _Optional(("postIpClassOfService", "postIpDiffServCodePoint"), _known("ds_out")),
    _Optional(("postIpDiffServCodePoint",), _only("dscp_out", "ds_out")),
    _Optional(("flowDirection",), _known("direction")),
    _Optional(("tcpControlBits",), _known("tcp_flags")),
    _Optional(("ingressInterface",), _known("in_if")),
    _Optional(("egressInterface",), _known("out_if")),
    _Optional(("dot1qVlanId",), _known("vlan")),
    _Optional(("dot1qPriority",), _known("pcp")),
    _Optional(("diffservActionId",), _known("action_code")),
    _Optional(("diffservClassId",), _known("class_code")),
    _Optional(("diffservUserId",), _known("uid")),
    _Optional(("diffservProjectId",), _known("projid")),
)
# NetFlow v9 has no field for a DSCP alone, no enterprise fields, and VLAN as SRC_VLAN
_V9_OPTIONAL: Final = (
    _Optional(("ipClassOfService",), _known("ds_in")),
    _Optional(("postIpClassOfService",), _known("ds_out")),
    _Optional(("flowDirection",), _known("direction")),
    _Optional(("tcpControlBits",), _known("tcp_flags")),
    _Optional(("ingressInterface",), _known("in_if")),
    _Optional(("egressInterface",), _known("out_if")),
    _Optional(("vlanId",), _known("vlan")),
)

_ADDRESSES: Final = {
    4: ("sourceIPv4Address", "destinationIPv4Address"),
    6: ("sourceIPv6Address", "destinationIPv6Address"),
}
_KEY: Final = ("sourceTransportPort", "destinationTransportPort", "protocolIdentifier")
_COUNTERS: Final = ("packetDeltaCount", "octetDeltaCount")
_IPFIX_TIMES: Final = ("flowStartMilliseconds", "flowEndMilliseconds")
_V9_TIMES: Final = ("flowStartSysUpTime", "flowEndSysUpTime")

_UNSIGNED_DTYPES: Final = {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}


class Template(msgspec.Struct, frozen=True):
    """One data template: its id, its elements in record order, the record's dtype."""

    id: int
    ip_version: int
    elements: tuple[Element, ...]
    dtype: Any  # numpy structured dtype of one record, big-endian

    @property
    def record_bytes(self) -> int:
        return int(self.dtype.itemsize)


def _template_dtype(elements: Sequence[Element]) -> Any:
    fields: list[tuple[str, str]] = []
    for e in elements:
        if e.length == 16:  # an IPv6 address: the (hi, lo) halves, high first
            fields += [(f"{e.name}_hi", ">u8"), (f"{e.name}_lo", ">u8")]
        else:
            fields.append((e.name, _UNSIGNED_DTYPES[e.length]))
    return np.dtype(fields)


# --------------------------------------------------------------------- time helpers
def _ms(ns: NDArray[np.int64]) -> NDArray[np.int64]:
    """Whole milliseconds since the epoch (floor), as a record file's text shows them."""
    return np.floor_divide(ns, _NS_PER_MS)


def _export_seconds(last_ns: NDArray[np.int64]) -> int:
    """Header export time: the newest last_seen, rounded up to a whole second.

    Rounding up keeps the export time at or after every record in the datagram, and a
    whole second lets a v9 collector's boot time (unix_secs * 1000 - sysUptime) come out
    to the exact millisecond the exporter used.
    """
    newest = int(last_ns.max())
    return max(0, -(-newest // 1_000_000_000))


# --------------------------------------------------------------------- datagrams
class _Datagram:
    """A message being filled: its sets so far and the room left."""

    def __init__(self, capacity: int, header_bytes: int) -> None:
        self.parts: list[bytes] = []
        self.room = capacity - header_bytes
        self.records = 0  # v9 count: every record of every flowset
        self.data_records = 0  # flow data records
        self.option_records = 0  # options data records (names)
        self.newest: list[int] = []

    def add(self, set_bytes: bytes) -> None:
        self.parts.append(set_bytes)
        self.room -= len(set_bytes)

    @property
    def empty(self) -> bool:
        return not self.parts


class _Announcement(msgspec.Struct, frozen=True):
    """A name that must reach the collector before data that carries its id."""

    template_id: int
    record: bytes


class _TemplateEncoder:
    """What IPFIX and NetFlow v9 share: template variants, refresh, datagram packing."""

    version: int
    header_bytes: int
    optional: tuple[_Optional, ...]
    times: tuple[str, str]
    pad_to: int = 1
    first_template_id: int = FIRST_DATA_SET

    def __init__(
        self,
        *,
        domain: int = 0,
        max_payload: int = 1472,
        refresh_datagrams: int = DEFAULT_REFRESH_DATAGRAMS,
        refresh_ns: int = DEFAULT_REFRESH_NS,
    ) -> None:
        if max_payload < MIN_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is below {MIN_PAYLOAD}")
        if not 0 <= domain < _U32:
            raise ValueError(f"domain {domain} is not a 32-bit number")
        self.domain = domain
        self.max_payload = max_payload
        self.refresh_datagrams = max(1, refresh_datagrams)
        self.refresh_ns = refresh_ns
        self.datagrams = 0  # messages made so far
        self.data_records = 0  # flow records sent so far
        self.option_records = 0  # options data records sent so far
        self.skipped = 0  # records without IP version 4 or 6
        self.templates: dict[tuple[int, int], Template] = {}  # (ip version, mask) -> template
        self._pending: list[Template] = []  # to send before any more data
        self._announce: list[_Announcement] = []
        self._extra_due = True  # sets that go with every sending of the templates
        self._since_refresh = 0
        self._refreshed_ns: int | None = None
        self._clock_ns: int | None = None  # the newest record time handed over

    # -- what a subclass says about its protocol
    def _header(self, dg: _Datagram, length: int) -> bytes:
        raise NotImplementedError

    def _template_sets(self, templates: Sequence[Template]) -> list[bytes]:
        raise NotImplementedError

    def _field_values(self, name: str, columns: Columns, ip_version: int) -> NDArray[Any]:
        raise NotImplementedError

    def _extra_sets(self) -> list[bytes]:
        """Sets sent before the templates, at the start and at every refresh."""
        return []

    def _names(self, batch: FlowBatch) -> Columns:
        """Columns to encode: the batch's, with ids rewritten where the protocol needs it."""
        return batch.columns

    def _names_due(self) -> list[_Announcement]:
        return []

    # -- templates
    def _template(self, ip_version: int, mask: int) -> Template:
        key = (ip_version, mask)
        template = self.templates.get(key)
        if template is None:
            names: list[str] = list(_ADDRESSES[ip_version]) + list(_KEY)
            for bit, optional in enumerate(self.optional):
                if mask >> bit & 1:
                    names += [n for n in optional.elements if n not in names]
            names += list(_COUNTERS) + list(self.times)
            elements = tuple(named(n) for n in names)
            template_id = self.first_template_id + len(self.templates)
            template = Template(template_id, ip_version, elements, _template_dtype(elements))
            self.templates[key] = template
            self._pending.append(template)
        return template

    def _masks(self, columns: Columns, n: int) -> NDArray[np.int64]:
        mask = np.zeros(n, np.int64)
        for bit, optional in enumerate(self.optional):
            mask |= optional.known(columns).astype(np.int64) << bit
        return mask

    # -- the stream
    def encode(self, batch: FlowBatch) -> list[bytes]:
        """The datagrams that carry ``batch`` (templates and names first where due)."""
        if batch.n == 0:
            return []
        columns = self._names(batch)
        versions = columns["ip_version"].astype(np.int64)
        ip = np.isin(versions, (4, 6))
        if not ip.all():  # a store row without an IP version has no address to send
            self.skipped += int(batch.n - np.count_nonzero(ip))
            columns = {name: array[ip] for name, array in columns.items()}
            versions = versions[ip]
            if not versions.size:
                return []
        newest = int(columns["last_ns"].max())
        self._clock_ns = newest if self._clock_ns is None else max(self._clock_ns, newest)
        key = versions << 32 | self._masks(columns, int(versions.size))
        groups: list[tuple[Template, bytes, NDArray[np.int64]]] = []
        for value in np.unique(key).tolist():
            rows = np.flatnonzero(key == value)
            template = self._template(value >> 32, value & _U32_MAX)
            picked = {name: array[rows] for name, array in columns.items()}
            groups.append((template, self._pack(template, picked), picked["last_ns"]))
        out: list[bytes] = []
        dg: _Datagram | None = None
        for template, raw, last_ns in groups:
            size = template.record_bytes
            n = len(raw) // size
            done = 0
            while done < n:
                if dg is None:
                    dg = self._open()
                if not self._flush_announcements(dg):
                    if dg.empty:
                        raise AssertionError("a template or name fits no datagram")
                    out.append(self._close(dg))
                    dg = None
                    continue
                take = min(n - done, self._fitting(dg.room, size))
                if take <= 0:
                    if dg.empty:
                        raise AssertionError("a record fits no datagram")
                    out.append(self._close(dg))
                    dg = None
                    continue
                body = raw[done * size : (done + take) * size]
                dg.add(self._set(template.id, body, size))
                dg.records += take
                dg.data_records += take
                dg.newest.append(int(last_ns[done : done + take].max()))
                done += take
        if dg is not None:
            out.append(self._close(dg))
        return out

    def _fitting(self, room: int, size: int) -> int:
        """How many records of ``size`` bytes one more data set in ``room`` bytes holds."""
        fit = max(0, (room - SET_HEADER.size) // size)
        while fit and SET_HEADER.size + fit * size + self._padding(fit, size) > room:
            fit -= 1
        return fit

    def _open(self) -> _Datagram:
        """A new datagram; a template refresh starts here when one is due.

        A refresh that needs more than one datagram (many template variants) is not
        started again while its templates are still going out.
        """
        dg = _Datagram(self.max_payload, self.header_bytes)
        if self._refreshed_ns is None:
            self._refreshed_ns = self._clock_ns
        due = self._since_refresh >= self.refresh_datagrams or (
            self._refreshed_ns is not None
            and self._clock_ns is not None
            and self._clock_ns - self._refreshed_ns >= self.refresh_ns
        )
        if due and self.templates and not self._pending:
            self._extra_due = True
            self._pending = sorted(self.templates.values(), key=lambda t: t.id)
            self._announce = self._names_due()
            self._since_refresh = 0
            self._refreshed_ns = self._clock_ns
        return dg

    def _flush_announcements(self, dg: _Datagram) -> bool:
        """Put pending templates and names into ``dg``; True once none is left over.

        Templates go first, then the names, so that a collector knows every template
        and every id before the first data record that uses it.
        """
        if self._extra_due and self._pending:
            extra = self._extra_sets()
            size = sum(len(part) for part in extra)
            if size > dg.room:
                return False
            for part in extra:
                dg.add(part)
            self._extra_due = False
        if self._pending:
            fitting: list[Template] = []
            for template in self._pending:
                if self._sets_bytes([*fitting, template]) > dg.room:
                    break
                fitting.append(template)
            if fitting:
                for part in self._template_sets(fitting):
                    dg.add(part)
                dg.records += len(fitting)
                self._pending = self._pending[len(fitting) :]
            if self._pending:
                return False
        while self._announce:
            set_id = self._announce[0].template_id
            used, k = SET_HEADER.size, 0
            while (
                k < len(self._announce)
                and self._announce[k].template_id == set_id
                and used + len(self._announce[k].record) <= dg.room
            ):
                used += len(self._announce[k].record)
                k += 1
            if not k:
                return False
            records = [a.record for a in self._announce[:k]]
            dg.add(SET_HEADER.pack(set_id, used) + b"".join(records))
            dg.records += k
            dg.option_records += k
            self._announce = self._announce[k:]
        return True

    def _sets_bytes(self, templates: Sequence[Template]) -> int:
        return sum(len(part) for part in self._template_sets(templates))

    def _padding(self, count: int, size: int) -> int:
        body = SET_HEADER.size + count * size
        return -body % self.pad_to

    def _set(self, set_id: int, body: bytes, size: int) -> bytes:
        pad = self._padding(len(body) // size, size)
        return SET_HEADER.pack(set_id, SET_HEADER.size + len(body) + pad) + body + bytes(pad)

    def _close(self, dg: _Datagram) -> bytes:
        payload = b"".join(dg.parts)
        header = self._header(dg, self.header_bytes + len(payload))
        self.datagrams += 1
        self._since_refresh += 1
        self.data_records += dg.data_records
        self.option_records += dg.option_records
        return header + payload

    def _export_seconds(self, dg: _Datagram) -> int:
        if dg.newest:
            return _export_seconds(np.array(dg.newest, np.int64))
        return _export_seconds(np.array([self._clock_ns or 0], np.int64))

    # -- records
    def _pack(self, template: Template, columns: Columns) -> bytes:
        n = int(columns["last_ns"].shape[0])
        records = np.zeros(n, template.dtype)
        for e in template.elements:
            if e.length == 16:
                hi, lo = self._field_values(e.name, columns, template.ip_version)
                records[f"{e.name}_hi"] = hi
                records[f"{e.name}_lo"] = lo
            else:
                records[e.name] = self._field_values(e.name, columns, template.ip_version)
        return records.tobytes()


def _column_values(name: str, columns: Columns) -> NDArray[Any]:
    """The value of a plain element for each record (unsigned, in range for its length)."""
    element = named(name)
    if name.endswith("IPv4Address"):
        side = "saddr" if name.startswith("source") else "daddr"
        return columns[f"{side}_lo"] & np.uint64(_U32_MAX)
    if name == "ipDiffServCodePoint":
        return np.where(columns["ds_in"] >= 0, columns["ds_in"] >> 2, columns["dscp_in"])
    if name == "postIpDiffServCodePoint":
        return np.where(columns["ds_out"] >= 0, columns["ds_out"] >> 2, columns["dscp_out"])
    column = element.column
    assert column is not None, name
    values = columns[column]
    if values.dtype.kind == "i":
        values = np.maximum(values, 0)  # only known values reach here; keep numpy unsigned
    return values


def _address_halves(name: str, columns: Columns) -> tuple[NDArray[Any], NDArray[Any]]:
    side = "saddr" if name.startswith("source") else "daddr"
    return columns[f"{side}_hi"], columns[f"{side}_lo"]


# --------------------------------------------------------------------- IPFIX
def _field_specifier(e: Element) -> bytes:
    if e.enterprise:
        return struct.pack("!HHI", e.id | _ENTERPRISE_BIT, e.length, e.enterprise)
    return struct.pack("!HH", e.id, e.length)


class _Names:
    """Names (actions, classes) as small ids, stable for the exporter's lifetime."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def map(self, names: tuple[str, ...], codes: NDArray[Any]) -> tuple[NDArray[Any], list[str]]:
        """Global ids for a batch's local codes (-1 stays unknown) and the new names."""
        new = []
        for name in names:
            if name not in self.ids:
                if len(self.ids) >= NO_ID:
                    raise ValueError("more than 65535 distinct names in one export")
                self.ids[name] = len(self.ids)
                new.append(name)
        table = np.array([self.ids[name] for name in names] + [UNKNOWN], np.int64)
        codes64 = codes.astype(np.int64)
        valid = (codes64 >= 0) & (codes64 < len(names))
        return np.where(valid, table[np.where(valid, codes64, len(names))], UNKNOWN), new


def _string_field(text: str) -> bytes:
    """A variable-length string field: one length byte, at most 255 bytes of UTF-8."""
    data = text.encode("utf-8", "surrogateescape")[:MAX_NAME_BYTES]
    data = data.decode("utf-8", "ignore").encode("utf-8")  # never cut a character in two
    return bytes([len(data)]) + data


class IpfixEncoder(_TemplateEncoder):
    """IPFIX messages (RFC 7011): absolute ms times, diffserv's enterprise elements.

    The sequence number of a message is the number of Data Records (flow records and
    the options records naming actions and classes) sent before it, modulo 2**32.
    """

    version = IPFIX_VERSION
    header_bytes = IPFIX_HEADER.size
    optional = _IPFIX_OPTIONAL
    times = _IPFIX_TIMES

    first_template_id = FIRST_DATA_SET + 2  # after the two options templates

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._actions = _Names()
        self._classes = _Names()
        self.action_names_template = FIRST_DATA_SET
        self.class_names_template = FIRST_DATA_SET + 1

    def _extra_sets(self) -> list[bytes]:
        """The options templates of the names, sent with every sending of the templates."""
        body = b""
        for template_id, scope, field in (
            (self.action_names_template, "diffservActionId", "diffservActionName"),
            (self.class_names_template, "diffservClassId", "diffservClassName"),
        ):
            body += struct.pack("!HHH", template_id, 2, 1)
            body += _field_specifier(named(scope)) + _field_specifier(named(field))
        return [SET_HEADER.pack(IPFIX_OPTIONS_TEMPLATE_SET, SET_HEADER.size + len(body)) + body]

    def _template_sets(self, templates: Sequence[Template]) -> list[bytes]:
        body = b""
        for t in templates:
            body += struct.pack("!HH", t.id, len(t.elements))
            body += b"".join(_field_specifier(e) for e in t.elements)
        return [SET_HEADER.pack(IPFIX_TEMPLATE_SET, SET_HEADER.size + len(body)) + body]

    def _names(self, batch: FlowBatch) -> Columns:
        columns = dict(batch.columns)
        for names, codes, registry, template_id in (
            (batch.actions, "action_code", self._actions, self.action_names_template),
            (batch.classes, "class_code", self._classes, self.class_names_template),
        ):
            ids, new = registry.map(names, columns[codes])
            columns[codes] = ids
            self._announce += [self._announcement(template_id, registry, n) for n in new]
        return columns

    def _announcement(self, template_id: int, registry: _Names, name: str) -> _Announcement:
        return _Announcement(
            template_id, struct.pack("!H", registry.ids[name]) + _string_field(name)
        )

    def _names_due(self) -> list[_Announcement]:
        out = []
        for registry, template_id in (
            (self._actions, self.action_names_template),
            (self._classes, self.class_names_template),
        ):
            out += [self._announcement(template_id, registry, n) for n in registry.ids]
        return out

    def _header(self, dg: _Datagram, length: int) -> bytes:
        sequence = (self.data_records + self.option_records) % _U32
        return IPFIX_HEADER.pack(
            IPFIX_VERSION, length, self._export_seconds(dg) % _U32, sequence, self.domain
        )

    def _field_values(self, name: str, columns: Columns, ip_version: int) -> Any:
        if ip_version == 6 and name.endswith("IPv6Address"):
            return _address_halves(name, columns)
        if name == "flowStartMilliseconds":
            return np.maximum(_ms(columns["first_ns"]), 0)
        if name == "flowEndMilliseconds":
            return np.maximum(_ms(columns["last_ns"]), 0)
        return _column_values(name, columns)


# --------------------------------------------------------------------- NetFlow v9
class _Uptime:
    """sysUptime arithmetic: milliseconds since the exporter's boot, modulo 2**32.

    The boot is :data:`BOOT_LEAD_MS` before the exporter's start (the earliest record
    time it knows when it begins): a collector adds First/Last to the boot it derives
    from the header, so a record that began before the boot would come out 49.7 days
    late; the lead covers flows that began before the first records handed over.
    """

    def __init__(self, start_ns: int | None) -> None:
        self.boot_ms: int | None = None
        if start_ns is not None:
            self.boot_ms = start_ns // _NS_PER_MS - BOOT_LEAD_MS

    def start(self, first_ns: NDArray[np.int64]) -> int:
        if self.boot_ms is None:
            self.boot_ms = int(first_ns.min()) // _NS_PER_MS - BOOT_LEAD_MS
        return self.boot_ms

    def relative(self, ns: NDArray[np.int64]) -> NDArray[np.int64]:
        assert self.boot_ms is not None
        return (_ms(ns) - self.boot_ms) % _U32


class Netflow9Encoder(_TemplateEncoder):
    """NetFlow v9 packets (RFC 3954): sysUptime-relative times, no enterprise fields.

    ``start_ns`` is the exporter's start (default: the earliest first_seen of the first
    batch); its boot is a day before, and the header's sysUptime the export time minus
    the boot. The sequence number is
    the number of packets sent before this one.
    """

    version = NETFLOW9_VERSION
    header_bytes = V9_HEADER.size
    optional = _V9_OPTIONAL
    times = _V9_TIMES
    pad_to = 4

    def __init__(self, *, start_ns: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.uptime = _Uptime(start_ns)

    def encode(self, batch: FlowBatch) -> list[bytes]:
        if batch.n:
            self.uptime.start(batch.columns["first_ns"])
        return super().encode(batch)

    def _template_sets(self, templates: Sequence[Template]) -> list[bytes]:
        body = b""
        for t in templates:
            body += struct.pack("!HH", t.id, len(t.elements))
            body += b"".join(struct.pack("!HH", e.id, e.length) for e in t.elements)
        return [SET_HEADER.pack(V9_TEMPLATE_FLOWSET, SET_HEADER.size + len(body)) + body]

    def _header(self, dg: _Datagram, length: int) -> bytes:
        seconds = self._export_seconds(dg)
        boot = self.uptime.boot_ms or 0
        uptime = (seconds * _MS_PER_S - boot) % _U32
        return V9_HEADER.pack(
            NETFLOW9_VERSION,
            dg.records,
            uptime,
            seconds % _U32,
            self.datagrams % _U32,
            self.domain,
        )

    def _field_values(self, name: str, columns: Columns, ip_version: int) -> Any:
        if ip_version == 6 and name.endswith("IPv6Address"):
            return _address_halves(name, columns)
        if name == "flowStartSysUpTime":
            return self.uptime.relative(columns["first_ns"])
        if name == "flowEndSysUpTime":
            return self.uptime.relative(columns["last_ns"])
        return _column_values(name, columns)


# --------------------------------------------------------------------- NetFlow v5
class Netflow5Encoder:
    """NetFlow v5 packets: 48-byte IPv4 records, tos = the whole DS byte.

    IPv6 records have no place in v5: they are skipped and counted in ``skipped_ipv6``.
    Counters above 2**32 - 1 are sent as 2**32 - 1 and counted in ``saturated``.
    ``domain`` is engine_type << 8 | engine_id. The sequence number is the number of
    flows sent before the packet.
    """

    def __init__(
        self, *, domain: int = 0, max_payload: int = 1472, start_ns: int | None = None
    ) -> None:
        if not 0 <= domain <= 0xFFFF:
            raise ValueError(f"domain {domain} is not engine_type << 8 | engine_id")
        self.domain = domain
        self.per_datagram = min(V5_MAX_RECORDS, (max_payload - V5_HEADER.size) // V5_RECORD_BYTES)
        if self.per_datagram < 1:
            raise ValueError(f"max_payload {max_payload} holds no v5 record")
        self.uptime = _Uptime(start_ns)
        self.datagrams = 0
        self.data_records = 0
        self.skipped_ipv6 = 0
        self.skipped = 0  # records without IP version 4 or 6
        self.saturated = 0

    def encode(self, batch: FlowBatch) -> list[bytes]:
        columns = batch.columns
        v4 = columns["ip_version"] == 4
        self.skipped_ipv6 += int(np.count_nonzero(columns["ip_version"] == 6))
        self.skipped += int(batch.n - np.count_nonzero(v4 | (columns["ip_version"] == 6)))
        if not v4.any():
            return []
        c = {name: array[v4] for name, array in columns.items()}
        n = int(c["first_ns"].shape[0])
        self.uptime.start(c["first_ns"])
        records = np.zeros(n, _V5_DTYPE)
        records["srcaddr"] = c["saddr_lo"] & np.uint64(_U32_MAX)
        records["dstaddr"] = c["daddr_lo"] & np.uint64(_U32_MAX)
        for field, column in (("input", "in_if"), ("output", "out_if")):
            records[field] = np.clip(c[column], 0, 0xFFFF)
        for field, column in (("dpkts", "packets"), ("doctets", "bytes")):
            values = c[column]
            over = values > np.uint64(_U32_MAX)
            self.saturated += int(np.count_nonzero(over))
            records[field] = np.where(over, np.uint64(_U32_MAX), values)
        records["first"] = self.uptime.relative(c["first_ns"])
        records["last"] = self.uptime.relative(c["last_ns"])
        records["srcport"] = c["sport"]
        records["dstport"] = c["dport"]
        records["tcp_flags"] = np.clip(c["tcp_flags"], 0, 0xFF)
        records["prot"] = c["protocol"]
        records["tos"] = np.clip(c["ds_in"], 0, 0xFF)  # unknown: 0, v5 has no other way
        raw = records.tobytes()
        out = []
        for start in range(0, n, self.per_datagram):
            stop = min(n, start + self.per_datagram)
            seconds = _export_seconds(c["last_ns"][start:stop])
            boot = self.uptime.boot_ms or 0
            header = V5_HEADER.pack(
                NETFLOW5_VERSION,
                stop - start,
                (seconds * _MS_PER_S - boot) % _U32,
                seconds % _U32,
                0,
                self.data_records % _U32,
                self.domain >> 8,
                self.domain & 0xFF,
                0,
            )
            out.append(header + raw[start * V5_RECORD_BYTES : stop * V5_RECORD_BYTES])
            self.datagrams += 1
            self.data_records += stop - start
        return out


Encoder = IpfixEncoder | Netflow9Encoder | Netflow5Encoder


def encoder_for(
    kind: str,
    *,
    domain: int = 0,
    max_payload: int = 1472,
    start_ns: int | None = None,
    refresh_datagrams: int = DEFAULT_REFRESH_DATAGRAMS,
    refresh_ns: int = DEFAULT_REFRESH_NS,
) -> Encoder:
    """The encoder of ``kind`` ("ipfix", "netflow9", "netflow5")."""
    if kind == "ipfix":
        return IpfixEncoder(
            domain=domain,
            max_payload=max_payload,
            refresh_datagrams=refresh_datagrams,
            refresh_ns=refresh_ns,
        )
    if kind == "netflow9":
        return Netflow9Encoder(
            start_ns=start_ns,
            domain=domain,
            max_payload=max_payload,
            refresh_datagrams=refresh_datagrams,
            refresh_ns=refresh_ns,
        )
    if kind == "netflow5":
        return Netflow5Encoder(domain=domain, max_payload=max_payload, start_ns=start_ns)
    raise ValueError(f"unknown export format {kind!r}")
