"""Converters from value text to real values for each types-file type (docs/policy.md).

diffserv is stricter than ipqosconf where docs/policy.md says so: numbers are decimal
or ``0x`` hex with nothing trailing, protocols are 1..255, array indexes 0..63. Each
converter raises ``BadValueError`` whose message keeps ipqosconf's wording.

A number is measured before it is converted: more than ``MAX_NUMBER_DIGITS`` significant
digits is "number too large", so no digit string is ever handed to ``int()`` whole (Python
refuses beyond 4 300 digits, and converting is quadratic before that).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence

from diffserv.policy.diagnostics import clip, did_you_mean
from diffserv.policy.hosts import HostDatabase
from diffserv.policy.model import IPNetwork
from diffserv.policy.schema import TYPE_RANGES, ParamSpec, ParamType

_DECIMAL = re.compile(r"0|-?[1-9][0-9]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")
LINUX_IFNAMSIZ = 16
# Significant digits a number may have: every range here fits in 10 (uint32, int32),
# so 20 leaves room for a clear "out of range" while bounding the conversion.
MAX_NUMBER_DIGITS = 20
MAX_HOST_LABEL = 63  # octets of one DNS label (RFC 1035)
MAX_HOST_NAME = 253
MAX_ADDRESS_TEXT = 64  # longer than any address literal with a /len


class BadValueError(Exception):
    """A value that does not convert; ``message`` is the diagnostic text."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        offset: int | None = None,  # where in the joined braced text the problem starts
        word: str | None = None,  # the offending element of a braced value
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.offset = offset
        self.word = word

    def __str__(self) -> str:
        return self.message


def too_many_digits(digits: str) -> bool:
    """Whether a digit string (leading zeros aside) is longer than MAX_NUMBER_DIGITS."""
    return len(digits) > MAX_NUMBER_DIGITS and len(digits.lstrip("0")) > MAX_NUMBER_DIGITS


def parse_int_text(text: str, what: str = "number") -> int | None:
    """A strict integer: decimal (no leading zeros) or 0x hex; None if the text is neither.

    Raises BadValueError ("invalid WHAT `…`: number too large") past MAX_NUMBER_DIGITS.
    """
    if _DECIMAL.fullmatch(text):
        base, digits = 10, text.lstrip("-")
    elif _HEX.fullmatch(text):
        base, digits = 16, text[2:]
    else:
        return None
    if too_many_digits(digits):
        raise BadValueError(f"invalid {what} `{clip(text)}`: number too large")
    return int(text, base)


def _number_hint(text: str) -> str | None:
    if re.fullmatch(r"-?0[0-7]++", text):
        return "leading zeros are not octal in diffserv; write the decimal value or use 0x"
    if re.match(r"-?[0-9]", text):
        return "numbers are decimal or 0x hexadecimal, with nothing after them"
    return None


def parse_integer(text: str, type_: ParamType, lo: int | None = None, hi: int | None = None) -> int:
    """An integer of one of the integer types, range-checked (``lo``/``hi`` narrow the type)."""
    tlo, thi = TYPE_RANGES[type_]
    lo = tlo if lo is None else max(lo, tlo)
    hi = thi if hi is None else min(hi, thi)
    value = parse_int_text(text, type_.value)
    if value is None:
        raise BadValueError(f"invalid {type_.value} `{clip(text)}`", _number_hint(text))
    if not lo <= value <= hi:
        raise BadValueError(f"invalid {type_.value} `{clip(text)}`: out of range {lo}..{hi}")
    return value


def parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise BadValueError(f"invalid boolean `{clip(text)}`", "write true or false (any case)")


def parse_enum(words: Sequence[str], spec: ParamSpec, *, listed: bool) -> int:
    """OR of the bits of the named enum values. ``listed`` = written as ``{ A, B }``."""
    if listed:
        joined = " ".join(words)
        parts = [part.strip() for part in joined.split(",")]
        if not parts or any(not part or any(c.isspace() for c in part) for part in parts):
            raise BadValueError(
                f"malformed value list `{{ {clip(joined)} }}`",
                "separate enumeration values with commas: { A, B }",
            )
    else:
        parts = list(words)
    bits = 0
    for part in parts:
        value = spec.enum_value(part)
        if value is None:
            choices = ", ".join(spec.enum_names)
            hint = did_you_mean(part, spec.enum_names) or f"one of {choices}"
            raise BadValueError(
                f"unrecognized value, {clip(part)}, for `{spec.name}`", hint, word=part
            )
        bits |= value
    return bits


def parse_port(text: str, hosts: HostDatabase) -> int:
    number = parse_int_text(text, "port")
    if number is not None:
        if not 1 <= number <= 65535:
            raise BadValueError(f"invalid port `{clip(text)}`: out of range 1..65535")
        return number
    if re.match(r"-?[0-9]", text):
        raise BadValueError(f"invalid port `{clip(text)}`", _number_hint(text))
    port = hosts.service_port(text)
    if port is None or port == 0:
        raise BadValueError(
            f"invalid port `{clip(text)}`: not a service name (/etc/services) or number 1..65535"
        )
    return port


def parse_protocol(text: str, hosts: HostDatabase) -> int:
    number = parse_int_text(text, "protocol")
    if number is not None:
        if not 1 <= number <= 255:
            raise BadValueError(f"invalid protocol `{clip(text)}`: protocol must be 1..255")
        return number
    if re.match(r"-?[0-9]", text):
        raise BadValueError(f"invalid protocol `{clip(text)}`", _number_hint(text))
    proto = hosts.protocol_number(text)
    if proto is None:
        raise BadValueError(
            f"invalid protocol `{clip(text)}`: not a protocol name (/etc/protocols) or number "
            "1..255"
        )
    if proto == 0:
        raise BadValueError(f"invalid protocol `{clip(text)}`: protocol must be 1..255")
    return proto


def parse_user(text: str, hosts: HostDatabase) -> int:
    """A uid: a token starting with a digit is a numeric uid (accepted even when it is not
    in passwd: captures come from other hosts); anything else must be a known user name."""
    if text[:1].isdigit():
        value = parse_int_text(text, "user")
        if value is None or value > 2**31 - 1:
            raise BadValueError(f"invalid user `{clip(text)}`", _number_hint(text))
        return value
    uid = hosts.user_id(text)
    if uid is None:
        raise BadValueError(
            f"invalid user `{clip(text)}`: no such user name on this host",
            "give the numeric uid to match a user of another host",
        )
    return uid


def check_if_name(text: str) -> str:
    """A syntactically valid Linux interface name (existence is checked by the caller)."""
    if (
        not text
        or len(text) >= LINUX_IFNAMSIZ
        or "/" in text
        or "\0" in text
        or any(c.isspace() for c in text)
    ):
        raise BadValueError(
            f"invalid interface name `{clip(text)}`",
            "Linux names have 1..15 characters, none of them '/', blank or NUL",
        )
    return text


def parse_mindex(text: str, spec: ParamSpec) -> int:
    value = parse_int_text(text, "uint8")
    if value is None:
        raise BadValueError(f"invalid uint8 `{clip(text)}`", _number_hint(text))
    lo = 0 if spec.minimum is None else spec.minimum
    hi = 255 if spec.maximum is None else spec.maximum
    if not lo <= value <= hi:
        raise BadValueError(f"invalid value, {clip(text)}, for `{spec.name}`: must be {lo}..{hi}")
    return value


def _array_index(text: str, size: int) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]*+", text):
        raise BadValueError(f"index `{clip(text)}` is not a decimal number")
    if too_many_digits(text):
        raise BadValueError(f"index `{clip(text)}` is out of range 0..{size - 1}: number too large")
    value = int(text)
    if value >= size:
        raise BadValueError(f"index {value} is out of range 0..{size - 1}")
    return value


def parse_int_array(words: Sequence[str], spec: ParamSpec) -> tuple[int, ...]:
    """``{ RANGES:VALUE ; ... }`` (tokens inside the braces) into a full-size tuple.

    Entries the text leaves unset take the module default (identity dscp_map, the default
    colour map), so the result is always ``spec.array_size`` long.
    """
    size = spec.array_size
    default = spec.default
    result = list(default) if isinstance(default, tuple) else [0] * size
    joined = "".join(words)
    entries: list[tuple[int, str]] = []
    offset = 0
    for entry in joined.split(";"):
        if entry:
            entries.append((offset, entry))
        offset += len(entry) + 1
    if not entries:
        raise BadValueError(f"array declaration for `{spec.name}` is invalid: it is empty")
    for start, entry in entries:
        ranges, sep, value_text = entry.rpartition(":")
        if not sep or not ranges or not value_text:
            raise BadValueError(
                f"array declaration for `{spec.name}` is invalid: entry `{clip(entry)}` is not "
                "RANGES:VALUE",
                offset=start,
            )
        try:
            value = _array_value(value_text, spec)
            for part in ranges.split(","):
                low_text, dash, high_text = part.partition("-")
                low = _array_index(low_text, size)
                high = _array_index(high_text, size) if dash else low
                if high < low:
                    low, high = high, low
                for index in range(low, high + 1):
                    result[index] = value
        except BadValueError as problem:
            raise BadValueError(
                f"array declaration for `{spec.name}` is invalid: {problem.message} "
                f"in entry `{clip(entry)}`",
                problem.hint,
                offset=start,
            ) from None
    return tuple(result)


def _array_value(text: str, spec: ParamSpec) -> int:
    if spec.enum:
        value = spec.enum_value(text)
        if value is None:
            names = ", ".join(spec.enum_names)
            raise BadValueError(
                f"value `{clip(text)}` is not one of {names}", did_you_mean(text, spec.enum_names)
            )
        return value
    if not re.fullmatch(r"0|[1-9][0-9]*+", text):
        raise BadValueError(f"value `{clip(text)}` is not a decimal number")
    lo = 0 if spec.minimum is None else spec.minimum
    hi = 255 if spec.maximum is None else spec.maximum
    if too_many_digits(text):
        raise BadValueError(f"value `{clip(text)}` is out of range {lo}..{hi}: number too large")
    number = int(text)
    if not lo <= number <= hi:
        raise BadValueError(f"value {number} is out of range {lo}..{hi}")
    return number


def parse_address_literal(text: str) -> IPNetwork | None:
    """A numeric address with optional ``/len``; None if ``text`` is not an address literal.

    v4 literals give IPv4Network; v4-mapped IPv6 literals are normalised to IPv4Network.
    """
    addr_text, _, len_text = text.partition("/")
    if "%" in addr_text:
        raise BadValueError(
            f"invalid address `{clip(text)}`: scoped addresses (%zone) are not supported"
        )
    if len(addr_text) > MAX_ADDRESS_TEXT:
        return None  # not an address; also keeps long texts out of the cache
    if len(len_text) > MAX_ADDRESS_TEXT:
        address = _address(addr_text)
        if address is None:
            return None
        full = 32 if address.version == 4 else 128
        large = ": number too large" if len_text.isdigit() else ""
        raise BadValueError(f"invalid CIDR mask `/{clip(len_text)}`: must be /1../{full}{large}")
    return _address_literal(text)


@functools.lru_cache(maxsize=4096)
def _address(addr_text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(addr_text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _address_literal(text: str) -> IPNetwork | None:
    addr_text, slash, len_text = text.partition("/")
    address = _address(addr_text)
    if address is None:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    full = 32 if address.version == 4 else 128
    if slash:
        if not re.fullmatch(r"[0-9]++", len_text) or not 1 <= int(len_text) <= full:
            raise BadValueError(f"invalid CIDR mask `/{clip(len_text)}`: must be /1../{full}")
        prefix = int(len_text)
    else:
        prefix = full
    if mapped is not None:
        if prefix <= 96:
            raise BadValueError(
                f"invalid CIDR mask `/{clip(len_text)}` for a v4-mapped address: must be /97../128"
            )
        return ipaddress.IPv4Network((mapped, prefix - 96), strict=False)
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((address, prefix), strict=False)
    return ipaddress.IPv6Network((address, prefix), strict=False)


def check_host_name(text: str) -> str:
    """A syntactically plausible host name (letters, digits, '-', '_' labels separated by dots,
    at most 63 characters a label and 253 in all, as DNS allows)."""
    if "/" in text:
        raise BadValueError(f"address masks aren't allowed for host names (`{clip(text)}`)")
    name = text[:-1] if text.endswith(".") else text
    if len(name) > MAX_HOST_NAME:
        raise BadValueError(
            f"invalid address `{clip(text)}`: a host name has at most {MAX_HOST_NAME} characters"
        )
    labels = name.split(".")
    if not name or not all(_HOST_LABEL.fullmatch(lab) for lab in labels):
        raise BadValueError(f"invalid address `{clip(text)}`: not an IP address or host name")
    if any(len(lab) > MAX_HOST_LABEL for lab in labels):
        raise BadValueError(
            f"invalid address `{clip(text)}`: a host name label has at most {MAX_HOST_LABEL} "
            "characters"
        )
    if all(lab.isdigit() for lab in labels) or re.fullmatch(
        r"[0-9a-fA-F:.]*+:[0-9a-fA-F:.]*+", name
    ):
        raise BadValueError(f"invalid address `{clip(text)}`")
    return text


def scalar_value(text: str, spec: ParamSpec, hosts: HostDatabase) -> int | bool | str:
    """Convert one value token for types whose value is a single token (not address/ifname);
    names of services, protocols and users are looked up in ``hosts``."""
    t = spec.type
    if t in TYPE_RANGES:
        return parse_integer(text, t, spec.minimum, spec.maximum)
    if t is ParamType.BOOLEAN:
        return parse_boolean(text)
    if t in (ParamType.STRING, ParamType.ACTION):
        return text
    if t is ParamType.PORT:
        return parse_port(text, hosts)
    if t is ParamType.PROTOCOL:
        return parse_protocol(text, hosts)
    if t is ParamType.USER:
        return parse_user(text, hosts)
    if t is ParamType.MINDEX:
        return parse_mindex(text, spec)
    if t is ParamType.ENUM:
        return parse_enum([text], spec, listed=False)
    if t is ParamType.IFNAME:
        return check_if_name(text)
    raise BadValueError(f"`{spec.name}` needs a {{ ... }} value")
