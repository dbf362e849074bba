"""`diffserv import nfdump`: a real nfcapd archive (softflowd → nfcapd) into the store, and
nfdump's JSON parsed the same however it is cut, with bad records named."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.cli.main import main
from diffserv.errors import InputDataError
from diffserv.flows.nfdump_import import NfdumpJsonParser
from diffserv.flows.store import read_store, store_files
from diffserv.flows.store_arrow import batch_to_table
from support import synth
from support.collecting import Nfcapd, free_udp_port
from support.tools import require_tool

T0 = 1_767_225_600_000_000_000
Key = tuple[int, str, int, str, int]


def make_capture(path: Path) -> None:
    rng = random.Random(12)
    packets = []
    ts = T0
    for _ in range(400):
        ts += rng.randrange(1, 40_000_000)
        host = rng.randrange(10)
        v6 = host >= 8
        proto = "tcp" if host % 3 else "udp"
        frame = synth.simple_frame(
            version=6 if v6 else 4,
            proto=proto,
            src=f"2001:db8::{host}" if v6 else f"10.3.0.{host}",
            dst="2001:db8::ff" if v6 else "192.168.5.5",
            sport=41000 + host,
            dport=443 if proto == "tcp" else 53,
            dscp=[0, 10, 46, 34, 8][host % 5],  # one DSCP per flow
            ecn=1 if host == 2 else 0,
            payload_len=rng.randrange(0, 1300),
        )
        packets.append(synth.Packet(frame, ts_ns=ts))
    synth.write_file(path, synth.pcap_bytes(packets, nanosecond=False))


def nfcapd_archive(tmp_path: Path) -> Path:
    """softflowd exports the capture as IPFIX into nfcapd (flows.md's commands)."""
    softflowd, nfcapd = require_tool("softflowd"), require_tool("nfcapd")
    capture = tmp_path / "mix.pcap"
    make_capture(capture)
    port = free_udp_port()
    collector = Nfcapd(nfcapd, tmp_path, port)
    try:
        # -r: no control socket (never add -c); exports everything at end of file
        subprocess.run(
            [
                softflowd,
                "-r",
                str(capture),
                "-n",
                f"127.0.0.1:{port}",
                "-v",
                "10",
                "-6",
                "-A",
                "milli",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        time.sleep(1.0)
    finally:
        collector.stop()  # nfcapd writes its file on SIGTERM
    return collector.spool


def nfdump_view(spool: Path) -> dict[Key, tuple[int, int, int, str]]:
    """What nfdump itself shows: packets, bytes, ToS and first-seen (ms) per 5-tuple."""
    nfdump = require_tool("nfdump")
    out = subprocess.run(
        [nfdump, "-R", str(spool), "-q", "-N", "-o", "fmt:%pr,%sa,%sp,%da,%dp,%pkt,%byt,%tos,%ts"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={"TZ": "UTC"},
    ).stdout
    view = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 9:
            continue
        proto = int(cells[0]) if cells[0].isdigit() else {"TCP": 6, "UDP": 17}[cells[0].upper()]
        key = (proto, cells[1], int(cells[2]), cells[3], int(cells[4]))
        view[key] = (int(cells[5]), int(cells[6]), int(cells[7]), cells[8].replace(" ", "T"))
    return view


@pytest.mark.tools
def test_import_has_the_records_nfdump_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = nfcapd_archive(tmp_path)
    expected = nfdump_view(spool)
    assert len(expected) == 10
    store = tmp_path / "store"
    assert main(["import", "nfdump", str(spool), "--store", str(store)]) == 0
    assert "imported 10 flow records" in capsys.readouterr().err
    table = read_store(str(store))
    got = {}
    for row in table.to_pylist():
        key = (row["protocol"], row["saddr"], row["sport"], row["daddr"], row["dport"])
        first = row["first_seen"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        got[key] = (row["packets"], row["bytes"], row["ds_in"], first)
        assert row["source"] == "nfdump" and row["exporter"] == "127.0.0.1"
        assert row["dscp_in"] == row["ds_in"] >> 2 and row["ecn_in"] == row["ds_in"] & 3
        assert row["ds_out"] is None  # softflowd sends no post-ToS; nfdump prints 0
    assert got == expected
    assert {v[2] for v in got.values()} >= {0, 40, 185, 136}  # BE, AF11, EF+ECT(1), AF41
    # the single file, importing a single nfcapd file gives the same rows
    (one,) = spool.iterdir()
    assert main(["import", "nfdump", str(one), "--store", str(tmp_path / "s2"), "-q"]) == 0
    assert read_store(str(tmp_path / "s2")).num_rows == 10
    # a filter goes to nfdump as one argument
    assert (
        main(
            [
                "import",
                "nfdump",
                str(one),
                "--store",
                str(tmp_path / "s3"),
                "-q",
                "--filter",
                "proto udp",
            ]
        )
        == 0
    )
    assert set(read_store(str(tmp_path / "s3")).column("protocol").to_pylist()) == {17}


@pytest.mark.tools
def test_a_garbage_file_is_one_line_and_leaves_the_store_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("nfdump")
    garbage = tmp_path / "nfcapd.202601010000"
    garbage.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(4000)))
    store = tmp_path / "store"
    status = main(["import", "nfdump", str(garbage), "--store", str(store)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "nfdump: " in err and "nothing imported" in err
    assert not store.exists() or store_files(str(store)) == []
    assert main(["import", "nfdump", str(tmp_path / "missing"), "--store", str(store)]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["import", "nfdump", str(tmp_path), "--store", str(tmp_path / "in")]) == 2
    assert "inside" in capsys.readouterr().err


def test_missing_nfdump_is_a_usage_error_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "import",
            "nfdump",
            str(tmp_path),
            "--store",
            str(tmp_path / "s"),
            "--nfdump",
            "no-such-nfdump-here",
        ]
    )
    assert status == 2
    assert "apt install nfdump" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- the parser, without nfdump


def record(i: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "FLOW",
        "sampled": 0,
        "export_sysid": 1,
        "first": f"2026-01-01T00:00:{i % 60:02d}.{i % 1000:03d}",
        "last": f"2026-01-01T00:01:{i % 60:02d}.500",
        "received": "2026-01-01T00:02:00.000",
        "in_packets": i + 1,
        "in_bytes": 100 * (i + 1),
        "proto": 6,
        "tcp_flags": "...AP.S.",
        "src_port": 1000 + i,
        "dst_port": 443,
        "fwd_status": 0,
        "src_tos": 184,
        "src4_addr": f"10.0.{i // 250}.{i % 250}",
        "dst4_addr": "192.0.2.1",
        "input_snmp": 3,
        "output_snmp": 4,
        "direction": 1,
        "dst_tos": 0,
        "ip4_router": "127.0.0.1",
        "label": "<none>",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def nfdump_text(records: list[dict[str, Any]]) -> bytes:
    """JSON as nfdump 1.7.1 prints it: an array, a field a line, tab-indented."""
    if not records:
        return b"[\nNo matching flows\n]\n"
    objects = [
        "{\n" + ",\n".join(f"\t{json.dumps(k)} : {json.dumps(v)}" for k, v in r.items()) + "\n}"
        for r in records
    ]
    return ("[\n" + ",\n".join(objects) + "]\n").encode()


def parse(text: bytes, cuts: list[int] | None = None) -> list[dict[str, Any]]:
    parser = NfdumpJsonParser("archive (nfdump -o json)")
    batches = []
    start = 0
    for cut in [*sorted(cuts or []), len(text)]:
        batches += parser.feed(text[start:cut])
        start = cut
    batches += parser.finish()
    rows = []
    for batch in batches:
        rows += batch_to_table(batch).to_pylist()
    return rows


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), cuts=st.lists(st.integers(0, 6000), max_size=8))
def test_records_do_not_depend_on_how_the_output_is_cut(n: int, cuts: list[int]) -> None:
    records = [record(i) for i in range(n)]
    text = nfdump_text(records)
    rows = parse(text, [c for c in cuts if c <= len(text)])
    assert rows == parse(text)
    assert len(rows) == n
    assert [r["packets"] for r in rows] == [i + 1 for i in range(n)]


def test_fields_map_to_the_store_columns() -> None:
    text = nfdump_text(
        [
            record(0),
            record(
                1,
                proto=1,
                tcp_flags=None,
                src_port=None,
                dst_port=None,
                icmp_type=8,
                icmp_code=0,
                dst_tos=46 << 2,
                src_vlan=12,
            ),
            record(
                2,
                src4_addr=None,
                dst4_addr=None,
                src6_addr="2001:db8::1",
                dst6_addr="2001:db8::2",
                ip4_router=None,
                ip6_router="2001:db8::99",
                observationDoaminID=7,
            ),
            record(3, type="EVENT"),
        ]
    )
    parser = NfdumpJsonParser("x")
    batches = parser.feed(text) + parser.finish()
    assert parser.result.records == 3 and parser.result.events == 1
    assert [(b.exporter, b.domain, b.n) for b in batches] == [
        ("127.0.0.1", 0, 2),
        ("2001:db8::99", 7, 1),
    ]
    tcp, icmp, v6 = [r for b in batches for r in batch_to_table(b).to_pylist()]
    assert tcp["tcp_flags"] == 0x10 | 0x08 | 0x02
    assert (tcp["ds_in"], tcp["dscp_in"], tcp["ecn_in"], tcp["prec_in"]) == (184, 46, 0, 5)
    assert tcp["ds_out"] is None and tcp["vlan"] is None  # 0 printed, unknown stored
    assert (tcp["in_if"], tcp["out_if"], tcp["direction"]) == (3, 4, 1)
    assert tcp["first_seen"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert tcp["last_seen"].isoformat() == "2026-01-01T00:01:00.500000+00:00"
    assert (icmp["sport"], icmp["dport"], icmp["tcp_flags"]) == (0, 8 << 8, None)
    assert (icmp["ds_out"], icmp["dscp_out"], icmp["vlan"]) == (184, 46, 12)
    assert (v6["saddr"], v6["daddr"], v6["ip_version"]) == ("2001:db8::1", "2001:db8::2", 6)
    assert tcp["sampling"] is None and tcp["source"] == "nfdump"
    assert parse(nfdump_text([])) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"src_port": 70000}, r"record 3: field src_port is out of range \(0\.\.65535\): 70000"),
        ({"src_port": "http"}, r"record 3: field src_port is not an integer: 'http'"),
        ({"in_packets": -1}, r"record 3: field in_packets is out of range"),
        ({"first": "yesterday"}, r"record 3: field first is not a time: 'yesterday'"),
        ({"first": "9999-01-01T00:00:00.000"}, r"record 3: field first is out of range"),
        ({"src4_addr": "10.0.0.300"}, r"record 3: field src_addr: not an IP address"),
        ({"src4_addr": None}, r"record 3: no source and destination address"),
        ({"tcp_flags": "??"}, r"record 3: field tcp_flags is not TCP flags: '\?\?'"),
        ({"in_bytes": None}, r"record 3: field in_bytes is missing"),
    ],
)
def test_a_bad_record_is_named(bad: dict[str, Any], message: str) -> None:
    records = [record(0), record(1), record(2, **bad), record(3)]
    with pytest.raises(InputDataError, match=message):
        parse(nfdump_text(records), [200])


def test_output_that_is_not_nfdump_json_is_refused() -> None:
    with pytest.raises(InputDataError, match="record 1: not nfdump JSON"):
        parse(b"Summary: total flows: 3\n")
    with pytest.raises(InputDataError, match="record 2: not JSON"):
        parse(nfdump_text([record(0)])[:-2] + b',\n{\n\t"type" : FLOW\n}]\n')
