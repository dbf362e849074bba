"""Render the README's speed table from benchmarks/results/*.json (what the scripts saved).

python benchmarks/speed_table.py            # print the table
python benchmarks/speed_table.py --update   # write it into README.md between its markers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
RESULTS = HERE / "results"
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"
# the order of the table: start-up first, as a new user meets it
ORDER = (
    "bench_startup",
    "bench_run",
    "bench_flowacct",
    "bench_ipgpc",
    "bench_meter",
    "bench_collect",
    "bench_report",
    "bench_audit",
    "bench_live",
    "bench_nft",
)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ours(row: dict[str, Any]) -> str:
    if "ours_text" in row:
        return str(row["ours_text"])
    ours = row["ours"]
    text = f"{_seconds(ours['wall_s'])} wall, {_seconds(ours['cpu_s'])} CPU"
    return f"{text}, peak RSS {ours['peak_rss_mib']:.0f} MiB"


def _anchor(row: dict[str, Any]) -> str:
    if "anchor_text" in row:
        return str(row["anchor_text"])
    anchor = row.get("anchor")
    if not anchor:
        return "—"
    return f"`{anchor['label']}` {_seconds(anchor['wall_s'])} wall, {_seconds(anchor['cpu_s'])} CPU"


def _ratio(row: dict[str, Any]) -> str:
    if "ratio_text" in row:
        return str(row["ratio_text"])
    if "ratio_wall" not in row:
        return "—"
    return f"**{row['ratio_wall']:.2f}×** wall, {row['ratio_cpu']:.2f}× CPU"


def render() -> str:
    documents = []
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if path.exists():
            documents.append(json.loads(path.read_text(encoding="utf-8")))
    dates = sorted({d["date"] for d in documents})
    lines = [
        f"Measured by `make bench` ({', '.join(dates)}; {documents[0]['cpus']} CPUs; medians of "
        "runs alternating with the anchor in the same run; ratio = anchor time / ours):",
        "",
        "| benchmark | diffserv | anchor | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for document in documents:
        for row in document["rows"]:
            lines.append(
                f"| `{document['benchmark']}.py`: {row['what']} | {_ours(row)} | {_anchor(row)} "
                f"| {_ratio(row)} | {row['target']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite README.md's table")
    args = parser.parse_args(argv)
    table = render()
    if not args.update:
        print(table)
        return 0
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
