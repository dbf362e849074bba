"""Hypothesis strategies that damage a seed the way fuzzers and broken files do.

Shared by the fast fuzz slice and each area's hardening tests: byte and bit changes,
insertions, deletions, splices from another seed, cuts, and 32-bit fields (lengths,
counts, types) set to the extremes parsers trip on.
"""

from __future__ import annotations

from hypothesis import strategies as st

WORDS = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x0c\x00\x00\x00", b"\x00\x00\x01\x00")
EDITS = ("flip", "set", "insert", "delete", "splice", "cut", "word")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], max_len: int = 1 << 16) -> bytes:
    """One of ``seeds`` with up to six edits, at most ``max_len`` bytes."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(EDITS))
        at = draw(st.integers(0, 2**20)) % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at : at + 1] = bytes([draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))])
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 32))]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(1, 64))]
        elif kind == "word":
            at -= at % 4
            data[at : at + 4] = draw(st.sampled_from(WORDS))
        else:
            del data[at:]
    return bytes(data[:max_len])
