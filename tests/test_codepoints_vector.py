"""The numpy codepoint functions agree with the scalar ones on every possible byte."""

from __future__ import annotations

import numpy as np
import pytest

from diffserv.codepoints import (
    default_pcp,
    default_pcp_array,
    dscp_name,
    dscp_name_array,
    dscp_to_tos_array,
    ecn_name,
    ecn_name_array,
    precedence_name,
    precedence_name_array,
    service_class,
    service_class_array,
    tos_to_dscp_array,
    tos_to_ecn_array,
    tos_to_precedence_array,
)

ALL_TOS = np.arange(256, dtype=np.uint8)


def test_tos_arrays_split_every_byte() -> None:
    assert tos_to_dscp_array(ALL_TOS).tolist() == [t >> 2 for t in range(256)]
    assert tos_to_ecn_array(ALL_TOS).tolist() == [t & 3 for t in range(256)]
    assert tos_to_precedence_array(ALL_TOS).tolist() == [t >> 5 for t in range(256)]
    assert tos_to_dscp_array(ALL_TOS).dtype == np.uint8


def test_dscp_to_tos_array_rebuilds_every_byte() -> None:
    dscp = tos_to_dscp_array(ALL_TOS)
    ecn = tos_to_ecn_array(ALL_TOS)
    assert np.array_equal(dscp_to_tos_array(dscp, ecn), ALL_TOS)
    assert dscp_to_tos_array(np.array([46, 18]), 1).tolist() == [185, 73]


def test_name_arrays_match_the_scalar_functions() -> None:
    dscp = np.arange(64, dtype=np.int64)
    assert dscp_name_array(dscp).tolist() == [dscp_name(d) for d in range(64)]
    assert service_class_array(dscp).tolist() == [service_class(d) or "" for d in range(64)]
    assert default_pcp_array(dscp).tolist() == [default_pcp(d) for d in range(64)]
    assert ecn_name_array(np.arange(4)).tolist() == [ecn_name(e) for e in range(4)]
    assert precedence_name_array(np.arange(8)).tolist() == [precedence_name(p) for p in range(8)]


def test_name_lookup_keeps_shape_for_reports() -> None:
    tos = np.array([[184, 72], [40, 4]], dtype=np.uint16)
    assert dscp_name_array(tos_to_dscp_array(tos)).tolist() == [["EF", "AF21"], ["AF11", "LE"]]


def test_a_custom_pcp_map_is_data() -> None:
    ef_on_top = [d >> 3 for d in range(64)]
    ef_on_top[46] = 7
    assert default_pcp_array(np.array([46, 0]), ef_on_top).tolist() == [7, 0]
    with pytest.raises(ValueError, match="64 entries"):
        default_pcp_array(np.array([0]), [0] * 8)


def test_empty_arrays_are_fine() -> None:
    assert tos_to_dscp_array(np.array([], dtype=np.uint8)).size == 0
    assert dscp_name_array([]).size == 0


@pytest.mark.parametrize(
    ("call", "values", "fragment"),
    [
        (tos_to_dscp_array, [0, 256], "ToS byte 256 is out of range"),
        (dscp_name_array, [64], "DSCP 64 is out of range"),
        (dscp_to_tos_array, [-1], "DSCP -1 is out of range"),
        (ecn_name_array, [4], "ECN 4 is out of range"),
        (tos_to_dscp_array, [1.5], "must hold integers"),
    ],
)
def test_out_of_range_arrays_raise(call: object, values: list[float], fragment: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=fragment):
        call(np.array(values))
