"""Which state survives a policy swap, and how it moves (``Session.replace_policy``).

A running daemon replaces its policy without losing what it has measured: an action whose
definition is unchanged keeps its token buckets, rate estimate, random stream, flow table
and counters. "Unchanged" compares what shapes the action's state, not where it sends
packets: the module, the name, ``global_stats``, every parameter that is not an action
reference, the filters, and the classes' names and statistics flags. So re-pointing a
meter's ``red_action`` or a class's ``next_action`` keeps the meter's buckets and the
classifier's counters, while a changed rate or filter starts that action afresh.

The new policy is always compiled whole (action ids and routing are the new policy's); the
carried state is then moved into the new operators by reference, attribute by attribute,
as each operator class lists in ``state_attributes``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from diffserv.engine.operator import Operator
from diffserv.policy.model import Action
from diffserv.policy.schema import is_action_param


class Swap(msgspec.Struct, frozen=True):
    """What a policy swap did to each action, by name (sorted)."""

    kept: tuple[str, ...] = ()  # same definition: state carried over
    fresh: tuple[str, ...] = ()  # new or changed: started from nothing
    removed: tuple[str, ...] = ()  # only in the old policy: gone (flowacct flushed first)


def state_identity(action: Action) -> Action:
    """``action`` without the parts that only route packets (action references)."""
    params = tuple(
        (key, value)
        for key, value in action.params
        if not (isinstance(value, str) and is_action_param(action.module, key))
    )
    classes = tuple(msgspec.structs.replace(cls, next_action="") for cls in action.classes)
    return msgspec.structs.replace(action, params=params, classes=classes, location=None)


def state_attributes(op: Operator) -> tuple[str, ...]:
    """The attributes holding ``op``'s state; () for an operator that declares none."""
    names: tuple[str, ...] = getattr(type(op), "state_attributes", ())
    return names


def carry_state(old: Operator, new: Operator) -> None:
    """Move ``old``'s state into ``new`` (same module and definition; checked by the caller)."""
    for name in state_attributes(new):
        setattr(new, name, getattr(old, name))


def plan(
    old: Mapping[str, tuple[Action, Operator]], new: Mapping[str, tuple[Action, Operator]]
) -> Swap:
    """Which actions of ``new`` keep the state of ``old``'s action of the same name."""
    kept: list[str] = []
    fresh: list[str] = []
    for name, (action, op) in new.items():
        before = old.get(name)
        if (
            before is not None
            and before[1].module == op.module
            and type(before[1]) is type(op)
            and state_identity(before[0]) == state_identity(action)
        ):
            kept.append(name)
        else:
            fresh.append(name)
    removed = [name for name in old if name not in new]
    return Swap(tuple(sorted(kept)), tuple(sorted(fresh)), tuple(sorted(removed)))
