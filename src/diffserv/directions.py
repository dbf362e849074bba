"""Callout positions: where IPQoS sees a packet, declared once for every layer.

The values are IPQoS's (they are also the bits of the ipgpc ``direction`` selector and
of the batch ``direction`` column); each entry names the keyword a policy uses, the
spelling of ``diffserv run --direction`` and the words ``explain`` prints.
"""

from __future__ import annotations

from typing import Final

import msgspec

UNKNOWN: Final = 0  # the source does not say (a classic pcap file)
LOCAL_IN: Final = 0x01
LOCAL_OUT: Final = 0x02
FWD_IN: Final = 0x04
FWD_OUT: Final = 0x08
INBOUND: Final = LOCAL_IN | FWD_IN  # markers leave these packets unchanged
DEFAULT: Final = LOCAL_OUT  # what a packet whose source says nothing is taken to be


class Direction(msgspec.Struct, frozen=True):
    """One callout position."""

    value: int
    keyword: str  # in a policy: ``direction LOCAL_IN``
    option: str  # on the command line: ``--direction local-in``
    meaning: str  # in explanations


DIRECTIONS: Final[tuple[Direction, ...]] = (
    Direction(LOCAL_IN, "LOCAL_IN", "local-in", "inbound to this host"),
    Direction(LOCAL_OUT, "LOCAL_OUT", "local-out", "outbound from this host"),
    Direction(FWD_IN, "FWD_IN", "fwd-in", "forwarded, arriving"),
    Direction(FWD_OUT, "FWD_OUT", "fwd-out", "forwarded, leaving"),
)
BY_OPTION: Final[dict[str, int]] = {d.option: d.value for d in DIRECTIONS}
