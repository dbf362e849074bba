"""pcap/pcapng streaming reader and writer: the file data plane of ``diffserv run``.

Typical use::

    with open_capture("in.pcapng") as reader, open("out.pcapng", "wb") as f:
        writer = CaptureWriter(f, reader)
        for batch in reader:          # a view of the reader's buffer
            ...                       # classify / meter / mark (new_ds, new_pcp, action)
            apply_marks(batch)        # diffserv.packet.rewrite
            writer.write(batch)       # before asking for the next batch
        writer.close()
"""

from __future__ import annotations

from diffserv.capture.reader import CaptureCounters, CaptureReader, open_capture
from diffserv.capture.writer import CaptureWriter

__all__ = ["CaptureCounters", "CaptureReader", "CaptureWriter", "open_capture"]
