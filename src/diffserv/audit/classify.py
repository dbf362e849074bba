"""Flow records through a policy's ipgpc filters, as the engine classifies the flow's packets.

The audit has flow records, not packets, and needs more than the engine's classifier says:
which filter decided (to name it beside a mismarked flow), and whether the record could be
decided at all. A record lacks selectors a packet has (flowacct from a capture has no user,
NetFlow no project id, IPFIX has interface numbers where a filter names an interface), and
a guess there would turn a policy question into a wrong verdict. So every filter is judged
three ways per record: it matches, it cannot match, or the record cannot tell; a record is
*not evaluable* only when a filter the record cannot judge ranks above the one that decides
it (a filter ranked below cannot change the answer).

The filters are the engine's own: ``filter_instances`` turns each into the kernel's
instances (host names resolved when the policy was read, one instance per address, an
unresolved name none), ``ranked_filters`` orders them, so selector values, masks and
ranking cannot drift from ``engine/modules/ipgpc.py``. What a record stands for, field by
field (the kernel's view of a packet of the flow):

* addresses, protocol: always known. IPv4 is v4-mapped as in packets; a record whose
  ``ip_version`` is 0 takes its family from the source address (v4-mapped or not).
* ports: only TCP, UDP and SCTP packets have ports (the decoder's ``has_ports``); for other
  protocols the ports are 0 whatever the record says (NetFlow puts ICMP type and code in
  ``dport``), and a port selector never matches them. A port-carrying record with port 0
  did not export it: a filter on that port cannot be judged.
* dsfield: ``(ds & dsfield_mask) == (dsfield & dsfield_mask)`` on ``ds_in``; when only the
  DSCP (``dscp_in``) or the precedence (``prec_in``) was exported, the bits they cover are
  known and a mask within them is judged, a mask reaching the unknown bits is not.
* direction: ingress records (0) stand for LOCAL_IN or FWD_IN packets, egress (1) for
  LOCAL_OUT or FWD_OUT, and a record cannot say which of the two. A filter whose direction
  set holds both of the pair matches, one holding neither does not match, one holding just
  one of them cannot be judged. With the direction unknown only a filter listing all four
  positions is judged (it matches).
* if_name: records carry interface numbers; without ``interfaces`` (ifindex -> name) an
  interface filter cannot be judged. With it, an ingress record's interface is ``in_if``,
  an egress record's ``out_if``; with the direction unknown the filter is judged only when
  both interfaces agree on it (both name it, or neither). An unknown ifindex (-1, or one
  the map lacks) cannot be judged.
* user, projid: ``uid`` / ``projid`` when known (not -1 and not 0xFFFFFFFF); unknown ones
  cannot be judged.

Fragments are beyond a record: the engine gives IPv4 fragments no ports, a record cannot
say its flow had any.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from diffserv.directions import FWD_IN, FWD_OUT, INBOUND, LOCAL_IN, LOCAL_OUT
from diffserv.engine.modules.ipgpc import filter_instances, ranked_filters
from diffserv.engine.modules.ipgpc_index import (
    F_DADDR_HI,
    F_DADDR_LO,
    F_DPORT,
    F_DSFIELD,
    F_IFNAME,
    F_PROJID,
    F_PROTO,
    F_SADDR_HI,
    F_SADDR_LO,
    F_SPORT,
    F_UID,
    NKEY,
    U32_ALL,
    Instance,
)
from diffserv.errors import PolicyFileError
from diffserv.flows.schema import DIRECTION_EGRESS, DIRECTION_INGRESS, FlowBatch
from diffserv.policy.interpret import ipgpc_params
from diffserv.policy.model import CLASSIFIER_ACTION, DEFAULT_CLASS, Filter, Policy
from diffserv.rowgroups import Groups, group_rows

PORT_PROTOCOLS: Final = (6, 17, 132)  # TCP, UDP, SCTP: the decoder's has_ports()
OUTBOUND: Final = LOCAL_OUT | FWD_OUT
ALL_DIRECTIONS: Final = LOCAL_IN | LOCAL_OUT | FWD_IN | FWD_OUT

# The selectors a record can lack, by their policy keyword, in the order `missing` lists them.
SELECTORS: Final = ("user", "projid", "if_name", "direction", "dsfield", "sport", "dport")

_CHUNK: Final = 1 << 18  # rows judged together: the temporaries stay in the cache
# the record columns the classifier reads
_READ: Final = (
    "saddr_hi", "saddr_lo", "daddr_hi", "daddr_lo", "ip_version", "protocol", "sport",
    "dport", "ds_in", "dscp_in", "prec_in", "direction", "in_if", "out_if", "uid", "projid",
)  # fmt: skip
_IF_UNKNOWN: Final = -2  # the record's interface is not known (or not in the map)
_IF_OTHER: Final = -1  # known, and named by no filter
_DIR_INGRESS: Final = 0
_DIR_EGRESS: Final = 1
_DIR_UNKNOWN: Final = 2

Bools = NDArray[np.bool_]


class Classified(NamedTuple):
    """What the policy's classifier makes of each record of a batch.

    ``class_index`` indexes :attr:`RecordClassifier.classes`, ``filter_index`` and
    ``blocked_by`` index :attr:`RecordClassifier.filters` (file order). ``filter_index`` is
    the filter that decides the record, -1 for none (the class is then ``default``);
    ``blocked_by`` is -1 when the decision stands, else the best-ranked filter above it that
    the record cannot judge (the decision is then not evaluable: it may be that filter's).
    ``missing[f]`` names, comma-separated in :data:`SELECTORS` order, the selectors filter
    ``f`` uses that the records it could not judge lack ("" when it judged every record
    it was asked about): whatever record ``f`` blocks lacks some of them.
    """

    class_index: NDArray[np.int32]
    filter_index: NDArray[np.int32]
    blocked_by: NDArray[np.int32]
    missing: list[str]


class _Rows(NamedTuple):
    """The fields of some records as the filters test them (see the module docstring)."""

    v4: Bools
    v6: Bools
    words: tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.uint64], NDArray[np.uint64]]
    protocol: NDArray[np.uint8]
    sport: NDArray[np.int32]  # 0 for protocols without ports
    dport: NDArray[np.int32]
    sport_unknown: Bools
    dport_unknown: Bools
    ds: NDArray[np.int16]  # the known bits of the DS byte, the others 0
    ds_known: NDArray[np.int16]  # which bits of ds are known
    if_a: NDArray[np.int64]  # the filter-set id of the interface (both equal when known)
    if_b: NDArray[np.int64]  # ... or of the two the packets may have used
    uid: NDArray[np.int64]
    uid_known: Bools
    projid: NDArray[np.int64]
    projid_known: Bools
    direction: NDArray[np.int8]  # _DIR_INGRESS, _DIR_EGRESS, _DIR_UNKNOWN
    position: NDArray[np.int64]  # the exact callout position (a capture's), 0 not known

    def take(self, rows: NDArray[np.intp]) -> _Rows:
        taken: list[Any] = [
            field[rows] if isinstance(field, np.ndarray) else tuple(w[rows] for w in field)
            for field in self
        ]
        return _Rows(*taken)


class _Judged(NamedTuple):
    """One filter (or instance) over some rows: no known selector fails, and which rows
    lack a selector it uses (by selector name)."""

    possible: Bools
    unknown: Bools
    lacking: dict[str, Bools]


def _direction_states(direction: int, pair: int) -> tuple[bool, bool]:
    """(cannot match, cannot tell) for a record standing for both positions of ``pair``."""
    held = direction & pair
    return held == 0, held not in (0, pair)


class RecordClassifier:
    """The ipgpc filters of a policy, compiled to judge flow records (see the module doc).

    ``interfaces`` maps interface numbers (ifindex, as records carry them) to names, for
    filters that name an interface; without it such filters cannot be judged.
    """

    def __init__(self, policy: Policy, *, interfaces: Mapping[int, str] | None = None) -> None:
        try:
            action = policy.action(CLASSIFIER_ACTION)
        except KeyError:
            raise PolicyFileError(f"the policy has no {CLASSIFIER_ACTION} action") from None
        params = ipgpc_params(action)
        self.classes: tuple[str, ...] = tuple(cls.name for cls in params.classes)
        self.filters: tuple[Filter, ...] = params.filters
        class_ids = params.class_ids
        self._default_class = class_ids[DEFAULT_CLASS]
        self._filter_class = np.array(
            [class_ids[flt.class_name] for flt in self.filters] or [0], np.int32
        )
        self._if_ids: dict[str, int] = {}
        for flt in self.filters:
            if flt.if_name is not None and flt.if_name not in self._if_ids:
                self._if_ids[flt.if_name] = len(self._if_ids)
        self._ranked: list[tuple[int, list[Instance]]] = [
            (position, filter_instances(flt, class_ids[flt.class_name], self._if_ids))
            for position, flt in ranked_filters(self.filters)
        ]
        self._interfaces: Mapping[int, str] | None = None
        self.use_interfaces(interfaces)
        instances = [inst for _, group in self._ranked for inst in group]
        # every key bit some instance tests: records equal in these are decided alike
        self._used = [
            functools.reduce(operator.or_, (int(inst.mask[field]) for inst in instances), 0)
            for field in range(NKEY)
        ]
        self._uses_direction = any(inst.direction for inst in instances)

    def record_columns(self) -> set[str]:
        """The store columns the filters read: only the selectors some filter tests
        (records are mostly the same columns, read again and again)."""
        used = self._used
        columns = {"saddr", "daddr", "ip_version", "protocol", "sport", "dport"}
        if used[F_DSFIELD]:
            columns |= {"ds_in", "dscp_in", "prec_in"}
        if self._uses_direction or used[F_IFNAME]:
            columns.add("direction")
        if used[F_IFNAME]:
            columns |= {"in_if", "out_if"}
        if used[F_UID]:
            columns.add("uid")
        if used[F_PROJID]:
            columns.add("projid")
        return columns

    def use_interfaces(self, interfaces: Mapping[int, str] | None) -> None:
        """The names of the interface numbers records carry from now on (a capture's
        interface list grows as its reader meets interface blocks)."""
        self._interfaces = interfaces
        if interfaces is not None and self._if_ids:
            keys = sorted(interfaces)
            self._if_keys = np.array(keys, np.int64)
            self._if_values = np.array(
                [self._if_ids.get(interfaces[k], _IF_OTHER) for k in keys], np.int64
            )

    def classify(self, batch: FlowBatch, *, positions: NDArray[Any] | None = None) -> Classified:
        """The class, deciding filter and blocking filter of every record of ``batch``.

        ``positions``: the exact callout position (LOCAL_IN, ...) of each record, as a
        capture's packets have one (0 where not known); None when records only say
        ingress or egress.
        """
        columns: Mapping[str, NDArray[Any]] = batch.columns
        n = batch.n
        groups = self._alike(columns, n, positions) if n else None
        if groups is not None:  # decide one record of each group, then all of it
            firsts = groups.firsts
            columns = {name: np.asarray(columns[name])[firsts] for name in _READ}
            positions = None if positions is None else np.asarray(positions)[firsts]
            n = groups.groups
        class_index = np.empty(n, np.int32)
        filter_index = np.empty(n, np.int32)
        blocked_by = np.empty(n, np.int32)
        lacking: list[set[str]] = [set() for _ in self.filters]
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            rows = self._rows(columns, start, stop, positions)
            decided, blocked = self._decide(rows, lacking)
            filter_index[start:stop] = decided
            blocked_by[start:stop] = blocked
        has_filter = filter_index >= 0
        class_index[:] = np.where(
            has_filter, self._filter_class[np.maximum(filter_index, 0)], self._default_class
        )
        missing = [", ".join(name for name in SELECTORS if name in names) for names in lacking]
        if groups is not None:
            ids = groups.ids
            return Classified(class_index[ids], filter_index[ids], blocked_by[ids], missing)
        return Classified(class_index, filter_index, blocked_by, missing)

    def _alike(
        self, columns: Mapping[str, NDArray[Any]], n: int, positions: NDArray[Any] | None
    ) -> Groups | None:
        """The records grouped by every bit of every field some filter tests (each group is
        decided alike), or None when grouping would save little.

        A filter sees an address only through its masks, ports only for protocols that
        have them, the DS byte only through its known bits: the key keeps exactly those
        bits, and the family, so records that differ only elsewhere (other hosts, source
        ports no filter names, counters, times) share one decision.
        """
        used = self._used
        if not (any(used) or self._uses_direction):  # no filter tests any field
            return None

        def col(name: str) -> NDArray[Any]:
            return np.asarray(columns[name])

        u64 = np.uint64
        saddr_hi, saddr_lo = (
            col("saddr_hi").astype(u64, copy=False),
            col("saddr_lo").astype(u64, copy=False),
        )
        version = _family(col("ip_version"), saddr_hi, saddr_lo).astype(u64)
        addresses = (
            (saddr_hi, F_SADDR_HI),
            (saddr_lo, F_SADDR_LO),
            (col("daddr_hi").astype(u64, copy=False), F_DADDR_HI),
            (col("daddr_lo").astype(u64, copy=False), F_DADDR_LO),
        )
        key = [word & u64(used[field]) for word, field in addresses if used[field]]
        small = version  # 8 bits, protocol 8, source port 16, destination port 16
        if used[F_PROTO] or used[F_SPORT] or used[F_DPORT]:
            small = small | col("protocol").astype(u64, copy=False) << u64(8)
        if used[F_SPORT]:
            small = small | col("sport").astype(np.uint16, copy=False).astype(
                u64, copy=False
            ) << u64(16)
        if used[F_DPORT]:
            small = small | col("dport").astype(np.uint16, copy=False).astype(
                u64, copy=False
            ) << u64(32)
        key.append(small)
        more = np.zeros(n, u64)  # the DS fields (each may be -1): 9 bits apiece; position
        if used[F_DSFIELD]:
            more |= (col("ds_in").astype(np.int64, copy=False) + 1).astype(u64, copy=False)
            more |= (col("dscp_in").astype(np.int64, copy=False) + 1).astype(
                u64, copy=False
            ) << u64(9)
            more |= (col("prec_in").astype(np.int64, copy=False) + 1).astype(
                u64, copy=False
            ) << u64(18)
        if self._uses_direction or used[F_IFNAME]:
            more |= col("direction").astype(np.uint8, copy=False).astype(u64, copy=False) << u64(27)
            if positions is not None:
                more |= np.asarray(positions).astype(np.uint8, copy=False).astype(
                    u64, copy=False
                ) << u64(35)
        key.append(more)
        if used[F_IFNAME]:
            key.append(col("in_if").astype(np.int64, copy=False).astype(u64, copy=False))
            key.append(col("out_if").astype(np.int64, copy=False).astype(u64, copy=False))
        if used[F_UID]:
            key.append(col("uid").astype(np.int64, copy=False).astype(u64, copy=False))
        if used[F_PROJID]:
            key.append(col("projid").astype(np.int64, copy=False).astype(u64, copy=False))
        groups = group_rows(key)
        return groups if groups.groups * 4 <= n * 3 else None

    # ---- the fields of the records ------------------------------------------------------

    def _rows(
        self,
        columns: Mapping[str, NDArray[Any]],
        start: int,
        stop: int,
        positions: NDArray[Any] | None = None,
    ) -> _Rows:
        def col(name: str) -> NDArray[Any]:
            return np.asarray(columns[name][start:stop])

        saddr_hi, saddr_lo = (
            col("saddr_hi").astype(np.uint64, copy=False),
            col("saddr_lo").astype(np.uint64, copy=False),
        )
        daddr_hi, daddr_lo = (
            col("daddr_hi").astype(np.uint64, copy=False),
            col("daddr_lo").astype(np.uint64, copy=False),
        )
        version = _family(col("ip_version"), saddr_hi, saddr_lo)
        protocol = col("protocol").astype(np.uint8, copy=False)
        has_ports = np.isin(protocol, PORT_PROTOCOLS)
        sport = np.where(has_ports, col("sport").astype(np.int32, copy=False), 0).astype(
            np.int32, copy=False
        )
        dport = np.where(has_ports, col("dport").astype(np.int32, copy=False), 0).astype(
            np.int32, copy=False
        )
        ds, ds_known = _ds_bits(col("ds_in"), col("dscp_in"), col("prec_in"))
        direction = col("direction").astype(np.int64, copy=False)
        dir_state = np.full(direction.shape, _DIR_UNKNOWN, np.int8)
        dir_state[direction == DIRECTION_INGRESS] = _DIR_INGRESS
        dir_state[direction == DIRECTION_EGRESS] = _DIR_EGRESS
        if_a, if_b = self._interface_ids(col("in_if"), col("out_if"), dir_state)
        uid = col("uid").astype(np.int64, copy=False)
        projid = col("projid").astype(np.int64, copy=False)
        return _Rows(
            v4=version == 4,
            v6=version == 6,
            words=(saddr_hi, saddr_lo, daddr_hi, daddr_lo),
            protocol=protocol,
            sport=sport,
            dport=dport,
            sport_unknown=has_ports & (sport == 0),
            dport_unknown=has_ports & (dport == 0),
            ds=ds,
            ds_known=ds_known,
            if_a=if_a,
            if_b=if_b,
            uid=uid & U32_ALL,
            uid_known=(uid >= 0) & (uid < U32_ALL),
            projid=projid & U32_ALL,
            projid_known=(projid >= 0) & (projid < U32_ALL),
            direction=dir_state,
            position=np.zeros(dir_state.shape, np.int64)
            if positions is None
            else np.asarray(positions[start:stop]).astype(np.int64, copy=False),
        )

    def _interface_ids(
        self, in_if: NDArray[Any], out_if: NDArray[Any], dir_state: NDArray[np.int8]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The filter-set ids of the interfaces a record's packets may have used (two, the
        ingress and the egress one, when its direction is unknown)."""
        shape = dir_state.shape
        if not self._if_ids or self._interfaces is None:
            unknown = np.full(shape, _IF_UNKNOWN, np.int64)
            return unknown, unknown
        ids_in = self._if_lookup(in_if.astype(np.int64, copy=False))
        ids_out = self._if_lookup(out_if.astype(np.int64, copy=False))
        if_a = np.where(dir_state == _DIR_EGRESS, ids_out, ids_in)
        if_b = np.where(dir_state == _DIR_INGRESS, ids_in, ids_out)
        return if_a, if_b

    def _if_lookup(self, ifindex: NDArray[np.int64]) -> NDArray[np.int64]:
        keys, values = self._if_keys, self._if_values
        if keys.shape[0] == 0:
            return np.full(ifindex.shape, _IF_UNKNOWN, np.int64)
        pos = np.minimum(np.searchsorted(keys, ifindex), keys.shape[0] - 1)
        return np.where(keys[pos] == ifindex, values[pos], _IF_UNKNOWN)

    # ---- the ranking --------------------------------------------------------------------

    def _decide(
        self, rows: _Rows, lacking: list[set[str]]
    ) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """Deciding and blocking filter (file positions, -1 none) of each of ``rows``.

        Filters are taken best rank first over the rows still open (undecided); once no
        more than half the rows in hand are open, they are gathered, so later filters
        test fewer rows."""
        m = rows.v4.shape[0]
        decided = np.full(m, -1, np.int32)
        blocked = np.full(m, -1, np.int32)
        where = np.arange(m, dtype=np.intp)  # the chunk row of each row in hand
        is_open = np.ones(m, np.bool_)
        n_open = m
        for position, instances in self._ranked:
            if n_open == 0:
                break
            if not instances:
                continue  # a host name that did not resolve: the filter never matches
            judged = _judge_filter(instances, rows)
            unsure = judged.unknown & is_open
            if unsure.any():
                for name, lack in judged.lacking.items():
                    if (lack & unsure).any():
                        lacking[position].add(name)
                hit = where[unsure]
                fresh = hit[blocked[hit] < 0]
                blocked[fresh] = position
            matched = judged.possible & ~judged.unknown & is_open
            n_matched = int(np.count_nonzero(matched))
            if n_matched == 0:
                continue
            decided[where[matched]] = position
            is_open &= ~matched
            n_open -= n_matched
            if 2 * n_open <= where.shape[0]:
                kept = np.flatnonzero(is_open)
                where, rows = where[kept], rows.take(kept)
                is_open = np.ones(n_open, np.bool_)
        return decided, blocked


def _family(
    ip_version: NDArray[Any], saddr_hi: NDArray[np.uint64], saddr_lo: NDArray[np.uint64]
) -> NDArray[np.int64]:
    """Each record's IP version; where it was not exported (0), the family of its source
    address (v4-mapped or not)."""
    version = ip_version.astype(np.int64, copy=False)
    mapped = (saddr_hi == 0) & ((saddr_lo >> np.uint64(32)) == np.uint64(0xFFFF))
    out: NDArray[np.int64] = np.where(version == 0, np.where(mapped, 4, 6), version)
    return out


def _ds_bits(
    ds_in: NDArray[Any], dscp_in: NDArray[Any], prec_in: NDArray[Any]
) -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    """The known bits of each record's DS byte and which they are: all eight from ds_in,
    the six DSCP bits from dscp_in, the three precedence bits from prec_in, else none."""
    ds16 = ds_in.astype(np.int16, copy=False)
    dscp16 = dscp_in.astype(np.int16, copy=False)
    prec16 = prec_in.astype(np.int16, copy=False)
    has_ds, has_dscp, has_prec = ds16 >= 0, dscp16 >= 0, prec16 >= 0
    value = np.where(
        has_ds,
        ds16 & 0xFF,
        np.where(has_dscp, (dscp16 & 0x3F) << 2, np.where(has_prec, (prec16 & 0x7) << 5, 0)),
    ).astype(np.int16, copy=False)
    known = np.where(has_ds, 0xFF, np.where(has_dscp, 0xFC, np.where(has_prec, 0xE0, 0))).astype(
        np.int16
    )
    return value, known


def _judge_filter(instances: Sequence[Instance], rows: _Rows) -> _Judged:
    """A filter matches where one of its instances matches: possible where one is, known
    to match where one matches with everything known."""
    first = _judge_instance(instances[0], rows)
    if len(instances) == 1:
        return first
    possible, matched = first.possible.copy(), first.possible & ~first.unknown
    lacking = dict(first.lacking)
    for inst in instances[1:]:
        judged = _judge_instance(inst, rows)
        possible |= judged.possible
        matched |= judged.possible & ~judged.unknown
        for name, lack in judged.lacking.items():
            lacking[name] = lacking[name] | lack if name in lacking else lack
    return _Judged(possible, possible & ~matched, lacking)


def _judge_instance(inst: Instance, rows: _Rows) -> _Judged:
    """One kernel instance over ``rows``: whether no known selector fails, which rows lack
    a selector it tests."""
    mask, value = inst.mask, inst.value
    m = rows.v4.shape[0]
    if inst.family == 4:
        possible = rows.v4.copy()
    elif inst.family == 6:
        possible = rows.v6.copy()
    else:
        possible = np.ones(m, np.bool_)
    for field, word in zip(
        (F_SADDR_HI, F_SADDR_LO, F_DADDR_HI, F_DADDR_LO), rows.words, strict=True
    ):
        if mask[field]:
            possible &= (word & np.uint64(mask[field])) == np.uint64(value[field])
    if mask[F_PROTO]:
        possible &= rows.protocol == value[F_PROTO]
    lacking: dict[str, Bools] = {}
    if mask[F_SPORT]:
        possible &= (rows.sport == value[F_SPORT]) | rows.sport_unknown
        lacking["sport"] = rows.sport_unknown
    if mask[F_DPORT]:
        possible &= (rows.dport == value[F_DPORT]) | rows.dport_unknown
        lacking["dport"] = rows.dport_unknown
    if mask[F_DSFIELD]:
        ds_mask = mask[F_DSFIELD]
        possible &= ((rows.ds ^ value[F_DSFIELD]) & rows.ds_known & ds_mask) == 0
        lacking["dsfield"] = (rows.ds_known & ds_mask) != ds_mask
    if mask[F_IFNAME]:
        wanted = value[F_IFNAME]
        a_is, b_is = rows.if_a == wanted, rows.if_b == wanted
        a_unknown, b_unknown = rows.if_a == _IF_UNKNOWN, rows.if_b == _IF_UNKNOWN
        possible &= a_is | b_is | a_unknown | b_unknown
        lacking["if_name"] = ~(a_is & b_is) & (a_unknown | b_unknown | (a_is != b_is))
    if mask[F_UID]:
        possible &= (rows.uid == value[F_UID]) | ~rows.uid_known
        lacking["user"] = ~rows.uid_known
    if mask[F_PROJID]:
        possible &= (rows.projid == value[F_PROJID]) | ~rows.projid_known
        lacking["projid"] = ~rows.projid_known
    if inst.direction:
        lacking["direction"] = _judge_direction(
            inst.direction, rows.direction, rows.position, possible
        )
    unknown = np.zeros(m, np.bool_)
    for lack in lacking.values():
        unknown |= lack
    return _Judged(possible, unknown & possible, lacking)


def _judge_direction(
    direction: int, state: NDArray[np.int8], position: NDArray[np.int64], possible: Bools
) -> Bools:
    """Clear ``possible`` where the direction set excludes the record; the rows it cannot
    judge (see the module docstring). A row whose exact ``position`` is known is always
    judged, on it."""
    exact = position != 0
    possible &= ~exact | ((position & direction) != 0)
    in_fails, in_unsure = _direction_states(direction, INBOUND)
    out_fails, out_unsure = _direction_states(direction, OUTBOUND)
    ingress, egress = state == _DIR_INGRESS, state == _DIR_EGRESS
    if in_fails:
        possible &= ~ingress
    if out_fails:
        possible &= ~egress
    unsure = np.zeros(state.shape, np.bool_)
    if in_unsure:
        unsure |= ingress
    if out_unsure:
        unsure |= egress
    if direction & ALL_DIRECTIONS != ALL_DIRECTIONS:
        unsure |= state == _DIR_UNKNOWN
    out: Bools = unsure & ~exact
    return out


__all__ = ["SELECTORS", "Classified", "RecordClassifier"]
