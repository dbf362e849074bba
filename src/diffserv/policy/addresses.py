"""Address rules of an ipgpc filter that need the whole filter (docs/engine.md, "ipgpc").

Family agreement between ``saddr``, ``daddr`` and ``ip_version`` can only be judged once
the filter is complete, and host names are resolved for the families that this leaves;
one kernel filter instance exists per resolved address (per same-family pair when both
addresses are names), which is what the 10 006-filter limit counts.
"""

from __future__ import annotations

import ipaddress

from diffserv.policy import hosts
from diffserv.policy.diagnostics import Reporter
from diffserv.policy.model import IP_V4, IP_V6, HostName, IPNetwork
from diffserv.policy.raw import RawFilter
from diffserv.policy.values import parse_address_literal

ADDRESS_KEYS = ("saddr", "daddr")


class AddressResolver:
    """Resolves host names of filters through ``resolver``, once per (name, families)."""

    def __init__(self, reporter: Reporter, resolver: hosts.Resolver) -> None:
        self.reporter = reporter
        self.resolver = resolver
        self._cache: dict[tuple[str, int], tuple[IPNetwork, ...]] = {}

    def finish_filter(self, flt: RawFilter) -> bool:
        """Check families, resolve names, count instances; False after an address error."""
        ip_item = flt.selectors.get("ip_version")
        ip_bits = ip_item.value if ip_item is not None and isinstance(ip_item.value, int) else 0
        literal_family = 0
        for key in ADDRESS_KEYS:
            item = flt.selectors.get(key)
            if item is None or not isinstance(
                item.value, (ipaddress.IPv4Network, ipaddress.IPv6Network)
            ):
                continue
            family = IP_V4 if item.value.version == 4 else IP_V6
            if (ip_bits and not ip_bits & family) or (literal_family and literal_family != family):
                why = "the other is not" if literal_family else "ip_version excludes it"
                self.reporter.error(
                    f"incompatible address version: `{key}` is IPv{item.value.version} but {why}",
                    item.value_loc,
                )
                return False
            literal_family = family
        wanted = ip_bits or literal_family or (IP_V4 | IP_V6)
        counts: dict[str, tuple[int, int]] = {}
        for key in ADDRESS_KEYS:
            item = flt.selectors.get(key)
            if item is None or not isinstance(item.value, HostName):
                continue
            addresses = self.resolve(item.value.name, wanted)
            if not addresses:
                where = "src" if key == "saddr" else "dst"
                self.reporter.warning(
                    f"failed to resolve {where} host name `{item.value.name}` for filter "
                    f"`{flt.name}`: the filter is ignored (never matches)",
                    item.value_loc,
                )
            item.value = HostName(item.value.name, addresses)
            v4 = sum(1 for a in addresses if a.version == 4)
            counts[key] = (v4, len(addresses) - v4)
        if len(counts) == 2:
            (s4, s6), (d4, d6) = counts["saddr"], counts["daddr"]
            flt.instances = s4 * d4 + s6 * d6
        elif counts:
            flt.instances = sum(next(iter(counts.values())))
        return True

    def resolve(self, name: str, wanted: int) -> tuple[IPNetwork, ...]:
        """Host networks (/32, /128) of ``name`` in the ``wanted`` families; () on failure."""
        key = (name, wanted)
        if key not in self._cache:
            try:
                found = tuple(self.resolver(name, wanted))
            except (LookupError, OSError, ValueError):
                found = ()
            nets: list[IPNetwork] = []
            for found_address in found:
                address: hosts.IPAddress = found_address
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                if (address.version == 4 and wanted & IP_V4) or (
                    address.version == 6 and wanted & IP_V6
                ):
                    net = parse_address_literal(str(address))
                    if net is not None and net not in nets:
                        nets.append(net)
            self._cache[key] = tuple(nets)
        return self._cache[key]
