"""Numpy versions of the codepoint conversions, for whole packet batches and flow reports.

Each function takes an integer array (any integer dtype), checks its range
once, and answers with a table lookup or a shift; no per-element Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diffserv.codepoints.convert import dscp_name, precedence_name
from diffserv.codepoints.tables import (
    DEFAULT_DSCP_TO_PCP,
    DSCP_COUNT,
    DSCP_MAX,
    DSCP_TABLE,
    ECN_MASK,
    ECN_NAMES,
    TOS_MAX,
)

DSCP_NAMES: Final = np.array([dscp_name(d) for d in range(DSCP_COUNT)], dtype=np.str_)
SERVICE_CLASS_NAMES: Final = np.array(
    [info.service_class or "" for info in DSCP_TABLE], dtype=np.str_
)
ECN_NAME_ARRAY: Final = np.array(ECN_NAMES, dtype=np.str_)
PRECEDENCE_NAME_ARRAY: Final = np.array([precedence_name(p) for p in range(8)], dtype=np.str_)


def _checked(values: ArrayLike, maximum: int, what: str) -> NDArray[np.uint8]:
    """``values`` as a uint8 array after checking every element is in 0..maximum."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        if array.size == 0:
            return np.zeros(array.shape, dtype=np.uint8)
        raise ValueError(f"{what} array must hold integers, not {array.dtype}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > maximum):
        bad = array[(array < 0) | (array > maximum)].flat[0]
        raise ValueError(f"{what} {int(bad)} is out of range 0-{maximum}")
    return array.astype(np.uint8, copy=False)


def tos_to_dscp_array(tos: ArrayLike) -> NDArray[np.uint8]:
    """The DSCP of each DS byte."""
    return _checked(tos, TOS_MAX, "ToS byte") >> np.uint8(2)


def tos_to_ecn_array(tos: ArrayLike) -> NDArray[np.uint8]:
    """The ECN codepoint of each DS byte."""
    return _checked(tos, TOS_MAX, "ToS byte") & np.uint8(ECN_MASK)


def tos_to_precedence_array(tos: ArrayLike) -> NDArray[np.uint8]:
    """The RFC 791 precedence of each DS byte."""
    return _checked(tos, TOS_MAX, "ToS byte") >> np.uint8(5)


def dscp_to_tos_array(dscp: ArrayLike, ecn: ArrayLike = 0) -> NDArray[np.uint8]:
    """DS bytes from DSCPs and ECN codepoints (a scalar ECN applies to all)."""
    shifted = _checked(dscp, DSCP_MAX, "DSCP") << np.uint8(2)
    combined: NDArray[np.uint8] = shifted | _checked(ecn, ECN_MASK, "ECN")
    return combined


def dscp_name_array(dscp: ArrayLike) -> NDArray[np.str_]:
    """The canonical name of each DSCP (decimal text for unnamed values), as in dscp_name."""
    return DSCP_NAMES[_checked(dscp, DSCP_MAX, "DSCP")]


def service_class_array(dscp: ArrayLike) -> NDArray[np.str_]:
    """The RFC 4594 service class of each DSCP ("" where there is none)."""
    return SERVICE_CLASS_NAMES[_checked(dscp, DSCP_MAX, "DSCP")]


def ecn_name_array(ecn: ArrayLike) -> NDArray[np.str_]:
    """The RFC 3168 name of each ECN codepoint."""
    return ECN_NAME_ARRAY[_checked(ecn, ECN_MASK, "ECN")]


def precedence_name_array(precedence: ArrayLike) -> NDArray[np.str_]:
    """The RFC 791 name of each precedence value."""
    return PRECEDENCE_NAME_ARRAY[_checked(precedence, 7, "precedence")]


def default_pcp_array(
    dscp: ArrayLike, dscp_to_pcp: Sequence[int] = DEFAULT_DSCP_TO_PCP
) -> NDArray[np.uint8]:
    """The 802.1p priority of each DSCP through a 64-entry map (default: dscp >> 3)."""
    if len(dscp_to_pcp) != DSCP_COUNT:
        raise ValueError(f"a DSCP->PCP map needs 64 entries, not {len(dscp_to_pcp)}")
    table = _checked(np.asarray(dscp_to_pcp), 7, "PCP")
    return table[_checked(dscp, DSCP_MAX, "DSCP")]
