"""The flow store's one schema, declared once, and the in-memory batch every flow source fills.

Every producer of flow records (flowacct in ``diffserv run``, the collector decoding
IPFIX / NetFlow v9 / v5, ``diffserv import nfdump``) builds :class:`FlowBatch` columns;
the store writer turns them into Parquet with :data:`STORE_COLUMNS`' Arrow types, and
every reader (reports, audit, DuckDB, Spark) reads that one schema. Unknown values are
a sentinel in memory (numpy has no nulls) and a null in the store, so "not exported"
is never confused with 0: ``ipDiffServCodePoint`` (IE 195) carries no ECN, and the
store says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from diffserv.directions import INBOUND
from diffserv.records import FlowRecords

# Bumped whenever a column is added, removed or changes meaning; written into every
# Parquet file's key-value metadata under STORE_VERSION_KEY.
STORE_VERSION: Final = 1
STORE_VERSION_KEY: Final = b"diffserv.flowstore.version"

# The kinds of source a record can come from (the `source` column).
SOURCE_IPFIX: Final = "ipfix"
SOURCE_NETFLOW9: Final = "netflow9"
SOURCE_NETFLOW5: Final = "netflow5"
SOURCE_FLOWACCT: Final = "flowacct"
SOURCE_NFDUMP: Final = "nfdump"
SOURCES: Final = (SOURCE_IPFIX, SOURCE_NETFLOW9, SOURCE_NETFLOW5, SOURCE_FLOWACCT, SOURCE_NFDUMP)

# Directions of the `direction` column (IPFIX flowDirection, IE 61).
DIRECTION_INGRESS: Final = 0
DIRECTION_EGRESS: Final = 1

UNKNOWN: Final = -1  # the in-memory sentinel of every nullable numeric column


class Column(msgspec.Struct, frozen=True):
    """One column of the store: its numpy type in a batch, its Arrow type in Parquet.

    ``unknown`` is the in-memory value that means "not known" (written as null), or
    None for a column that is always known.
    """

    name: str
    dtype: str  # numpy dtype of the batch array
    arrow: str  # Arrow type name (pyarrow.<arrow>()), timestamps are ns UTC
    unknown: int | None
    doc: str


# Column order is the file's column order. Addresses are (hi, lo) uint64 halves in a
# batch, IPv4 v4-mapped (as in flowacct records), and text in the store.
BATCH_COLUMNS: Final = (
    Column("first_ns", "int64", "timestamp", None, "first packet of the flow, ns since the epoch"),
    Column("last_ns", "int64", "timestamp", None, "last packet of the flow, ns since the epoch"),
    Column("ip_version", "uint8", "uint8", 0, "4 or 6"),
    Column("saddr_hi", "uint64", "string", None, "source address, high 64 bits"),
    Column("saddr_lo", "uint64", "string", None, "source address, low 64 bits"),
    Column("daddr_hi", "uint64", "string", None, "destination address, high 64 bits"),
    Column("daddr_lo", "uint64", "string", None, "destination address, low 64 bits"),
    Column("sport", "uint16", "uint16", None, "source port (0 without ports)"),
    Column("dport", "uint16", "uint16", None, "destination port (0 without ports)"),
    Column("protocol", "uint8", "uint8", None, "IP protocol number"),
    Column("tcp_flags", "int16", "uint8", UNKNOWN, "OR of the TCP flags seen"),
    Column("in_if", "int64", "uint32", UNKNOWN, "ingress interface index (IE 10)"),
    Column("out_if", "int64", "uint32", UNKNOWN, "egress interface index (IE 14)"),
    Column("direction", "int8", "uint8", UNKNOWN, "0 ingress, 1 egress (IE 61)"),
    Column("ds_in", "int16", "uint8", UNKNOWN, "whole DS byte as received (IE 5)"),
    Column("dscp_in", "int16", "uint8", UNKNOWN, "DSCP as received (IE 195, or ds_in >> 2)"),
    Column("ecn_in", "int16", "uint8", UNKNOWN, "ECN as received (ds_in & 3; unknown from IE 195)"),
    Column("prec_in", "int16", "uint8", UNKNOWN, "precedence as received (IE 196, or dscp >> 3)"),
    Column("ds_out", "int16", "uint8", UNKNOWN, "whole DS byte after re-marking (IE 55)"),
    Column("dscp_out", "int16", "uint8", UNKNOWN, "DSCP after re-marking (IE 98, or ds_out >> 2)"),
    Column("ecn_out", "int16", "uint8", UNKNOWN, "ECN after re-marking (ds_out & 3)"),
    Column("prec_out", "int16", "uint8", UNKNOWN, "precedence after re-marking"),
    Column("vlan", "int32", "uint16", UNKNOWN, "802.1Q VLAN id (IE 243, or 58)"),
    Column("pcp", "int16", "uint8", UNKNOWN, "802.1Q priority (IE 244)"),
    Column("packets", "uint64", "uint64", None, "packets as exported (not scaled by sampling)"),
    Column("bytes", "uint64", "uint64", None, "IP bytes as exported (not scaled by sampling)"),
    Column("sampling", "int64", "uint32", UNKNOWN, "1 in N packets sampled (1 = every packet)"),
    Column("uid", "int64", "uint32", UNKNOWN, "user id of the socket, where known"),
    Column("projid", "int64", "uint32", UNKNOWN, "project id, where known"),
    Column("action_code", "int32", "string", UNKNOWN, "index into FlowBatch.actions"),
    Column("class_code", "int32", "string", UNKNOWN, "index into FlowBatch.classes"),
)
COLUMNS_BY_NAME: Final[Mapping[str, Column]] = {c.name: c for c in BATCH_COLUMNS}


class FlowBatch(msgspec.Struct, frozen=True):
    """Flow records of one source kind, exporter and observation domain, as columns.

    ``columns`` holds one array per :data:`BATCH_COLUMNS` name, all of one length, with
    the column's dtype. ``exporter`` is the exporter's address as text ("" for flowacct,
    whose records are this host's); ``domain`` the IPFIX observation domain, the v9
    source id or the v5 engine (type << 8 | id), 0 for flowacct. ``action_code`` and
    ``class_code`` index ``actions`` and ``classes`` (the flowacct action, the ipgpc
    class), -1 where unknown.
    """

    source: str
    exporter: str
    domain: int
    columns: dict[str, NDArray[Any]]
    actions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.columns["first_ns"].shape[0])


def make_batch(
    source: str,
    exporter: str,
    domain: int,
    n: int,
    given: Mapping[str, NDArray[Any]],
    *,
    actions: tuple[str, ...] = (),
    classes: tuple[str, ...] = (),
) -> FlowBatch:
    """A batch of ``n`` records from the ``given`` columns; every other column unknown.

    Given arrays are converted to the column's dtype (a copy only where the type differs).
    A column not given is a read-only broadcast of its "unknown" value (no memory per
    row); a column that has no "unknown" and is not given is an error of the caller.
    """
    columns: dict[str, NDArray[Any]] = {}
    for column in BATCH_COLUMNS:
        array = given.get(column.name)
        if array is None:
            if column.unknown is None:
                raise ValueError(f"flow batch: column {column.name} is required")
            # one read-only value seen n times: most sources export a few of the columns,
            # and filling the others would be most of the work of a batch
            columns[column.name] = np.broadcast_to(np.array(column.unknown, column.dtype), (n,))
        else:
            if array.shape != (n,):
                raise ValueError(f"flow batch: column {column.name} has shape {array.shape}")
            columns[column.name] = np.asarray(array, dtype=column.dtype)
    unknown = set(given) - set(COLUMNS_BY_NAME)
    if unknown:
        raise ValueError(f"flow batch: no such columns {sorted(unknown)}")
    return FlowBatch(source, exporter, domain, columns, actions, classes)


def ds_fields(ds: NDArray[Any]) -> dict[str, NDArray[np.int16]]:
    """dscp, ecn and precedence of whole DS bytes (-1 stays unknown in all three)."""
    ds16 = np.asarray(ds, dtype=np.int16)
    known = ds16 >= 0
    dscp = np.where(known, ds16 >> 2, UNKNOWN).astype(np.int16)
    return {
        "ds": ds16,
        "dscp": dscp,
        "ecn": np.where(known, ds16 & 3, UNKNOWN).astype(np.int16),
        "prec": np.where(known, ds16 >> 5, UNKNOWN).astype(np.int16),
    }


def flowacct_columns(
    *,
    saddr: tuple[NDArray[np.uint64], NDArray[np.uint64]],
    daddr: tuple[NDArray[np.uint64], NDArray[np.uint64]],
    sport: NDArray[Any],
    dport: NDArray[Any],
    protocol: NDArray[Any],
    dsfield: NDArray[Any],
    npackets: NDArray[Any],
    nbytes: NDArray[Any],
    first_ns: NDArray[Any],
    last_ns: NDArray[Any],
) -> dict[str, NDArray[Any]]:
    """The store columns every flowacct record fills, whether it comes from the engine
    or from a record file: the key, the DS byte as the action saw it (``*_in``, see
    :func:`batch_from_records`), the counters, the times, and sampling 1 (flowacct
    counts every packet). Addresses are (hi, lo) halves, IPv4 v4-mapped."""
    v4 = (saddr[0] == 0) & ((saddr[1] >> np.uint64(32)) == np.uint64(0xFFFF))
    ds = ds_fields(dsfield)
    return {
        "first_ns": np.asarray(first_ns, np.int64),
        "last_ns": np.asarray(last_ns, np.int64),
        "ip_version": np.where(v4, 4, 6).astype(np.uint8),
        "saddr_hi": saddr[0],
        "saddr_lo": saddr[1],
        "daddr_hi": daddr[0],
        "daddr_lo": daddr[1],
        "sport": np.asarray(sport, np.uint16),
        "dport": np.asarray(dport, np.uint16),
        "protocol": np.asarray(protocol, np.uint8),
        "ds_in": ds["ds"],
        "dscp_in": ds["dscp"],
        "ecn_in": ds["ecn"],
        "prec_in": ds["prec"],
        "packets": np.asarray(npackets).astype(np.uint64),
        "bytes": np.asarray(nbytes).astype(np.uint64),
        "sampling": np.ones(len(first_ns), np.int64),
    }


def batch_from_records(
    records: FlowRecords, *, callout: int = 0, klass: str | None = None
) -> FlowBatch:
    """flowacct records as a flow-store batch (source ``flowacct``, this host's records).

    ``callout`` is the IPQoS callout position of the run (``diffserv.directions``): the
    *_IN positions are ingress, the *_OUT ones egress, 0 unknown. flowacct's dsfield is
    the DS byte as the action saw it, which is what IPFIX's ipClassOfService means (the
    value at the observation point), so it fills the ``*_in`` columns. ``klass`` is the
    ipgpc class whose packets reach the action, where the policy has exactly one.
    """
    n = records.n
    direction = UNKNOWN
    if callout & INBOUND:
        direction = DIRECTION_INGRESS
    elif callout:
        direction = DIRECTION_EGRESS
    given = flowacct_columns(
        saddr=(records.saddr_hi, records.saddr_lo),
        daddr=(records.daddr_hi, records.daddr_lo),
        sport=records.sport,
        dport=records.dport,
        protocol=records.protocol,
        dsfield=records.dsfield,
        npackets=records.npackets,
        nbytes=records.nbytes,
        first_ns=records.first_ns,
        last_ns=records.last_ns,
    )
    given["direction"] = np.full(n, direction, np.int8)
    given["uid"] = records.uid.astype(np.int64)
    given["projid"] = records.projid.astype(np.int64)
    given["action_code"] = np.zeros(n, np.int32)
    given["class_code"] = np.full(n, 0 if klass is not None else UNKNOWN, np.int32)
    return make_batch(
        SOURCE_FLOWACCT,
        "",
        0,
        n,
        given,
        actions=(records.action,),
        classes=(klass,) if klass is not None else (),
    )
