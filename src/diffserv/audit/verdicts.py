"""Per-flow verdicts: the mark a flow carries against the marks its class may leave with.

The policy's marks per class (:mod:`diffserv.audit.expect`) become one lookup table of
64-bit DSCP sets, indexed by class and by the DSCP a flow arrived with (column 64: the
arrival mark is not known, so any mark the class can produce from any arrival is
allowed). A verdict is then one table lookup and one bit test per flow, vectorised:
ten million records are judged in well under a second.

Verdicts, in the order of precedence:

* ``not-evaluable`` — a filter that ranks above the one that decided needs a selector
  the source does not have (uid, an interface name, ...); the class is not known.
* ``no-mark`` — the source has no DS field for the flow (an exporter without ToS).
* ``leak`` — unclassified (the default class), not re-marked by the policy, and
  carrying a priority mark (EF, VA, CS5-CS7 unless told otherwise): the classic mark
  from a host no filter trusts.
* ``mismarked`` — the observed DSCP is not among those the class allows (a class the
  policy only drops allows none).
* ``conforming`` — everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from diffserv.audit.expect import ClassMarks
from diffserv.report.names import dscp_label

CONFORMING: Final = 0
MISMARKED: Final = 1
NOT_EVALUABLE: Final = 2
NO_MARK: Final = 3
LEAK: Final = 4
VERDICTS: Final = ("conforming", "mismarked", "not-evaluable", "no-mark", "leak")
# EF, VOICE-ADMIT, CS5, CS6, CS7: marks that buy priority queueing or control-plane
# treatment on most networks (RFC 4594 telephony, signalling, network control)
PRIORITY_DSCPS: Final = frozenset({46, 44, 40, 48, 56})
UNKNOWN_INPUT: Final = 64  # the table column of "arrival mark not known"


def _bits(dscps: frozenset[int]) -> int:
    out = 0
    for dscp in dscps:
        out |= 1 << dscp
    return out


class MarkTable(NamedTuple):
    """The allowed DSCPs of every (inbound?, class, arrival DSCP), as 64-bit sets.

    Inbound packets (LOCAL_IN, FWD_IN) are never re-marked by IPQoS's markers, so
    the first plane is the outbound marks and the second the inbound ones.
    """

    allowed: NDArray[np.uint64]  # shape (2, classes, 65)
    marking: NDArray[np.bool_]  # per class: whether any path re-marks the DSCP
    default_class: int
    pcps: NDArray[np.int64]  # shape (2, classes): the 802.1p priorities allowed (bits 0-7)

    @classmethod
    def of(cls, marks: Sequence[ClassMarks], default_class: int) -> MarkTable:
        allowed = np.zeros((2, len(marks), UNKNOWN_INPUT + 1), np.uint64)
        for inbound in (False, True):
            for index, mark in enumerate(marks):
                union = 0
                for dscp_in in range(64):
                    bits = _bits(mark.allowed_dscps(dscp_in, inbound=inbound))
                    allowed[int(inbound), index, dscp_in] = np.uint64(bits)
                    union |= bits
                allowed[int(inbound), index, UNKNOWN_INPUT] = np.uint64(union)
        marking = np.array([mark.marks() for mark in marks], np.bool_)
        pcps = np.zeros((2, len(marks)), np.int64)
        for inbound in (False, True):
            for index, mark in enumerate(marks):
                for pcp_in in range(8):  # a frame's priority before the marker: unknown
                    for pcp in mark.allowed_pcps(pcp_in, inbound=inbound) or ():
                        pcps[int(inbound), index] |= 1 << pcp
        return cls(allowed, marking, default_class, pcps)


class Judged(NamedTuple):
    verdict: NDArray[np.int8]
    allowed: NDArray[np.uint64]  # the allowed set each flow was held to (0 if none)
    pcp_wrong: NDArray[np.bool_]  # the 802.1p priority is one the class cannot leave with
    pcp_allowed: NDArray[np.int64]  # the priorities the class can leave with (bits 0-7)


def judge(  # noqa: PLR0917 (the columns of one batch of flows)
    table: MarkTable,
    class_index: NDArray[np.int32],
    blocked: NDArray[np.bool_],
    dscp_in: NDArray[np.int16],
    observed: NDArray[np.int16],
    inbound: NDArray[np.bool_],
    priority: frozenset[int] = PRIORITY_DSCPS,
    pcp: NDArray[np.int16] | None = None,
) -> Judged:
    """The verdict of every flow.

    ``class_index``: each flow's class (any value where ``blocked``); ``dscp_in``: the
    DSCP it arrived with, -1 when the source cannot tell (then the class's marks from
    any arrival are allowed); ``observed``: the DSCP it carries, -1 when not exported;
    ``inbound``: the policy sees the flow inbound, where markers leave packets alone;
    ``pcp``: the 802.1p priority a tagged frame carries, -1 untagged or not exported
    (a wrong one makes the flow mismarked too).
    """
    n = class_index.shape[0]
    verdict = np.full(n, CONFORMING, np.int8)
    classes = np.where(blocked, 0, class_index).astype(np.int64, copy=False)
    column = np.where((dscp_in >= 0) & (dscp_in < 64), dscp_in, UNKNOWN_INPUT).astype(
        np.int64, copy=False
    )
    plane = inbound.astype(np.int64, copy=False)
    if n and table.allowed.size:
        allowed = table.allowed[plane, classes, column]
    else:
        allowed = np.zeros(n, np.uint64)
    seen = np.clip(observed, 0, 63).astype(np.uint64, copy=False)
    fits = ((allowed >> seen) & np.uint64(1)).astype(np.bool_, copy=False)
    known = observed >= 0
    pcp_wrong = np.zeros(n, np.bool_)
    mask = table.pcps[plane, classes] if n and table.pcps.size else np.full(n, 0xFF, np.int64)
    if pcp is not None and n and table.pcps.size:
        tagged = (pcp >= 0) & (pcp < 8)
        pcp_wrong = tagged & (((mask >> np.clip(pcp, 0, 7).astype(np.int64, copy=False)) & 1) == 0)
    verdict[known & (~fits | pcp_wrong)] = MISMARKED
    if table.allowed.size:
        priority_bits = np.uint64(_bits(priority))
        unmarked = ~table.marking[classes] | inbound
        leak = (
            known
            & (classes == table.default_class)
            & unmarked
            & (((priority_bits >> seen) & np.uint64(1)).astype(np.bool_, copy=False))
        )
        verdict[leak] = LEAK
    verdict[~known] = NO_MARK
    verdict[blocked] = NOT_EVALUABLE
    allowed = np.where(blocked | ~known, np.uint64(0), allowed)
    return Judged(verdict, allowed, pcp_wrong & (verdict == MISMARKED), mask)


ALL_DSCPS: Final = 2**64 - 1


def dscps_of(bits: int) -> list[int]:
    """The DSCPs of a 64-bit set, ascending."""
    return [dscp for dscp in range(64) if bits >> dscp & 1]


def allowed_labels(bits: int) -> list[str]:
    """The names of an allowed set: ["any"] for all 64 (a class the policy leaves
    unmarked, arrival mark unknown), [] for none (a class the policy drops)."""
    bits &= ALL_DSCPS
    return ["any"] if bits == ALL_DSCPS else [dscp_label(d) for d in dscps_of(bits)]
