"""What tokenmt and tswtclmt share: counter layout, the error rule, outcome routing.

Both meters keep the same kstat counters (docs/meters.md, "Common rules") and treat packets they
cannot meter the same way: a row that is not IP or is flagged malformed has no usable
length, so, as the illumos modules return an error for it and the IP layer then drops
the packet, it counts in ``epackets`` and goes to ``ipp.drop`` with no colour.

The per-packet half of these rules (which rows are meterable, how an outcome is counted,
coloured and routed) is compiled: ``is_meterable``, ``record_outcome`` and ``record_error``
in src/kernels/meters.c, which reads the slots defined here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import ACTION_DROP
from diffserv.engine.context import BuildContext
from diffserv.policy.diagnostics import LocatedPolicyError
from diffserv.policy.interpret import MissingParameterError
from diffserv.policy.model import GREEN, RED, YELLOW, Action

P = TypeVar("P")  # a module's parameter interpretation

# Outcome slots: index into next_ids and into the counters below (src/kernels/meters.c
# numbers them alike and colours them with the same table).
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


class MeterBase:
    """Counters, routing and the Operator boilerplate common to both meters."""

    module = ""
    # what a policy swap carries over when the action is unchanged (engine.carry)
    state_attributes: tuple[str, ...] = ("_state", "_counters")

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
