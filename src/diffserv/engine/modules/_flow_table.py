"""The flowacct flow table as compiled code: open addressing, intrusive timeout list.

Flows (5-tuples) live in a pool of rows of an int64 matrix; a power-of-two index
array maps hashes to pool rows with linear probing and backward-shift deletion, so
rows never move and the timeout list (a doubly-linked list threaded through the
rows, oldest last-seen first) stays valid. Items (dsfield, projid, uid under a flow)
live in a second pool, chained per flow in creation order. The kernel stops and
asks Python to grow a pool or to drain the record buffer; it never allocates.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv.columns import FLAG_HEADER_CUT, PacketColumns

# Flow pool columns.
F_SHI: Final = 0
F_SLO: Final = 1
F_DHI: Final = 2
F_DLO: Final = 3
F_PORTS: Final = 4  # sport << 24 | dport << 8 | proto
F_LAST: Final = 5
F_PREV: Final = 6
F_NEXT: Final = 7  # timeout-list successor; free-list link when free
F_IHEAD: Final = 8
F_ITAIL: Final = 9
F_HASH: Final = 10
F_NCOLS: Final = 11

# Item pool columns.
I_DS: Final = 0
I_PROJ: Final = 1
I_UID: Final = 2
I_NPK: Final = 3
I_NBY: Final = 4
I_FIRST: Final = 5
I_LAST: Final = 6
I_NEXT: Final = 7  # next item of the same flow; free-list link when free
I_NCOLS: Final = 8

# Scalar state.
S_NITEMS: Final = 0
S_NFLOWS: Final = 1
S_FFREE: Final = 2
S_IFREE: Final = 3
S_HEAD: Final = 4
S_TAIL: Final = 5
S_STARTED: Final = 6
S_DEADLINE: Final = 7
S_CLOCK: Final = 8
S_NPACKETS: Final = 9
S_NBYTES: Final = 10
S_TBYTES: Final = 11
S_EPACKETS: Final = 12
S_NOUT: Final = 13
S_PENDING: Final = 14  # 1 while a sweep stopped by a full record buffer is unfinished
S_SWEEP_AT: Final = 15  # the time that sweep runs as of
S_NSCALARS: Final = 16

# Output record columns (diffserv.records.RECORD_COLUMNS).
OUT_NCOLS: Final = 14

# Kernel return status.
DONE: Final = 0
NEED_GROW: Final = 1
NEED_DRAIN: Final = 2

# Per-packet verdicts written by the kernel.
V_PASS: Final = 0
V_FAIL: Final = 1

EMPTY: Final = -1


def new_scalars() -> NDArray[np.int64]:
    scalars = np.zeros(S_NSCALARS, np.int64)
    scalars[S_HEAD] = EMPTY
    scalars[S_TAIL] = EMPTY
    return scalars


def new_flow_pool(capacity: int) -> NDArray[np.int64]:
    return np.full((capacity, F_NCOLS), EMPTY, np.int64)


def new_item_pool(capacity: int) -> NDArray[np.int64]:
    return np.full((capacity, I_NCOLS), EMPTY, np.int64)


@njit(cache=True, nogil=True)
def link_free_rows(pool: NDArray[np.int64], start: int, link_col: int) -> int:
    """Chain rows start..end as a free list; return its head (EMPTY if none)."""
    n = pool.shape[0]
    for r in range(start, n):
        pool[r, link_col] = r + 1 if r + 1 < n else EMPTY
    return start if start < n else EMPTY


@njit(cache=True, nogil=True)
def _mix(x: np.uint64) -> np.uint64:
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@njit(cache=True, nogil=True)
def flow_hash(
    shi: np.int64, slo: np.int64, dhi: np.int64, dlo: np.int64, ports: np.int64
) -> np.int64:
    """A 63-bit hash of the 5-tuple: odd-constant multiplies folded, then one finaliser."""
    h = np.uint64(shi) * np.uint64(0x9E3779B97F4A7C15)
    h ^= np.uint64(slo) * np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= np.uint64(dhi) * np.uint64(0x165667B19E3779F9)
    h ^= np.uint64(dlo) * np.uint64(0x27D4EB2F165667C5)
    h ^= np.uint64(ports) * np.uint64(0x85EBCA77C2B2AE63)
    return np.int64(_mix(h) & np.uint64(0x7FFFFFFFFFFFFFFF))


@njit(cache=True, nogil=True)
def rebuild_index(flows: NDArray[np.int64], index: NDArray[np.int64], head: int) -> None:
    """Insert every flow on the timeout list into an empty index."""
    mask = index.shape[0] - 1
    f = head
    while f != EMPTY:
        pos = flows[f, F_HASH] & mask
        while index[pos] != EMPTY:
            pos = (pos + 1) & mask
        index[pos] = f
        f = flows[f, F_NEXT]


@njit(cache=True, nogil=True)
def _index_remove(flows: NDArray[np.int64], index: NDArray[np.int64], f: int) -> None:
    mask = index.shape[0] - 1
    pos = flows[f, F_HASH] & mask
    while index[pos] != f:
        pos = (pos + 1) & mask
    # backward-shift deletion keeps every probe chain unbroken without tombstones
    hole = pos
    nxt = (hole + 1) & mask
    while index[nxt] != EMPTY:
        home = flows[index[nxt], F_HASH] & mask
        # move the entry into the hole unless its home lies cyclically in (hole, nxt]
        if (nxt - home) & mask >= (nxt - hole) & mask:
            index[hole] = index[nxt]
            hole = nxt
        nxt = (nxt + 1) & mask
    index[hole] = EMPTY


@njit(cache=True, nogil=True)
def _unlink(flows: NDArray[np.int64], scalars: NDArray[np.int64], f: int) -> None:
    prev = flows[f, F_PREV]
    nxt = flows[f, F_NEXT]
    if prev == EMPTY:
        scalars[S_HEAD] = nxt
    else:
        flows[prev, F_NEXT] = nxt
    if nxt == EMPTY:
        scalars[S_TAIL] = prev
    else:
        flows[nxt, F_PREV] = prev


@njit(cache=True, nogil=True)
def _append(flows: NDArray[np.int64], scalars: NDArray[np.int64], f: int) -> None:
    tail = scalars[S_TAIL]
    flows[f, F_PREV] = tail
    flows[f, F_NEXT] = EMPTY
    if tail == EMPTY:
        scalars[S_HEAD] = f
    else:
        flows[tail, F_NEXT] = f
    scalars[S_TAIL] = f


@njit(cache=True, nogil=True)
def _expire_flow(  # noqa: PLR0917 (numba kernels take positional arrays)
    flows: NDArray[np.int64],
    items: NDArray[np.int64],
    index: NDArray[np.int64],
    scalars: NDArray[np.int64],
    out: NDArray[np.int64],
    f: int,
) -> None:
    """Write every item of flow ``f`` to ``out`` and free the flow and its items."""
    ports = flows[f, F_PORTS]
    it = flows[f, F_IHEAD]
    while it != EMPTY:
        row = scalars[S_NOUT]
        out[row, 0] = flows[f, F_SHI]
        out[row, 1] = flows[f, F_SLO]
        out[row, 2] = flows[f, F_DHI]
        out[row, 3] = flows[f, F_DLO]
        out[row, 4] = (ports >> 24) & 0xFFFF
        out[row, 5] = (ports >> 8) & 0xFFFF
        out[row, 6] = ports & 0xFF
        out[row, 7] = items[it, I_DS]
        out[row, 8] = items[it, I_PROJ]
        out[row, 9] = items[it, I_UID]
        out[row, 10] = items[it, I_NPK]
        out[row, 11] = items[it, I_NBY]
        out[row, 12] = items[it, I_FIRST]
        out[row, 13] = items[it, I_LAST]
        scalars[S_NOUT] = row + 1
        scalars[S_TBYTES] -= items[it, I_NBY]
        scalars[S_NITEMS] -= 1
        nxt = items[it, I_NEXT]
        items[it, I_NEXT] = scalars[S_IFREE]
        scalars[S_IFREE] = it
        it = nxt
    _unlink(flows, scalars, f)
    _index_remove(flows, index, f)
    flows[f, F_NEXT] = scalars[S_FFREE]
    scalars[S_FFREE] = f
    scalars[S_NFLOWS] -= 1


@njit(cache=True, nogil=True)
def _room_for(
    flows: NDArray[np.int64],
    items: NDArray[np.int64],
    scalars: NDArray[np.int64],
    out_cap: int,
    f: int,
) -> bool:
    """Whether the record buffer can take every item of flow ``f``."""
    free = out_cap - scalars[S_NOUT]
    it = flows[f, F_IHEAD]
    while it != EMPTY:
        free -= 1
        if free < 0:
            return False
        it = items[it, I_NEXT]
    return True


@njit(cache=True, nogil=True)
def sweep(  # noqa: PLR0917
    flows: NDArray[np.int64],
    items: NDArray[np.int64],
    index: NDArray[np.int64],
    scalars: NDArray[np.int64],
    out: NDArray[np.int64],
    when: int,
    timeout_ns: int,
) -> bool:
    """Expire, oldest first, every flow idle for at least ``timeout_ns`` at time ``when``.

    Returns False, with the sweep half done, when the record buffer cannot take
    the next flow's items; calling again with the same ``when`` resumes it.
    """
    out_cap = out.shape[0]
    f = scalars[S_HEAD]
    while f != EMPTY and when - flows[f, F_LAST] >= timeout_ns:
        if not _room_for(flows, items, scalars, out_cap, f):
            return False
        nxt = flows[f, F_NEXT]
        _expire_flow(flows, items, index, scalars, out, f)
        f = nxt
    return True


@njit(cache=True, nogil=True)
def flush_all(
    flows: NDArray[np.int64],
    items: NDArray[np.int64],
    index: NDArray[np.int64],
    scalars: NDArray[np.int64],
    out: NDArray[np.int64],
) -> bool:
    """End of input: expire every flow, oldest last-seen first; False if ``out`` filled up."""
    out_cap = out.shape[0]
    while scalars[S_HEAD] != EMPTY:
        if not _room_for(flows, items, scalars, out_cap, scalars[S_HEAD]):
            return False
        _expire_flow(flows, items, index, scalars, out, scalars[S_HEAD])
    return True


@njit(cache=True, nogil=True)
def account(  # noqa: PLR0917
    flows: NDArray[np.int64],
    items: NDArray[np.int64],
    index: NDArray[np.int64],
    scalars: NDArray[np.int64],
    out: NDArray[np.int64],
    timer_ns: int,
    timeout_ns: int,
    max_limit: int,
    rows: NDArray[np.int64],
    start: int,
    cols: PacketColumns,
    verdict: NDArray[np.uint8],
) -> tuple[int, int]:
    """Account packets ``rows[start:]``; return (status, position reached).

    Packets that are not IP pass untouched, and so do packets cut inside their IP
    header (FLAG_HEADER_CUT): without addresses they belong to no flow. The DS byte
    accounted is the one earlier actions left (``new_ds`` when set). Stops before a
    packet, leaving it untouched, when a pool has no free row (NEED_GROW) or the record buffer might
    not take the records a sweep or a full-table expiry produces (NEED_DRAIN; a
    sweep cut short resumes on the next call). ``cols`` are the batch's columns.
    """
    ts_ns, ip_version, flags, ip_len = cols.ts_ns, cols.ip_version, cols.flags, cols.ip_len
    saddr_hi, saddr_lo = cols.saddr_hi, cols.saddr_lo
    daddr_hi, daddr_lo = cols.daddr_hi, cols.daddr_lo
    sport, dport, protocol = cols.sport, cols.dport, cols.protocol
    ds_byte, new_ds = cols.ds_byte, cols.new_ds
    projid, uid = cols.projid, cols.uid
    mask = index.shape[0] - 1
    out_cap = out.shape[0]
    for k in range(start, rows.shape[0]):
        if scalars[S_FFREE] == EMPTY or scalars[S_IFREE] == EMPTY:
            return NEED_GROW, k
        if scalars[S_PENDING] != 0:
            if not sweep(flows, items, index, scalars, out, scalars[S_SWEEP_AT], timeout_ns):
                return NEED_DRAIN, k
            scalars[S_PENDING] = 0
        r = rows[k]
        if ip_version[r] == 0 or (flags[r] & FLAG_HEADER_CUT) != 0:
            verdict[k] = V_PASS
            continue
        now = ts_ns[r]
        if scalars[S_STARTED] == 0:
            scalars[S_STARTED] = 1
            scalars[S_CLOCK] = now
            scalars[S_DEADLINE] = now + timer_ns
        elif now < scalars[S_CLOCK]:
            now = scalars[S_CLOCK]  # packet time never runs backwards for the table
        else:
            scalars[S_CLOCK] = now
        # timer: one sweep at the latest deadline <= now (missed deadlines would
        # find nothing more, since no packet arrived between them)
        due = False
        when = now
        if timer_ns == 0:
            due = True
        elif now >= scalars[S_DEADLINE]:
            due = True
            when = scalars[S_DEADLINE] + ((now - scalars[S_DEADLINE]) // timer_ns) * timer_ns
            scalars[S_DEADLINE] = when + timer_ns
        if (
            due
            and scalars[S_HEAD] != EMPTY
            and not sweep(flows, items, index, scalars, out, when, timeout_ns)
        ):
            scalars[S_PENDING] = 1
            scalars[S_SWEEP_AT] = when
            return NEED_DRAIN, k

        shi = np.int64(saddr_hi[r])
        slo = np.int64(saddr_lo[r])
        dhi = np.int64(daddr_hi[r])
        dlo = np.int64(daddr_lo[r])
        ports = (np.int64(sport[r]) << 24) | (np.int64(dport[r]) << 8) | np.int64(protocol[r])
        h = flow_hash(shi, slo, dhi, dlo, ports)
        pos = h & mask
        f = EMPTY
        while index[pos] != EMPTY:
            g = index[pos]
            if (
                flows[g, F_HASH] == h
                and flows[g, F_PORTS] == ports
                and flows[g, F_SLO] == slo
                and flows[g, F_DLO] == dlo
                and flows[g, F_SHI] == shi
                and flows[g, F_DHI] == dhi
            ):
                f = g
                break
            pos = (pos + 1) & mask
        dsv = np.int64(new_ds[r]) if new_ds[r] >= 0 else np.int64(ds_byte[r])
        pj = np.int64(projid[r])
        us = np.int64(uid[r])
        it = EMPTY
        if f != EMPTY:
            j = flows[f, F_IHEAD]
            while j != EMPTY:
                if items[j, I_DS] == dsv and items[j, I_PROJ] == pj and items[j, I_UID] == us:
                    it = j
                    break
                j = items[j, I_NEXT]
        length = np.int64(ip_len[r])
        if it == EMPTY:
            if scalars[S_NITEMS] + 1 > max_limit:
                # one try: the oldest flow other than this packet's own, if it timed out
                victim = scalars[S_HEAD]
                if victim != EMPTY and victim == f:
                    victim = flows[victim, F_NEXT]
                if victim != EMPTY and now - flows[victim, F_LAST] >= timeout_ns:
                    if not _room_for(flows, items, scalars, out_cap, victim):
                        return NEED_DRAIN, k  # nothing changed yet: the packet is redone
                    _expire_flow(flows, items, index, scalars, out, victim)
            if scalars[S_NITEMS] + 1 > max_limit:
                scalars[S_EPACKETS] += 1
                verdict[k] = V_FAIL
                continue
            if f == EMPTY:
                f = scalars[S_FFREE]
                scalars[S_FFREE] = flows[f, F_NEXT]
                flows[f, F_SHI] = shi
                flows[f, F_SLO] = slo
                flows[f, F_DHI] = dhi
                flows[f, F_DLO] = dlo
                flows[f, F_PORTS] = ports
                flows[f, F_HASH] = h
                flows[f, F_IHEAD] = EMPTY
                flows[f, F_ITAIL] = EMPTY
                pos = h & mask
                while index[pos] != EMPTY:
                    pos = (pos + 1) & mask
                index[pos] = f
                scalars[S_NFLOWS] += 1
            else:
                _unlink(flows, scalars, f)
            it = scalars[S_IFREE]
            scalars[S_IFREE] = items[it, I_NEXT]
            items[it, I_DS] = dsv
            items[it, I_PROJ] = pj
            items[it, I_UID] = us
            items[it, I_NPK] = 1
            items[it, I_NBY] = length
            items[it, I_FIRST] = now
            items[it, I_NEXT] = EMPTY
            tail = flows[f, F_ITAIL]
            if tail == EMPTY:
                flows[f, F_IHEAD] = it
            else:
                items[tail, I_NEXT] = it
            flows[f, F_ITAIL] = it
            scalars[S_NITEMS] += 1
            _append(flows, scalars, f)
        else:
            items[it, I_NPK] += 1
            items[it, I_NBY] += length
            if scalars[S_TAIL] != f:  # already the newest: the list order stands
                _unlink(flows, scalars, f)
                _append(flows, scalars, f)
        items[it, I_LAST] = now
        flows[f, F_LAST] = now
        scalars[S_NPACKETS] += 1
        scalars[S_NBYTES] += length
        scalars[S_TBYTES] += length
        verdict[k] = V_PASS
    return DONE, rows.shape[0]
