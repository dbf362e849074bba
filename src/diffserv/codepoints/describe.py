"""One DS byte seen every way at once: DSCP, ToS, precedence, ECN, PHB, service class, 802.1p.

``describe_tos`` is what `diffserv dscp` prints and what reports can embed as
JSON, so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

from typing import SupportsIndex

import msgspec

from diffserv.codepoints.convert import (
    _checked,
    default_pcp,
    dscp_info,
    dscp_name,
    dscp_to_tos,
    ecn_name,
    legacy_tos_names,
    pcp_info,
    precedence_name,
    tos_to_dscp,
    tos_to_ecn,
)
from diffserv.codepoints.tables import SERVICE_CLASS_SOURCES, TOS_MAX, DscpInfo, PcpInfo

JsonValue = str | int | list[str] | list[int] | dict[str, list[str]] | None


class DsField(msgspec.Struct, frozen=True):
    """A DS byte (IPv4 ToS / IPv6 Traffic Class) with everything derived from it."""

    tos: int

    def __post_init__(self) -> None:
        _checked(self.tos, TOS_MAX, "ToS byte")

    @property
    def dscp(self) -> int:
        return tos_to_dscp(self.tos)

    @property
    def ecn(self) -> int:
        return tos_to_ecn(self.tos)

    @property
    def precedence(self) -> int:
        return self.tos >> 5

    @property
    def tos_any_ecn(self) -> tuple[int, ...]:
        """The four bytes this DSCP shows up as in flow records (Not-ECT, ECT(1), ECT(0), CE)."""
        return tuple(self.dscp << 2 | ecn for ecn in range(4))

    @property
    def info(self) -> DscpInfo:
        return dscp_info(self.dscp)

    @property
    def name(self) -> str:
        return dscp_name(self.dscp)

    @property
    def pcp(self) -> PcpInfo:
        return pcp_info(default_pcp(self.dscp))

    @property
    def service_class_source(self) -> str | None:
        if self.info.service_class is None:
            return None
        return SERVICE_CLASS_SOURCES.get(self.dscp, "RFC 4594")

    def as_dict(self) -> dict[str, JsonValue]:
        """A JSON-ready mapping (keys are stable; `diffserv dscp --json` prints it)."""
        info = self.info
        return {
            "dscp": self.dscp,
            "dscp_hex": f"0x{self.dscp:02x}",
            "dscp_bin": f"{self.dscp:06b}",
            "tos": self.tos,
            "tos_hex": f"0x{self.tos:02x}",
            "tos_bin": f"{self.tos:08b}",
            "tos_any_ecn": list(self.tos_any_ecn),
            "name": self.name,
            "standard_name": info.name,
            "aliases": list(info.aliases),
            "spellings": {tool: list(words) for tool, words in info.spellings.items()},
            "phb": info.phb,
            "phb_description": info.phb_description,
            "rfc": info.rfc,
            "af_class": info.af_class,
            "drop_precedence": info.drop_precedence,
            "pool": info.pool,
            "precedence": self.precedence,
            "precedence_name": precedence_name(self.precedence),
            "ecn": self.ecn,
            "ecn_name": ecn_name(self.ecn),
            "service_class": info.service_class,
            "pcp": self.pcp.pcp,
            "pcp_name": self.pcp.acronym,
            "legacy_tos": list(legacy_tos_names(self.tos)),
        }


def describe_tos(tos: SupportsIndex) -> DsField:
    """Everything about a DS byte 0-255."""
    return DsField(_checked(tos, TOS_MAX, "ToS byte"))


def describe_dscp(dscp: SupportsIndex, ecn: SupportsIndex = 0) -> DsField:
    """Everything about a DSCP sent with a given ECN codepoint."""
    return DsField(dscp_to_tos(dscp, ecn))
