"""Tuple-space search index for ipgpc filters, so classification cost grows with the number of
filter *shapes*, not the number of filters.

Filters are grouped by which selectors they specify and with which masks (address prefix
lengths, dsfield mask): a *shape*. Within a shape every filter's key is its selector values
under the shape's masks, so one hash probe per shape finds the candidates for a packet; the
candidates are then verified field by field (no filter is ever lost to a hash collision) and
against the set-valued ``direction`` selector. Ranks are precomputed (priority, precedence,
file order), and shapes are visited best-rank first so the search stops as soon as no
remaining shape can beat the match already found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv.columns import FLAG_HEADER_CUT, PacketColumns

# Key fields, in this order, as uint64 words.
F_SADDR_HI = 0
F_SADDR_LO = 1
F_DADDR_HI = 2
F_DADDR_LO = 3
F_PROTO = 4
F_SPORT = 5
F_DPORT = 6
F_DSFIELD = 7
F_IFNAME = 8
F_UID = 9
F_PROJID = 10
NKEY = 11

U32_ALL = 0xFFFFFFFF
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SEED = np.uint64(0x2545F4914F6CDD1D)
# fields whose packet value can be "absent" (never matching a filter that uses the field)
_PRESENCE_FIELDS = (F_PROTO, F_SPORT, F_DPORT, F_IFNAME, F_UID, F_PROJID)
_ABSENT_VALUE = np.array([0, 0, 0, 0, 0, 0, 0, 0, U32_ALL, U32_ALL, U32_ALL], np.uint64)
# a packet cut inside its IP header (FLAG_HEADER_CUT) has no addresses: a shape that
# tests one cannot match it (the policy language has no /0 prefix)
_ADDRESS_FIELDS = (F_SADDR_HI, F_SADDR_LO, F_DADDR_HI, F_DADDR_LO)
_ADDRESS_BITS = sum(1 << k for k in _ADDRESS_FIELDS)


@njit(cache=True, nogil=True, inline="always")
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    h = (h ^ v) * _MIX
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def _key_hash(key: NDArray[np.uint64], mask: NDArray[np.uint64]) -> np.uint64:
    h = _SEED
    for k in range(NKEY):
        if mask[k] != 0:  # fields a shape does not use add nothing (same at build time)
            h = _mix(h, key[k] & mask[k])
    return h


@njit(cache=True, nogil=True)
def instance_hashes(
    values: NDArray[np.uint64], group: NDArray[np.int64], gmask: NDArray[np.uint64]
) -> NDArray[np.uint64]:
    """The hash of every filter instance under its group's masks (build time)."""
    out = np.empty(values.shape[0], np.uint64)
    for i in range(values.shape[0]):
        out[i] = _key_hash(values[i], gmask[group[i]])
    return out


class FilterIndex(NamedTuple):
    """The compiled filter set: shapes (groups), their hash tables, and the instances.

    A named tuple of arrays, so the kernel takes it as one argument.
    """

    g_family: NDArray[np.int64]
    g_mask: NDArray[np.uint64]
    g_fields: NDArray[np.int64]  # per group: the key fields it uses, ascending
    g_nfields: NDArray[np.int64]
    g_required: NDArray[np.int64]  # bit k: field k must be present in the packet
    g_min_rank: NDArray[np.int64]
    g_tab_off: NDArray[np.int64]
    g_tab_mask: NDArray[np.int64]
    slot_hash: NDArray[np.uint64]
    slot_start: NDArray[np.int64]
    slot_len: NDArray[np.int64]
    cand: NDArray[np.int64]
    i_value: NDArray[np.uint64]
    i_dir: NDArray[np.int64]
    i_rank: NDArray[np.int64]
    i_class: NDArray[np.int64]

    @property
    def uses_ifname(self) -> bool:
        return bool(self.g_mask.shape[0]) and bool(np.any(self.g_mask[:, F_IFNAME] != 0))


@njit(cache=True, nogil=True)
def classify_rows(  # noqa: PLR0917 (numba takes no keyword-only arguments)
    idx: NDArray[np.int64],
    cols: PacketColumns,
    if_id: NDArray[np.int64],
    index: FilterIndex,
    default_class: int,
    c_packets: NDArray[np.int64],
    c_bytes: NDArray[np.int64],
    c_last: NDArray[np.int64],
) -> NDArray[np.int32]:
    """Class id of every row in ``idx``; updates the per-class counters.

    ``cols`` are the batch's columns (the DS byte as received: ipgpc runs first) and
    ``if_id`` the filter-set id of every row's interface.
    """
    ip_version = cols.ip_version
    saddr_hi, saddr_lo = cols.saddr_hi, cols.saddr_lo
    daddr_hi, daddr_lo = cols.daddr_hi, cols.daddr_lo
    protocol, sport, dport = cols.protocol, cols.sport, cols.dport
    ds = cols.ds_byte
    direction, uid, projid = cols.direction, cols.uid, cols.projid
    flags, ip_len, ts_ns = cols.flags, cols.ip_len, cols.ts_ns
    g_family, g_mask = index.g_family, index.g_mask
    g_fields, g_nfields = index.g_fields, index.g_nfields
    g_required, g_min_rank = index.g_required, index.g_min_rank
    g_tab_off, g_tab_mask = index.g_tab_off, index.g_tab_mask
    slot_hash, slot_start, slot_len = index.slot_hash, index.slot_start, index.slot_len
    cand, i_value, i_dir = index.cand, index.i_value, index.i_dir
    i_rank, i_class = index.i_rank, index.i_class
    n = idx.shape[0]
    out = np.empty(n, np.int32)
    key = np.zeros(NKEY, np.uint64)
    ngroups = g_family.shape[0]
    no_rank = np.int64(0x7FFFFFFFFFFFFFFF)
    for j in range(n):
        r = idx[j]
        ver = np.int64(ip_version[r])
        key[F_SADDR_HI] = saddr_hi[r]
        key[F_SADDR_LO] = saddr_lo[r]
        key[F_DADDR_HI] = daddr_hi[r]
        key[F_DADDR_LO] = daddr_lo[r]
        key[F_PROTO] = np.uint64(protocol[r])
        key[F_SPORT] = np.uint64(sport[r])
        key[F_DPORT] = np.uint64(dport[r])
        key[F_DSFIELD] = np.uint64(ds[r])
        key[F_IFNAME] = np.uint64(if_id[r] & U32_ALL)
        key[F_UID] = np.uint64(np.int64(uid[r]) & U32_ALL)
        key[F_PROJID] = np.uint64(np.int64(projid[r]) & U32_ALL)
        pdir = np.int64(direction[r])
        # selectors this packet can never satisfy: no protocol, no ports, unknown ids
        absent = np.int64(0)
        for k in _PRESENCE_FIELDS:
            if key[k] == _ABSENT_VALUE[k]:
                absent |= np.int64(1) << k
        if flags[r] & FLAG_HEADER_CUT:
            absent |= np.int64(_ADDRESS_BITS)
        best = no_rank
        best_c = -1
        for g in range(ngroups):
            if g_min_rank[g] >= best:
                break
            fam = g_family[g]
            if fam not in (0, ver):
                continue
            if g_required[g] & absent:
                continue
            m = g_mask[g]
            fields = g_fields[g]
            nf = g_nfields[g]
            h = _SEED
            for q in range(nf):
                k = fields[q]
                h = _mix(h, key[k] & m[k])
            off = g_tab_off[g]
            tmask = g_tab_mask[g]
            pos = np.int64(h & np.uint64(tmask))
            while slot_len[off + pos] != 0:
                s = off + pos
                if slot_hash[s] == h:
                    start = slot_start[s]
                    for t in range(start, start + slot_len[s]):
                        c = cand[t]
                        if i_rank[c] >= best:
                            break
                        ok = True
                        for q in range(nf):
                            k = fields[q]
                            if (key[k] & m[k]) != i_value[c, k]:
                                ok = False
                                break
                        if not ok:
                            continue
                        if i_dir[c] != 0 and (i_dir[c] & pdir) == 0:
                            continue
                        best = i_rank[c]
                        best_c = c
                        break
                    break
                pos = (pos + 1) & tmask
        cls = default_class if best_c < 0 else i_class[best_c]
        out[j] = cls
        c_packets[cls] += 1
        c_bytes[cls] += np.int64(ip_len[r])
        c_last[cls] = max(c_last[cls], ts_ns[r])
    return out


@dataclass(frozen=True, slots=True)
class Instance:
    """One kernel filter instance, already reduced to key words and masks."""

    family: int  # 0 = both, 4, 6
    mask: tuple[int, ...]  # NKEY masks
    value: tuple[int, ...]  # NKEY values, already masked
    direction: int  # 0 = any
    class_id: int


def build_index(instances: list[Instance]) -> FilterIndex:
    """Group ranked instances (list position = rank, best first) into hash-probed shapes."""
    shapes: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for rank, inst in enumerate(instances):
        shapes.setdefault((inst.family, inst.mask), []).append(rank)
    # visit shapes best-rank first; the dict keeps first-seen order, which is rank order
    groups = list(shapes.items())
    ngroups = len(groups)
    n = len(instances)
    i_value = np.zeros((n, NKEY), np.uint64)
    i_dir = np.zeros(n, np.int64)
    i_class = np.zeros(n, np.int64)
    i_group = np.zeros(n, np.int64)
    g_family = np.zeros(ngroups, np.int64)
    g_mask = np.zeros((ngroups, NKEY), np.uint64)
    g_min_rank = np.zeros(ngroups, np.int64)
    g_fields = np.zeros((ngroups, NKEY), np.int64)
    g_nfields = np.zeros(ngroups, np.int64)
    g_required = np.zeros(ngroups, np.int64)
    for g, ((family, mask), members) in enumerate(groups):
        g_family[g] = family
        g_mask[g] = np.array(mask, np.uint64)
        used = [k for k in range(NKEY) if mask[k]]
        g_fields[g, : len(used)] = used
        g_nfields[g] = len(used)
        g_required[g] = sum(1 << k for k in used if k in _PRESENCE_FIELDS)
        if any(k in _ADDRESS_FIELDS for k in used):
            g_required[g] |= _ADDRESS_BITS
        g_min_rank[g] = members[0]
        for rank in members:
            inst = instances[rank]
            i_value[rank] = np.array(inst.value, np.uint64)
            i_dir[rank] = inst.direction
            i_class[rank] = inst.class_id
            i_group[rank] = g
    hashes = instance_hashes(i_value, i_group, g_mask) if n else np.zeros(0, np.uint64)
    g_tab_off = np.zeros(ngroups, np.int64)
    g_tab_mask = np.zeros(ngroups, np.int64)
    slot_hash_parts: list[NDArray[np.uint64]] = []
    slot_start_parts: list[NDArray[np.int64]] = []
    slot_len_parts: list[NDArray[np.int64]] = []
    cand: list[int] = []
    offset = 0
    for g, (_, members) in enumerate(groups):
        by_hash: dict[int, list[int]] = {}
        for rank in members:  # ascending rank: candidate lists come out sorted
            by_hash.setdefault(int(hashes[rank]), []).append(rank)
        size = 4
        while size < 2 * len(by_hash):
            size *= 2
        s_hash = np.zeros(size, np.uint64)
        s_start = np.zeros(size, np.int64)
        s_len = np.zeros(size, np.int64)
        for h, ranks in by_hash.items():
            pos = h & (size - 1)
            while s_len[pos] != 0:
                pos = (pos + 1) & (size - 1)
            s_hash[pos] = h
            s_start[pos] = len(cand)
            s_len[pos] = len(ranks)
            cand.extend(ranks)
        g_tab_off[g] = offset
        g_tab_mask[g] = size - 1
        offset += size
        slot_hash_parts.append(s_hash)
        slot_start_parts.append(s_start)
        slot_len_parts.append(s_len)
    return FilterIndex(
        g_family=g_family,
        g_mask=g_mask,
        g_fields=g_fields,
        g_nfields=g_nfields,
        g_required=g_required,
        g_min_rank=g_min_rank,
        g_tab_off=g_tab_off,
        g_tab_mask=g_tab_mask,
        slot_hash=np.concatenate([np.zeros(0, np.uint64), *slot_hash_parts]),
        slot_start=np.concatenate([np.zeros(0, np.int64), *slot_start_parts]),
        slot_len=np.concatenate([np.zeros(1 if not groups else 0, np.int64), *slot_len_parts]),
        cand=np.array(cand, np.int64),
        i_value=i_value,
        i_dir=i_dir,
        i_rank=np.arange(n, dtype=np.int64),
        i_class=i_class,
    )
