"""Pure conversions between DSCP, the DS byte (ToS), ECN, precedence and 802.1p, and parsers.

Every function checks its range and raises ``ValueError`` with a message a user
can act on; the parsers accept the spellings of nft, iptables, Cisco IOS and
Junos so values can be pasted from any of them.
"""

from __future__ import annotations

import operator
import re
from typing import Final, SupportsIndex

from diffserv.codepoints.tables import (
    DEFAULT_DSCP_TO_PCP,
    DSCP_MAX,
    DSCP_TABLE,
    ECN_MASK,
    ECN_NAMES,
    ECN_SPELLINGS,
    LEGACY_TOS_BITS,
    LEGACY_TOS_MASK,
    LEGACY_TOS_NORMAL,
    PCP_TABLE,
    PRECEDENCE_NAMES,
    TOS_MAX,
    DscpInfo,
    PcpInfo,
)

PRECEDENCE_MAX: Final = 7
PCP_MAX: Final = 7


def _checked(value: SupportsIndex, maximum: int, what: str) -> int:
    """``value`` as an int in 0..maximum, or a ValueError naming ``what``."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, not {value!r}") from None
    if not 0 <= number <= maximum:
        raise ValueError(f"{what} {number} is out of range 0-{maximum}")
    return number


# ----------------------------------------------------------------- conversions


def dscp_to_tos(dscp: SupportsIndex, ecn: SupportsIndex = 0) -> int:
    """The DS byte (IPv4 ToS / IPv6 Traffic Class) for a DSCP and ECN codepoint."""
    return _checked(dscp, DSCP_MAX, "DSCP") << 2 | _checked(ecn, ECN_MASK, "ECN")


def tos_to_dscp(tos: SupportsIndex) -> int:
    """The DSCP in a DS byte (its high six bits)."""
    return _checked(tos, TOS_MAX, "ToS byte") >> 2


def tos_to_ecn(tos: SupportsIndex) -> int:
    """The ECN codepoint in a DS byte (its low two bits)."""
    return _checked(tos, TOS_MAX, "ToS byte") & ECN_MASK


def tos_to_precedence(tos: SupportsIndex) -> int:
    """The RFC 791 precedence of a DS byte (its high three bits)."""
    return _checked(tos, TOS_MAX, "ToS byte") >> 5


def dscp_to_precedence(dscp: SupportsIndex) -> int:
    """The precedence a legacy router reads from a DSCP (dscp >> 3)."""
    return _checked(dscp, DSCP_MAX, "DSCP") >> 3


def dscp_info(dscp: SupportsIndex) -> DscpInfo:
    """The table row of one DSCP."""
    return DSCP_TABLE[_checked(dscp, DSCP_MAX, "DSCP")]


def standard_name(dscp: SupportsIndex) -> str | None:
    """The standard name of a DSCP ("AF21", "EF", "DF", ...) or None if it has none."""
    return dscp_info(dscp).name


def dscp_name(dscp: SupportsIndex) -> str:
    """The canonical name of a DSCP, or its decimal value when it has no standard name.

    0 is "DF" (aliases CS0, BE, default); 44 is "VOICE-ADMIT" (alias VA); 1 is
    "LE". ``parse_dscp(dscp_name(d)) == d`` for every DSCP.
    """
    info = dscp_info(dscp)
    return info.name if info.name is not None else str(info.dscp)


def service_class(dscp: SupportsIndex) -> str | None:
    """The RFC 4594 service class (RFC 5865/8622 updates included), or None."""
    return dscp_info(dscp).service_class


def ecn_name(ecn: SupportsIndex) -> str:
    """RFC 3168 name of an ECN codepoint: Not-ECT, ECT(1), ECT(0) or CE."""
    return ECN_NAMES[_checked(ecn, ECN_MASK, "ECN")]


def precedence_name(precedence: SupportsIndex) -> str:
    """RFC 791 name of an IP precedence (0 Routine ... 7 Network Control)."""
    return PRECEDENCE_NAMES[_checked(precedence, PRECEDENCE_MAX, "precedence")]


def default_pcp(dscp: SupportsIndex) -> int:
    """The 802.1p priority of the class-selector default map (dscp >> 3)."""
    return DEFAULT_DSCP_TO_PCP[_checked(dscp, DSCP_MAX, "DSCP")]


def pcp_info(pcp: SupportsIndex) -> PcpInfo:
    """The table row of one 802.1Q priority code point."""
    return PCP_TABLE[_checked(pcp, PCP_MAX, "PCP")]


def pcp_name(pcp: SupportsIndex) -> str:
    """The 802.1Q-2005+ acronym of a PCP (BE, BK, EE, CA, VI, VO, IC, NC)."""
    return pcp_info(pcp).acronym


def legacy_tos_names(tos: SupportsIndex) -> tuple[str, ...]:
    """The iptables names of the RFC 791/1349 ToS bits set in a byte (Normal-Service if none)."""
    bits = _checked(tos, TOS_MAX, "ToS byte") & LEGACY_TOS_MASK
    names = tuple(bit.name for bit in LEGACY_TOS_BITS if bits & bit.value)
    return names or (LEGACY_TOS_NORMAL,)


# --------------------------------------------------------------------- parsing

_NUMBER = re.compile(r"0x[0-9a-f_]+|0b[01_]+|0o[0-7_]+|[0-9][0-9_]*", re.IGNORECASE)
_BARE_HEX = re.compile(r"[0-9a-f]+", re.IGNORECASE)
_PREFIXES: Final = {"0x": 16, "0b": 2, "0o": 8}


def _key(text: str) -> str:
    """A spelling reduced to what matters: case, '-', '_', ' ' and brackets ignored."""
    return re.sub(r"[-_ ()]", "", text.strip().lower())


def _name_index() -> dict[str, int]:
    index: dict[str, int] = {}
    for info in DSCP_TABLE:
        words = [*info.aliases, *(w for ws in info.spellings.values() for w in ws)]
        if info.name is not None:
            words.append(info.name)
        for word in words:
            index[_key(word)] = info.dscp
    return index


DSCP_NAME_INDEX: Final = _name_index()
_DSCP_SUGGESTIONS: Final = sorted(
    {info.name for info in DSCP_TABLE if info.name} | {"CS0", "BE", "VA", "default", "lephb"}
)
_ECN_INDEX: Final = {_key(w): ecn for ecn, words in enumerate(ECN_SPELLINGS) for w in words}
_TOS_NAME_INDEX: Final = {_key(bit.name): bit.value for bit in LEGACY_TOS_BITS} | {
    _key(LEGACY_TOS_NORMAL): 0
}


def parse_number(text: str) -> int | None:
    """An integer written as decimal, 0x hex, 0b binary or 0o octal; None if not a number."""
    word = text.strip()
    if not _NUMBER.fullmatch(word):
        return None
    lowered = word.lower()
    base = _PREFIXES.get(lowered[:2], 10)
    digits = lowered[2:] if base != 10 else lowered
    try:
        return int(digits, base)
    except ValueError:  # "0x", "1__0": number-shaped but not a number
        return None


def _suggest(word: str, candidates: list[str]) -> str:
    import difflib  # only a mistyped name needs it: not loaded at every start-up

    by_key = {_key(c): c for c in candidates}
    close = difflib.get_close_matches(_key(word), list(by_key), n=3, cutoff=0.6)
    return ", ".join(by_key[c] for c in close)


def parse_dscp(text: str) -> int:
    """A DSCP from a name in any case (EF, af21, CS3, le, va, default, lephb, nc1) or a number.

    Numbers may be decimal, 0x hex or 0b binary and must be 0-63. Raises
    ValueError naming the closest valid names when a name is unknown.
    """
    word = text.strip()
    if not word:
        raise ValueError("empty DSCP value")
    number = parse_number(word)
    if number is not None:
        if number > DSCP_MAX:
            hint = ""
            if number <= TOS_MAX:
                dscp = number >> 2
                ecn = number & ECN_MASK
                with_ecn = f" with ECN {ECN_NAMES[ecn]}" if ecn else ""
                hint = f"; as a ToS byte, {word} is DSCP {dscp} {dscp_name(dscp)}{with_ecn}"
            raise ValueError(f"DSCP {word} is out of range 0-63 (a DSCP is 6 bits){hint}")
        return number
    found = DSCP_NAME_INDEX.get(_key(word))
    if found is not None:
        return found
    if re.fullmatch(r"-\d+", word):
        raise ValueError(f"DSCP {word} is out of range 0-63")
    message = f"unknown DSCP name {word!r}"
    upper = word.upper()
    if re.fullmatch(r"AF\d+", upper):
        message += " (AF names run AF11-AF43: class 1-4, drop precedence 1-3)"
    elif re.fullmatch(r"CS\d+", upper):
        message += " (class selectors run CS0-CS7)"
    suggestions = _suggest(word, _DSCP_SUGGESTIONS)
    if suggestions:
        raise ValueError(f"{message}; did you mean {suggestions}?")
    raise ValueError(f"{message}; expected a name such as EF, AF21, CS3, LE, VA, DF or 0-63")


def parse_tos(text: str, *, hex_digits: bool = False) -> int:
    """A DS/ToS byte 0-255: decimal (184), 0x hex (0xb8), bare hex (b8) or an iptables ToS name.

    Bare digits are decimal, as nfdump prints them, unless ``hex_digits`` is set
    (for tools that print the byte in hex without a prefix, like Cisco's
    ``show ip cache verbose flow``).
    """
    word = text.strip()
    if not word:
        raise ValueError("empty ToS value")
    number = parse_number(word) if word[:2].lower() in _PREFIXES else None
    if number is None and _BARE_HEX.fullmatch(word) and (hex_digits or not word.isdigit()):
        number = int(word, 16)
    elif number is None:
        number = parse_number(word)
    if number is None:
        named = legacy_tos_value(word)
        if named is not None:
            return named
        names = [bit.name for bit in LEGACY_TOS_BITS] + [LEGACY_TOS_NORMAL]
        suggestions = _suggest(word, names)
        hint = "expected 0-255 as decimal, 0x hex or bare hex (b8), or an iptables ToS name"
        if suggestions:
            hint = f"did you mean {suggestions}?"
        raise ValueError(f"not a ToS byte: {word!r}; {hint}")
    if number > TOS_MAX:
        raise ValueError(
            f"ToS byte {word} is out of range 0-255 (0x00-0xff; the DS field is 8 bits)"
        )
    return number


def legacy_tos_value(text: str) -> int | None:
    """The byte an iptables `-j TOS` name stands for (Minimize-Delay = 0x10, ...), else None."""
    return _TOS_NAME_INDEX.get(_key(text))


def parse_ecn(text: str) -> int:
    """An ECN codepoint from its name (Not-ECT, ECT(1), ect0, CE, ...) or a number 0-3."""
    word = text.strip()
    number = parse_number(word)
    if number is not None:
        if number > ECN_MASK:
            raise ValueError(f"ECN {word} is out of range 0-3 (ECN is 2 bits)")
        return number
    found = _ECN_INDEX.get(_key(word))
    if found is None:
        raise ValueError(
            f"unknown ECN codepoint {word!r}; expected Not-ECT, ECT(1), ECT(0), CE or 0-3"
        )
    return found
