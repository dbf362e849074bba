"""What a network engineer asks of flow records: totals, DSCP mix, top services and talkers.

``summarize`` turns a record table into plain data (also the ``--json`` output);
``render_text`` lays it out as aligned tables for a terminal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from diffserv.codepoints import ECN_NAMES, dscp_name
from diffserv.errors import UsageError
from diffserv.flows.reader import TABLE_COLUMNS, RecordTable
from diffserv.records import GROUP_EXTENDED, iso_time
from diffserv.textfmt import human_bytes, text_table

PROTOCOL_NAMES: Final = {
    1: "icmp",
    2: "igmp",
    4: "ipip",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}
PORT_PROTOCOLS: Final = frozenset({6, 17, 132})


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


def dscp_label(dscp: int) -> str:
    """The DSCP's name from diffserv.codepoints (its number when it has no name)."""
    try:
        return dscp_name(dscp)
    except ValueError:  # not a DSCP (a record file may hold any byte)
        return str(dscp)


def service_port(protocol: int, sport: int, dport: int) -> int | None:
    """The likely service port of a record: the lower non-zero port (None if no ports)."""
    if protocol not in PORT_PROTOCOLS:
        return None
    ports = [p for p in (sport, dport) if p]
    return min(ports) if ports else 0


def _bps(nbytes: int, span_ns: int) -> int | None:
    """Average bit/s over the records' time span (None when the span is empty)."""
    return (nbytes * 8 * 1_000_000_000) // span_ns if span_ns > 0 else None


def human_rate(bps: int | None) -> str:
    """bit/s with a decimal unit: 1.5 Mbit/s, 640 bit/s; "-" when unknown."""
    if bps is None:
        return "-"
    value = float(bps)
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if value < 1000 or unit == "Gbit/s":
            return f"{bps} bit/s" if unit == "bit/s" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{bps} bit/s"


def _share(part: int, total: int) -> float:
    return round(100 * part / total, 2) if total else 0.0  # int / int: correctly rounded


def _ranked(
    groups: dict[Any, list[int]], total_bytes: int, top: int | None, by_packets: bool = False
) -> list[tuple[Any, list[int], float]]:
    """(key, [packets, bytes, ...], byte share) by bytes (or packets) descending."""
    first, second = (0, 1) if by_packets else (1, 0)
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1][first], -kv[1][second], str(kv[0])))
    if top is not None:
        ordered = ordered[:top]
    return [(key, val, _share(val[1], total_bytes)) for key, val in ordered]


SORT_KEYS: Final = ("bytes", "packets")


def select_actions(table: RecordTable, names: Sequence[str]) -> RecordTable:
    """Only the records of the flowacct actions ``names`` (UsageError for an unknown name)."""
    present = sorted(set(table.action))
    unknown = [name for name in names if name not in present]
    if unknown:
        raise UsageError(
            f"{table.path}: no records of action {unknown[0]!r} "
            f"(actions in the file: {', '.join(present) or 'none'})"
        )
    wanted = set(names)
    keep = [i for i, name in enumerate(table.action) if name in wanted]
    out = RecordTable(path=table.path, group=table.group)
    for attr in TABLE_COLUMNS:
        values = getattr(table, attr)
        if values:
            setattr(out, attr, [values[i] for i in keep])
    return out


def summarize(table: RecordTable, top: int = 10, sort: str = "bytes") -> dict[str, Any]:
    """Totals, DSCP and ECN mix, services, conversations and top flows of ``table``.

    Top-N tables are ordered by ``sort`` ("bytes" or "packets") descending. Every
    count, sum, rate and duration is an exact Python int (shares are percentages).
    """
    by_packets = sort == "packets"
    extended = table.group == GROUP_EXTENDED

    flows: dict[tuple[str, str, int, int, int], list[int]] = defaultdict(lambda: [0, 0])
    flow_ds: dict[tuple[str, str, int, int, int], set[int]] = defaultdict(set)
    services: dict[tuple[int, int | None], list[int]] = defaultdict(lambda: [0, 0])
    talks: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    actions: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    dscps: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    ecns: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    total_packets = 0
    total_bytes = 0
    for i in range(table.n):
        s, d = table.saddr[i], table.daddr[i]
        sp, dp, pr = table.sport[i], table.dport[i], table.protocol[i]
        pk, by = table.npackets[i], table.nbytes[i]
        total_packets += pk
        total_bytes += by
        key5 = (s, d, sp, dp, pr)
        acc = flows[key5]
        acc[0] += pk
        acc[1] += by
        if extended:
            ds = table.dsfield[i]
            flow_ds[key5].add(ds >> 2)
            dscp_acc = dscps[ds >> 2]
            dscp_acc[0] += pk
            dscp_acc[1] += by
            dscp_acc[2] += 1
            ecn_acc = ecns[ds & 3]
            ecn_acc[0] += pk
            ecn_acc[1] += by
        svc = services[(pr, service_port(pr, sp, dp))]
        svc[0] += pk
        svc[1] += by
        talk = talks[(s, d) if s <= d else (d, s)]
        talk[0] += pk
        talk[1] += by
        talk[2] += 1
        act = actions[table.action[i]]
        act[0] += 1
        act[1] += pk
        act[2] += by

    totals: dict[str, Any] = {
        "records": table.n,
        "flows": len(flows),
        "packets": total_packets,
        "bytes": total_bytes,
        "group": table.group,
        "actions": [
            {"action": name, "records": v[0], "packets": v[1], "bytes": v[2]}
            for name, v in sorted(actions.items())
        ],
    }
    span_ns = 0
    if extended and table.n:
        first = min(table.first_ns)
        last = max(table.last_ns)
        span_ns = last - first
        totals.update(
            first_seen=iso_time(first),
            last_seen=iso_time(last),
            duration_s=span_ns / 1e9,
            duration_ns=span_ns,
        )
        totals["avg_bps"] = _bps(total_bytes, span_ns)

    by_dscp: list[dict[str, Any]] | None = None
    by_ecn: list[dict[str, Any]] | None = None
    if extended:
        by_dscp = [
            {
                "dscp": value,
                "name": dscp_label(value),
                "records": v[2],
                "packets": v[0],
                "bytes": v[1],
                "packet_share": _share(v[0], total_packets),
                "byte_share": share,
                "avg_bps": _bps(v[1], span_ns),
            }
            for value, v, share in _ranked(dict(dscps), total_bytes, None, by_packets)
        ]
        by_ecn = [
            {
                "ecn": value,
                "name": ECN_NAMES[value],
                "packets": ecns[value][0],
                "bytes": ecns[value][1],
                "packet_share": _share(ecns[value][0], total_packets),
                "byte_share": _share(ecns[value][1], total_bytes),
            }
            for value in range(4)
            if value in ecns
        ]

    by_service = [
        {
            "protocol": pr,
            "protocol_name": protocol_name(pr),
            "port": port,
            "packets": v[0],
            "bytes": v[1],
            "byte_share": share,
        }
        for (pr, port), v, share in _ranked(dict(services), total_bytes, top, by_packets)
    ]
    by_conversation = [
        {"a": a, "b": b, "records": v[2], "packets": v[0], "bytes": v[1], "byte_share": share}
        for (a, b), v, share in _ranked(dict(talks), total_bytes, top, by_packets)
    ]
    top_flows = []
    for (s, d, sp, dp, pr), v, share in _ranked(dict(flows), total_bytes, top, by_packets):
        row: dict[str, Any] = {
            "saddr": s,
            "sport": sp,
            "daddr": d,
            "dport": dp,
            "protocol": pr,
            "protocol_name": protocol_name(pr),
            "packets": v[0],
            "bytes": v[1],
            "byte_share": share,
        }
        if extended:
            row["dscp"] = [
                {"dscp": x, "name": dscp_label(x)} for x in sorted(flow_ds[(s, d, sp, dp, pr)])
            ]
        top_flows.append(row)
    return {
        "file": table.path,
        "totals": totals,
        "sort": "packets" if by_packets else "bytes",
        "by_dscp": by_dscp,
        "by_ecn": by_ecn,
        "by_service": by_service,
        "by_conversation": by_conversation,
        "top_flows": top_flows,
    }


def _endpoint(addr: str, port: int, protocol: int) -> str:
    if protocol not in PORT_PROTOCOLS:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters and undecodable bytes escaped."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in text
    )


def render_text(summary: dict[str, Any]) -> str:
    """The summary as aligned text tables."""
    t = summary["totals"]
    name = "standard input" if summary["file"] == "-" else printable(summary["file"])
    out = [
        f"{name}: {t['records']} records, {t['flows']} flows, "
        f"{t['packets']} packets, {t['bytes']} bytes ({human_bytes(t['bytes'])}), "
        f"group {t['group']}"
    ]
    if "first_seen" in t:
        out.append(
            f"time: {t['first_seen']} .. {t['last_seen']} ({t['duration_s']:.3f} s, "
            f"average {human_rate(t['avg_bps'])})"
        )
    if len(t["actions"]) > 1:
        out.append("")
        out.append("By action")
        out += text_table(
            ["action", "records", "packets", "bytes"],
            [
                [printable(a["action"]), str(a["records"]), str(a["packets"]), str(a["bytes"])]
                for a in t["actions"]
            ],
            {1, 2, 3},
        )
    out.append("")
    out.append("By DSCP")
    if summary["by_dscp"] is None:
        out.append("  (basic records carry no dsfield; record with --acct extended)")
    else:
        out += text_table(
            ["dscp", "name", "packets", "pkt%", "bytes", "byte%", "avg rate"],
            [
                [
                    str(r["dscp"]),
                    r["name"],
                    str(r["packets"]),
                    f"{r['packet_share']:.2f}",
                    str(r["bytes"]),
                    f"{r['byte_share']:.2f}",
                    human_rate(r["avg_bps"]),
                ]
                for r in summary["by_dscp"]
            ],
            {0, 2, 3, 4, 5, 6},
        )
    if summary.get("by_ecn"):
        out.append("")
        out.append("By ECN")
        out += text_table(
            ["ecn", "name", "packets", "pkt%", "bytes", "byte%"],
            [
                [
                    str(r["ecn"]),
                    r["name"],
                    str(r["packets"]),
                    f"{r['packet_share']:.2f}",
                    str(r["bytes"]),
                    f"{r['byte_share']:.2f}",
                ]
                for r in summary["by_ecn"]
            ],
            {0, 2, 3, 4, 5},
        )
    out.append("")
    out.append("By protocol/port")
    out += text_table(
        ["protocol", "port", "packets", "bytes", "byte%"],
        [
            [
                r["protocol_name"],
                "-" if r["port"] is None else str(r["port"]),
                str(r["packets"]),
                str(r["bytes"]),
                f"{r['byte_share']:.2f}",
            ]
            for r in summary["by_service"]
        ],
        {1, 2, 3, 4},
    )
    out.append("")
    out.append("By conversation")
    out += text_table(
        ["host a", "host b", "packets", "bytes", "byte%"],
        [
            [r["a"], r["b"], str(r["packets"]), str(r["bytes"]), f"{r['byte_share']:.2f}"]
            for r in summary["by_conversation"]
        ],
        {2, 3, 4},
    )
    out.append("")
    out.append(f"Top flows (by {summary['sort']})")
    headers = ["protocol", "source", "destination"]
    extended = summary["by_dscp"] is not None
    if extended:
        headers.append("dscp")
    headers += ["packets", "bytes", "byte%"]
    rows = []
    for r in summary["top_flows"]:
        row = [
            r["protocol_name"],
            _endpoint(r["saddr"], r["sport"], r["protocol"]),
            _endpoint(r["daddr"], r["dport"], r["protocol"]),
        ]
        if extended:
            row.append(",".join(d["name"] for d in r["dscp"]))
        row += [str(r["packets"]), str(r["bytes"]), f"{r['byte_share']:.2f}"]
        rows.append(row)
    n = len(headers)
    out += text_table(headers, rows, {n - 3, n - 2, n - 1})
    return "\n".join(out) + "\n"
