"""The NetFlow v5 / v9 and IPFIX decoder: datagrams in, FlowBatch columns out, no I/O.

``feed`` reads headers, walks sets (never records) and queues each data set's record
bytes under its template; ``flush`` joins the bytes of each template and decodes all of
its records at once with numpy (:mod:`.columns`). Nothing a datagram holds can make it
raise: every problem is a counter in the exporter's :class:`ExporterStats` and a
one-line ``last_error`` naming the datagram.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.flows.schema import (
    SOURCE_IPFIX,
    SOURCE_NETFLOW5,
    SOURCE_NETFLOW9,
    FlowBatch,
    make_batch,
)
from diffserv.flows.wire.columns import (
    K_ACTION_ID,
    K_CLASS_ID,
    K_SAMPLER_ID,
    K_SELECTOR_ID,
    Header,
    Plan,
    Values,
    code_lookup,
    decode,
    flow_columns,
    record_sampling,
)
from diffserv.flows.wire.elements import VARIABLE_LENGTH, named
from diffserv.flows.wire.options import OptionsContext, read_options
from diffserv.flows.wire.templates import (
    IPFIX_OPTIONS_SET,
    IPFIX_TEMPLATE_SET,
    MIN_DATA_SET,
    V9_OPTIONS_SET,
    V9_TEMPLATE_SET,
    Field,
    Template,
    TemplateError,
    TemplateStore,
    Withdrawal,
    make_template,
    parse_ipfix_set,
    parse_v9_set,
    walk,
)

IPFIX_VERSION: Final = 10
V9_VERSION: Final = 9
V5_VERSION: Final = 5

# version count uptime secs nsecs sequence engine_type engine_id sampling
_V5_HEADER: Final = struct.Struct("!HHIIIIBBH")
_V9_HEADER: Final = struct.Struct("!HHIIII")  # version count uptime secs sequence source_id
_IPFIX_HEADER: Final = struct.Struct("!HHIII")  # version length export_time sequence domain
_SET: Final = struct.Struct("!HH")
_SEQ_MOD: Final = 1 << 32
_SEQ_FORWARD: Final = 1 << 31
_NS: Final = 1_000_000_000
_MAX_PLANS: Final = 4096
V5_RECORD: Final = 48
V5_SAMPLING_MASK: Final = 0x3FFF  # low 14 bits: the interval; the top 2 are the mode

# The fixed NetFlow v5 record (48 bytes) as a template of information elements, so that v5
# goes through the same numpy path as v9 and IPFIX.
_V5_LAYOUT: Final = (
    ("sourceIPv4Address", 4),
    ("destinationIPv4Address", 4),
    ("ipNextHopIPv4Address", 4),
    ("ingressInterface", 2),
    ("egressInterface", 2),
    ("packetDeltaCount", 4),
    ("octetDeltaCount", 4),
    ("flowStartSysUpTime", 4),
    ("flowEndSysUpTime", 4),
    ("sourceTransportPort", 2),
    ("destinationTransportPort", 2),
    ("paddingOctets", 1),
    ("tcpControlBits", 1),
    ("protocolIdentifier", 1),
    ("ipClassOfService", 1),
    ("bgpSourceAsNumber", 2),
    ("bgpDestinationAsNumber", 2),
    ("sourceIPv4PrefixLength", 1),
    ("destinationIPv4PrefixLength", 1),
    ("paddingOctets", 2),
)
V5_TEMPLATE: Final = make_template(
    0, tuple((0, named(name).id, length) for name, length in _V5_LAYOUT)
)


class ExporterStats(msgspec.Struct):
    """Counters of one exporter ("ADDR:PORT"); mutable, updated as datagrams are fed.

    ``templates`` is the number live now; ``no_template`` counts data sets whose template
    is unknown and ``no_template_records`` the records they held where that can be told
    (v9: the header's record count; IPFIX: the next sequence step); ``lost_records``
    counts sequence gaps (NetFlow v9: lost export packets); ``untimed_records`` records
    with no time element, given the export time; ``enterprise_fields`` values of
    unknown enterprise elements skipped.
    """

    datagrams: int = 0
    records: int = 0
    options_records: int = 0
    templates: int = 0
    template_withdrawals: int = 0
    templates_refused: int = 0
    malformed: int = 0
    truncated: int = 0
    unknown_version: int = 0
    no_template: int = 0
    no_template_records: int = 0
    lost_records: int = 0
    enterprise_fields: int = 0
    untimed_records: int = 0
    last_error: str = ""


_COUNTERS: Final = tuple(f for f in ExporterStats.__struct_fields__ if f != "last_error")


class _Exporter:
    """One exporter's state: its counters, templates, sequence streams and options."""

    __slots__ = ("address", "contexts", "key", "stats", "streams", "templates")

    def __init__(self, address: str, key: str, templates: dict[tuple[int, int, int], Template]):
        self.address = address
        self.key = key
        self.stats = ExporterStats()
        self.templates = templates
        # (version, domain) -> [next expected sequence, last step hides template-less records]
        self.streams: dict[tuple[int, int], list[int]] = {}
        self.contexts: dict[tuple[int, int], OptionsContext] = {}

    def context(self, version: int, domain: int) -> OptionsContext:
        found = self.contexts.get((version, domain))
        if found is None:
            found = self.contexts[(version, domain)] = OptionsContext()
        return found


class _Group:
    """The queued data sets of one template under one options context, in arrival order."""

    __slots__ = (
        "address",
        "chunks",
        "counts",
        "ctx",
        "domain",
        "export_ns",
        "order",
        "sampling",
        "source",
        "stats",
        "template",
        "uptime_ms",
    )

    def __init__(
        self, template: Template, ctx: OptionsContext, source: str, exp: _Exporter, domain: int
    ) -> None:
        self.template = template
        self.ctx = ctx
        self.source = source
        self.address = exp.address
        self.stats = exp.stats
        self.domain = domain
        self.chunks: list[bytes | memoryview] = []
        self.counts: list[int] = []
        self.export_ns: list[int] = []
        self.uptime_ms: list[int] = []
        self.sampling: list[int] = []
        self.order: list[int] = []


class _Decoded(msgspec.Struct):
    """One group decoded: its columns and the decoded fields they came from."""

    group: _Group
    columns: dict[str, NDArray[Any]]
    values: Values

    def order(self) -> NDArray[np.int64]:
        """The arrival serial of the data set each record came in."""
        return np.repeat(np.array(self.group.order, np.int64), self.group.counts)


class Decoder:
    """Decodes NetFlow v5, v9 and IPFIX datagrams of any number of exporters.

    ``max_templates_per_exporter`` and ``max_templates`` bound the template memory;
    templates beyond them are refused and counted (``templates_refused``).
    ``max_exporters`` bounds the exporters remembered (counters, templates, sequence
    state): a datagram from a new one beyond it makes the decoder forget the exporter
    heard from least recently, so a flood of datagrams from forged sources costs
    counters, not memory. A forgotten exporter's counters stay in :meth:`stats_total`;
    if it comes back, it starts again like a new one (its templates with the next
    refresh), and ``exporters_forgotten`` counts how often this happened.
    """

    def __init__(
        self,
        *,
        max_templates_per_exporter: int = 1024,
        max_templates: int = 65536,
        max_exporters: int = 4096,
    ):
        self.stats: dict[str, ExporterStats] = {}
        self.exporters_forgotten = 0
        self._max_exporters = max(1, max_exporters)
        self._forgotten = ExporterStats()  # the counters of the exporters forgotten
        self._store = TemplateStore(per_exporter=max_templates_per_exporter, total=max_templates)
        # least recently heard first: each datagram moves its exporter to the end
        self._exporters: OrderedDict[tuple[str, int], _Exporter] = OrderedDict()
        self._pending: dict[tuple[int, int], _Group] = {}
        self._plans: dict[tuple[Field, ...], Plan] = {}
        self._serial = 0
        self._newest_error = ""

    # -- feeding -------------------------------------------------------------------------

    def feed(self, datagram: bytes, exporter: tuple[str, int], arrival_ns: int) -> None:
        """Read one datagram from ``exporter`` (address, port) received at ``arrival_ns``.

        Never raises on bad bytes. What is kept is a view of ``bytes(datagram)``, so a
        caller may reuse its receive buffer. ``arrival_ns`` stands in for the export
        time of a header that says 0.
        """
        exp = self._exporters.get(exporter)
        if exp is None:
            exp = self._new_exporter(exporter)
        else:
            self._exporters.move_to_end(exporter)
        exp.stats.datagrams += 1
        data = bytes(datagram)
        try:
            if len(data) < 2:
                self._error(exp, "truncated", f"{len(data)} bytes, no version number")
                return
            version = (data[0] << 8) | data[1]
            if version == IPFIX_VERSION:
                self._ipfix(exp, data, arrival_ns)
            elif version == V9_VERSION:
                self._v9(exp, data, arrival_ns)
            elif version == V5_VERSION:
                self._v5(exp, data, arrival_ns)
            else:
                self._error(exp, "unknown_version", f"unknown version {version}")
        except Exception as exc:  # a decoder bug must cost one datagram, never the collector
            self._error(exp, "malformed", f"cannot decode ({type(exc).__name__}: {exc})")

    def _new_exporter(self, exporter: tuple[str, int]) -> _Exporter:
        if len(self._exporters) >= self._max_exporters:
            self._forget_oldest()
        address, port = exporter
        key = f"{address}:{port}"
        exp = _Exporter(address, key, self._store.table(key))
        self._exporters[exporter] = exp
        self.stats[key] = exp.stats
        return exp

    def _forget_oldest(self) -> None:
        """Drop the exporter heard from least recently; keep its counters in the total."""
        _, exp = self._exporters.popitem(last=False)
        self._store.forget(exp.key)
        del self.stats[exp.key]
        _add_counters(self._forgotten, exp.stats)
        self._forgotten.templates -= exp.stats.templates  # no longer live
        self.exporters_forgotten += 1

    def _error(self, exp: _Exporter, counter: str, message: str) -> None:
        stats = exp.stats
        setattr(stats, counter, getattr(stats, counter) + 1)
        stats.last_error = f"datagram {stats.datagrams}: {message}"
        self._newest_error = f"{exp.key} {stats.last_error}"

    def _check_sequence(self, exp: _Exporter, stream: tuple[int, int], sequence: int) -> bool:
        """Count a forward jump of the sequence number (the first datagram sets the baseline).

        False for a datagram that falls inside the stream's last counted gap: it was
        reordered on the way (two collector sockets, a multipath route), not lost. Any
        other step backwards is a restart of the exporter, counted as nothing.
        """
        state = exp.streams.get(stream)
        if state is None:
            return True
        gap = (sequence - state[0]) % _SEQ_MOD
        if gap == 0:
            return True
        if gap < _SEQ_FORWARD:
            if state[1]:
                exp.stats.no_template_records += gap
            else:
                exp.stats.lost_records += gap
                state[2:] = [state[0], gap]  # the range a late datagram may still fill
            return True
        return not (sequence - state[2]) % _SEQ_MOD < state[3]

    def _end_sequence(
        self,
        exp: _Exporter,
        stream: tuple[int, int],
        sequence: int,
        step: int,
        unknown: int,
        *,
        in_order: bool,
    ) -> None:
        """Move the stream past this datagram; a late one gives back the gap it fills.

        A reordered datagram never moves the position backwards, so it is not counted as
        lost (the gap its successor opened shrinks by what it brought) and the datagram
        after it does not look like a jump.
        """
        state = exp.streams.get(stream)
        if in_order:
            gap = state[2:] if state is not None else [0, 0]
            exp.streams[stream] = [(sequence + step) % _SEQ_MOD, unknown, *gap]
        elif state is not None:
            credit = min(step, state[3], exp.stats.lost_records)
            exp.stats.lost_records -= credit
            state[3] -= credit

    def _queue(
        self,
        exp: _Exporter,
        template: Template,
        ctx: OptionsContext,
        chunk: bytes | memoryview,
        count: int,
        *,
        source: str,
        domain: int,
        export_ns: int,
        uptime_ms: int,
        sampling: int,
    ) -> None:
        group = self._pending.get((id(template), id(ctx)))
        if group is None:
            group = _Group(template, ctx, source, exp, domain)
            self._pending[(id(template), id(ctx))] = group
        group.chunks.append(chunk)
        group.counts.append(count)
        group.export_ns.append(export_ns)
        group.uptime_ms.append(uptime_ms)
        group.sampling.append(sampling)
        group.order.append(self._serial)
        self._serial += 1

    def _v5(self, exp: _Exporter, data: bytes, arrival_ns: int) -> None:
        size = len(data)
        if size < _V5_HEADER.size:
            self._error(exp, "truncated", f"NetFlow v5 header needs 24 bytes, got {size}")
            return
        _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = (
            _V5_HEADER.unpack_from(data, 0)
        )
        domain = engine_type << 8 | engine_id
        n = count
        if _V5_HEADER.size + V5_RECORD * count > size:
            n = (size - _V5_HEADER.size) // V5_RECORD
            need = _V5_HEADER.size + V5_RECORD * count
            message = f"NetFlow v5 count {count} needs {need} bytes, got {size}"
            self._error(exp, "truncated", message)
        stream = (V5_VERSION, domain)
        in_order = self._check_sequence(exp, stream, sequence)
        self._end_sequence(exp, stream, sequence, count, 0, in_order=in_order)
        export_ns = secs * _NS + nsecs if secs else arrival_ns
        if n:
            chunk = memoryview(data)[_V5_HEADER.size : _V5_HEADER.size + V5_RECORD * n]
            ctx = exp.context(V5_VERSION, domain)
            rate = sampling & V5_SAMPLING_MASK or 1
            self._queue(
                exp,
                V5_TEMPLATE,
                ctx,
                chunk,
                n,
                source=SOURCE_NETFLOW5,
                domain=domain,
                export_ns=export_ns,
                uptime_ms=uptime,
                sampling=rate,
            )
            exp.stats.records += n

    def _v9(self, exp: _Exporter, data: bytes, arrival_ns: int) -> None:
        size = len(data)
        if size < _V9_HEADER.size:
            self._error(exp, "truncated", f"NetFlow v9 header needs 20 bytes, got {size}")
            return
        _, count, uptime, secs, sequence, source_id = _V9_HEADER.unpack_from(data, 0)
        stream = (V9_VERSION, source_id)
        in_order = self._check_sequence(exp, stream, sequence)
        self._end_sequence(exp, stream, sequence, 1, 0, in_order=in_order)
        export_ns = secs * _NS if secs else arrival_ns
        known, unknown = self._sets(
            exp,
            data,
            _V9_HEADER.size,
            size,
            version=V9_VERSION,
            domain=source_id,
            export_ns=export_ns,
            uptime_ms=uptime,
        )
        if unknown:
            exp.stats.no_template_records += max(0, count - known)

    def _ipfix(self, exp: _Exporter, data: bytes, arrival_ns: int) -> None:
        size = len(data)
        if size < _IPFIX_HEADER.size:
            self._error(exp, "truncated", f"IPFIX header needs 16 bytes, got {size}")
            return
        _, length, export_s, sequence, domain = _IPFIX_HEADER.unpack_from(data, 0)
        if length < _IPFIX_HEADER.size:
            self._error(exp, "malformed", f"IPFIX message length {length} is below 16")
            return
        end = length
        if length > size:
            message = f"IPFIX message length {length} exceeds the datagram ({size} bytes)"
            self._error(exp, "truncated", message)
            end = size
        stream = (IPFIX_VERSION, domain)
        in_order = self._check_sequence(exp, stream, sequence)
        export_ns = export_s * _NS if export_s else arrival_ns
        records, unknown = self._sets(
            exp,
            data,
            _IPFIX_HEADER.size,
            end,
            version=IPFIX_VERSION,
            domain=domain,
            export_ns=export_ns,
            uptime_ms=-1,
            cut=end < length,
        )
        self._end_sequence(exp, stream, sequence, records, int(unknown), in_order=in_order)

    def _sets(
        self,
        exp: _Exporter,
        data: bytes,
        off: int,
        end: int,
        *,
        version: int,
        domain: int,
        export_ns: int,
        uptime_ms: int,
        cut: bool = False,
    ) -> tuple[int, bool]:
        """Walk the sets of one message; (records read, any data set without template).

        The records read are data and options data records; for v9 template records
        too (its header counts them all). ``cut``: the message is known to be truncated
        (counted once already), so a set running past its end is no second error.
        """
        ipfix = version == IPFIX_VERSION
        template_set, options_set = (
            (IPFIX_TEMPLATE_SET, IPFIX_OPTIONS_SET) if ipfix else (V9_TEMPLATE_SET, V9_OPTIONS_SET)
        )
        source = SOURCE_IPFIX if ipfix else SOURCE_NETFLOW9
        kind = "set" if ipfix else "flowset"
        templates = exp.templates
        stats = exp.stats
        ctx = exp.context(version, domain)
        records = 0
        unknown = False
        view = memoryview(data)
        pending = self._pending
        while end - off >= 4:
            set_id, set_length = _SET.unpack_from(data, off)
            if set_length < 4:
                message = f"{kind} {set_id} at offset {off}: length {set_length} is below 4"
                self._error(exp, "malformed", message)
                break
            set_end = off + set_length
            if set_end > end:
                if not cut:
                    message = (
                        f"{kind} {set_id} at offset {off}: length {set_length} runs past {end}"
                    )
                    self._error(exp, "truncated", message)
                break
            body = off + 4
            if set_id >= MIN_DATA_SET:
                template = templates.get((version, domain, set_id))
                if template is None:
                    stats.no_template += 1
                    unknown = True
                elif template.options:
                    ctx, n, error = read_options(ctx, data, body, set_end, template)
                    exp.contexts[(version, domain)] = ctx
                    stats.options_records += n
                    records += n
                    if error:
                        self._error(exp, "malformed", f"{kind} {set_id}: {error}")
                elif not template.variable:
                    n = (set_length - 4) // template.min_length
                    if n:
                        # the hot path: _queue inlined (one data set per call)
                        group = pending.get((id(template), id(ctx)))
                        if group is None:
                            group = _Group(template, ctx, source, exp, domain)
                            pending[(id(template), id(ctx))] = group
                        group.chunks.append(view[body : body + n * template.min_length])
                        group.counts.append(n)
                        group.export_ns.append(export_ns)
                        group.uptime_ms.append(uptime_ms)
                        group.sampling.append(-1)
                        group.order.append(self._serial)
                        self._serial += 1
                        stats.records += n
                        stats.enterprise_fields += n * template.skipped_enterprise
                        records += n
                else:
                    n = self._variable(
                        exp,
                        data,
                        (body, set_end),
                        template,
                        ctx,
                        domain=domain,
                        export_ns=export_ns,
                    )
                    stats.records += n
                    stats.enterprise_fields += n * template.skipped_enterprise
                    records += n
            elif set_id in (template_set, options_set):
                options = set_id == options_set
                parse = parse_ipfix_set if ipfix else parse_v9_set
                parsed = parse(data, body, set_end, options=options)
                if not ipfix:
                    records += sum(1 for p in parsed if isinstance(p, Template))
                self._templates(exp, parsed, version, domain)
            else:
                self._error(exp, "malformed", f"{kind} id {set_id} at offset {off} is reserved")
            off = set_end
        return records, unknown

    def _templates(self, exp: _Exporter, parsed: list[Any], version: int, domain: int) -> None:
        stats = exp.stats
        for item in parsed:
            if isinstance(item, Template):
                if not self._store.add(exp.key, (version, domain, item.template_id), item):
                    stats.templates_refused += 1
                    message = f"template {item.template_id} refused: template memory is full"
                    stats.last_error = f"datagram {stats.datagrams}: {message}"
                    self._newest_error = f"{exp.key} {stats.last_error}"
            elif isinstance(item, Withdrawal):
                stats.template_withdrawals += 1
                self._store.withdraw(exp.key, version, domain, item)
            elif isinstance(item, TemplateError):
                self._error(exp, "malformed", item.message)
        stats.templates = len(exp.templates)

    def _variable(
        self,
        exp: _Exporter,
        data: bytes,
        span: tuple[int, int],
        template: Template,
        ctx: OptionsContext,
        *,
        domain: int,
        export_ns: int,
    ) -> int:
        """Records of a template with variable-length fields: walked one by one (the slow
        path), their fixed fields copied out so the numpy path can decode them."""
        off, end = span
        fixed = template.fixed
        assert fixed is not None
        keep = [i for i, f in enumerate(template.fields) if f[2] != VARIABLE_LENGTH]
        out = bytearray()
        n = 0
        while end - off >= template.min_length:
            spans = walk(data, off, end, template.fields)
            if spans is None:
                message = f"set {template.template_id}: record at offset {off} runs past the set"
                self._error(exp, "malformed", message)
                break
            for i in keep:
                at, length = spans[i]
                out += data[at : at + length]
            n += 1
            off = spans[-1][0] + spans[-1][1]
        if n:
            self._queue(
                exp,
                fixed,
                ctx,
                bytes(out),
                n,
                source=SOURCE_IPFIX,
                domain=domain,
                export_ns=export_ns,
                uptime_ms=-1,
                sampling=-1,
            )
        return n

    # -- flushing ------------------------------------------------------------------------

    def flush(self) -> list[FlowBatch]:
        """Decode everything fed since the last flush: one batch per (source, exporter
        address, domain), records in arrival order."""
        pending, self._pending = self._pending, {}
        by_batch: dict[tuple[str, str, int], list[_Group]] = {}
        for group in pending.values():
            by_batch.setdefault((group.source, group.address, group.domain), []).append(group)
        return [self._batch(key, groups) for key, groups in by_batch.items()]

    def _plan(self, template: Template) -> Plan:
        plan = self._plans.get(template.fields)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[template.fields] = Plan(template.fields)
        return plan

    def _decode(self, group: _Group) -> _Decoded:
        plan = self._plan(group.template)
        values = decode(group.chunks, group.counts, plan)
        uptime = None if group.source == SOURCE_IPFIX else group.uptime_ms
        header = Header(group.counts, group.export_ns, uptime)
        columns, untimed = flow_columns(values, header, group.ctx.init_ms)
        group.stats.untimed_records += untimed
        if group.source == SOURCE_NETFLOW5:
            columns["sampling"] = np.repeat(np.array(group.sampling, np.int64), group.counts)
        else:
            columns["sampling"] = _sampling(values, group.ctx)
        return _Decoded(group, columns, values)

    def _batch(self, key: tuple[str, str, int], groups: list[_Group]) -> FlowBatch:
        decoded = [self._decode(g) for g in groups]
        actions = _names([d.group.ctx.actions for d in decoded])
        classes = _names([d.group.ctx.classes for d in decoded])
        action_index = {name: i for i, name in enumerate(actions)}
        class_index = {name: i for i, name in enumerate(classes)}
        for d in decoded:
            n, ctx, num = d.values.n, d.group.ctx, d.values.num
            actions_of = code_lookup(num.get(K_ACTION_ID), ctx.actions, action_index, n)
            d.columns["action_code"] = actions_of
            d.columns["class_code"] = code_lookup(num.get(K_CLASS_ID), ctx.classes, class_index, n)
        if len(decoded) == 1:
            columns = decoded[0].columns
            n = decoded[0].values.n
        else:
            order = np.argsort(np.concatenate([d.order() for d in decoded]), kind="stable")
            columns = {
                name: np.concatenate([d.columns[name] for d in decoded])[order]
                for name in decoded[0].columns
            }
            n = int(order.shape[0])
        source, address, domain = key
        return make_batch(source, address, domain, n, columns, actions=actions, classes=classes)

    def stats_total(self) -> ExporterStats:
        """Every exporter's counters summed; ``last_error`` the newest of all (with its key)."""
        total = ExporterStats(last_error=self._newest_error)
        _add_counters(total, self._forgotten)
        for stats in self.stats.values():
            _add_counters(total, stats)
        return total


def _add_counters(total: ExporterStats, stats: ExporterStats) -> None:
    for name in _COUNTERS:
        setattr(total, name, getattr(total, name) + getattr(stats, name))


def _names(maps: list[dict[int, str]]) -> tuple[str, ...]:
    """The distinct names of several id -> name maps, in id order of first appearance."""
    seen: dict[str, None] = {}
    for names in maps:
        for ident in sorted(names):
            seen.setdefault(names[ident], None)
    return tuple(seen)


def _sampling(values: Values, ctx: OptionsContext) -> NDArray[np.int64]:
    """The rate of each record: carried in the record, else its selector's, else the
    domain's, else unknown."""
    n = values.n
    carried = record_sampling(values)
    if carried is not None:
        return carried
    for k in (K_SAMPLER_ID, K_SELECTOR_ID):
        ids = values.num.get(k)
        if ids is None:
            continue
        rates = {sel: r for (element_id, sel), r in ctx.by_selector.items() if element_id == k[1]}
        if not rates:
            break
        known = np.array(sorted(rates), np.uint64)
        rate = np.array([rates[int(s)] for s in known], np.int64)
        at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return np.where(known[at] == ids, rate[at], ctx.sampling).astype(np.int64)
    return np.full(n, ctx.sampling, np.int64)
