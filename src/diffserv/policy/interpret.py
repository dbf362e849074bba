"""What each IPQoS module's parameters mean: one typed value per action.

``policy.schema`` declares what may be written (names, types, ranges, defaults);
this module says what an action of each module *is* once written: a frozen
struct per module (``TokenmtParams``, ``DscpmkParams``...) built by one function
from the parsed ``Action``, defaults filled in from the schema. The engine compiles
these values, ``explain`` describes them and the validator's create-time rules sit
beside them, so a module's meaning is written once.

``interpret(action)`` dispatches through ``MODULE_RULES``, the one table of the
modules; an unset required parameter raises ``MissingParameterError``, a value of the
wrong type ``TypeError`` (an ``Action`` built by hand, never one the parser made).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from diffserv.policy.diagnostics import Reporter, clip
from diffserv.policy.model import CONTINUE, Action, Class, Filter, Location, Policy
from diffserv.policy.raw import RawAction, RawItem
from diffserv.policy.schema import (
    COS_BBAND_MAP,
    COS_DLPRI_MAP,
    DLCOSMK,
    DSCPMK,
    FLOWACCT,
    IDENTITY_DSCP_MAP,
    IPGPC,
    TOKENMT,
    TSWTCLMT,
    ModuleSchema,
)


class MissingParameterError(KeyError):
    """A parameter the module cannot do without is not set."""

    def __init__(self, action: str, name: str) -> None:
        super().__init__(f"action {action}: parameter {name} is not set")
        self.action = action
        self.name = name


def _default(schema: ModuleSchema, name: str) -> object:
    spec = schema.param(name)
    assert spec is not None, name
    return spec.default


def _int(action: Action, name: str, schema: ModuleSchema) -> int:
    """An integer parameter, its schema default when unset (an error when it has none)."""
    default = _default(schema, name)
    if not action.has(name) and default is None:
        raise MissingParameterError(action.name, name)
    assert default is None or isinstance(default, int)
    return action.int_param(name, default)


def _optional_int(action: Action, name: str) -> int | None:
    return action.int_param(name) if action.has(name) else None


def _bool(action: Action, name: str, schema: ModuleSchema) -> bool:
    default = _default(schema, name)
    assert isinstance(default, bool)
    return action.bool_param(name, default)


def _array(action: Action, name: str, schema: ModuleSchema) -> tuple[int, ...]:
    value = action.array_param(name)
    if value is not None:
        return value
    default = _default(schema, name)
    assert isinstance(default, tuple)
    return default


def _ref(action: Action, name: str) -> str:
    value = action.ref_param(name)
    if value is None:
        raise MissingParameterError(action.name, name)
    return value


# --- the six modules ----------------------------------------------------------------------


class IpgpcParams(msgspec.Struct, frozen=True):
    """The classifier: its classes (the permanent ``default`` last if the file has none)
    and its filters, in file order."""

    classes: tuple[Class, ...]
    filters: tuple[Filter, ...]

    @property
    def class_ids(self) -> dict[str, int]:
        return {cls.name: i for i, cls in enumerate(self.classes)}


def ipgpc_params(action: Action) -> IpgpcParams:
    classes = list(action.classes)
    for permanent in IPGPC.permanent_classes:
        if not any(cls.name == permanent for cls in classes):
            classes.append(Class(permanent, CONTINUE))
    return IpgpcParams(tuple(classes), tuple(action.filters))


class TokenmtParams(msgspec.Struct, frozen=True):
    """A token bucket meter: single-rate (RFC 2697) without a peak rate, else two-rate."""

    committed_rate_bps: int
    committed_burst_bits: int
    peak_rate_bps: int | None  # None: single-rate
    peak_burst_bits: int | None  # PBS (two-rate) or EBS (single-rate); None unset
    colour_aware: bool
    colour_map: tuple[int, ...]  # DSCP -> GREEN/YELLOW/RED, the module default if unset
    colour_map_given: bool  # the file sets color_map (ignored when colour-blind)
    green_action: str
    yellow_action: str | None  # None: two outcomes only
    red_action: str

    @property
    def two_rate(self) -> bool:
        return self.peak_rate_bps is not None

    @property
    def three_outcomes(self) -> bool:
        return self.yellow_action is not None


def tokenmt_params(action: Action) -> TokenmtParams:
    return TokenmtParams(
        committed_rate_bps=_int(action, "committed_rate", TOKENMT),
        committed_burst_bits=_int(action, "committed_burst", TOKENMT),
        peak_rate_bps=_optional_int(action, "peak_rate"),
        peak_burst_bits=_optional_int(action, "peak_burst"),
        colour_aware=_bool(action, "color_aware", TOKENMT),
        colour_map=_array(action, "color_map", TOKENMT),
        colour_map_given=action.has("color_map"),
        green_action=_ref(action, "green_action_name"),
        yellow_action=action.ref_param("yellow_action_name"),
        red_action=_ref(action, "red_action_name"),
    )


class TswtclmtParams(msgspec.Struct, frozen=True):
    """A time sliding window three colour marker (RFC 2859)."""

    committed_rate_bps: int
    peak_rate_bps: int
    window_ms: int
    green_action: str
    yellow_action: str
    red_action: str


def tswtclmt_params(action: Action) -> TswtclmtParams:
    return TswtclmtParams(
        committed_rate_bps=_int(action, "committed_rate", TSWTCLMT),
        peak_rate_bps=_int(action, "peak_rate", TSWTCLMT),
        window_ms=_int(action, "window", TSWTCLMT),
        green_action=_ref(action, "green_action_name"),
        yellow_action=_ref(action, "yellow_action_name"),
        red_action=_ref(action, "red_action_name"),
    )


class DscpmkParams(msgspec.Struct, frozen=True):
    """A DSCP marker: the outgoing DSCP of each incoming one (ECN bits kept)."""

    dscp_map: tuple[int, ...]
    detailed_stats: bool
    next_action: str

    @property
    def identity(self) -> bool:
        return self.dscp_map == IDENTITY_DSCP_MAP


def dscpmk_params(action: Action) -> DscpmkParams:
    return DscpmkParams(
        dscp_map=_array(action, "dscp_map", DSCPMK),
        detailed_stats=_bool(action, "dscp_detailed_stats", DSCPMK),
        next_action=action.ref_param("next_action") or CONTINUE,
    )


# How a cos value becomes the 802.1Q PCP written: "illumos" through the dlcosmk maps
# (cos 1 and 2 give 0), "plain" as the value itself.
COS_MODES: Final = ("illumos", "plain")
DEFAULT_COS_MODE: Final = COS_MODES[0]


class DlcosmkParams(msgspec.Struct, frozen=True):
    """An 802.1D user priority marker."""

    cos: int
    next_action: str

    @property
    def b_band(self) -> int:
        return COS_BBAND_MAP[self.cos]

    @property
    def dl_max(self) -> int:
        return COS_DLPRI_MAP[self.cos]

    @property
    def sent_as_zero(self) -> bool:
        """Whether illumos sends this cos as priority 0 (cos 1 and 2)."""
        return self.cos != 0 and self.dl_max == 0

    def pcp(self, cos_mode: str = DEFAULT_COS_MODE) -> int:
        """The PCP written in ``cos_mode``; ValueError for an unknown mode."""
        if cos_mode not in COS_MODES:
            raise ValueError(f"unknown cos mode {cos_mode!r} (expected illumos or plain)")
        return self.dl_max if cos_mode == "illumos" else self.cos


def dlcosmk_params(action: Action) -> DlcosmkParams:
    cos = _int(action, "cos", DLCOSMK)
    if not 0 <= cos < len(COS_BBAND_MAP):
        raise ValueError(f"action {action.name}: cos must be 0..{len(COS_BBAND_MAP) - 1}")
    return DlcosmkParams(cos=cos, next_action=action.ref_param("next_action") or CONTINUE)


class FlowacctParams(msgspec.Struct, frozen=True):
    """Flow accounting: scan interval, idle timeout and table size."""

    timer_ms: int
    timeout_ms: int
    max_limit: int
    next_action: str


def flowacct_params(action: Action) -> FlowacctParams:
    next_action = _ref(action, "next_action")
    return FlowacctParams(
        timer_ms=_int(action, "timer", FLOWACCT),
        timeout_ms=_int(action, "timeout", FLOWACCT),
        max_limit=_int(action, "max_limit", FLOWACCT),
        next_action=next_action,
    )


ModuleParams = (
    IpgpcParams | TokenmtParams | TswtclmtParams | DscpmkParams | DlcosmkParams | FlowacctParams
)


# --- create-time rules (checked on the raw, possibly partly parsed, action) ---------------


def _raw_int(action: RawAction, name: str) -> int | None:
    item = action.params.get(name)
    if item is None or isinstance(item.value, bool) or not isinstance(item.value, int):
        return None
    return item.value


def _raw_loc(action: RawAction, name: str) -> Location | None:
    item: RawItem | None = action.params.get(name)
    return item.value_loc if item is not None else (action.params_loc or action.location)


def _invalid(action: RawAction, reporter: Reporter, name: str, why: str) -> None:
    reporter.error(
        f"invalid parameters for action {clip(action.name or '')}: {why}",
        _raw_loc(action, name),
    )


def _as_action(action: RawAction) -> Action:
    """The parsed parameters of a raw action as an Action, to interpret them."""
    params = tuple((key, item.value) for key, item in action.params.items())
    return Action(action.name or "", action.module or "", params=params)  # type: ignore[arg-type]


def check_tokenmt(action: RawAction, reporter: Reporter) -> None:
    if _raw_int(action, "committed_rate") == 0:
        _invalid(action, reporter, "committed_rate", "committed_rate must not be 0")
    if action.failed_params:
        return  # relations between values are unknowable when one did not parse
    try:
        meter = tokenmt_params(_as_action(action))
    except (MissingParameterError, TypeError):
        return  # reported as a missing or bad parameter already
    committed, cbs = meter.committed_rate_bps, meter.committed_burst_bits
    peak, pbs = meter.peak_rate_bps, meter.peak_burst_bits
    has_yellow = meter.three_outcomes
    if has_yellow != (pbs is not None):
        present = "yellow_action_name" if has_yellow else "peak_burst"
        _invalid(
            action,
            reporter,
            present,
            "yellow_action_name and peak_burst must be given together",
        )
    if peak is not None:
        if peak == 0:
            _invalid(action, reporter, "peak_rate", "peak_rate must not be 0")
        elif peak < committed:
            _invalid(
                action,
                reporter,
                "peak_rate",
                f"peak_rate {peak} is below committed_rate {committed}",
            )
        if not has_yellow:
            _invalid(
                action,
                reporter,
                "peak_rate",
                "a two-rate meter (peak_rate) needs yellow_action_name and peak_burst",
            )
        elif cbs == 0 or not pbs:
            _invalid(
                action,
                reporter,
                "committed_burst" if cbs == 0 else "peak_burst",
                "a two-rate meter needs non-zero committed_burst and peak_burst",
            )
    elif cbs == 0 and not pbs:
        _invalid(
            action,
            reporter,
            "committed_burst",
            "committed_burst and peak_burst cannot both be 0",
        )


def check_tswtclmt(action: RawAction, reporter: Reporter) -> None:
    committed = _raw_int(action, "committed_rate")
    peak = _raw_int(action, "peak_rate")
    window = _raw_int(action, "window")
    if committed is not None and peak is not None and peak < committed:
        _invalid(
            action,
            reporter,
            "peak_rate",
            f"peak_rate {peak} is below committed_rate {committed}",
        )
    if window is not None and window < 1:
        _invalid(action, reporter, "window", "window must be at least 1 ms")


def check_flowacct(action: RawAction, reporter: Reporter) -> None:
    for name in ("timer", "timeout"):
        value = _raw_int(action, name)
        if value is not None and value < 1:
            _invalid(action, reporter, name, f"{name} must be at least 1 ms")


def _no_rules(action: RawAction, reporter: Reporter) -> None:
    """Modules whose parameters the schema's types and ranges already fully check."""


# --- the table ---------------------------------------------------------------------------


class ModuleRules(msgspec.Struct, frozen=True):
    """One module: its schema, what an action of it means, and its create-time rules."""

    schema: ModuleSchema
    interpret: Callable[[Action], ModuleParams]
    check: Callable[[RawAction, Reporter], None]
    marker: bool = False  # rewrites packets (markers leave inbound packets unchanged)
    accounts: bool = False  # hands flow records to the session's record sink


MODULE_RULES: Final[Mapping[str, ModuleRules]] = MappingProxyType(
    {
        rules.schema.name: rules
        for rules in (
            ModuleRules(IPGPC, ipgpc_params, _no_rules),  # filters: validate.check_ipgpc
            ModuleRules(TOKENMT, tokenmt_params, check_tokenmt),
            ModuleRules(TSWTCLMT, tswtclmt_params, check_tswtclmt),
            ModuleRules(DSCPMK, dscpmk_params, _no_rules, marker=True),
            ModuleRules(DLCOSMK, dlcosmk_params, _no_rules, marker=True),
            ModuleRules(FLOWACCT, flowacct_params, check_flowacct, accounts=True),
        )
    }
)


def has_marker(policy: Policy) -> bool:
    """Whether an action of ``policy`` rewrites packets (dscpmk, dlcosmk)."""
    return any(rules.marker for rules in _rules_of(policy))


def has_accounting(policy: Policy) -> bool:
    """Whether an action of ``policy`` hands out flow records (flowacct)."""
    return any(rules.accounts for rules in _rules_of(policy))


def _rules_of(policy: Policy) -> list[ModuleRules]:
    """The rules of every action's module (a module diffserv does not know has none)."""
    return [MODULE_RULES[a.module] for a in policy.actions if a.module in MODULE_RULES]


def interpret(action: Action) -> ModuleParams:
    """The typed meaning of ``action``; KeyError for a module diffserv does not know."""
    return MODULE_RULES[action.module].interpret(action)


__all__ = [
    "COS_MODES",
    "DEFAULT_COS_MODE",
    "MODULE_RULES",
    "DlcosmkParams",
    "DscpmkParams",
    "FlowacctParams",
    "IpgpcParams",
    "MissingParameterError",
    "ModuleParams",
    "ModuleRules",
    "TokenmtParams",
    "TswtclmtParams",
    "interpret",
]
