"""ipgpc, the IPQoS classifier: assigns every IP packet its best-matching filter's class.

Semantics follow docs/engine.md ("ipgpc"): every selector, multi-value
``direction`` matches any listed value, dsfield is ``(pkt & mask) == (value & mask)``, equal
priority and precedence go to the filter written first, and no filter is ever lost. Packets
that match nothing go to the permanent class ``default``. Malformed IP packets (headers
inconsistent or cut short) are not classified: they pass on unmodified and count as
``epackets``. Non-IP frames never reach ipgpc (IPQoS only sees IP packets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.columns import PacketBatch
from diffserv.engine.context import BuildContext
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
    FilterIndex,
    Instance,
    build_index,
    classify_rows,
)
from diffserv.policy.interpret import ipgpc_params
from diffserv.policy.model import (
    DEFAULT_CLASS,
    Action,
    Address,
    Class,
    Filter,
    HostName,
    IPNetwork,
)

_U64 = (1 << 64) - 1
_V4_MAPPED = 0xFFFF << 32


class _Prefix(msgspec.Struct, frozen=True):
    family: int
    hi: int
    lo: int
    mask_hi: int
    mask_lo: int


def _prefix(net: IPNetwork) -> _Prefix:
    """A network as a 128-bit value/mask pair, IPv4 stored v4-mapped (as the batch is)."""
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        family = 4
    else:
        family = net.version
    if isinstance(net, ipaddress.IPv4Network):
        value = _V4_MAPPED | int(net.network_address)
        plen = 96 + net.prefixlen
    else:
        value = int(net.network_address)
        plen = net.prefixlen
    mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
    value &= mask
    return _Prefix(family, value >> 64, value & _U64, mask >> 64, mask & _U64)


def _choices(address: Address | None) -> list[_Prefix | None]:
    if address is None:
        return [None]
    if isinstance(address, HostName):
        return [_prefix(net) for net in address.addresses]
    return [_prefix(address)]


def filter_instances(flt: Filter, class_id: int, if_ids: Mapping[str, int]) -> list[Instance]:
    """The kernel instances of one filter: one per resolved address (same-family pairs)."""
    out: list[Instance] = []
    for src in _choices(flt.saddr):
        for dst in _choices(flt.daddr):
            if src is not None and dst is not None and src.family != dst.family:
                continue
            family = src.family if src is not None else dst.family if dst is not None else 0
            mask = [0] * NKEY
            value = [0] * NKEY
            if src is not None:
                mask[F_SADDR_HI], mask[F_SADDR_LO] = src.mask_hi, src.mask_lo
                value[F_SADDR_HI], value[F_SADDR_LO] = src.hi, src.lo
            if dst is not None:
                mask[F_DADDR_HI], mask[F_DADDR_LO] = dst.mask_hi, dst.mask_lo
                value[F_DADDR_HI], value[F_DADDR_LO] = dst.hi, dst.lo
            for field_no, selector, width in (
                (F_PROTO, flt.protocol, 0xFF),
                (F_SPORT, flt.sport, 0xFFFF),
                (F_DPORT, flt.dport, 0xFFFF),
            ):
                if selector:
                    mask[field_no], value[field_no] = width, selector & width
            if flt.dsfield_mask:
                mask[F_DSFIELD] = flt.dsfield_mask & 0xFF
                value[F_DSFIELD] = (flt.dsfield or 0) & flt.dsfield_mask & 0xFF
            if flt.if_name is not None:
                mask[F_IFNAME], value[F_IFNAME] = U32_ALL, if_ids[flt.if_name]
            if flt.user is not None and flt.user != -1:
                mask[F_UID], value[F_UID] = U32_ALL, flt.user & U32_ALL
            if flt.projid is not None and flt.projid != -1:
                mask[F_PROJID], value[F_PROJID] = U32_ALL, flt.projid & U32_ALL
            out.append(
                Instance(
                    family=family,
                    mask=tuple(mask),
                    value=tuple(value),
                    direction=flt.direction or 0,
                    class_id=class_id,
                )
            )
    return out


def ranked_filters(filters: Sequence[Filter]) -> list[tuple[int, Filter]]:
    """``(file position, filter)`` best rank first: highest priority, then lowest
    precedence, then the filter written first (the one ranking every user of it shares)."""
    return sorted(
        enumerate(filters),
        key=lambda item: (-item[1].effective_priority, item[1].effective_precedence, item[0]),
    )


class Ipgpc:
    """The compiled classifier of a policy's ``ipgpc.classify`` action."""

    module = "ipgpc"
    # what a policy swap carries over when the action is unchanged (engine.carry)
    state_attributes = ("c_packets", "c_bytes", "c_last", "epackets")

    def __init__(self, action: Action, ctx: BuildContext) -> None:
        self.name = action.name
        self.global_stats = action.global_stats
        params = ipgpc_params(action)
        classes = params.classes
        self.classes: tuple[Class, ...] = classes
        class_ids = params.class_ids
        self.default_class = class_ids[DEFAULT_CLASS]
        self.class_next = np.array(
            [ctx.action_id(cls.next_action) for cls in classes], dtype=np.int32
        )
        self.if_ids: dict[str, int] = {}
        for flt in params.filters:
            if flt.if_name is not None and flt.if_name not in self.if_ids:
                self.if_ids[flt.if_name] = len(self.if_ids)
        instances: list[Instance] = []
        for _, flt in ranked_filters(params.filters):
            instances.extend(filter_instances(flt, class_ids[flt.class_name], self.if_ids))
        self.nfilters = len(instances)
        self.index: FilterIndex = build_index(instances)
        self._uses_ifname = self.index.uses_ifname
        ncls = len(classes)
        self.c_packets = np.zeros(ncls, np.int64)
        self.c_bytes = np.zeros(ncls, np.int64)
        self.c_last = np.zeros(ncls, np.int64)
        self.epackets = 0
        self._if_cache: tuple[tuple[str, ...], NDArray[np.int64]] | None = None

    def _interface_table(self, batch: PacketBatch) -> NDArray[np.int64] | None:
        """The filter-set id of every interface of ``batch`` (-1: no filter names it), by
        ifindex; None when no filter names an interface."""
        if not self._uses_ifname:
            return None
        cache = self._if_cache
        names = batch.interfaces
        if cache is None or cache[0] is not names:
            # a reader's list of interfaces only grows at its end: look up just the new ones
            known, table = cache if cache is not None else ((), np.empty(0, np.int64))
            if len(names) < len(known) or names[: len(known)] != known:
                known, table = (), np.empty(0, np.int64)
            added = np.array(
                [self.if_ids.get(name, -1) if name else -1 for name in names[len(known) :]],
                dtype=np.int64,
            )
            cache = (names, np.concatenate([table, added]))
            self._if_cache = cache
        return cache[1]

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        nxt, malformed = classify_rows(
            idx,
            batch.cols,
            self._interface_table(batch),
            self.index,
            self.default_class,
            self.class_next,
            self.c_packets,
            self.c_bytes,
            self.c_last,
        )
        self.epackets += malformed
        return nxt

    def finish(self) -> None:
        return None

    def counters(self) -> Mapping[str, int]:
        return {
            "nfilters": self.nfilters,
            "nclasses": len(self.classes),
            "nbytes": int(self.c_bytes.sum()),
            "npackets": int(self.c_packets.sum()),
            "epackets": self.epackets,
        }

    def class_counters(self) -> dict[str, dict[str, int]]:
        """Per-class npackets, nbytes and last_match (ns; 0 = never matched)."""
        return {
            cls.name: {
                "npackets": int(self.c_packets[i]),
                "nbytes": int(self.c_bytes[i]),
                "last_match": int(self.c_last[i]),
            }
            for i, cls in enumerate(self.classes)
        }


def build(action: Action, ctx: BuildContext) -> Ipgpc:
    return Ipgpc(action, ctx)
