"""The ``flows`` view every report engine builds: its columns and its SELECT list.

Engine-neutral on purpose: DuckDB and Spark spell the store's times and a wide integer
type differently, and nothing else, so the view is written once here and each engine
only names those two things.
"""

from __future__ import annotations

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
    "scale",
    "s_packets",
    "s_bytes",
)
# the view columns every engine takes from the store as they are
_PLAIN: Final = tuple(
    c for c in VIEW_COLUMNS[2:] if c not in ("flow_class", "scale", "s_packets", "s_bytes")
)


def view_select(first_ns: str, last_ns: str, sampled: bool, bigint: str) -> str:
    """The SELECT list of the ``flows`` view, given how an engine spells the times.

    ``bigint`` is the engine's name of a 64-bit integer type wide enough for scaled
    counters (sampling rates are 32-bit, counters 64-bit).
    """
    columns = [f"{first_ns} AS first_ns", f"{last_ns} AS last_ns", *_PLAIN, "class AS flow_class"]
    if sampled:
        scale = "(CASE WHEN sampling > 1 THEN sampling ELSE 1 END)"
        columns += [
            f"{scale} AS scale",
            f"CAST(packets AS {bigint}) * {scale} AS s_packets",
            f"CAST(bytes AS {bigint}) * {scale} AS s_bytes",
        ]
    else:  # no record is sampled: the counters as they are (integer sums stay cheap)
        columns += ["1 AS scale", "packets AS s_packets", "bytes AS s_bytes"]
    return ", ".join(columns)
