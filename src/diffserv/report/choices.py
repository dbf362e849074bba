"""The words of the report command line, apart from the engine that gives them meaning.

`diffserv --help` builds every command's parser; this module keeps DuckDB, pyarrow and
the report engine out of that start-up.
"""

from __future__ import annotations

from typing import Final

REPORTS: Final = (
    "top-dscp",
    "apps",
    "conversations",
    "timeline",
    "groups",
    "tos",
    "ecn",
    "remark",
    "silent-exporters",
    "flows",
)
METRICS: Final = ("bytes", "packets", "flows")
KEYS: Final = ("dscp", "group")
SIDES: Final = ("in", "out")
ENGINES: Final = ("duckdb", "spark")
FILTER_KEYS: Final = (
    "exporter, source, interface, in_if, out_if, direction, ip_version, protocol, dscp, "
    "dscp_out, group, group_out, tos, tos_out, ecn, ecn_out, addr, src, dst, port, sport, "
    "dport, vlan, domain, action, class"
)
