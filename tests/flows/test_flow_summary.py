"""`diffserv flows` summaries: every table adds up to the totals, names are right."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.flows.reader import RecordTable
from diffserv.flows.summary import (
    human_rate,
    protocol_name,
    render_text,
    service_port,
    summarize,
)
from diffserv.textfmt import human_bytes


def test_service_port_is_the_lower_nonzero_port() -> None:
    assert service_port(6, 51515, 443) == 443
    assert service_port(6, 443, 51515) == 443
    assert service_port(17, 0, 53) == 53
    assert service_port(17, 0, 0) == 0
    assert service_port(1, 8, 0) is None


def test_names() -> None:
    assert protocol_name(6) == "tcp" and protocol_name(58) == "ipv6-icmp"
    assert protocol_name(253) == "253"
    assert human_bytes(999) == "999 B" and human_bytes(1500) == "1.5 kB"
    assert human_bytes(2_000_000_000) == "2.0 GB"
    assert human_rate(None) == "-" and human_rate(999) == "999 bit/s"
    assert human_rate(1_500_000) == "1.5 Mbit/s" and human_rate(10**13) == "10000.0 Gbit/s"


records = st.lists(
    st.tuples(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]),
        st.sampled_from(["192.0.2.1", "2001:db8::2"]),
        st.sampled_from([0, 53, 443, 50000]),
        st.sampled_from([0, 53, 443, 50000]),
        st.sampled_from([1, 6, 17]),
        st.integers(1, 10_000),
        st.integers(40, 10**9),
        st.integers(0, 255),
        st.sampled_from(["a", "b"]),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(records, st.booleans())
def test_every_table_adds_up_to_the_totals(
    rows: list[tuple[str, str, int, int, int, int, int, int, str]], extended: bool
) -> None:
    table = RecordTable(path="t.jsonl", group="extended" if extended else "basic")
    for s, d, sp, dp, pr, pk, by, ds, act in rows:
        table.saddr.append(s)
        table.daddr.append(d)
        table.sport.append(sp)
        table.dport.append(dp)
        table.protocol.append(pr)
        table.npackets.append(pk)
        table.nbytes.append(by)
        table.action.append(act)
        if extended:
            table.dsfield.append(ds)
            table.first_ns.append(0)
            table.last_ns.append(1)
    summary = summarize(table, top=1000)
    total_p, total_b = summary["totals"]["packets"], summary["totals"]["bytes"]
    assert total_p == sum(r[5] for r in rows) and total_b == sum(r[6] for r in rows)
    for name in ("by_service", "by_conversation", "top_flows"):
        assert sum(r["packets"] for r in summary[name]) == total_p
        assert sum(r["bytes"] for r in summary[name]) == total_b
        byte_counts = [r["bytes"] for r in summary[name]]
        assert byte_counts == sorted(byte_counts, reverse=True)
    if extended:
        assert sum(r["bytes"] for r in summary["by_dscp"]) == total_b
        assert sum(r["packets"] for r in summary["by_ecn"]) == total_p
        assert all(0 <= r["dscp"] <= 63 for r in summary["by_dscp"])
        if rows:  # records span 1 ns here
            assert summary["totals"]["avg_bps"] == total_b * 8 * 10**9
    else:
        assert summary["by_dscp"] is None
    assert summary["totals"]["flows"] == len({r[:5] for r in rows})
    text = render_text(summary)
    assert text.startswith(f"t.jsonl: {len(rows)} records")
