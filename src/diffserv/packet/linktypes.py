"""Link-layer header types: the numbers the decoder reads, and names for messages.

The numbers are the tcpdump.org LINKTYPE_* registry values. ``KNOWN_LINKTYPES`` names
the common ones, so that a refusal can say which link type a file has;
``SUPPORTED_LINKTYPES`` is the part of it the decoder understands.
"""

from __future__ import annotations

from typing import Final

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_PPP: Final = 9
LINKTYPE_RAW_BSD12: Final = 12
LINKTYPE_RAW_BSD14: Final = 14
LINKTYPE_PPP_HDLC: Final = 50
LINKTYPE_RAW: Final = 101
LINKTYPE_C_HDLC: Final = 104
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_PPP_WITH_DIR: Final = 204
LINKTYPE_C_HDLC_WITH_DIR: Final = 205
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

KNOWN_LINKTYPES: dict[int, str] = {
    0: "BSD loopback (NULL)",
    1: "Ethernet",
    3: "AX.25",
    6: "IEEE 802.5 Token Ring",
    7: "ARCNET",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    12: "raw IP",
    14: "raw IP",
    50: "PPP in HDLC-like framing",
    51: "PPPoE",
    100: "ATM RFC 1483 LLC/SNAP",
    101: "raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    107: "Frame Relay",
    108: "OpenBSD loopback (LOOP)",
    113: "Linux cooked capture (SLL)",
    114: "LocalTalk",
    117: "OpenBSD pflog",
    119: "IEEE 802.11 with Prism header",
    122: "IP over Fibre Channel",
    123: "SunATM",
    127: "IEEE 802.11 with radiotap header",
    129: "ARCNET (Linux)",
    138: "IP over IEEE 1394",
    139: "SS7 MTP2 with pseudo-header",
    140: "SS7 MTP2",
    141: "SS7 MTP3",
    142: "SS7 SCCP",
    143: "DOCSIS",
    144: "Linux IrDA",
    163: "IEEE 802.11 with AVS header",
    165: "BACnet MS/TP",
    166: "PPP (pppd)",
    169: "GPRS LLC",
    177: "Linux LAPD",
    187: "Bluetooth HCI UART",
    189: "Linux USB",
    192: "PPI",
    195: "IEEE 802.15.4 with FCS",
    197: "Endace ERF",
    201: "Bluetooth HCI UART with direction",
    202: "AX.25 KISS",
    203: "LAPD",
    204: "PPP with direction",
    205: "Cisco HDLC with direction",
    206: "Frame Relay with direction",
    220: "Linux USB (memory-mapped)",
    226: "Solaris ipnet",
    227: "SocketCAN",
    228: "raw IPv4",
    229: "raw IPv6",
    230: "IEEE 802.15.4 without FCS",
    231: "D-Bus",
    235: "DVB-CI",
    239: "Linux NFLOG",
    242: "IP over InfiniBand",
    243: "MPEG-2 transport stream",
    247: "InfiniBand",
    248: "SCTP",
    249: "USBPcap",
    251: "Bluetooth LE link layer",
    253: "Linux netlink",
    254: "Linux Bluetooth monitor",
    258: "Apple PKTAP",
    276: "Linux cooked capture v2 (SLL2)",
    281: "Wireshark upper PDU",
}
KNOWN_LINKTYPES.update({n: f"user-defined {n - 147}" for n in range(147, 163)})
SUPPORTED_LINKTYPES: Final[dict[int, str]] = {
    number: KNOWN_LINKTYPES[number]
    for number in (
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_PPP,
        LINKTYPE_RAW_BSD12,
        LINKTYPE_RAW_BSD14,
        LINKTYPE_PPP_HDLC,
        LINKTYPE_RAW,
        LINKTYPE_C_HDLC,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_PPP_WITH_DIR,
        LINKTYPE_C_HDLC_WITH_DIR,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    )
}


def linktype_text(linktype: int) -> str:
    """``105 (IEEE 802.11)`` for a known link type, else just the number."""
    name = KNOWN_LINKTYPES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


def supported_text() -> str:
    """Every link type the decoder reads, for a refusal message."""
    return ", ".join(f"{k} {v}" for k, v in sorted(SUPPORTED_LINKTYPES.items()))
