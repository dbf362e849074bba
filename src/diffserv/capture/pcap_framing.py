"""Sans-I/O framing of a classic pcap capture: the file header, then records.

See :mod:`diffserv.capture.framing` for the protocol. The records between two buffer
ends are walked and decoded by one call of the compiled ``scan_pcap``.
"""

from __future__ import annotations

from diffserv.capture import pcap
from diffserv.capture.framing import (
    Batch,
    FileHeader,
    Framer,
    FramingError,
    Steps,
    _u32_at,
)
from diffserv.columns import PacketBatch


class PcapFramer(Framer):
    """Frames a classic pcap capture described by ``capture_format`` (kind "pcap").

    Every packet gets interface ``interface`` (index 1) when one is given, else 0.
    """

    kind = "pcap"
    start = pcap.PCAP_HEADER_LEN

    def _prepare(self) -> None:
        if self.format.linktype is None:
            raise ValueError("not a classic pcap format description")
        interface = self._default_interface
        self._ifindex = self._interface_index(interface) if interface else 0

    def _fill_source_columns(self, batch: PacketBatch) -> None:
        batch.cols.ifindex[:] = self._ifindex

    def _run(self) -> Steps:
        fmt = self.format
        big = fmt.big_endian
        linktype = fmt.linktype
        assert linktype is not None
        max_record = max(fmt.snaplen, pcap.PCAP_MAX_RECORD)
        yield FileHeader(fmt)
        cap = self._capacity_batch()
        pos = pcap.PCAP_HEADER_LEN - self._base
        while True:
            status, n, end = pcap.scan_pcap(
                self._buf,
                pos,
                self._end,
                big,
                fmt.nanosecond,
                max_record,
                linktype,
                0,
                self.batch_size,
                cap.cols,
            )
            if n:
                yield Batch(self._finish_batch(cap, n, pos, end))
                cap = self._capacity_batch()
            pos = end
            if status == pcap.SCAN_BAD:
                length = _u32_at(self._buf, pos + 8, big)
                raise FramingError(
                    f"record at byte offset {self._base + pos} claims {length} captured "
                    f"bytes (limit {max_record}); the file is corrupt",
                    packet=self.packets + 1,
                )
            if n == self.batch_size:
                continue
            if self._eof:
                if pos < self._end:
                    need = 16
                    if self._end - pos >= 16:
                        need += _u32_at(self._buf, pos + 8, big)
                    have = self._end - pos
                    raise FramingError(
                        f"capture ends inside the record at byte offset {self._base + pos} "
                        f"({have} of {need} bytes present); the packets before it were "
                        "processed",
                        packet=self.packets + 1,
                    )
                return
            pos -= yield from self._more(pos)
