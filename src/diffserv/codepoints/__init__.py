"""DiffServ codepoints: one table-driven source of truth for DSCP, ToS, ECN, precedence and 802.1p.

The tables live in ``tables``; ``convert`` has the pure scalar conversions and
parsers, ``vector`` their numpy versions, ``describe`` a DS byte seen every way.
DSCP 0 is named "DF" (aliases CS0, BE, default); unnamed DSCPs are named by
their decimal value so ``parse_dscp(dscp_name(d)) == d`` always holds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from diffserv.codepoints.convert import (
    DSCP_NAME_INDEX,
    default_pcp,
    dscp_info,
    dscp_name,
    dscp_to_precedence,
    dscp_to_tos,
    ecn_name,
    legacy_tos_names,
    legacy_tos_value,
    parse_dscp,
    parse_ecn,
    parse_number,
    parse_tos,
    pcp_info,
    pcp_name,
    precedence_name,
    service_class,
    standard_name,
    tos_to_dscp,
    tos_to_ecn,
    tos_to_precedence,
)
from diffserv.codepoints.describe import DsField, describe_dscp, describe_tos
from diffserv.codepoints.tables import (
    DEFAULT_DSCP_TO_PCP,
    DSCP_COUNT,
    DSCP_MAX,
    DSCP_TABLE,
    ECN_CE,
    ECN_ECT0,
    ECN_ECT1,
    ECN_MASK,
    ECN_NAMES,
    ECN_NOT_ECT,
    LEGACY_TOS_BITS,
    LEGACY_TOS_MASK,
    MINIMIZE_COST_WARNING,
    PCP_TABLE,
    PRECEDENCE_NAMES,
    SERVICE_CLASSES,
    TOS_MAX,
    DscpInfo,
    LegacyTosBit,
    PcpInfo,
)

# The numpy versions load on first use: `check`, `fmt` and `explain` name codepoints
# without ever needing numpy (a tenth of a second of start-up).
_VECTOR_NAMES: Final = frozenset(
    {
        "DSCP_NAMES",
        "default_pcp_array",
        "dscp_name_array",
        "dscp_to_tos_array",
        "ecn_name_array",
        "precedence_name_array",
        "service_class_array",
        "tos_to_dscp_array",
        "tos_to_ecn_array",
        "tos_to_precedence_array",
    }
)

if TYPE_CHECKING:
    from diffserv.codepoints.vector import (
        DSCP_NAMES,
        default_pcp_array,
        dscp_name_array,
        dscp_to_tos_array,
        ecn_name_array,
        precedence_name_array,
        service_class_array,
        tos_to_dscp_array,
        tos_to_ecn_array,
        tos_to_precedence_array,
    )


def __getattr__(name: str) -> Any:
    if name in _VECTOR_NAMES:
        return getattr(importlib.import_module("diffserv.codepoints.vector"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_DSCP_TO_PCP",
    "DSCP_COUNT",
    "DSCP_MAX",
    "DSCP_NAMES",
    "DSCP_NAME_INDEX",
    "DSCP_TABLE",
    "ECN_CE",
    "ECN_ECT0",
    "ECN_ECT1",
    "ECN_MASK",
    "ECN_NAMES",
    "ECN_NOT_ECT",
    "LEGACY_TOS_BITS",
    "LEGACY_TOS_MASK",
    "MINIMIZE_COST_WARNING",
    "PCP_TABLE",
    "PRECEDENCE_NAMES",
    "SERVICE_CLASSES",
    "TOS_MAX",
    "DsField",
    "DscpInfo",
    "LegacyTosBit",
    "PcpInfo",
    "default_pcp",
    "default_pcp_array",
    "describe_dscp",
    "describe_tos",
    "dscp_info",
    "dscp_name",
    "dscp_name_array",
    "dscp_to_precedence",
    "dscp_to_tos",
    "dscp_to_tos_array",
    "ecn_name",
    "ecn_name_array",
    "legacy_tos_names",
    "legacy_tos_value",
    "parse_dscp",
    "parse_ecn",
    "parse_number",
    "parse_tos",
    "pcp_info",
    "pcp_name",
    "precedence_name",
    "precedence_name_array",
    "service_class",
    "service_class_array",
    "standard_name",
    "tos_to_dscp",
    "tos_to_dscp_array",
    "tos_to_ecn",
    "tos_to_ecn_array",
    "tos_to_precedence",
    "tos_to_precedence_array",
]
