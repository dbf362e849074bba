"""The framer for a capture format: the one place that knows both framing modules."""

from __future__ import annotations

from diffserv.capture.framing import CaptureFormat, Framer
from diffserv.capture.pcap_framing import PcapFramer
from diffserv.capture.pcapng_framing import PcapngFramer


def make_framer(
    capture_format: CaptureFormat,
    *,
    batch_size: int,
    interface: str | None = None,
    direction: int | None = None,
) -> Framer:
    """The framer for a capture of ``capture_format`` (from ``framing.detect_format``).

    ``interface`` names the interface of a classic pcap capture (and of pcapng
    interfaces without ``if_name``); ``direction`` forces every packet's direction.
    """
    cls: type[Framer] = PcapFramer if capture_format.kind == "pcap" else PcapngFramer
    return cls(capture_format, batch_size=batch_size, interface=interface, direction=direction)
