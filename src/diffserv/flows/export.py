"""Flow export: where records go (a URL), and the sink that encodes and sends them.

``ipfix://HOST:PORT``, ``netflow9://HOST:PORT`` and ``netflow5://HOST:PORT`` send UDP
datagrams over a connected socket; ``file://PATH`` writes the same datagrams into a
pcap file (IPFIX unless ``?format=netflow9`` or ``?format=netflow5``). An
:class:`Exporter` is a :class:`~diffserv.records.RecordSink`, so ``diffserv run`` hands
it flowacct records as they expire, and it takes flow-store batches too
(``diffserv export``). A collector that is not listening yet must not stop a run:
refused datagrams are counted, not raised.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

import msgspec
import numpy as np

from diffserv.errors import HostSystemError, UsageError
from diffserv.flows.datagram_capture import DatagramFileWriter
from diffserv.flows.reader import RecordTable
from diffserv.flows.schema import (
    SOURCE_FLOWACCT,
    FlowBatch,
    batch_from_records,
    flowacct_columns,
    make_batch,
)
from diffserv.flows.wire.encode import (
    DEFAULT_REFRESH_DATAGRAMS,
    DEFAULT_REFRESH_NS,
    Encoder,
    Netflow5Encoder,
    encoder_for,
)
from diffserv.records import GROUP_EXTENDED, FlowRecords, RecordSink, parse_address

IPFIX: Final = "ipfix"
NETFLOW9: Final = "netflow9"
NETFLOW5: Final = "netflow5"
FORMATS: Final = (IPFIX, NETFLOW9, NETFLOW5)
FILE: Final = "file"
DEFAULT_PORTS: Final = {IPFIX: 4739, NETFLOW9: 2055, NETFLOW5: 2055}

DEFAULT_MTU: Final = 1500
MIN_MTU: Final = 576
MAX_MTU: Final = 65535
IPV4_UDP_HEADERS: Final = 28  # IPv4 header without options + UDP header
IPV6_UDP_HEADERS: Final = 48
_QUERY_KEYS: Final = ("format", "mtu", "domain")


class ExportTarget(msgspec.Struct, frozen=True):
    """A parsed export URL: the wire format and a UDP destination or a file."""

    url: str
    format: str  # ipfix, netflow9, netflow5
    host: str | None = None  # address or name, without brackets
    port: int | None = None
    path: str | None = None  # file:// export
    mtu: int | None = None  # ?mtu=N
    domain: int | None = None  # ?domain=N

    @property
    def is_file(self) -> bool:
        return self.path is not None


def _bad(url: str, why: str) -> UsageError:
    return UsageError(f"export URL {url!r}: {why}")


def _number(url: str, name: str, text: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < low or int(text) > high:
        raise _bad(url, f"{name} must be a number from {low} to {high}, not {text!r}")
    return int(text)


def parse_export_url(url: str) -> ExportTarget:
    """Parse ``ipfix://HOST:PORT``, ``netflow9://…``, ``netflow5://…`` or ``file://PATH``.

    IPv6 hosts are written in brackets (``ipfix://[::1]:4739``); the port defaults to
    4739 (IPFIX) or 2055 (NetFlow). Queries: ``format=`` (file only), ``mtu=``,
    ``domain=``. Any mistake is a UsageError naming the URL.
    """
    if "://" not in url:
        raise _bad(url, "want SCHEME://…, with scheme ipfix, netflow9, netflow5 or file")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in (*FORMATS, FILE):
        raise _bad(url, f"unknown scheme {scheme!r} (use ipfix, netflow9, netflow5 or file)")
    where, _, query_text = rest.partition("?")
    query = _query(url, query_text)
    kind = query.get("format", IPFIX if scheme == FILE else scheme).lower()
    if kind not in FORMATS:
        raise _bad(url, f"unknown format {kind!r} (use ipfix, netflow9 or netflow5)")
    if scheme != FILE and "format" in query:
        raise _bad(url, "format= is for file:// URLs; the scheme names the format")
    mtu = _number(url, "mtu", query["mtu"], MIN_MTU, MAX_MTU) if "mtu" in query else None
    domain = _number(url, "domain", query["domain"], 0, 2**32 - 1) if "domain" in query else None
    if scheme == FILE:
        path = urllib.parse.unquote(where)
        if not path:
            raise _bad(url, "no file name after file://")
        return ExportTarget(url, kind, path=path, mtu=mtu, domain=domain)
    host, port = _host_port(url, where)
    return ExportTarget(url, kind, host, port or DEFAULT_PORTS[kind], mtu=mtu, domain=domain)


def _query(url: str, text: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _bad(url, f"cannot read the query {text!r}") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in _QUERY_KEYS:
            raise _bad(url, f"unknown option {key!r} (known: {', '.join(_QUERY_KEYS)})")
        if key in out:
            raise _bad(url, f"option {key!r} given twice")
        out[key] = value
    return out


def _host_port(url: str, where: str) -> tuple[str, int | None]:
    if not where.startswith("[") and where.count(":") > 1:
        raise _bad(url, "write an IPv6 address in brackets: [ADDRESS]:PORT")
    if not where or where.startswith(":"):
        raise _bad(url, "no host (want HOST:PORT, or [IPv6]:PORT)")
    if "/" in where or "@" in where:
        raise _bad(url, "want only HOST:PORT after the scheme")
    if where.startswith("["):
        close = where.find("]")
        if close < 0:
            raise _bad(url, "missing ']' after the IPv6 address")
        host, after = where[1:close], where[close + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(url, f"{host!r} is not an IPv6 address") from None
        if after and not after.startswith(":"):
            raise _bad(url, "want [IPv6]:PORT")
        if after == ":":
            raise _bad(url, "empty port after ':'")
        port_text = after[1:]
    else:
        host, colon, port_text = where.partition(":")
        if colon and not port_text:
            raise _bad(url, "empty port after ':'")
    port = _number(url, "port", port_text, 1, 65535) if port_text else None
    return host, port


class ExportCounts(msgspec.Struct):
    """What an exporter has done, for the run summary and tests."""

    datagrams: int = 0  # handed to the socket (or written to the file)
    records: int = 0  # flow records in them
    send_errors: int = 0  # datagrams the destination refused (nobody listening)
    skipped_ipv6: int = 0  # v5 only: IPv6 records it cannot carry
    skipped: int = 0  # records without IP version 4 or 6 (no addresses to send)


class Exporter:
    """Encode flow records and send them to one target; a RecordSink.

    ``callout`` (the run's IPQoS callout position, 0 unknown) and ``classes`` (flowacct
    action name -> the ipgpc class feeding it, where there is one) describe flowacct
    records handed to :meth:`write`. ``start_ns`` is the exporter's start for v9/v5 uptimes:
    the earliest record time it will send, where known (default: the first records'
    earliest first_seen).
    """

    def __init__(
        self,
        target: ExportTarget,
        *,
        mtu: int | None = None,
        domain: int | None = None,
        callout: int = 0,
        classes: Mapping[str, str] | None = None,
        start_ns: int | None = None,
        refresh_datagrams: int = DEFAULT_REFRESH_DATAGRAMS,
        refresh_ns: int = DEFAULT_REFRESH_NS,
    ) -> None:
        self.target = target
        self.counts = ExportCounts()
        self.callout = callout
        self.classes = dict(classes or {})
        self.closed = False
        mtu = mtu if mtu is not None else target.mtu if target.mtu is not None else DEFAULT_MTU
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise UsageError(f"--mtu {mtu}: must be from {MIN_MTU} to {MAX_MTU}")
        domain = domain if domain is not None else target.domain or 0
        if target.format == NETFLOW5 and domain > 0xFFFF:
            raise UsageError(
                f"domain {domain}: a NetFlow v5 engine is engine_type << 8 | engine_id, "
                "at most 65535"
            )
        self._socket: socket.socket | None = None
        self._file: DatagramFileWriter | None = None
        self._file_time_ns = 0
        if target.path is not None:
            ipv6 = False
            self._file = DatagramFileWriter(target.path, port=DEFAULT_PORTS[target.format])
        else:
            self._socket, ipv6 = _connect(target)
        self.max_payload = mtu - (IPV6_UDP_HEADERS if ipv6 else IPV4_UDP_HEADERS)
        self.encoder: Encoder = encoder_for(
            target.format,
            domain=domain,
            max_payload=self.max_payload,
            start_ns=start_ns,
            refresh_datagrams=refresh_datagrams,
            refresh_ns=refresh_ns,
        )

    # ------------------------------------------------------------------ sink
    def write(self, records: FlowRecords) -> None:
        """Export flowacct records (a RecordSink's hand-over as flows expire)."""
        if records.n:
            self.send(
                batch_from_records(
                    records, callout=self.callout, klass=self.classes.get(records.action)
                )
            )

    def send(self, batch: FlowBatch) -> None:
        """Encode ``batch`` and send every datagram at once."""
        if self.closed:
            raise ValueError(f"{self.target.url}: exporter is closed")
        if batch.n == 0:
            return
        before = self.encoder.data_records
        datagrams = self.encoder.encode(batch)
        self.counts.records += self.encoder.data_records - before
        self.counts.skipped = self.encoder.skipped
        if isinstance(self.encoder, Netflow5Encoder):
            self.counts.skipped_ipv6 = self.encoder.skipped_ipv6
        for datagram in datagrams:
            self._send(datagram, batch)

    def _send(self, datagram: bytes, batch: FlowBatch) -> None:
        if self._file is not None:
            # a file's packets are stamped with record time: the same run, the same file
            self._file_time_ns = max(self._file_time_ns, int(batch.columns["last_ns"].max()))
            self._file.write(datagram, self._file_time_ns)
            self.counts.datagrams += 1
            return
        assert self._socket is not None
        try:
            self._socket.send(datagram)
        except ConnectionRefusedError:
            self.counts.send_errors += 1  # nobody listens (yet): the run goes on
            return
        except OSError as exc:
            raise HostSystemError(
                f"cannot send to {self.target.url}: {os.strerror(exc.errno or errno.EIO)}"
            ) from None
        self.counts.datagrams += 1

    def close(self) -> None:
        """Release the socket or finish the file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        if self._file is not None:
            self._file.close()

    def abort(self) -> None:
        """Stop; every datagram already sent or written stays where it went."""
        with contextlib.suppress(HostSystemError):
            self.close()


def _connect(target: ExportTarget) -> tuple[socket.socket, bool]:
    """A UDP socket connected to the target; True if it is IPv6."""
    assert target.host is not None and target.port is not None
    try:
        infos = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UsageError(
            f"export URL {target.url!r}: cannot resolve {target.host!r}: {reason}"
        ) from None
    last: OSError | None = None
    for family, kind, proto, _name, address in infos:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            last = exc
            continue
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock, family == socket.AF_INET6
    reason = os.strerror(last.errno) if last is not None and last.errno else "no address"
    raise HostSystemError(f"cannot export to {target.url}: {reason}")


class FanOut:
    """Several record sinks as one: every batch to each, in order.

    Closing closes each; if one fails, the rest are aborted (keeping what they have)
    and the failure propagates. Aborting aborts each, even when one of them fails.
    """

    def __init__(self, sinks: Sequence[RecordSink]) -> None:
        self.sinks = tuple(sinks)

    def write(self, records: FlowRecords) -> None:
        for sink in self.sinks:
            sink.write(records)

    def close(self) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                sink.close()
            except BaseException:
                for rest in self.sinks[i + 1 :]:
                    with contextlib.suppress(Exception):
                        rest.abort()
                raise

    def abort(self) -> None:
        failure: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.abort()
            except BaseException as exc:  # the others still get their abort
                failure = failure or exc
        if failure is not None:
            raise failure


EXPORT_CHUNK: Final = 8192  # records per batch handed to the encoder from a record file


def table_batches(table: RecordTable, chunk: int = EXPORT_CHUNK) -> Iterator[FlowBatch]:
    """A record file's records (extended group) as flowacct batches, in file order.

    Addresses are text in a file; each distinct address is parsed once.
    """
    if table.group != GROUP_EXTENDED:
        raise UsageError(
            f"{table.path}: basic flow records have no times or DS byte to export; "
            "write them with --acct extended"
        )
    parsed: dict[str, tuple[int, int]] = {}
    actions = tuple(dict.fromkeys(table.action))
    codes = {name: i for i, name in enumerate(actions)}
    for start in range(0, table.n, chunk):
        stop = min(table.n, start + chunk)
        halves = {}
        for side in ("saddr", "daddr"):
            texts: list[str] = getattr(table, side)[start:stop]
            pairs = [parsed.get(t) or parsed.setdefault(t, parse_address(t)) for t in texts]
            halves[side] = np.array(pairs, np.uint64).reshape(-1, 2)
        given = flowacct_columns(
            saddr=(halves["saddr"][:, 0], halves["saddr"][:, 1]),
            daddr=(halves["daddr"][:, 0], halves["daddr"][:, 1]),
            sport=np.asarray(table.sport[start:stop]),
            dport=np.asarray(table.dport[start:stop]),
            protocol=np.asarray(table.protocol[start:stop]),
            dsfield=np.asarray(table.dsfield[start:stop], np.int16),
            npackets=np.asarray(table.npackets[start:stop], np.uint64),
            nbytes=np.asarray(table.nbytes[start:stop], np.uint64),
            first_ns=np.asarray(table.first_ns[start:stop], np.int64),
            last_ns=np.asarray(table.last_ns[start:stop], np.int64),
        )
        given["action_code"] = np.array([codes[a] for a in table.action[start:stop]], np.int32)
        n = stop - start
        yield make_batch(SOURCE_FLOWACCT, "", 0, n, given, actions=actions)
