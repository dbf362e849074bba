"""The information elements diffserv reads and writes, declared once for every codec.

NetFlow v9 field types 1-127 and IPFIX element ids 1-127 are the same numbers (RFC
7012 took them over), so one table serves both; ``v9`` is the RFC 3954 name where v9
has the field. The decoder uses ``kind`` to turn a field of any exported length into
a number and ``column`` to put it into a :class:`~diffserv.flows.schema.FlowBatch`
column; the encoder uses ``length`` as the length it sends. Elements without a column
are read only where the decoder needs them (times, sampling) or skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

# Abstract data types (RFC 7011 §6.1, RFC 7012): how the bytes of a field read.
UNSIGNED: Final = "unsigned"  # big-endian, any length 1..8 (reduced-size encoding)
SIGNED: Final = "signed"
IPV4: Final = "ipv4Address"
IPV6: Final = "ipv6Address"
MAC: Final = "macAddress"
SECONDS: Final = "dateTimeSeconds"  # unsigned32 s since the epoch
MILLISECONDS: Final = "dateTimeMilliseconds"  # unsigned64 ms since the epoch
MICROSECONDS: Final = "dateTimeMicroseconds"  # NTP format: 32-bit s since 1900, 32-bit fraction
NANOSECONDS: Final = "dateTimeNanoseconds"  # NTP format, the whole fraction used
STRING: Final = "string"
OCTETS: Final = "octetArray"
BOOLEAN: Final = "boolean"

VARIABLE_LENGTH: Final = 65535  # a template field length of 65535 = variable (IPFIX)

# diffserv's own elements, IPFIX enterprise-specific (RFC 7011 §3.2). 32473 is the
# enterprise number IANA reserves for documentation (RFC 5612): diffserv has none of
# its own, and a collector that does not know it skips the fields as it must.
DIFFSERV_PEN: Final = 32473


class Element(msgspec.Struct, frozen=True):
    """One information element: its number, names, type, usual length and meaning.

    ``column`` names the FlowBatch column the value goes to (None: not stored);
    ``enterprise`` is 0 for IANA elements.
    """

    id: int
    name: str
    v9: str | None
    kind: str
    length: int
    semantics: str
    column: str | None = None
    enterprise: int = 0


ELEMENTS: Final = (
    Element(1, "octetDeltaCount", "IN_BYTES", UNSIGNED, 8, "deltaCounter", "bytes"),
    Element(2, "packetDeltaCount", "IN_PKTS", UNSIGNED, 8, "deltaCounter", "packets"),
    Element(3, "deltaFlowCount", "FLOWS", UNSIGNED, 8, "deltaCounter"),
    Element(4, "protocolIdentifier", "PROTOCOL", UNSIGNED, 1, "identifier", "protocol"),
    Element(5, "ipClassOfService", "SRC_TOS", UNSIGNED, 1, "identifier", "ds_in"),
    Element(6, "tcpControlBits", "TCP_FLAGS", UNSIGNED, 2, "flags", "tcp_flags"),
    Element(7, "sourceTransportPort", "L4_SRC_PORT", UNSIGNED, 2, "identifier", "sport"),
    Element(8, "sourceIPv4Address", "IPV4_SRC_ADDR", IPV4, 4, "default", "saddr"),
    Element(9, "sourceIPv4PrefixLength", "SRC_MASK", UNSIGNED, 1, "quantity"),
    Element(10, "ingressInterface", "INPUT_SNMP", UNSIGNED, 4, "identifier", "in_if"),
    Element(11, "destinationTransportPort", "L4_DST_PORT", UNSIGNED, 2, "identifier", "dport"),
    Element(12, "destinationIPv4Address", "IPV4_DST_ADDR", IPV4, 4, "default", "daddr"),
    Element(13, "destinationIPv4PrefixLength", "DST_MASK", UNSIGNED, 1, "quantity"),
    Element(14, "egressInterface", "OUTPUT_SNMP", UNSIGNED, 4, "identifier", "out_if"),
    Element(15, "ipNextHopIPv4Address", "IPV4_NEXT_HOP", IPV4, 4, "default"),
    Element(16, "bgpSourceAsNumber", "SRC_AS", UNSIGNED, 4, "identifier"),
    Element(17, "bgpDestinationAsNumber", "DST_AS", UNSIGNED, 4, "identifier"),
    Element(21, "flowEndSysUpTime", "LAST_SWITCHED", UNSIGNED, 4, "default"),
    Element(22, "flowStartSysUpTime", "FIRST_SWITCHED", UNSIGNED, 4, "default"),
    Element(23, "postOctetDeltaCount", "OUT_BYTES", UNSIGNED, 8, "deltaCounter"),
    Element(24, "postPacketDeltaCount", "OUT_PKTS", UNSIGNED, 8, "deltaCounter"),
    Element(27, "sourceIPv6Address", "IPV6_SRC_ADDR", IPV6, 16, "default", "saddr"),
    Element(28, "destinationIPv6Address", "IPV6_DST_ADDR", IPV6, 16, "default", "daddr"),
    Element(29, "sourceIPv6PrefixLength", "IPV6_SRC_MASK", UNSIGNED, 1, "quantity"),
    Element(30, "destinationIPv6PrefixLength", "IPV6_DST_MASK", UNSIGNED, 1, "quantity"),
    Element(31, "flowLabelIPv6", "IPV6_FLOW_LABEL", UNSIGNED, 4, "identifier"),
    Element(32, "icmpTypeCodeIPv4", "ICMP_TYPE", UNSIGNED, 2, "identifier"),
    Element(34, "samplingInterval", "SAMPLING_INTERVAL", UNSIGNED, 4, "quantity"),
    Element(35, "samplingAlgorithm", "SAMPLING_ALGORITHM", UNSIGNED, 1, "identifier"),
    Element(36, "flowActiveTimeout", "FLOW_ACTIVE_TIMEOUT", UNSIGNED, 2, "quantity"),
    Element(37, "flowIdleTimeout", "FLOW_INACTIVE_TIMEOUT", UNSIGNED, 2, "quantity"),
    Element(40, "exportedOctetTotalCount", "TOTAL_BYTES_EXP", UNSIGNED, 8, "totalCounter"),
    Element(41, "exportedMessageTotalCount", "TOTAL_PKTS_EXP", UNSIGNED, 8, "totalCounter"),
    Element(42, "exportedFlowRecordTotalCount", "TOTAL_FLOWS_EXP", UNSIGNED, 8, "totalCounter"),
    Element(48, "samplerId", "FLOW_SAMPLER_ID", UNSIGNED, 1, "identifier"),
    Element(49, "samplerMode", "FLOW_SAMPLER_MODE", UNSIGNED, 1, "identifier"),
    Element(50, "samplerRandomInterval", "FLOW_SAMPLER_RANDOM_INTERVAL", UNSIGNED, 4, "quantity"),
    Element(52, "minimumTTL", "MIN_TTL", UNSIGNED, 1, "default"),
    Element(53, "maximumTTL", "MAX_TTL", UNSIGNED, 1, "default"),
    Element(55, "postIpClassOfService", "DST_TOS", UNSIGNED, 1, "identifier", "ds_out"),
    Element(56, "sourceMacAddress", "SRC_MAC", MAC, 6, "default"),
    Element(57, "postDestinationMacAddress", "DST_MAC", MAC, 6, "default"),
    Element(58, "vlanId", "SRC_VLAN", UNSIGNED, 2, "identifier", "vlan"),
    Element(59, "postVlanId", "DST_VLAN", UNSIGNED, 2, "identifier"),
    Element(60, "ipVersion", "IP_PROTOCOL_VERSION", UNSIGNED, 1, "identifier", "ip_version"),
    Element(61, "flowDirection", "DIRECTION", UNSIGNED, 1, "identifier", "direction"),
    Element(62, "ipNextHopIPv6Address", "IPV6_NEXT_HOP", IPV6, 16, "default"),
    Element(80, "destinationMacAddress", "IN_DST_MAC", MAC, 6, "default"),
    Element(81, "postSourceMacAddress", "OUT_SRC_MAC", MAC, 6, "default"),
    Element(85, "octetTotalCount", None, UNSIGNED, 8, "totalCounter"),
    Element(86, "packetTotalCount", None, UNSIGNED, 8, "totalCounter"),
    Element(89, "forwardingStatus", "FORWARDING_STATUS", UNSIGNED, 1, "identifier"),
    Element(98, "postIpDiffServCodePoint", None, UNSIGNED, 1, "identifier", "dscp_out"),
    Element(130, "exporterIPv4Address", None, IPV4, 4, "default"),
    Element(131, "exporterIPv6Address", None, IPV6, 16, "default"),
    Element(136, "flowEndReason", None, UNSIGNED, 1, "identifier"),
    Element(139, "icmpTypeCodeIPv6", None, UNSIGNED, 2, "identifier"),
    Element(148, "flowId", None, UNSIGNED, 8, "identifier"),
    Element(149, "observationDomainId", None, UNSIGNED, 4, "identifier"),
    Element(150, "flowStartSeconds", None, SECONDS, 4, "default"),
    Element(151, "flowEndSeconds", None, SECONDS, 4, "default"),
    Element(152, "flowStartMilliseconds", None, MILLISECONDS, 8, "default"),
    Element(153, "flowEndMilliseconds", None, MILLISECONDS, 8, "default"),
    Element(154, "flowStartMicroseconds", None, MICROSECONDS, 8, "default"),
    Element(155, "flowEndMicroseconds", None, MICROSECONDS, 8, "default"),
    Element(156, "flowStartNanoseconds", None, NANOSECONDS, 8, "default"),
    Element(157, "flowEndNanoseconds", None, NANOSECONDS, 8, "default"),
    Element(158, "flowStartDeltaMicroseconds", None, UNSIGNED, 4, "default"),
    Element(159, "flowEndDeltaMicroseconds", None, UNSIGNED, 4, "default"),
    Element(160, "systemInitTimeMilliseconds", None, MILLISECONDS, 8, "default"),
    Element(176, "icmpTypeIPv4", None, UNSIGNED, 1, "identifier"),
    Element(177, "icmpCodeIPv4", None, UNSIGNED, 1, "identifier"),
    Element(195, "ipDiffServCodePoint", None, UNSIGNED, 1, "identifier", "dscp_in"),
    Element(196, "ipPrecedence", None, UNSIGNED, 1, "identifier", "prec_in"),
    Element(210, "paddingOctets", None, OCTETS, 1, "default"),
    Element(239, "biflowDirection", None, UNSIGNED, 1, "identifier"),
    Element(243, "dot1qVlanId", None, UNSIGNED, 2, "identifier", "vlan"),
    Element(244, "dot1qPriority", None, UNSIGNED, 1, "identifier", "pcp"),
    Element(302, "selectorId", None, UNSIGNED, 8, "identifier"),
    Element(304, "selectorAlgorithm", None, UNSIGNED, 2, "identifier"),
    Element(305, "samplingPacketInterval", None, UNSIGNED, 4, "quantity"),
    Element(306, "samplingPacketSpace", None, UNSIGNED, 4, "quantity"),
    # diffserv's enterprise elements: the flowacct action and ipgpc class travel as small
    # ids in every data record, and an options record maps each id to its name once
    Element(1, "diffservActionId", None, UNSIGNED, 2, "identifier", "action_code", DIFFSERV_PEN),
    Element(2, "diffservActionName", None, STRING, VARIABLE_LENGTH, "default", None, DIFFSERV_PEN),
    Element(3, "diffservClassId", None, UNSIGNED, 2, "identifier", "class_code", DIFFSERV_PEN),
    Element(4, "diffservClassName", None, STRING, VARIABLE_LENGTH, "default", None, DIFFSERV_PEN),
    Element(5, "diffservUserId", None, UNSIGNED, 4, "identifier", "uid", DIFFSERV_PEN),
    Element(6, "diffservProjectId", None, UNSIGNED, 4, "identifier", "projid", DIFFSERV_PEN),
)

BY_KEY: Final[Mapping[tuple[int, int], Element]] = {(e.enterprise, e.id): e for e in ELEMENTS}
BY_NAME: Final[Mapping[str, Element]] = {e.name: e for e in ELEMENTS}


def element(enterprise: int, element_id: int) -> Element | None:
    """Element ``element_id`` of ``enterprise`` (0 = IANA); None if diffserv does not know it."""
    return BY_KEY.get((enterprise, element_id))


def named(name: str) -> Element:
    """The element called ``name`` (IPFIX name); a KeyError is a bug of the caller."""
    return BY_NAME[name]
