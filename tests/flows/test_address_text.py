"""Address text of the store to 128-bit words (the C parser) against Python's ipaddress."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.flows.store_arrow import AddressError, addresses_from_text

V4_MAPPED = 0xFFFF << 32


def _python(text: str) -> int | None:
    """What the store means by an address text: strict dotted IPv4, or IPv6 without a
    zone (Python accepts ``fe80::1%eth0``, but a scope names an interface of the host that
    wrote it, which a flow record's address never means)."""
    if "%" in text:
        return None
    try:
        if ":" in text:
            return int(ipaddress.IPv6Address(text))
        return V4_MAPPED | int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


_TEXTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.text(alphabet="0123456789.:abcdefABCDEF%x /\x00", max_size=45),
    st.lists(st.integers(0, 300), min_size=1, max_size=5).map(
        lambda parts: ".".join(str(p) for p in parts)
    ),
    st.lists(st.integers(0, 300), min_size=4, max_size=4).map(
        lambda parts: ".".join(f"0{p}" for p in parts)  # leading zeros: not the store's
    ),
)


@settings(max_examples=2000, deadline=None)
@given(_TEXTS)
def test_one_text_parses_as_python_reads_it(text: str) -> None:
    expected = _python(text)
    for array in (pa.array([text]), pa.array([text], pa.large_string())):
        if expected is None:
            with pytest.raises(AddressError) as caught:
                addresses_from_text(array)
            assert caught.value.row == 0
            continue
        hi, lo = addresses_from_text(array)
        assert (int(hi[0]) << 64 | int(lo[0])) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.ip_addresses().map(str), min_size=1, max_size=40), st.integers(0, 5))
def test_columns_slices_and_dictionaries_agree(texts: list[str], cut: int) -> None:
    array = pa.array(texts).slice(min(cut, len(texts) - 1))
    want = [_python(t) for t in array.to_pylist()]
    for column in (array, array.dictionary_encode(), pa.chunked_array([array])):
        hi, lo = addresses_from_text(column)
        got = [int(h) << 64 | int(low) for h, low in zip(hi.tolist(), lo.tolist(), strict=True)]
        assert got == want


def test_the_first_bad_or_null_row_is_named() -> None:
    with pytest.raises(AddressError) as caught:
        addresses_from_text(pa.array(["10.0.0.1", "::1", "10.0.0.256", "x"]))
    assert (caught.value.row, caught.value.text) == (2, "10.0.0.256")
    with pytest.raises(AddressError) as caught:
        addresses_from_text(pa.array(["10.0.0.1", None]))
    assert (caught.value.row, caught.value.text) == (1, None)
    encoded = pa.array(["::1", "bad", "::2", "bad"]).dictionary_encode()
    with pytest.raises(AddressError) as caught:
        addresses_from_text(encoded)
    assert (caught.value.row, caught.value.text) == (1, "bad")


def test_a_bad_text_no_row_uses_is_not_an_error() -> None:
    dictionary = pa.array(["::1", "junk", "10.0.0.1"])
    indices = pa.array([2, 0, 2], pa.int32())
    hi, lo = addresses_from_text(pa.DictionaryArray.from_arrays(indices, dictionary))
    assert lo.tolist() == [V4_MAPPED | 0x0A000001, 1, V4_MAPPED | 0x0A000001]
    assert hi.tolist() == [0, 0, 0]


def test_an_empty_column() -> None:
    hi, lo = addresses_from_text(pa.array([], pa.string()))
    assert hi.shape == lo.shape == (0,)
    assert hi.dtype == np.uint64
