"""Address text for the store's string columns: the same text as format_addresses, as buffers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffserv._kernels import address_text_into
from diffserv.records import address_text_buffers, format_addresses, parse_address

V4_MAPPED = 0xFFFF << 32

words = st.integers(0, 2**64 - 1)
v4 = st.integers(0, 2**32 - 1).map(lambda a: (0, V4_MAPPED | a))
sparse_v6 = st.tuples(
    st.sampled_from([0, 0x20010DB800000000, 0xFE80000000000000, 2**64 - 1]),
    st.sampled_from([0, 1, 0xFFFF, 0x0000FFFF00000000, 2**64 - 1]),
)
addresses = st.lists(st.one_of(v4, st.tuples(words, words), sparse_v6), max_size=60)


def as_arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    hi = np.array([p[0] for p in pairs], np.uint64)
    lo = np.array([p[1] for p in pairs], np.uint64)
    return hi, lo


@given(addresses)
def test_the_buffers_hold_the_text_format_addresses_gives(pairs: list[tuple[int, int]]) -> None:
    hi, lo = as_arrays(pairs)
    offsets, data = address_text_buffers(hi, lo)
    array = pa.StringArray.from_buffers(len(pairs), pa.py_buffer(offsets), pa.py_buffer(data))
    assert array.to_pylist() == format_addresses(hi, lo)
    assert offsets[0] == 0 and offsets[-1] == data.size


def test_text_reads_back_as_the_address() -> None:
    texts = ["0.0.0.0", "255.255.255.255", "10.1.2.3", "::", "::1", "2001:db8::7", "fe80::1:2"]
    hi, lo = as_arrays([parse_address(t) for t in texts])
    offsets, data = address_text_buffers(hi, lo)
    got = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(texts))]
    assert got == texts


def test_no_addresses() -> None:
    offsets, data = address_text_buffers(np.zeros(0, np.uint64), np.zeros(0, np.uint64))
    assert offsets.tolist() == [0] and data.size == 0


def test_the_kernel_refuses_buffers_of_the_wrong_size() -> None:
    hi = lo = np.zeros(3, np.uint64)
    with pytest.raises(ValueError, match="n \\+ 1"):
        address_text_into(hi, lo, np.zeros(3, np.int32), np.zeros(120, np.uint8))
    with pytest.raises(ValueError, match="40 bytes"):
        address_text_into(hi, lo, np.zeros(4, np.int32), np.zeros(100, np.uint8))
    with pytest.raises(TypeError, match="offsets"):
        address_text_into(hi, lo, np.zeros(4, np.int64), np.zeros(120, np.uint8))
