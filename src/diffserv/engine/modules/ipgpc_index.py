"""Tuple-space search index for ipgpc filters, so classification cost grows with the number of
filter *shapes*, not the number of filters.

Filters are grouped by which selectors they specify and with which masks (address prefix
lengths, dsfield mask): a *shape*. Within a shape every filter's key is its selector values
under the shape's masks, so one hash probe per shape finds the candidates for a packet (and a
bitmap of the hashes a shape holds spares the probe of most shapes a packet misses); the
candidates are then verified field by field (no filter is ever lost to a hash collision) and
against the set-valued ``direction`` selector. Ranks are precomputed (priority, precedence,
file order), and shapes are visited best-rank first so the search stops as soon as no
remaining shape can beat the match already found.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv import _kernels
from diffserv.columns import PacketColumns

# Key fields, in this order, as uint64 words: the kernel defines the layout (it reads the
# packet columns into these words), the index is built with the same numbers.
F_SADDR_HI: Final = _kernels.F_SADDR_HI
F_SADDR_LO: Final = _kernels.F_SADDR_LO
F_DADDR_HI: Final = _kernels.F_DADDR_HI
F_DADDR_LO: Final = _kernels.F_DADDR_LO
F_PROTO: Final = _kernels.F_PROTO
F_SPORT: Final = _kernels.F_SPORT
F_DPORT: Final = _kernels.F_DPORT
F_DSFIELD: Final = _kernels.F_DSFIELD
F_IFNAME: Final = _kernels.F_IFNAME
F_UID: Final = _kernels.F_UID
F_PROJID: Final = _kernels.F_PROJID
NKEY: Final = _kernels.NKEY

U32_ALL = 0xFFFFFFFF  # the whole of a 32-bit selector (interface, user, project id)


def instance_hashes(
    values: NDArray[np.uint64], group: NDArray[np.int64], gmask: NDArray[np.uint64]
) -> NDArray[np.uint64]:
    """The hash of every filter instance under its group's masks (build time).

    The kernel computes the hash: the same function probes the tables at run time.
    """
    out = np.empty(values.shape[0], np.uint64)
    _kernels.instance_hashes(values, group, gmask, out)
    return out


class FilterIndex(NamedTuple):
    """The compiled filter set: shapes (groups), their hash tables, and the instances.

    What a shape's masks imply (the fields it hashes, the fields a packet must have to
    match it) the kernel derives from ``g_mask`` itself, so it cannot disagree with it.
    """

    g_family: NDArray[np.int64]
    g_mask: NDArray[np.uint64]
    g_min_rank: NDArray[np.int64]
    g_tab_off: NDArray[np.int64]
    g_tab_mask: NDArray[np.int64]
    slot_hash: NDArray[np.uint64]
    slot_start: NDArray[np.int64]
    slot_len: NDArray[np.int64]
    # per group, a bitmap of the hashes its table holds (bit h >> g_bits_shift, from word
    # g_bits_off of hash_bits): most packets miss most groups, and a clear bit says so
    # without a probe of the table
    g_bits_off: NDArray[np.int64]
    g_bits_shift: NDArray[np.int64]
    hash_bits: NDArray[np.uint64]
    cand: NDArray[np.int64]
    i_value: NDArray[np.uint64]
    i_dir: NDArray[np.int64]
    i_rank: NDArray[np.int64]
    i_class: NDArray[np.int64]

    @property
    def uses_ifname(self) -> bool:
        return bool(self.g_mask.shape[0]) and bool(np.any(self.g_mask[:, F_IFNAME] != 0))


def classify_rows(  # noqa: PLR0917 (the kernel's positional arguments)
    idx: NDArray[np.int64],
    cols: PacketColumns,
    if_table: NDArray[np.int64] | None,
    index: FilterIndex,
    default_class: int,
    class_next: NDArray[np.int32],
    c_packets: NDArray[np.int64],
    c_bytes: NDArray[np.int64],
    c_last: NDArray[np.int64],
) -> tuple[NDArray[np.int32], int]:
    """The next action of every row in ``idx``, and how many of them were malformed.

    A malformed row (FLAG_MALFORMED) is not classified: its next action is
    ACTION_CONTINUE. Any other row gets its class in ``cols.class_id`` and the class's
    ``class_next``, and is counted in the per-class counters. ``cols`` are the batch's
    columns (the DS byte as received: ipgpc runs first); ``if_table`` maps an ifindex to
    the filter-set id of the interface (-1: none), None when no filter names one.
    One pass over the rows does all of it: this is the per-packet cost of ipgpc.
    """
    nxt = np.empty(idx.shape[0], np.int32)
    malformed = _kernels.classify_rows(
        idx, cols, if_table, index, default_class, class_next, c_packets, c_bytes, c_last, nxt
    )
    return nxt, malformed


class Instance(msgspec.Struct, frozen=True):
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
    for g, ((family, mask), members) in enumerate(groups):
        g_family[g] = family
        g_mask[g] = np.array(mask, np.uint64)
        g_min_rank[g] = members[0]
        for rank in members:
            inst = instances[rank]
            i_value[rank] = np.array(inst.value, np.uint64)
            i_dir[rank] = inst.direction
            i_class[rank] = inst.class_id
            i_group[rank] = g
    hashes = instance_hashes(i_value, i_group, g_mask)
    g_tab_off = np.zeros(ngroups, np.int64)
    g_tab_mask = np.zeros(ngroups, np.int64)
    g_bits_off = np.zeros(ngroups, np.int64)
    g_bits_shift = np.zeros(ngroups, np.int64)
    bits_parts: list[NDArray[np.uint64]] = []
    bits_offset = 0
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
        # the group's hashes as bits of a bitmap (at least 32 bits per hash, so a packet
        # whose hash the group lacks finds its bit clear ~31 times in 32)
        nbits = 64
        while nbits < 32 * len(by_hash):
            nbits *= 2
        shift = 65 - nbits.bit_length()  # h >> shift: the top log2(nbits) bits of h
        words = np.zeros(nbits // 64, np.uint64)
        for h in by_hash:
            bit = h >> shift
            words[bit >> 6] |= np.uint64(1 << (bit & 63))
        g_bits_off[g] = bits_offset
        g_bits_shift[g] = shift
        bits_offset += words.shape[0]
        bits_parts.append(words)
    return FilterIndex(
        g_family=g_family,
        g_mask=g_mask,
        g_min_rank=g_min_rank,
        g_tab_off=g_tab_off,
        g_tab_mask=g_tab_mask,
        slot_hash=np.concatenate([np.zeros(0, np.uint64), *slot_hash_parts]),
        slot_start=np.concatenate([np.zeros(0, np.int64), *slot_start_parts]),
        slot_len=np.concatenate([np.zeros(1 if not groups else 0, np.int64), *slot_len_parts]),
        g_bits_off=g_bits_off,
        g_bits_shift=g_bits_shift,
        hash_bits=np.concatenate([np.zeros(0, np.uint64), *bits_parts]),
        cand=np.array(cand, np.int64),
        i_value=i_value,
        i_dir=i_dir,
        i_rank=np.arange(n, dtype=np.int64),
        i_class=i_class,
    )
