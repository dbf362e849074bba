"""The ways the audit reads and splits flow records give one answer.

A store without filters is scanned straight from its Parquet files, and judged by
several processes when it is large; with filters it is selected by the report engine's
SQL. Each of these is checked against the others on the same records: the same
verdicts, tallies, lists and meta, whatever the split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from diffserv.audit import sources as audit_sources
from diffserv.cli.main import main
from support.report_data import T0, Rec, S, write_store

POLICY = """\
fmt_version 1.0

action {
\tmodule ipgpc
\tname ipgpc.classify
\tparams {
\t\tglobal_stats TRUE
\t}
\tclass {
\t\tname voice
\t\tnext_action mark_ef
\t}
\tclass {
\t\tname web
\t\tnext_action mark_af21
\t}
\tfilter {
\t\tname rtp
\t\tclass voice
\t\tprotocol udp
\t\tdport 5004
\t}
\tfilter {
\t\tname https
\t\tclass web
\t\tsaddr 10.1.1.0/24
\t\tdport 443
\t}
}

action {
\tmodule dscpmk
\tname mark_ef
\tparams {
\t\tdscp_map {0-63:46}
\t\tnext_action continue
\t}
}

action {
\tmodule dscpmk
\tname mark_af21
\tparams {
\t\tdscp_map {0-63:18}
\t\tnext_action continue
\t}
}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A policy and a store of records over many hours (many files), marks of every kind."""
    tmp = tmp_path_factory.mktemp("paths")
    policy = tmp / "policy.conf"
    policy.write_text(POLICY)
    recs = [
        Rec(first_ns=T0 + i * 131 * S, saddr=f"10.1.{i % 3}.{i % 7 + 1}", daddr="10.9.0.1",
            protocol=17 if i % 5 else 6, sport=30000 + i % 11, dport=[5004, 443, 80][i % 3],
            ds=[0, 184, 72, 136, 185][i % 5], bytes=1000 + i * 7, packets=1 + i % 4)
        for i in range(700)
    ]  # fmt: skip
    return policy, write_store(tmp / "store", recs)


def _audit(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    status = main(["audit", *argv, "--json", "--top", "7"])
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    found: dict[str, Any] = json.loads(out)
    return found


def test_several_processes_judge_as_one(
    store: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    policy, root = store
    runs = []
    for workers, threshold in ((1, 10**12), (2, 1), (4, 1)):
        monkeypatch.setattr(audit_sources, "_WORKERS", workers)
        monkeypatch.setattr(audit_sources, "_PARALLEL_ROWS", threshold)
        runs.append(_audit(capsys, str(policy), str(root)))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["meta"]["records_judged"] == 700
    assert runs[0]["verdicts"]["mismarked"]["flows"] > 0
    assert len(runs[0]["mismarked"]) == 7


@pytest.mark.parametrize(
    "window",
    [
        (),
        ("--from", "2026-01-01T03:38:20Z"),  # record 100's first packet, exactly
        ("--from", "2026-01-01T03:38:20Z", "--to", "2026-01-01T21:50:00Z"),  # 100 to 599
    ],
)  # fmt: skip
def test_the_scanned_store_is_what_the_sql_selects(
    store: tuple[Path, Path], window: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, root = store
    scanned = _audit(capsys, str(policy), str(root), *window)
    # every record is IPv4: this filter selects them all, through the report engine's SQL
    selected = _audit(capsys, str(policy), str(root), *window, "--filter", "ipv=4")
    for answer in (scanned, selected):
        answer["meta"].pop("filters")
    assert scanned == selected
    if window:
        assert scanned["meta"]["records_judged"] == (600 if len(window) == 2 else 500)


def test_a_damaged_store_file_is_named_with_its_row(
    store: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, root = store
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    victim = sorted(copy.rglob("*.parquet"))[3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\xff" * 64  # inside the column data
    victim.write_bytes(bytes(data))
    status = main(["audit", str(policy), str(copy), "--json"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and str(victim) in err and "Traceback" not in err
