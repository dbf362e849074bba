"""Sans-I/O capture framing: what the bytes of a pcap or pcapng capture mean.

A framer never reads anything. It is offered a buffer (``receive_data(buf, end, base,
eof)``: ``buf[:end]`` holds the capture bytes from offset ``base`` on, and ``eof`` says
whether more follow) and is asked for events one at a time with ``next_event()``:

* :class:`Batch` - rows filled by the compiled scan kernels (a view of ``buf``), whose
  span ``[span_start, span_end)`` covers the records and any other blocks between them;
  spans follow each other without gap or overlap, so writing them all reproduces the
  input;
* :class:`NeedData` - the framer has used what it was given; offer it a buffer that
  holds the bytes from ``offset`` on (a record cut by the end of the buffer is read
  again from there) and more than before, or say ``eof``;
* control-block events: :class:`FileHeader` (classic pcap), :class:`SectionHeader` and
  :class:`InterfaceDescription` (pcapng);
* :class:`CaptureError` - the capture is damaged or cut short, with the packet number
  or byte offset concerned; every packet before the damage has been in a batch before
  it. The framer stays in that state;
* :class:`EndOfCapture`.

Whatever the buffers the input is offered in, the rows, spans, control events and error
are the same (batch boundaries may differ: a batch ends where a buffer does). The framer
writes into the buffer in one place: a pcapng section header's section length is set to
-1 (unspecified), because a writer may leave packets out; so the bytes a new buffer
repeats from the last one must be carried over as they are there, not read again.
Buffers are used by identity: a batch's ``buf`` is the very array given to
``receive_data``, and stays valid as long as the caller keeps that array's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import ClassVar, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.capture import pcap, pcapng
from diffserv.columns import UNKNOWN_ID, Filler, PacketBatch, allocate_columns, reset_columns
from diffserv.directions import DEFAULT as DEFAULT_DIRECTION
from diffserv.packet.linktypes import SUPPORTED_LINKTYPES, linktype_text, supported_text

DETECT_BYTES = 64  # what the format detection looks at


class CaptureFormat(msgspec.Struct, frozen=True):
    """What a writer needs to know to write a capture like its input.

    ``header`` is written before the first span: the 24-byte file header of a classic
    pcap capture, nothing for pcapng (its section headers are inside the spans).
    ``big_endian`` is the byte order of the file header (pcapng: of the first section).
    """

    kind: Literal["pcap", "pcapng"]
    header: bytes = b""
    big_endian: bool = False
    nanosecond: bool = False  # classic pcap: time stamps in ns
    linktype: int | None = None  # classic pcap: the one link-layer type
    snaplen: int = 0  # classic pcap: the snap length


def detect_format(head: bytes) -> CaptureFormat:
    """The format of a capture starting with ``head`` (at least DETECT_BYTES of it when the
    capture has that many); ValueError with the reason when it is not one we read."""
    header = pcap.parse_pcap_header(head)
    if header is not None:
        if header.linktype not in SUPPORTED_LINKTYPES:
            raise ValueError(
                f"link-layer type {linktype_text(header.linktype)} is not supported "
                f"(supported: {supported_text()})"
            )
        return CaptureFormat(
            "pcap",
            header.raw,
            big_endian=header.big_endian,
            nanosecond=header.nanosecond,
            linktype=header.linktype,
            snaplen=header.snaplen,
        )
    if len(head) >= 4 and int.from_bytes(head[:4], "little") == pcapng.BT_SHB:
        big = len(head) >= 12 and head[8:12] == b"\x1a\x2b\x3c\x4d"
        return CaptureFormat("pcapng", b"", big_endian=big)
    raise ValueError(f"not a pcap or pcapng capture (starts with 0x{head[:4].hex()})")


# ------------------------------------------------------------------ events
class Batch(msgspec.Struct, frozen=True):
    batch: PacketBatch


class NeedData(msgspec.Struct, frozen=True):
    offset: int  # the next buffer must hold the bytes from here on


class FileHeader(msgspec.Struct, frozen=True):
    format: CaptureFormat


class SectionHeader(msgspec.Struct, frozen=True):
    offset: int
    section: int  # 1 = the first
    big_endian: bool
    version: tuple[int, int]


class InterfaceDescription(msgspec.Struct, frozen=True):
    offset: int
    section: int
    index: int  # interface id within the section
    name: str  # if_name as recorded, "" when none
    linktype: int
    snaplen: int
    ifindex: int  # index into the framer's ``interfaces`` its packets get

    @property
    def decoded(self) -> bool:
        return self.linktype in SUPPORTED_LINKTYPES


class CaptureError(msgspec.Struct, frozen=True):
    message: str
    packet: int | None = None  # the packet concerned (1-based), if any
    offset: int | None = None  # else the byte offset concerned, if any

    def where(self, name: str) -> str:
        """The place for a message about input ``name``."""
        if self.packet is not None:
            return f"{name}: packet {self.packet}"
        if self.offset is not None:
            return f"{name}: byte offset {self.offset}"
        return name


class EndOfCapture(msgspec.Struct, frozen=True):
    pass


Event = (
    Batch
    | NeedData
    | FileHeader
    | SectionHeader
    | InterfaceDescription
    | CaptureError
    | EndOfCapture
)


class FramingError(Exception):
    """Raised inside a framer's walk; turned into its CaptureError event."""

    def __init__(self, message: str, *, packet: int | None = None, offset: int | None = None):
        super().__init__(message)
        self.event = CaptureError(message, packet, offset)


Steps = Generator[Event, None, None]


class Framer:
    """The feeding protocol and the batch bookkeeping shared by both formats.

    ``interfaces`` holds the interface names batches refer to (index 0 = unknown; only
    ever appended to); ``packets`` counts the packets handed out in batches. A format's
    framer names its ``kind`` and the offset its first ``NeedData`` asks for (``start``),
    and sets up its own state in ``_prepare``.
    """

    kind: ClassVar[str]
    start: ClassVar[int] = 0

    def __init__(
        self,
        capture_format: CaptureFormat,
        *,
        batch_size: int,
        interface: str | None = None,
        direction: int | None = None,
    ) -> None:
        if capture_format.kind != self.kind:
            raise ValueError(f"not a {self.kind} format description")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.format = capture_format
        self.batch_size = batch_size
        self.direction = direction
        self.packets = 0
        self.interfaces: list[str] = [""]
        self._interface_ids: dict[str, int] = {"": 0}
        self._interfaces_tuple: tuple[str, ...] = ("",)
        self._default_interface = interface
        self._buf: NDArray[np.uint8] = np.empty(0, np.uint8)
        self._end = 0
        self._base = 0
        self._eof = False
        self._wants: int | None = self.start  # waiting for bytes from this offset on
        self._final: Event | None = None
        self._prepare()
        self._steps = self._run()

    def _prepare(self) -> None:
        """The format's own state, once the shared state is set."""

    def let_go(self) -> None:
        """Drop the view of the last buffer offered (the reader is closing)."""
        self._buf = np.empty(0, np.uint8)
        self._end = 0

    # ------------------------------------------------------------ protocol
    def receive_data(self, buf: NDArray[np.uint8], end: int, base: int, eof: bool) -> None:
        """Offer ``buf[:end]``, the capture bytes from offset ``base`` on; ``eof``: no more."""
        wants = self._wants
        if wants is None:
            raise RuntimeError("receive_data() is for answering a NeedData event")
        if not base <= wants <= base + end:
            raise ValueError(f"the buffer [{base}, {base + end}) does not hold offset {wants}")
        self._buf, self._end, self._base, self._eof = buf, end, base, eof
        self._wants = None

    def next_event(self) -> Event:
        """The next event (NeedData again until ``receive_data`` has answered it)."""
        if self._final is not None:
            return self._final
        if self._wants is not None:
            return NeedData(self._wants)
        final: Event
        try:
            return next(self._steps)
        except FramingError as exc:
            final = exc.event
        except StopIteration:
            final = EndOfCapture()
        self._final = final
        return final

    def _run(self) -> Steps:
        raise NotImplementedError

    def _more(self, keep_from: int) -> Generator[Event, None, int]:
        """Ask for the bytes from ``buf[keep_from]`` on and more; return how far the
        positions of the new buffer are shifted against the old one."""
        old_base = self._base
        old_end = self._base + self._end
        self._wants = old_base + keep_from
        yield NeedData(self._wants)
        if self._base + self._end <= old_end and not self._eof:
            raise RuntimeError("NeedData was answered without more bytes or eof")
        return self._base - old_base

    # ------------------------------------------------------------ batches
    def _interface_index(self, name: str) -> int:
        """Index of interface ``name`` in ``interfaces``, appending it when new."""
        index = self._interface_ids.get(name)
        if index is None:
            index = len(self.interfaces)
            self._interface_ids[name] = index
            self.interfaces.append(name)
        return index

    def _interface_names(self) -> tuple[str, ...]:
        """``interfaces`` as a tuple, the same object until an interface is added."""
        if len(self._interfaces_tuple) != len(self.interfaces):
            self._interfaces_tuple = tuple(self.interfaces)
        return self._interfaces_tuple

    def _capacity_batch(self) -> PacketBatch:
        """Uninitialised columns for ``batch_size`` rows; only the rows used are ever touched."""
        return PacketBatch(buf=self._buf, cols=allocate_columns(self.batch_size, initialise=False))

    def _finish_batch(
        self, cap: PacketBatch, n: int, span_start: int, span_end: int
    ) -> PacketBatch:
        """The first ``n`` rows of ``cap`` as a batch; a new ``cap`` is needed afterwards."""
        batch = cap.head(n)
        batch.buf = self._buf  # the buffer may have changed since ``cap`` was made
        first = self.packets + 1
        batch.cols.number[:] = np.arange(first, first + n, dtype=np.int64)
        self._fill_source_columns(batch)
        batch.cols.uid[:] = UNKNOWN_ID
        batch.cols.projid[:] = UNKNOWN_ID
        reset_columns(batch.cols, Filler.ENGINE)
        if self.direction is not None:
            batch.cols.direction[:] = self.direction
        else:
            batch.cols.direction[batch.cols.direction == 0] = DEFAULT_DIRECTION
        batch.interfaces = self._interface_names()
        batch.span_start = span_start
        batch.span_end = span_end
        self.packets += n
        return batch

    def _fill_source_columns(self, batch: PacketBatch) -> None:
        """Columns the scan kernel of the format does not fill."""


def _u32_at(buf: NDArray[np.uint8], pos: int, big: bool) -> int:
    return int.from_bytes(bytes(buf[pos : pos + 4]), "big" if big else "little")


def _i64_at(buf: NDArray[np.uint8], pos: int, big: bool) -> int:
    (value,) = struct.unpack(">q" if big else "<q", buf[pos : pos + 8].tobytes())
    return int(value)
