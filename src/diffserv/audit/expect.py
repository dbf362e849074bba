"""The marks a policy allows, per ipgpc class: a static walk of the action graph.

An audit compares the DSCP (and 802.1p PCP) a packet left with against what the policy
could have given it. Meter rates are unknown statically, so every meter outcome is
possible and a class has a *set* of allowed marks, one per path a packet can take from
its class's ``next_action`` to ``continue``, ``drop`` or ``defer``. The semantics mirror
the engine (``diffserv.engine.modules``), which is the truth:

* dscpmk maps the DSCP as earlier actions left it: a chain composes its maps; a path
  without one (or whose maps compose to the identity) leaves the DSCP unchanged.
* dlcosmk writes the PCP of its ``cos`` (through the illumos maps in the default
  ``cos_mode``); the last one on a path wins; untagged frames get no PCP.
* Markers never touch inbound packets (LOCAL_IN, FWD_IN): ``inbound=True`` below.
* tokenmt and tswtclmt branch to every outcome they have (two-outcome tokenmt: no
  yellow), except that a colour-aware tokenmt never improves the colour its
  ``color_map`` gives the DSCP it reads (the DSCP as the markers before it left it), so
  the incoming DSCP can rule a branch out. The rule is the kernel's
  (``token_meter_loop`` in src/kernels/meters.c), restated in ``_tokenmt_admits``.
* flowacct passes packets on, but drops one whose new flow finds its table full: that
  is a path too (ending ``TABLE_FULL``), so a class through flowacct "can drop".
* ``drop`` and ``defer`` (which the engine treats as removed from the output) end a path
  with no packet out; ``continue`` ends it with the packet written.

Only the policy is read: no packets, no engine, so an audit can explain a verdict
("expected AF11, AF12 or AF13 (meter m1 green/yellow/red)") without running anything.
"""

from __future__ import annotations

from typing import Final

import msgspec

from diffserv.errors import DiffservError, InternalError
from diffserv.policy.explain import dscp_label
from diffserv.policy.interpret import (
    DEFAULT_COS_MODE,
    DlcosmkParams,
    DscpmkParams,
    FlowacctParams,
    TokenmtParams,
    TswtclmtParams,
    interpret,
    ipgpc_params,
)
from diffserv.policy.model import CONTINUE, DEFER, DROP, GREEN, RED, VIRTUAL_ACTIONS, YELLOW, Policy
from diffserv.policy.schema import IDENTITY_DSCP_MAP

DSCP_VALUES: Final = 64
TABLE_FULL: Final = "flowacct.table_full"  # the ending of a packet flowacct drops (table full)
ENDINGS: Final = frozenset({CONTINUE, DROP, DEFER, TABLE_FULL})
OUTCOME_NAMES: Final = ("green", "yellow", "red")
# A class with more paths than this is refused rather than enumerated: chained meters
# multiply (3 outcomes per meter), and an audit message listing thousands is no use.
MAX_PATHS: Final = 4096

DscpMap = tuple[int, ...]


class TooManyPathsError(DiffservError):
    """A class has more paths through the action graph than an audit enumerates."""


class ColourCheck(msgspec.Struct, frozen=True):
    """A colour-aware tokenmt on a path: the outcome taken is possible only for some DSCPs.

    ``before`` is the composed map of the markers ahead of the meter (None: none), so the
    DSCP the meter reads is ``before[dscp_in]`` for an outbound packet and ``dscp_in``
    for an inbound one (markers skip those); ``admitted`` holds the DSCPs, as the meter
    reads them, whose colour allows the outcome.
    """

    meter: str
    outcome: str
    before: DscpMap | None
    admitted: frozenset[int]

    def admits(self, dscp_in: int, *, inbound: bool = False) -> bool:
        seen = dscp_in if inbound or self.before is None else self.before[dscp_in]
        return seen in self.admitted


class Path(msgspec.Struct, frozen=True):
    """One way through the action graph from a class to the end of its chain.

    ``actions`` are the real actions in order; ``meters``/``outcomes`` pair each meter on
    the path with the outcome taken there ("green", "yellow", "red"). ``dscp_map`` is the
    composed 64-entry map of its dscpmk actions (None: the DSCP leaves unchanged);
    ``pcp`` the PCP its last dlcosmk writes (None: unchanged); ``markers`` names its
    dscpmk actions. ``ending`` is CONTINUE,
    DROP, DEFER or TABLE_FULL; only CONTINUE lets the packet out (``dropped`` otherwise).
    """

    actions: tuple[str, ...]
    meters: tuple[str, ...]
    outcomes: tuple[str, ...]
    dscp_map: DscpMap | None
    pcp: int | None
    ending: str
    markers: tuple[str, ...] = ()  # the dscpmk actions among ``actions``
    colour_checks: tuple[ColourCheck, ...] = ()

    @property
    def dropped(self) -> bool:
        return self.ending != CONTINUE

    def possible(self, dscp_in: int, *, inbound: bool = False) -> bool:
        """Whether a packet arriving with ``dscp_in`` can take this path."""
        return all(check.admits(dscp_in, inbound=inbound) for check in self.colour_checks)

    def possible_for_some_dscp(self) -> bool:
        return any(self.possible(d) or self.possible(d, inbound=True) for d in range(DSCP_VALUES))

    def dscp_out(self, dscp_in: int, *, inbound: bool = False) -> int:
        if inbound or self.dscp_map is None:
            return dscp_in
        return self.dscp_map[dscp_in]

    def pcp_out(self, pcp_in: int | None, *, inbound: bool = False) -> int | None:
        """The PCP the frame leaves with; None for an untagged frame (nothing to write)."""
        if pcp_in is None or inbound or self.pcp is None:
            return pcp_in
        return self.pcp

    def steps(self) -> str:
        """``m1 green`` / ``m1 red, m2 green``: the meter outcomes that lead here."""
        return ", ".join(f"{m} {o}" for m, o in zip(self.meters, self.outcomes, strict=True))


class ClassMarks(msgspec.Struct, frozen=True):
    """Every path of one ipgpc class, and the marks its packets may leave with."""

    class_name: str
    next_action: str
    paths: tuple[Path, ...]

    def out_paths(self, dscp_in: int | None = None, *, inbound: bool = False) -> tuple[Path, ...]:
        """The paths that let a packet out, for ``dscp_in`` (None: for some DSCP)."""
        return tuple(
            p
            for p in self.paths
            if not p.dropped
            and (
                p.possible_for_some_dscp()
                if dscp_in is None
                else p.possible(dscp_in, inbound=inbound)
            )
        )

    def allowed_dscps(self, dscp_in: int, *, inbound: bool = False) -> frozenset[int]:
        """The DSCPs a packet arriving with ``dscp_in`` may leave with (empty: dropped)."""
        _check_dscp(dscp_in)
        return frozenset(
            p.dscp_out(dscp_in, inbound=inbound) for p in self.out_paths(dscp_in, inbound=inbound)
        )

    def allowed_pcps(
        self, pcp_in: int | None, *, dscp_in: int | None = None, inbound: bool = False
    ) -> frozenset[int] | None:
        """The PCPs a frame tagged ``pcp_in`` may leave with; None for an untagged frame.

        With ``dscp_in`` the colour-aware restrictions for that DSCP apply, else every
        path possible for some DSCP counts.
        """
        if pcp_in is None:
            return None
        paths = self.out_paths(dscp_in, inbound=inbound)
        return frozenset(
            out for p in paths if (out := p.pcp_out(pcp_in, inbound=inbound)) is not None
        )

    def allowed_marks(
        self, dscp_in: int, pcp_in: int | None, *, inbound: bool = False
    ) -> frozenset[tuple[int, int | None]]:
        """(DSCP, PCP) pairs together: a path sets both, so each alone is not enough."""
        _check_dscp(dscp_in)
        return frozenset(
            (p.dscp_out(dscp_in, inbound=inbound), p.pcp_out(pcp_in, inbound=inbound))
            for p in self.out_paths(dscp_in, inbound=inbound)
        )

    def marks(self) -> bool:
        """Whether some path that lets packets out re-marks the DSCP."""
        return any(p.dscp_map is not None for p in self.out_paths())

    def marks_pcp(self) -> bool:
        return any(p.pcp is not None for p in self.out_paths())

    def always_dropped(self) -> bool:
        """No packet of the class ever leaves: one observed is "should have been dropped"."""
        return not self.out_paths()

    def can_drop(self) -> bool:
        return any(p.dropped for p in self.paths)

    def describe(self, dscp_in: int | None = None, *, inbound: bool = False) -> str:
        """One line for audit messages: ``AF11, AF12 or AF13 (meter m1 green/yellow/red)``.

        With ``dscp_in`` it speaks of what a packet with that DSCP may get.
        """
        paths = [
            p
            for p in self.paths
            if p.ending != TABLE_FULL  # possible for any flowacct class: not worth a word
            and (
                p.possible(dscp_in, inbound=inbound)
                if dscp_in is not None
                else p.possible_for_some_dscp()
            )
        ]
        out = [p for p in paths if not p.dropped]
        dropped = [p for p in paths if p.dropped]
        if not out:
            return "dropped" + _meter_note(dropped)
        text = _labels(out, dscp_in, inbound) + _meter_note(out)
        if dropped:
            when = [f"meter {p.steps()}" for p in dropped if p.meters]
            text += "; dropped" + (f" when {_either(when)}" if when else " on some paths")
        return text


def _check_dscp(dscp: int) -> None:
    if not 0 <= dscp < DSCP_VALUES:
        raise ValueError(f"DSCP {dscp} is not 0..63")


def _short(dscp: int) -> str:
    """``EF``, ``AF11``; ``DSCP 13`` for one without a name."""
    return dscp_label(dscp).split(" (", 1)[0]


def _dscp_words(path: Path, dscp_in: int | None, inbound: bool) -> str:
    if inbound or path.dscp_map is None:
        return "unchanged"
    if dscp_in is not None:
        return _short(path.dscp_map[dscp_in])
    if len(set(path.dscp_map)) == 1:
        return _short(path.dscp_map[0])
    return f"re-mapped by {' then '.join(path.markers)}"


def _labels(paths: list[Path], dscp_in: int | None, inbound: bool) -> str:
    """The marks of ``paths`` in words; a PCP they all share is said once, at the end."""
    pcps = {None if inbound else p.pcp for p in paths}
    if len(pcps) == 1:
        (pcp,) = pcps
        words = _either(list(dict.fromkeys(_dscp_words(p, dscp_in, inbound) for p in paths)))
        return words if pcp is None else f"{words} with PCP {pcp}"
    labels = []
    for p in paths:
        dscp = _dscp_words(p, dscp_in, inbound)
        labels.append(dscp if p.pcp is None else f"{dscp} with PCP {p.pcp}")
    return _either(list(dict.fromkeys(labels)))


def _either(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _meter_note(paths: list[Path]) -> str:
    """`` (meter m1 green/yellow/red)``: the outcomes of each meter across ``paths``."""
    seen: dict[str, dict[str, None]] = {}
    for path in paths:
        for meter, outcome in zip(path.meters, path.outcomes, strict=True):
            seen.setdefault(meter, {})[outcome] = None
    if not seen:
        return ""
    parts = [
        f"meter {m} " + "/".join(o for o in OUTCOME_NAMES if o in outs) for m, outs in seen.items()
    ]
    return f" ({', '.join(parts)})"


# --- the walk ---------------------------------------------------------------------------


def _compose(first: DscpMap | None, then: DscpMap) -> DscpMap | None:
    """``then`` applied after ``first``; None when the result is the identity."""
    composed = then if first is None else tuple(then[d] for d in first)
    return None if composed == IDENTITY_DSCP_MAP else composed


def _tokenmt_admits(params: TokenmtParams, pre: int, outcome: str) -> bool:
    """Whether a packet of pre-colour ``pre`` can get ``outcome`` (the kernel's rule).

    Two-rate: red and yellow pre-colours are never promoted (a yellow one may still be
    red for want of peak tokens). Single-rate: only green takes from C; yellow needs
    green or yellow and a third outcome; red is always possible.
    """
    if outcome == "red":
        return True
    if params.two_rate:
        return pre != RED and (outcome == "yellow" or pre != YELLOW)
    if outcome == "green":
        return pre == GREEN
    return params.three_outcomes and pre in (GREEN, YELLOW)


class _Walker:
    """Enumerates the paths from one action, refusing cycles and path explosions."""

    def __init__(self, policy: Policy, cos_mode: str, class_name: str) -> None:
        self.actions = {a.name: a for a in policy.actions}
        self.cos_mode = cos_mode
        self.class_name = class_name
        self.paths: list[Path] = []

    def add(self, path: Path) -> None:
        if len(self.paths) >= MAX_PATHS:
            raise TooManyPathsError(
                f"class {self.class_name}: more than {MAX_PATHS} paths through the action "
                "graph (chained meters); the audit cannot list its marks"
            )
        self.paths.append(path)

    def walk(self, name: str, path: Path, stack: tuple[str, ...]) -> None:
        if name in VIRTUAL_ACTIONS:
            self.add(msgspec.structs.replace(path, ending=name))
            return
        if name in stack:
            raise InternalError(
                f"class {self.class_name}: action {name} is reached again from itself "
                f"({' -> '.join((*stack, name))}); the validator should have refused the cycle"
            )
        action = self.actions.get(name)
        if action is None:
            raise InternalError(f"class {self.class_name}: undefined action {name}")
        params = interpret(action)
        here = msgspec.structs.replace(path, actions=(*path.actions, name))
        inner = (*stack, name)
        if isinstance(params, DscpmkParams):
            marked = msgspec.structs.replace(
                here,
                dscp_map=_compose(path.dscp_map, params.dscp_map),
                markers=(*path.markers, name),
            )
            self.walk(params.next_action, marked, inner)
        elif isinstance(params, DlcosmkParams):
            cos = msgspec.structs.replace(here, pcp=params.pcp(self.cos_mode))
            self.walk(params.next_action, cos, inner)
        elif isinstance(params, FlowacctParams):
            self.add(msgspec.structs.replace(here, ending=TABLE_FULL))
            self.walk(params.next_action, here, inner)
        elif isinstance(params, TokenmtParams):
            branches = [("green", params.green_action)]
            if params.yellow_action is not None:
                branches.append(("yellow", params.yellow_action))
            branches.append(("red", params.red_action))
            for outcome, target in branches:
                checks = path.colour_checks
                if params.colour_aware:
                    admitted = frozenset(
                        d
                        for d in range(DSCP_VALUES)
                        if _tokenmt_admits(params, params.colour_map[d], outcome)
                    )
                    if not admitted:
                        continue  # no colour the map gives allows this outcome: never taken
                    if len(admitted) < DSCP_VALUES:
                        check = ColourCheck(name, outcome, path.dscp_map, admitted)
                        checks = (*checks, check)
                self.walk(target, _branch(here, name, outcome, checks), inner)
        elif isinstance(params, TswtclmtParams):
            targets = (params.green_action, params.yellow_action, params.red_action)
            for outcome, target in zip(OUTCOME_NAMES, targets, strict=True):
                self.walk(target, _branch(here, name, outcome, path.colour_checks), inner)
        else:
            raise InternalError(
                f"class {self.class_name}: action {name} ({action.module}) cannot follow a class"
            )


def _branch(path: Path, meter: str, outcome: str, checks: tuple[ColourCheck, ...]) -> Path:
    return msgspec.structs.replace(
        path,
        meters=(*path.meters, meter),
        outcomes=(*path.outcomes, outcome),
        colour_checks=checks,
    )


_START: Final = Path(actions=(), meters=(), outcomes=(), dscp_map=None, pcp=None, ending=CONTINUE)


def class_marks(policy: Policy, class_name: str, cos_mode: str = DEFAULT_COS_MODE) -> ClassMarks:
    """The paths and marks of one class of ``policy``'s classifier (KeyError: no such class)."""
    for cls in ipgpc_params(policy.classifier).classes:
        if cls.name == class_name:
            walker = _Walker(policy, cos_mode, cls.name)
            walker.walk(cls.next_action, _START, ())
            return ClassMarks(cls.name, cls.next_action, tuple(walker.paths))
    raise KeyError(class_name)


def expected_marks(policy: Policy, *, cos_mode: str = DEFAULT_COS_MODE) -> dict[str, ClassMarks]:
    """Every class of ``policy``'s ipgpc action (``default`` included), in class order.

    ``cos_mode`` is the engine's (``EngineOptions.cos_mode``): how a dlcosmk ``cos``
    becomes the PCP written. The policy must be valid (``policy.build.parse``).
    """
    return {
        cls.name: class_marks(policy, cls.name, cos_mode)
        for cls in ipgpc_params(policy.classifier).classes
    }


__all__ = [
    "ENDINGS",
    "MAX_PATHS",
    "TABLE_FULL",
    "ClassMarks",
    "ColourCheck",
    "Path",
    "TooManyPathsError",
    "class_marks",
    "expected_marks",
]
