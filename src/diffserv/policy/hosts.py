"""Look-ups a policy needs from the host: names, services, protocols, interfaces and users.

They all go through one injected ``HostDatabase``: the parser (service, protocol and user
names, interfaces, host names), the printer and ``explain`` (the names written back for
numbers) ask it and nothing else. ``SystemHostDatabase`` is the real system: the resolver,
/etc/services, /etc/protocols, passwd and the interface list, with a built-in table of
services and protocols behind the first two so a minimal container without /etc/services
still understands ``smtp`` or ``tcp``. ``StaticHostDatabase`` answers from plain dicts,
so a check, a canonical form or an explanation can be pinned to give the same answer on
every machine. The command line uses the system one; the library entry points take a
``hosts`` argument and, given none, use ``BUILTIN_HOSTS`` (the built-in service and
protocol tables, no users, interfaces or host names): the core is pure by default.

Text from a policy file reaches a C library call only after ``_lookup_name`` accepted it:
no NUL (the C string would end there, and Python refuses it with ValueError) and no more
characters than any database entry can have, so such a name simply does not exist.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import pwd
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

import msgspec

from diffserv.policy.model import IP_V4, IP_V6

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A resolver takes a host name and the families wanted (OR of IP_V4/IP_V6) and returns the
# addresses; it raises LookupError (or OSError) when the name does not resolve.
Resolver = Callable[[str, int], Sequence[IPAddress]]

RESOLVE_TIMEOUT_S: Final = 2.0

FALLBACK_SERVICES: Final[Mapping[str, int]] = {
    "echo": 7,
    "discard": 9,
    "daytime": 13,
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "time": 37,
    "domain": 53,
    "bootps": 67,
    "bootpc": 68,
    "tftp": 69,
    "gopher": 70,
    "finger": 79,
    "http": 80,
    "www": 80,
    "kerberos": 88,
    "pop3": 110,
    "sunrpc": 111,
    "auth": 113,
    "nntp": 119,
    "ntp": 123,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "imap": 143,
    "imap2": 143,
    "snmp": 161,
    "snmp-trap": 162,
    "bgp": 179,
    "irc": 194,
    "ldap": 389,
    "https": 443,
    "microsoft-ds": 445,
    "isakmp": 500,
    "syslog": 514,
    "printer": 515,
    "submission": 587,
    "ldaps": 636,
    "imaps": 993,
    "pop3s": 995,
    "openvpn": 1194,
    "ms-sql-s": 1433,
    "radius": 1812,
    "radius-acct": 1813,
    "nfs": 2049,
    "mysql": 3306,
    "sip": 5060,
    "sip-tls": 5061,
    "postgresql": 5432,
    "x11": 6000,
    "http-alt": 8080,
}

FALLBACK_PROTOCOLS: Final[Mapping[str, int]] = {
    "ip": 0,
    "icmp": 1,
    "igmp": 2,
    "ggp": 3,
    "ipencap": 4,
    "st": 5,
    "tcp": 6,
    "egp": 8,
    "igp": 9,
    "pup": 12,
    "udp": 17,
    "hmp": 20,
    "xns-idp": 22,
    "rdp": 27,
    "iso-tp4": 29,
    "dccp": 33,
    "xtp": 36,
    "ddp": 37,
    "idpr-cmtp": 38,
    "ipv6": 41,
    "ipv6-route": 43,
    "ipv6-frag": 44,
    "idrp": 45,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "skip": 57,
    "ipv6-icmp": 58,
    "icmp6": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "rspf": 73,
    "vmtp": 81,
    "eigrp": 88,
    "ospf": 89,
    "ax.25": 93,
    "ipip": 94,
    "etherip": 97,
    "encap": 98,
    "pim": 103,
    "ipcomp": 108,
    "vrrp": 112,
    "l2tp": 115,
    "isis": 124,
    "sctp": 132,
    "fc": 133,
    "mobility-header": 135,
    "udplite": 136,
    "mpls-in-ip": 137,
    "manet": 138,
    "hip": 139,
    "shim6": 140,
    "wesp": 141,
    "rohc": 142,
    "ethernet": 143,
}


# Longer than any name the services, protocols or passwd databases hold (Linux caps user
# names at 32 characters; LOGIN_NAME_MAX is 256).
MAX_LOOKUP_NAME: Final = 256
MAX_DNS_NAME: Final = 253
MAX_DNS_LABEL: Final = 63


def _lookup_name(name: str) -> bool:
    """Whether ``name`` may be handed to a C database look-up at all."""
    return 0 < len(name) <= MAX_LOOKUP_NAME and "\0" not in name


class _NameLookup:
    """A cached name-to-number look-up that refuses, before the cache and the C call, a
    name ``_lookup_name`` rejects (so such names neither fail nor fill the cache)."""

    def __init__(self, lookup: Callable[[str], int | None], size: int) -> None:
        self._cached = functools.lru_cache(maxsize=size)(lookup)
        self.__doc__ = lookup.__doc__

    def __call__(self, name: str) -> int | None:
        return self._cached(name) if _lookup_name(name) else None

    def cache_clear(self) -> None:
        self._cached.cache_clear()


def _service_port(name: str) -> int | None:
    """Port of a service name (any protocol), system database first, then the built-in table."""
    try:
        return socket.getservbyname(name)
    except (OSError, UnicodeError):
        pass
    for proto in ("tcp", "udp", "sctp"):
        try:
            return socket.getservbyname(name, proto)
        except (OSError, UnicodeError):
            continue
    return FALLBACK_SERVICES.get(name)


def _protocol_number(name: str) -> int | None:
    """Number of a protocol name, system database first, then the built-in table."""
    try:
        return socket.getprotobyname(name)
    except (OSError, UnicodeError):
        return FALLBACK_PROTOCOLS.get(name)


service_port: Final = _NameLookup(_service_port, 1024)
protocol_number: Final = _NameLookup(_protocol_number, 256)


def user_id(name: str) -> int | None:
    """The uid of a user name in the passwd database, or None."""
    if not _lookup_name(name):
        return None
    try:
        return pwd.getpwnam(name).pw_uid
    except (KeyError, UnicodeError):
        return None


def interface_exists(name: str) -> bool:
    """Whether a network interface of this name exists on this host."""
    if not _lookup_name(name):
        return False
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError, UnicodeError):
        return os.path.exists(os.path.join("/sys/class/net", name)) if "/" not in name else False
    return True


def _families(wanted: int) -> tuple[int, ...]:
    families: list[int] = []
    if wanted & IP_V4:
        families.append(socket.AF_INET)
    if wanted & IP_V6:
        families.append(socket.AF_INET6)
    return tuple(families)


def check_dns_name(name: str) -> None:
    """Raise LookupError for a name no DNS server can hold (checked before asking one):
    empty, a NUL, over 253 characters, an empty label or one over 63 characters once
    IDNA-encoded."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare or "\0" in bare or len(bare) > MAX_DNS_NAME:
        raise LookupError("not a host name")
    for label in bare.split("."):
        try:
            size = len(label.encode("idna")) if not label.isascii() else len(label)
        except UnicodeError:
            raise LookupError(f"label of {len(label)} characters is not a host name") from None
        if not 0 < size <= MAX_DNS_LABEL:
            raise LookupError("a host name label has 1..63 characters")


def system_resolver(name: str, wanted: int) -> Sequence[IPAddress]:
    """Resolve through getaddrinfo, bounded by RESOLVE_TIMEOUT_S per name.

    getaddrinfo has no timeout of its own, so it runs in a daemon thread; a slow name
    counts as unresolved.
    """
    check_dns_name(name)
    result: list[IPAddress] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for family in _families(wanted):
                try:
                    infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
                except socket.gaierror:
                    continue
                for info in infos:
                    address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                    if address not in result:
                        result.append(address)
        except (OSError, ValueError, UnicodeError) as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, name=f"resolve {name}", daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT_S)
    if thread.is_alive():
        raise LookupError(f"lookup of {name} timed out after {RESOLVE_TIMEOUT_S:g} s")
    if failure:
        raise LookupError(str(failure[0]))
    if not result:
        raise LookupError(f"{name} has no address")
    return tuple(result)


def static_resolver(table: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver answering from a fixed table (tests, offline use); unknown names fail."""
    return functools.partial(_resolve_in, _host_table(table))


def _host_table(table: Mapping[str, Sequence[str]]) -> Mapping[str, Sequence[str]]:
    """A read-only copy of a table of host names and address texts; ValueError now for a
    text that is not an address."""
    copy = {name: tuple(addresses) for name, addresses in table.items()}
    for addresses in copy.values():
        for address in addresses:
            ipaddress.ip_address(address)
    return MappingProxyType(copy)


def _resolve_in(table: Mapping[str, Sequence[str]], name: str, wanted: int) -> Sequence[IPAddress]:
    """The addresses of ``name`` in a checked host table, of the families wanted."""
    if name not in table:
        raise LookupError(f"unknown host {name}")
    addresses = [ipaddress.ip_address(a) for a in table[name]]
    return tuple(
        a
        for a in addresses
        if (a.version == 4 and wanted & IP_V4) or (a.version == 6 and wanted & IP_V6)
    )


# --- the host database ---------------------------------------------------------------------


class HostDatabase(Protocol):
    """Everything the policy language asks the host it is written for.

    Name-to-number look-ups return None for an unknown name; number-to-name ones return
    the candidate names in preference order (the printer keeps the first that reads
    back to the same number).
    """

    def service_port(self, name: str) -> int | None:
        """Port of a service name (any protocol)."""
        ...

    def service_names(self, port: int) -> Sequence[str]:
        """Names of a port: tcp first, then udp, then any other source."""
        ...

    def protocol_number(self, name: str) -> int | None:
        """Number of an IP protocol name."""
        ...

    def protocol_names(self, number: int) -> Sequence[str]:
        """Names of an IP protocol number."""
        ...

    def user_id(self, name: str) -> int | None:
        """uid of a user name."""
        ...

    def user_names(self, uid: int) -> Sequence[str]:
        """Names of a uid."""
        ...

    def interface_exists(self, name: str) -> bool:
        """Whether a network interface of this name exists."""
        ...

    def resolve(self, name: str, wanted: int) -> Sequence[IPAddress]:
        """Addresses of a host name (families OR of IP_V4/IP_V6); LookupError if none."""
        ...


@functools.cache
def _protocol_table(path: str = "/etc/protocols") -> Mapping[int, tuple[str, ...]]:
    """number -> names, from /etc/protocols (file order) then the built-in table."""
    candidates: list[tuple[str, int]] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[1].isdigit():
            candidates.append((fields[0], int(fields[1])))
    candidates.extend(FALLBACK_PROTOCOLS.items())
    table: dict[int, list[str]] = {}
    for name, number in candidates:
        table.setdefault(number, []).append(name)
    return MappingProxyType({number: tuple(names) for number, names in table.items()})


@functools.lru_cache(maxsize=4096)
def _service_names(port: int) -> tuple[str, ...]:
    names: list[str] = []
    for proto in ("tcp", "udp"):
        try:
            names.append(socket.getservbyport(port, proto))
        except (OSError, OverflowError):
            continue
    fallback = next((name for name, number in FALLBACK_SERVICES.items() if number == port), None)
    if fallback is not None:
        names.append(fallback)
    return tuple(names)


@functools.lru_cache(maxsize=4096)
def _user_names(uid: int) -> tuple[str, ...]:
    try:
        return (pwd.getpwuid(uid).pw_name,)
    except (KeyError, OverflowError):
        return ()


class SystemHostDatabase:
    """This machine's databases (cached per process), as the command line uses them."""

    def service_port(self, name: str) -> int | None:
        return service_port(name)

    def service_names(self, port: int) -> Sequence[str]:
        return _service_names(port)

    def protocol_number(self, name: str) -> int | None:
        return protocol_number(name)

    def protocol_names(self, number: int) -> Sequence[str]:
        return _protocol_table().get(number, ())

    def user_id(self, name: str) -> int | None:
        return user_id(name)

    def user_names(self, uid: int) -> Sequence[str]:
        return _user_names(uid)

    def interface_exists(self, name: str) -> bool:
        return interface_exists(name)

    def resolve(self, name: str, wanted: int) -> Sequence[IPAddress]:
        return system_resolver(name, wanted)


def _frozen(table: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(table))


class StaticHostDatabase(msgspec.Struct, frozen=True):
    """A host database from plain tables: the same answers on every machine.

    Services and protocols default to the built-in tables (what a host without
    /etc/services knows); there are no users, interfaces or host names unless given.
    ``hosts`` maps a host name to its addresses as text (ValueError at once for a text
    that is not an address). The tables are kept as read-only copies.
    """

    services: Mapping[str, int] = msgspec.field(default_factory=lambda: FALLBACK_SERVICES)
    protocols: Mapping[str, int] = msgspec.field(default_factory=lambda: FALLBACK_PROTOCOLS)
    users: Mapping[str, int] = msgspec.field(default_factory=dict)
    interfaces: Iterable[str] = ()
    hosts: Mapping[str, Sequence[str]] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # the struct is frozen: force_setattr is msgspec's way to set a field after __init__
        msgspec.structs.force_setattr(self, "services", _frozen(self.services))
        msgspec.structs.force_setattr(self, "protocols", _frozen(self.protocols))
        msgspec.structs.force_setattr(self, "users", _frozen(self.users))
        msgspec.structs.force_setattr(self, "interfaces", frozenset(self.interfaces))
        msgspec.structs.force_setattr(self, "hosts", _host_table(self.hosts))

    def service_port(self, name: str) -> int | None:
        return self.services.get(name)

    def service_names(self, port: int) -> Sequence[str]:
        return tuple(name for name, number in self.services.items() if number == port)

    def protocol_number(self, name: str) -> int | None:
        return self.protocols.get(name)

    def protocol_names(self, number: int) -> Sequence[str]:
        return tuple(name for name, value in self.protocols.items() if value == number)

    def user_id(self, name: str) -> int | None:
        return self.users.get(name)

    def user_names(self, uid: int) -> Sequence[str]:
        return tuple(name for name, value in self.users.items() if value == uid)

    def interface_exists(self, name: str) -> bool:
        return name in self.interfaces

    def resolve(self, name: str, wanted: int) -> Sequence[IPAddress]:
        return _resolve_in(self.hosts, name, wanted)


SYSTEM_HOSTS: Final[HostDatabase] = SystemHostDatabase()
# what the library entry points use when given no database: the built-in service and
# protocol tables and nothing else, so a policy means the same on every machine; the
# command line passes SYSTEM_HOSTS
BUILTIN_HOSTS: Final[HostDatabase] = StaticHostDatabase()


def host_database(hosts: HostDatabase | None) -> HostDatabase:
    """``hosts``, or the built-in tables when None (the library entry points' default)."""
    return BUILTIN_HOSTS if hosts is None else hosts
