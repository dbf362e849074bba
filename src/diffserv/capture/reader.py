"""Streaming pcap/pcapng reader that yields decoded PacketBatches in bounded memory.

A :class:`CaptureReader` composes two layers: a :class:`~diffserv.capture.byte_source.
ByteSource` gets the bytes (a mapped file in windows, or read-ahead buffers for gzip,
pipes and standard input) and a sans-I/O framer (:mod:`diffserv.capture.framing`) says
what they mean, filling batch rows with the compiled scan kernels. The reader passes
the framer's requests for more bytes on to the source, counts what the batches hold and
turns the framer's errors into InputDataError. Each batch is a view of the source's
buffer: it is valid until the next batch is requested, unless it is held
(:mod:`diffserv.capture.lease`), which is how the background writer and the read-ahead
thread keep theirs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from diffserv.capture.byte_source import (
    DEFAULT_CHUNK_SIZE,
    MMAP_ENV,
    RESERVE,
    ByteSource,
    InputChangedError,
)
from diffserv.capture.framers import make_framer
from diffserv.capture.framing import (
    DETECT_BYTES,
    Batch,
    CaptureError,
    CaptureFormat,
    EndOfCapture,
    InterfaceDescription,
    NeedData,
    detect_format,
)
from diffserv.columns import (
    PacketBatch,
)
from diffserv.errors import InputDataError
from diffserv.packet.linktypes import linktype_text

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "MMAP_ENV",
    "RESERVE",
    "CaptureReader",
    "open_capture",
]

DEFAULT_BATCH_SIZE = 65536


class CaptureReader:
    """Iterate a capture file as PacketBatches; use as a context manager.

    Attributes: ``format`` ("pcap" or "pcapng"), ``capture_format`` (the description a
    CaptureWriter takes), ``name`` (for messages), ``packets`` (handed out so far),
    ``interfaces`` (names, index 0 = unknown), ``warnings``, ``source`` (the ByteSource).
    A batch may have ``n == 0`` when its span holds only non-packet blocks.
    A record cut off at the end of the file raises InputDataError after every
    complete packet before it has been yielded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        interface: str | None = None,
        direction: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefetch: bool = True,
        use_mmap: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = os.fspath(path)
        self.batch_size = batch_size
        self.direction = direction
        # link type -> [interfaces of that type not decoded, description of the first]
        self._undecoded: dict[int, list[Any]] = {}
        self._started = False
        self.source = ByteSource(path, chunk_size=chunk_size, prefetch=prefetch, use_mmap=use_mmap)
        try:
            self.capture_format = self._detect()
            self._framer = make_framer(
                self.capture_format,
                batch_size=batch_size,
                interface=interface,
                direction=direction,
            )
            self._feed()
        except BaseException:
            self.close()
            raise

    @property
    def format(self) -> str:
        return self.capture_format.kind

    @property
    def file_header(self) -> bytes:
        """What a writer puts before the first span (classic pcap: the file header)."""
        return self.capture_format.header

    @property
    def packets(self) -> int:
        """Packets handed out so far, for messages ("near packet N").

        What the packets were (not IP, malformed, cut by the snap length...) is counted
        by the engine session from the batches' flags, the same way for every source.
        """
        return self._framer.packets

    @property
    def interfaces(self) -> list[str]:
        return self._framer.interfaces

    def _detect(self) -> CaptureFormat:
        source = self.source
        source.refill(0)
        while source.filled < DETECT_BYTES and not source.eof:  # a pipe may trickle it in
            source.refill(0)
        if source.filled == 0:
            raise InputDataError(self.name, "empty file, not a pcap or pcapng capture")
        try:
            return detect_format(bytes(source.buf[: min(source.filled, DETECT_BYTES)]))
        except ValueError as exc:
            raise InputDataError(self.name, str(exc)) from None

    def _feed(self) -> None:
        source = self.source
        self._framer.receive_data(source.buf, source.filled, source.base, source.eof)

    # ------------------------------------------------------------ interfaces
    @property
    def warnings(self) -> list[str]:
        """Messages for the user about the input (not errors), in the order they arose."""
        out = []
        for linktype, (count, first) in self._undecoded.items():
            more = f" (and {count - 1:,} more interfaces of that type)" if count > 1 else ""
            out.append(
                f"{self.name}: {first} has link-layer type {linktype_text(linktype)}, which "
                f"is not decoded{more}; its packets pass through as non-IP"
            )
        return out

    def _interface_described(self, event: InterfaceDescription) -> None:
        if event.decoded:
            return
        seen = self._undecoded.setdefault(event.linktype, [0, ""])
        if not seen[0]:
            label = f"interface {event.name!r}" if event.name else "an unnamed interface"
            seen[1] = f"{label} (section {event.section}, interface {event.index})"
        seen[0] += 1

    # --------------------------------------------------------------- batches
    def __iter__(self) -> Iterator[PacketBatch]:
        if self._started:
            raise RuntimeError("a CaptureReader can be iterated only once")
        self._started = True
        return self._batches()

    def _batches(self) -> Iterator[PacketBatch]:
        framer = self._framer
        while True:
            event = framer.next_event()
            if isinstance(event, Batch):
                yield event.batch
            elif isinstance(event, NeedData):
                try:
                    self.source.refill(event.offset)
                except InputChangedError:
                    raise InputDataError(
                        f"{self.name}: packet {self.packets + 1}",
                        "the file is being changed by another process (opened for writing "
                        "or truncated) while it is read; stopped here, the packets before "
                        "were processed",
                    ) from None
                self._feed()
            elif isinstance(event, CaptureError):
                raise InputDataError(event.where(self.name), event.message)
            elif isinstance(event, EndOfCapture):
                return
            elif isinstance(event, InterfaceDescription):
                self._interface_described(event)

    # --------------------------------------------------------------- closing
    def close(self) -> None:
        """Stop reading ahead and close the file (standard input is left open)."""
        framer = getattr(self, "_framer", None)
        if framer is not None:
            framer.let_go()  # its view of the last window would keep the mapping (and lease)
        source = getattr(self, "source", None)
        if source is not None:
            source.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_capture(
    path: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    interface: str | None = None,
    direction: int | None = None,
    use_mmap: bool = True,
) -> CaptureReader:
    """Open a pcap or pcapng file (``"-"`` = standard input) for batch iteration.

    ``interface`` names the interface of a classic pcap file (and of pcapng
    interfaces without ``if_name``). ``direction`` forces every packet's direction;
    otherwise pcapng ``epb_flags`` and Linux cooked headers decide, else LOCAL_OUT.
    ``use_mmap=False`` reads a regular file into buffers instead of mapping it: better
    when most packets will be rewritten (a mapped page is copied on its first write).
    """
    return CaptureReader(
        path,
        batch_size=batch_size,
        interface=interface,
        direction=direction,
        use_mmap=use_mmap,
    )
