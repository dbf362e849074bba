"""What tokenmt and tswtclmt share: counter layout, the error rule, outcome routing.

Both meters keep the same kstat counters (docs/meters.md, "Common rules") and treat packets they
cannot meter the same way: a row that is not IP or is flagged malformed has no usable
length, so, as the illumos modules return an error for it and the IP layer then drops
the packet, it counts in ``epackets`` and goes to ``ipp.drop`` with no colour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diffserv.columns import ACTION_DROP, FLAG_MALFORMED, NOT_IP
from diffserv.engine.context import BuildContext
from diffserv.policy.diagnostics import LocatedPolicyError
from diffserv.policy.interpret import MissingParameterError
from diffserv.policy.model import GREEN, RED, YELLOW, Action

P = TypeVar("P")  # a module's parameter interpretation

# Outcome slots: index into next_ids and into the counters below.
OUTCOME_GREEN = 0
OUTCOME_YELLOW = 1
OUTCOME_RED = 2
OUTCOME_COLOURS = np.array([GREEN, YELLOW, RED], dtype=np.uint8)

# counters[outcome] = packets, counters[3 + outcome] = bits, counters[6] = epackets
EPACKETS_SLOT = 6
COUNTER_SLOTS: tuple[tuple[str, int], ...] = (
    ("red_packets", OUTCOME_RED),
    ("yellow_packets", OUTCOME_YELLOW),
    ("green_packets", OUTCOME_GREEN),
    ("red_bits", 3 + OUTCOME_RED),
    ("yellow_bits", 3 + OUTCOME_YELLOW),
    ("green_bits", 3 + OUTCOME_GREEN),
    ("epackets", EPACKETS_SLOT),
)

ERROR_NEXT_ACTION = ACTION_DROP


@njit(cache=True, nogil=True, inline="always")
def is_meterable(ip_version: np.uint8, flags: np.uint8) -> bool:
    """A row has an IP datagram length the meter can trust."""
    return bool(ip_version != NOT_IP and (flags & FLAG_MALFORMED) == 0)


@njit(cache=True, nogil=True, inline="always")
def packet_bits(ip_len: np.uint32) -> np.int64:
    """Packet size in bits: the IP datagram length × 8 (fits int64: < 2^35)."""
    return np.int64(ip_len) * np.int64(8)


@njit(cache=True, nogil=True, inline="always")
def record_outcome(  # noqa: PLR0917 (numba helpers take arrays positionally)
    outcome: int,
    bits: np.int64,
    row: np.int64,
    position: int,
    next_ids: NDArray[np.int32],
    counters: NDArray[np.int64],
    colour_out: NDArray[np.uint8],
    next_out: NDArray[np.int32],
) -> None:
    """Count a metered packet, colour its row and route it to the outcome's action."""
    counters[outcome] += 1
    counters[3 + outcome] += bits
    colour_out[row] = OUTCOME_COLOURS[outcome]
    next_out[position] = next_ids[outcome]


@njit(cache=True, nogil=True, inline="always")
def record_error(
    row: np.int64,
    position: int,
    counters: NDArray[np.int64],
    colour_out: NDArray[np.uint8],
    next_out: NDArray[np.int32],
) -> None:
    """Count a packet that cannot be metered; it leaves uncoloured, to ``ipp.drop``."""
    counters[EPACKETS_SLOT] += 1
    colour_out[row] = 0
    next_out[position] = ERROR_NEXT_ACTION


class MeterBase:
    """Counters, routing and the Operator boilerplate common to both meters."""

    module = ""

    def __init__(
        self, action: Action, ctx: BuildContext, *, green: str, yellow: str | None, red: str
    ) -> None:
        self.name = action.name
        self.three_outcomes = yellow is not None
        ids = [ctx.action_id(green), ERROR_NEXT_ACTION, ctx.action_id(red)]
        if yellow is not None:
            ids[OUTCOME_YELLOW] = ctx.action_id(yellow)
        self._next_ids: NDArray[np.int32] = np.array(ids, dtype=np.int32)
        self._counters: NDArray[np.int64] = np.zeros(7, dtype=np.int64)

    def finish(self) -> None:
        """Meters hold no pending output."""

    def counters(self) -> Mapping[str, int]:
        return {name: int(self._counters[slot]) for name, slot in COUNTER_SLOTS}


def policy_error(action: Action, text: str) -> LocatedPolicyError:
    """A rejection of ``action``, placed at its ``action`` keyword when that is known."""
    return LocatedPolicyError.of_action(action, text, marker="error: ")


def missing(action: Action) -> LocatedPolicyError:
    """The kernel's ENOENT, in ipqosconf's words."""
    return policy_error(action, f"Missing required parameter for action {action.name}.")


def invalid(action: Action) -> LocatedPolicyError:
    """The kernel's EINVAL for an inconsistent parameter set, in ipqosconf's words."""
    return policy_error(action, f"Invalid Parameters for action {action.name}.")


def interpreted(action: Action, interpret: Callable[[Action], P]) -> P:
    """The meter's interpretation of ``action``; an unset required parameter is ENOENT."""
    try:
        return interpret(action)
    except MissingParameterError:
        raise missing(action) from None
