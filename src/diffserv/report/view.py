"""The ``flows`` view every report engine builds: its columns and its SELECT list.

Engine-neutral on purpose: DuckDB and Spark spell the store's times and a wide integer
type differently, and nothing else, so the view is written once here and each engine
only names those two things.

The same SELECT list also reads a store file's rollup (its records summed per minute,
see :mod:`diffserv.report.rollup`): there ``first_seen`` / ``last_seen`` are the
earliest and latest of the summed records, the counters are sums, and ``n`` is how many
records a row stands for (1 in the store itself). A report query that reads only
:data:`SUMMARY_COLUMNS` and counts records as ``sum(n)`` gives the same answer on
either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# The columns of the `flows` view, shared by every engine (the Spark engine checks its
# view against this list).
VIEW_COLUMNS: Final = (
    "first_ns",
    "last_ns",
    "ip_version",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "protocol",
    "tcp_flags",
    "in_if",
    "out_if",
    "direction",
    "ds_in",
    "dscp_in",
    "ecn_in",
    "prec_in",
    "ds_out",
    "dscp_out",
    "ecn_out",
    "prec_out",
    "vlan",
    "pcp",
    "packets",
    "bytes",
    "sampling",
    "action",
    "flow_class",
    "source",
    "exporter",
    "domain",
    "n",
    "scale",
    "s_packets",
    "s_bytes",
)
# What a rollup sums away (per record only), and what it sums or derives.
_SUMMED_AWAY: Final = ("saddr", "daddr", "sport", "dport", "tcp_flags", "pcp")
_DERIVED: Final = ("first_ns", "last_ns", "flow_class", "n", "scale", "s_packets", "s_bytes")
_MEASURES: Final = ("packets", "bytes")
# The store columns a rollup keeps whole: every one a summary report groups or filters by.
ROLLUP_KEYS: Final = (
    "class",
    *(c for c in VIEW_COLUMNS if c not in (*_SUMMED_AWAY, *_DERIVED, *_MEASURES)),
)
# the view columns a rollup has (in the order of the view's SELECT list)
SUMMARY_COLUMNS: Final = tuple(c for c in VIEW_COLUMNS if c not in _SUMMED_AWAY)


def view_select(
    first_ns: str,
    last_ns: str,
    sampled: bool,
    bigint: str,
    *,
    columns: Sequence[str] = VIEW_COLUMNS,
    count: str = "1",
) -> str:
    """The SELECT list of the ``flows`` view (or of ``columns`` of it), given how an
    engine spells the times.

    ``bigint`` is the engine's name of an integer type wide enough for scaled counters
    (sampling rates are 32-bit, counters 64-bit); ``count`` is the records a row stands
    for (the column ``n`` of a rollup).
    """
    out = [f"{first_ns} AS first_ns", f"{last_ns} AS last_ns"]
    out += [c for c in columns if c not in _DERIVED]
    out += ["class AS flow_class", f"{count} AS n"]
    if sampled:
        scale = "(CASE WHEN sampling > 1 THEN sampling ELSE 1 END)"
        out += [
            f"{scale} AS scale",
            f"CAST(packets AS {bigint}) * {scale} AS s_packets",
            f"CAST(bytes AS {bigint}) * {scale} AS s_bytes",
        ]
    else:  # no record is sampled: the counters as they are (integer sums stay cheap)
        out += ["1 AS scale", "packets AS s_packets", "bytes AS s_bytes"]
    return ", ".join(out)
