"""The codepoint tables: every DSCP, ECN, precedence, legacy ToS and 802.1p value as data.

Everything else in ``diffserv.codepoints`` is derived from these tables, so a
name or a number lives in exactly one place (RFC 2474, 2597, 3168, 3246, 4594,
5865, 8622, RFC 791/1349 and IEEE 802.1Q/802.1D).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

import msgspec

DSCP_COUNT: Final = 64
TOS_COUNT: Final = 256
ECN_MASK: Final = 0b11
DSCP_MAX: Final = DSCP_COUNT - 1
TOS_MAX: Final = TOS_COUNT - 1

# ---------------------------------------------------------------- ECN (RFC 3168)

ECN_NOT_ECT: Final = 0b00
ECN_ECT1: Final = 0b01
ECN_ECT0: Final = 0b10
ECN_CE: Final = 0b11

ECN_NAMES: Final = ("Not-ECT", "ECT(1)", "ECT(0)", "CE")
ECN_DESCRIPTIONS: Final = (
    "not ECN-capable transport",
    "ECN-capable transport, codepoint 1 (L4S under RFC 9331)",
    "ECN-capable transport, codepoint 0",
    "congestion experienced",
)
# Extra spellings per ECN value (nft uses not-ect, ect1, ect0, ce).
ECN_SPELLINGS: Final = (
    ("not-ect", "notect", "non-ect", "nonect"),
    ("ect(1)", "ect1", "ect-1"),
    ("ect(0)", "ect0", "ect-0"),
    ("ce",),
)

# ------------------------------------------------------ IP precedence (RFC 791)

PRECEDENCE_NAMES: Final = (
    "Routine",
    "Priority",
    "Immediate",
    "Flash",
    "Flash Override",
    "CRITIC/ECP",
    "Internetwork Control",
    "Network Control",
)
# Cisco IOS `set ip precedence` keywords, same order.
PRECEDENCE_CISCO: Final = (
    "routine",
    "priority",
    "immediate",
    "flash",
    "flash-override",
    "critical",
    "internet",
    "network",
)

# --------------------------------------------- legacy ToS bits (RFC 791 / 1349)


class LegacyTosBit(msgspec.Struct, frozen=True):
    """One RFC 1349 ToS value as iptables `-j TOS --set-tos` names it."""

    name: str
    value: int
    meaning: str


LEGACY_TOS_MASK: Final = 0x1E
LEGACY_TOS_BITS: Final = (
    LegacyTosBit("Minimize-Delay", 0x10, "low delay (RFC 791 D bit)"),
    LegacyTosBit("Maximize-Throughput", 0x08, "high throughput (RFC 791 T bit)"),
    LegacyTosBit("Maximize-Reliability", 0x04, "high reliability (RFC 791 R bit)"),
    LegacyTosBit(
        "Minimize-Cost",
        0x02,
        "low monetary cost (RFC 1349); this bit is ECN bit 1 since RFC 3168, "
        "so setting it marks the packet ECT(0)",
    ),
)
LEGACY_TOS_NORMAL: Final = "Normal-Service"
MINIMIZE_COST_WARNING: Final = (
    "Minimize-Cost (0x02) has been an ECN bit since RFC 3168 (alone it reads as ECT(0)): "
    "`iptables -j TOS --set-tos Minimize-Cost` makes packets claim ECN capability"
)

# ---------------------------------------------------- RFC 4594 service classes

SERVICE_CLASSES: Final = MappingProxyType(
    {
        48: "Network Control",
        46: "Telephony",
        44: "Capacity-Admitted Telephony",
        40: "Signaling",
        34: "Multimedia Conferencing",
        36: "Multimedia Conferencing",
        38: "Multimedia Conferencing",
        32: "Real-Time Interactive",
        26: "Multimedia Streaming",
        28: "Multimedia Streaming",
        30: "Multimedia Streaming",
        24: "Broadcast Video",
        18: "Low-Latency Data",
        20: "Low-Latency Data",
        22: "Low-Latency Data",
        16: "OAM",
        10: "High-Throughput Data",
        12: "High-Throughput Data",
        14: "High-Throughput Data",
        0: "Standard",
        8: "Low-Priority Data",
        1: "Low-Priority Data",
    }
)
SERVICE_CLASS_SOURCES: Final = MappingProxyType({44: "RFC 5865", 1: "RFC 8622"})

# ------------------------------------------------------------------ DSCP table

AF_DROP_NAMES: Final = ("", "low", "medium", "high")


class DscpInfo(msgspec.Struct, frozen=True):
    """Everything known about one DSCP value.

    ``phb`` is the PHB group: DF, CS, AF, EF, VA, LE or ``unassigned``;
    ``aliases`` are further accepted spellings; ``spellings`` maps a tool
    (nft, iptables, cisco, juniper) to the keywords it accepts for this value.
    """

    dscp: int
    name: str | None
    aliases: tuple[str, ...]
    phb: str
    phb_description: str
    rfc: str
    af_class: int | None
    drop_precedence: int | None
    pool: int
    service_class: str | None
    spellings: MappingProxyType[str, tuple[str, ...]]

    @property
    def precedence(self) -> int:
        """The RFC 791 precedence a legacy router sees (the top 3 bits)."""
        return self.dscp >> 3


def _pool(dscp: int) -> int:
    """RFC 2474 codepoint pool: 1 = xxxxx0, 2 = xxxx11, 3 = xxxx01."""
    if dscp & 1 == 0:
        return 1
    return 2 if dscp & 0b11 == 0b11 else 3


def _spellings(dscp: int) -> dict[str, tuple[str, ...]]:
    """Keywords of nft, iptables (--set-dscp-class), Cisco IOS and Junos for one DSCP."""
    tools: dict[str, list[str]] = {"nft": [], "iptables": [], "cisco": [], "juniper": []}
    if dscp % 8 == 0:
        n = dscp // 8
        tools["nft"].append(f"cs{n}")
        tools["iptables"].append(f"CS{n}")
        if n:
            tools["cisco"].append(f"cs{n}")
            tools["juniper"].append(f"cs{n}")
    if dscp == 0:
        tools["nft"] += ["df", "be"]
        tools["iptables"].append("BE")
        tools["cisco"].append("default")
        tools["juniper"].append("be")
    x, y = dscp >> 3, (dscp >> 1) & 0b11
    if 1 <= x <= 4 and 1 <= y <= 3 and dscp & 1 == 0:
        for tool in ("nft", "cisco", "juniper"):
            tools[tool].append(f"af{x}{y}")
        tools["iptables"].append(f"AF{x}{y}")
    if dscp == 46:
        for tool in ("nft", "cisco", "juniper"):
            tools[tool].append("ef")
        tools["iptables"].append("EF")
    if dscp == 44:
        tools["nft"].append("va")
    if dscp == 1:
        tools["nft"].append("lephb")
    if dscp == 48:
        tools["juniper"].append("nc1")
    if dscp == 56:
        tools["juniper"].append("nc2")
    return {tool: tuple(words) for tool, words in tools.items() if words}


def _unassigned(dscp: int) -> tuple[str, str]:
    pool = _pool(dscp)
    if pool == 1:
        return "unassigned", "unassigned (pool 1, for standards action)"
    if pool == 2:
        return "unassigned", "unassigned (pool 2, experimental or local use)"
    return "unassigned", "unassigned (pool 3, experimental or local use; RFC 8436 opened it)"


def _dscp_info(dscp: int) -> DscpInfo:
    """Classify one DSCP arithmetically: CSn = 8n, AFxy = 8x + 2y, EF, VA, LE."""
    x, y = dscp >> 3, (dscp >> 1) & 0b11
    af_class: int | None = None
    drop: int | None = None
    aliases: tuple[str, ...] = ()
    if dscp == 0:
        name, phb, rfc = "DF", "DF", "RFC 2474"
        aliases = ("CS0", "BE", "default", "best-effort")
        text = "Default Forwarding (best effort); same value as CS0"
    elif dscp % 8 == 0:
        name, phb, rfc = f"CS{x}", "CS", "RFC 2474"
        text = f"Class Selector {x} (IP precedence {x}, {PRECEDENCE_NAMES[x]})"
        if dscp == 56:
            text += "; RFC 4594 reserves it for future use"
        if dscp == 48:
            aliases = ("nc1",)
        elif dscp == 56:
            aliases = ("nc2",)
    elif 1 <= x <= 4 and 1 <= y <= 3 and dscp & 1 == 0:
        name, phb, rfc = f"AF{x}{y}", "AF", "RFC 2597"
        af_class, drop = x, y
        text = f"Assured Forwarding class {x}, drop precedence {y} ({AF_DROP_NAMES[y]})"
    elif dscp == 46:
        name, phb, rfc = "EF", "EF", "RFC 3246"
        text = "Expedited Forwarding"
    elif dscp == 44:
        name, phb, rfc = "VOICE-ADMIT", "VA", "RFC 5865"
        aliases = ("VA",)
        text = "Capacity-admitted traffic (EF behaviour, admission-controlled)"
    elif dscp == 1:
        name, phb, rfc = "LE", "LE", "RFC 8622"
        aliases = ("lephb", "lower-effort")
        text = "Lower Effort (scavenger; replaces CS1 for that use)"
    else:
        name, rfc = None, "RFC 2474"
        phb, text = _unassigned(dscp)
    return DscpInfo(
        dscp=dscp,
        name=name,
        aliases=aliases,
        phb=phb,
        phb_description=text,
        rfc=rfc,
        af_class=af_class,
        drop_precedence=drop,
        pool=_pool(dscp),
        service_class=SERVICE_CLASSES.get(dscp),
        spellings=MappingProxyType(_spellings(dscp)),
    )


DSCP_TABLE: Final = tuple(_dscp_info(dscp) for dscp in range(DSCP_COUNT))

# ----------------------------------------------------------- IEEE 802.1p / PCP


class PcpInfo(msgspec.Struct, frozen=True):
    """One 802.1Q priority code point with its 802.1Q-2005+ and 802.1D-1998 names.

    ``rank`` orders priorities lowest first (PCP 1 ranks below PCP 0).
    """

    pcp: int
    acronym: str
    name: str
    legacy_acronym: str
    legacy_name: str
    rank: int


PCP_TABLE: Final = (
    PcpInfo(0, "BE", "Best Effort", "BE", "Best Effort", 1),
    PcpInfo(1, "BK", "Background", "BK", "Background", 0),
    PcpInfo(2, "EE", "Excellent Effort", "-", "Spare", 2),
    PcpInfo(3, "CA", "Critical Applications", "EE", "Excellent Effort", 3),
    PcpInfo(4, "VI", "Video (< 100 ms latency and jitter)", "CL", "Controlled Load", 4),
    PcpInfo(5, "VO", "Voice (< 10 ms latency and jitter)", "VI", "Video", 5),
    PcpInfo(6, "IC", "Internetwork Control", "VO", "Voice", 6),
    PcpInfo(7, "NC", "Network Control", "NC", "Network Control", 7),
)

# The class-selector default DSCP -> PCP map (pcp = dscp >> 3). Vendors differ,
# so this is data a caller may replace, never logic.
DEFAULT_DSCP_TO_PCP: Final = tuple(dscp >> 3 for dscp in range(DSCP_COUNT))
