"""pcap/pcapng streaming reader and writer: the file data plane of ``diffserv run``.

Typical use::

    with open_capture("in.pcapng") as reader, open("out.pcapng", "wb") as f:
        writer = CaptureWriter(f, reader.capture_format)
        for batch in reader:          # a view of the reader's buffer
            ...                       # classify / meter / mark (new_ds, new_pcp, action)
            apply_marks(batch)        # diffserv.packet.rewrite
            writer.write(batch)       # before asking for the next batch
        writer.close()

Reading is two layers: ``byte_source`` gets the bytes (mapped windows, read-ahead
buffers, gzip, pipes) and the sans-I/O framers (``framing``, ``pcap_framing``,
``pcapng_framing``) say what they mean; ``reader.CaptureReader`` composes them.
"""

from __future__ import annotations

from diffserv.capture.framing import CaptureFormat
from diffserv.capture.reader import CaptureReader, open_capture
from diffserv.capture.writer import CaptureWriter

__all__ = ["CaptureFormat", "CaptureReader", "CaptureWriter", "open_capture"]
