"""Property tests: every spelling of every codepoint round-trips, whatever its case or base."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from diffserv.codepoints import (
    DSCP_TABLE,
    describe_tos,
    dscp_name,
    dscp_to_tos,
    parse_dscp,
    parse_tos,
    tos_to_dscp,
    tos_to_ecn,
)

dscps = st.integers(0, 63)
ecns = st.integers(0, 3)
tos_bytes = st.integers(0, 255)
names = st.sampled_from(
    [
        word
        for info in DSCP_TABLE
        for word in (
            *([info.name] if info.name else []),
            *info.aliases,
            *(w for ws in info.spellings.values() for w in ws),
        )
    ]
)


@given(dscps, ecns)
def test_dscp_ecn_to_tos_and_back(dscp: int, ecn: int) -> None:
    tos = dscp_to_tos(dscp, ecn)
    assert 0 <= tos <= 255
    assert (tos_to_dscp(tos), tos_to_ecn(tos)) == (dscp, ecn)


@given(tos_bytes)
def test_tos_to_parts_and_back(tos: int) -> None:
    assert dscp_to_tos(tos_to_dscp(tos), tos_to_ecn(tos)) == tos
    assert describe_tos(tos).tos == tos


@given(dscps)
def test_name_of_dscp_parses_back(dscp: int) -> None:
    assert parse_dscp(dscp_name(dscp)) == dscp


@given(names, st.data())
def test_any_case_of_any_spelling_parses_to_the_same_dscp(name: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    mixed = "".join(c.upper() if flip else c.lower() for c, flip in zip(name, flips, strict=True))
    assert parse_dscp(mixed) == parse_dscp(name)
    assert dscp_name(parse_dscp(name)) == dscp_name(parse_dscp(name.upper()))


@given(dscps, st.sampled_from(["{:d}", "0x{:x}", "0X{:02X}", "0b{:b}", "0b{:06b}", " {:d} "]))
def test_dscp_numbers_parse_in_any_base(dscp: int, form: str) -> None:
    assert parse_dscp(form.format(dscp)) == dscp


@given(tos_bytes, st.sampled_from(["{:d}", "0x{:02x}", "0x{:X}", "0b{:08b}"]))
def test_tos_numbers_parse_in_any_base(tos: int, form: str) -> None:
    assert parse_tos(form.format(tos)) == tos


@given(tos_bytes)
def test_bare_hex_tos_parses_with_hex_digits(tos: int) -> None:
    assert parse_tos(f"{tos:02x}", hex_digits=True) == tos


@given(tos_bytes)
def test_bare_hex_with_a_letter_is_hex_even_without_the_option(tos: int) -> None:
    text = f"{tos:x}"
    if not text.isdigit():
        assert parse_tos(text) == tos
    else:
        assert parse_tos(text) == int(text)  # bare digits stay decimal


@given(st.text(max_size=12))
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (parse_dscp, parse_tos):
        try:
            value = parse(text)
        except ValueError as exc:
            assert str(exc)
        else:
            assert 0 <= value <= 255
