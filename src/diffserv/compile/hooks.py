"""Where the compiled ruleset sees packets: netfilter hooks and IPQoS callout positions.

The live daemon (live/rules.py, its NFQUEUE parser) queues INPUT as LOCAL_IN, OUTPUT as
LOCAL_OUT and FORWARD as FWD_OUT: forwarded traffic is seen once, on its way out, the one
place a router can re-mark it. The compiled ruleset uses the same three hooks with the same
meaning, so a policy classifies the same packets in the kernel as through the daemon; a
filter naming only FWD_IN matches nothing in either. The interface a filter's ``if_name``
is compared with is the one its position is about: incoming at input, outgoing otherwise.
"""

from __future__ import annotations

from typing import Final

import msgspec

from diffserv.directions import FWD_OUT, LOCAL_IN, LOCAL_OUT


class Hook(msgspec.Struct, frozen=True):
    """One netfilter hook the ruleset attaches a chain to."""

    name: str  # the nft hook name, also our base chain's name
    direction: int  # the callout position packets there have
    interface: str  # the nft meta key of the interface a filter's if_name names
    inbound: bool  # markers leave packets here unchanged (IPQoS's inbound positions)
    iptables_chain: str  # the built-in chain of the mangle table at this hook
    iptables_interface: str  # the iptables option naming that interface


HOOKS: Final[tuple[Hook, ...]] = (
    Hook("input", LOCAL_IN, "iifname", True, "INPUT", "-i"),
    Hook("output", LOCAL_OUT, "oifname", False, "OUTPUT", "-o"),
    Hook("forward", FWD_OUT, "oifname", False, "FORWARD", "-o"),
)
HOOK_DIRECTIONS: Final = LOCAL_IN | LOCAL_OUT | FWD_OUT
