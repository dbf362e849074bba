"""`make fuzz`: every fuzz target under atheris (coverage-guided libFuzzer), a million cases each.

    python tests/fuzz/run_fuzz.py [--runs N] [--only NAME,...] [--update-readme]

Each target runs in its own process (libFuzzer ends the process when it is done),
starting from the target's seed corpus, with a per-input time limit and a resident
memory limit, so an input that takes minutes or gigabytes is a finding like an
exception is. Findings are saved under tests/fuzz/findings/ (git-ignored) for
reproduction: ``python tests/fuzz/run_fuzz.py --replay FILE --only NAME``.
The last figures (cases, cases/s, peak RSS, findings) are printed as a table and,
with ``--update-readme``, written into the README between its fuzz markers.
The Python code is instrumented for coverage; the compiled kernels (C) run as built, so
their inputs are explored through the Python around them and by mutation (the fast
slice also runs them under AddressSanitizer: tests/fuzz/test_sanitized_kernels.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # tests/: `support` (the seeds' frame builders)
FINDINGS = HERE / "findings"
RESULTS = HERE / "findings" / "last-run.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- fuzz-results:begin -->", "<!-- fuzz-results:end -->"
DEFAULT_RUNS = 1_000_000
TIME_LIMIT_S = 10  # one input taking longer than this is a finding
RSS_LIMIT_MB = 2048  # so is a process growing past this


@dataclass(slots=True)
class Outcome:
    """What one target's run gave."""

    target: str
    cases: int
    per_second: int
    peak_rss_mb: int
    seconds: float
    findings: int
    note: str


def _child(name: str, runs: int, corpus: str) -> None:
    """Inside the fuzzing process: instrument, then hand over to libFuzzer (never returns)."""
    import atheris

    sys.path.insert(0, str(HERE))
    # coverage of branches only: tracing every comparison's operands (atheris' default)
    # costs more than it finds on parsers this branchy, and halves the cases per second
    hooks = atheris.import_hook.HookManager(
        {"diffserv"}, set(), enable_loader_override=True, trace_dataflow=False
    )
    with hooks:
        from all_targets import all_targets

        target = all_targets()[name]  # imports every parser the targets reach
    from harness import check_one

    def one_input(data: bytes) -> None:
        check_one(target, data)

    FINDINGS.mkdir(exist_ok=True)
    atheris.Setup(
        [
            sys.argv[0],
            f"-runs={runs}",
            f"-max_len={target.max_len}",
            f"-timeout={TIME_LIMIT_S}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            "-print_final_stats=1",
            f"-artifact_prefix={FINDINGS}/{name}-",
            corpus,
        ],
        one_input,
    )
    atheris.Fuzz()


def _stat(text: str, key: str) -> int:
    found = re.findall(rf"stat::{key}:\s+(\d+)", text)
    return int(found[-1]) if found else 0


def _run_target(name: str, runs: int) -> Outcome:
    sys.path.insert(0, str(HERE))
    from all_targets import all_targets
    from harness import SCRATCH_DIR

    target = all_targets()[name]
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as corpus:
        for index, seed in enumerate(target.seeds()):
            Path(corpus, f"seed-{index:04d}").write_bytes(seed[: target.max_len])
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--runs", str(runs), "--corpus", corpus],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        seconds = time.monotonic() - start
        for left in Path(SCRATCH_DIR or tempfile.gettempdir()).glob("diffserv-fuzz-*"):
            left.unlink(missing_ok=True)  # the child ends without its atexit cleanup
    log = proc.stdout + proc.stderr
    (FINDINGS / f"{name}.log").write_text(log[-200_000:])
    cases = _stat(log, "number_of_executed_units")
    found = proc.returncode != 0
    note = "none"
    if found:
        artifact = re.findall(r"Test unit written to (\S+)", log)
        reason = re.findall(r"(Uncaught Python exception:.*|ERROR: libFuzzer: [^\n]*)", log)
        note = (reason[0] if reason else f"exit {proc.returncode}") + (
            f" — {artifact[-1]}" if artifact else ""
        )
    outcome = Outcome(
        target=name,
        cases=cases,
        per_second=_stat(log, "average_exec_per_sec"),
        peak_rss_mb=_stat(log, "peak_rss_mb"),
        seconds=round(seconds, 1),
        findings=int(found),
        note=note,
    )
    (FINDINGS / f"{name}.json").write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    return outcome


def _saved_outcomes() -> list[Outcome]:
    """The last outcome saved for each target, in the targets' order."""
    sys.path.insert(0, str(HERE))
    from all_targets import all_targets

    found = []
    for name in all_targets():
        path = FINDINGS / f"{name}.json"
        if path.exists():
            found.append(Outcome(**json.loads(path.read_text())))
    return found


def _table(outcomes: list[Outcome], when: str) -> str:
    lines = [
        f"Last `make fuzz` ({when}; atheris/libFuzzer, {TIME_LIMIT_S} s per input and "
        f"{RSS_LIMIT_MB} MB limits):",
        "",
        "| target | cases | cases/s | peak RSS | time | findings |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.target} | {o.cases:,} | {o.per_second:,} | {o.peak_rss_mb} MB | "
            f"{o.seconds:,.0f} s | {o.note} |"
        )
    return "\n".join(lines)


def _update_readme(table: str) -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def _replay(name: str, path: str) -> int:
    sys.path.insert(0, str(HERE))
    from all_targets import all_targets
    from harness import check_one

    check_one(all_targets()[name], Path(path).read_bytes())
    print(f"{path}: no finding")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--jobs", type=int, default=2, help="targets fuzzed at once")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="only rebuild the table from the saved outcomes"
    )
    parser.add_argument("--replay", metavar="FILE")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.runs, args.corpus)
        return 0
    sys.path.insert(0, str(HERE))
    from all_targets import all_targets

    names = sorted(all_targets())
    if args.only:
        names = [n for n in args.only.split(",") if n]
    if args.replay:
        return _replay(names[0], args.replay)
    if args.report:
        table = _table(_saved_outcomes(), time.strftime("%Y-%m-%d"))
        print(table)
        if args.update_readme:
            _update_readme(table)
        return 0
    FINDINGS.mkdir(exist_ok=True)
    print(
        f"fuzzing {', '.join(names)}: {args.runs:,} cases each, {args.jobs} at a time", flush=True
    )
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(_run_target, name, args.runs): name for name in names}
        for future in as_completed(futures):
            o = future.result()
            print(
                f"  {o.target}: {o.cases:,} cases, {o.per_second:,}/s, peak RSS "
                f"{o.peak_rss_mb} MB, {o.seconds:.0f} s, findings: {o.note}",
                flush=True,
            )
    outcomes = [future.result() for future in futures]
    when = time.strftime("%Y-%m-%d")
    table = _table(_saved_outcomes() if args.update_readme else outcomes, when)
    print("\n" + table)
    RESULTS.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    if args.update_readme:
        _update_readme(table)
    return 1 if any(o.findings for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
