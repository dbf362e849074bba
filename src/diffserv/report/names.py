"""Names a report prints beside numbers: protocols, service ports, code points, ToS bits."""

from __future__ import annotations

import functools
from typing import Any, Final

from diffserv.codepoints import dscp_name, ecn_name, legacy_tos_names, precedence_name
from diffserv.codepoints.tables import SERVICE_CLASSES

# The protocols a flow report meets most, named as /etc/protocols and nfdump name them;
# the host's table names the rest (and reads names back for filters).
PROTOCOL_NAMES: Final = {
    1: "icmp",
    2: "igmp",
    4: "ipip",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}
# Protocols with ports: the service port of a record is meaningful only for these.
PORT_PROTOCOLS: Final = (6, 17, 132)


@functools.cache
def _hosts() -> Any:
    """/etc/protocols and /etc/services, read when a name is first asked for (the
    policy package costs start-up time a --json report need not pay)."""
    from diffserv.policy.hosts import SystemHostDatabase  # noqa: PLC0415

    return SystemHostDatabase()


def protocol_name(number: int) -> str:
    known = PROTOCOL_NAMES.get(number)
    if known is not None:
        return known
    names = _hosts().protocol_names(number)
    return names[0] if names else str(number)


def parse_protocol(text: str) -> int:
    """A protocol number from a number 0-255 or a name (tcp, udp, ipv6-icmp, ...)."""
    word = text.strip().lower()
    if word.isdigit():
        number = int(word)
        if number > 255:
            raise ValueError(f"protocol {text} is out of range 0-255")
        return number
    for number, name in PROTOCOL_NAMES.items():
        if name == word:
            return number
    from diffserv.policy.hosts import protocol_number  # noqa: PLC0415

    found = protocol_number(word)
    if found is None:
        raise ValueError(f"unknown protocol {text!r} (a name from /etc/protocols or 0-255)")
    return found


@functools.lru_cache(maxsize=65_536)
def service_name(protocol: int, port: int | None) -> str | None:
    """The well-known name of a service port (/etc/services), None without one."""
    if port is None or protocol not in PORT_PROTOCOLS:
        return None
    names = _hosts().service_names(port)
    return names[0] if names else None


def dscp_label(dscp: int | None) -> str:
    """The DSCP's name (its number when it has none, "unknown" when not exported)."""
    if dscp is None:
        return "unknown"
    try:
        return dscp_name(dscp)
    except ValueError:
        return str(dscp)


def service_class(dscp: int | None) -> str | None:
    return None if dscp is None else SERVICE_CLASSES.get(dscp)


def ecn_label(ecn: int | None) -> str:
    return "unknown" if ecn is None else ecn_name(ecn)


def precedence_label(precedence: int | None) -> str | None:
    return None if precedence is None else precedence_name(precedence)


def tos_bits(tos: int | None) -> list[str]:
    """The RFC 1349 ToS bits set in a whole byte (["Normal-Service"] when none)."""
    return [] if tos is None else list(legacy_tos_names(tos))
