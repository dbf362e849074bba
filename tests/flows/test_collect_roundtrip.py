"""diffserv's own export, collected back: `run --export file://` then `collect --from-pcap`.

The records that come back through IPFIX must be the records `run --flows DIR/` writes
into the store directly: the same flows, packets, bytes, DS byte, flowacct action,
ipgpc class, direction and times (to the millisecond the export carries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from diffserv.cli.main import main
from diffserv.flows.store import read_store

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policies" / "enterprise-edge.conf"
CAPTURE = ROOT / "examples" / "captures" / "edge.pcapng"
COLUMNS = (
    "saddr",
    "daddr",
    "sport",
    "dport",
    "protocol",
    "packets",
    "bytes",
    "ds_in",
    "dscp_in",
    "ecn_in",
    "prec_in",
    "action",
    "class",
    "direction",
)


def records(store: Path) -> list[tuple[Any, ...]]:
    table = read_store(str(store))
    first = table["first_seen"].cast(pa.int64()).to_pylist()
    last = table["last_seen"].cast(pa.int64()).to_pylist()
    rows = table.select(list(COLUMNS)).to_pylist()
    return sorted(
        (*(row[c] for c in COLUMNS), f // 1_000_000, t // 1_000_000)
        for row, f, t in zip(rows, first, last, strict=True)
    )


def test_exported_records_collect_back_as_the_run_stores_them(tmp_path: Path) -> None:
    export, direct, collected = tmp_path / "export.pcap", tmp_path / "direct", tmp_path / "back"
    run = ["run", str(POLICY), str(CAPTURE), "-o", str(tmp_path / "out.pcapng"), "-q"]
    run += ["--direction", "fwd-out", "--export", f"file://{export}", "--flows", f"{direct}/"]
    assert main(run) == 0
    assert main(["collect", "--from-pcap", str(export), "--store", str(collected), "-q"]) == 0
    ours = records(direct)
    assert ours, "the run accounted no flows"
    assert records(collected) == ours
    sources = set(read_store(str(collected))["source"].to_pylist())
    assert sources == {"ipfix"}
