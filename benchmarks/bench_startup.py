"""Start-up: `diffserv run` on the bundled example, warm and first after installing.

A user's first contact is a small capture, where the fixed cost of starting is the whole
run. We time, alternately in one run: the bundled example through `diffserv run` (the
demo's command) and `diffserv check`, against the floors no Python tool can go under
(`python -c pass`, `python -c "import numpy"`) and `tcprewrite` on the same capture.
Then a fresh virtual environment gets a plain `pip install .` of this checkout and we
time its very first `diffserv run` against the runs after it (nothing may be left to
compile at that point: target within 2x of warm).

    python benchmarks/bench_startup.py [--rounds N] [--no-first-run]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import Runs, alternate, comparison, diffserv_command, save_results, timed  # noqa: E402

POLICY = ROOT / "examples" / "policies" / "enterprise-edge.conf"
_NUMPY_ONE_THREAD = "import os; os.environ['OPENBLAS_NUM_THREADS'] = '1'; import numpy"
CAPTURE = ROOT / "examples" / "captures" / "edge.pcapng"


def _run_example(diffserv: list[str], out: Path) -> list[str]:
    return [*diffserv, "run", str(POLICY), str(CAPTURE), "-o", str(out), "--direction", "fwd-out"]


def _warm(rounds: int, work: Path) -> list[dict[str, object]]:
    diffserv = diffserv_command()
    python = sys.executable
    commands = [
        ("diffserv run (bundled example)", _run_example(diffserv, work / "out.pcapng")),
        ("diffserv check (bundled policy)", [*diffserv, "check", str(POLICY)]),
        ("python -c pass", [python, "-c", "pass"]),
        # as diffserv imports it: with one OpenBLAS thread (cli/main.py)
        ("python -c 'import numpy'", [python, "-c", _NUMPY_ONE_THREAD]),
    ]
    tcprewrite = shutil.which("tcprewrite")
    if tcprewrite:
        commands.append(
            (
                "tcprewrite --tos=184 (same capture)",
                [tcprewrite, "--tos=184", "--tclass=184", "-i", str(CAPTURE), "-o", "/dev/null"],
            )
        )
    # byte-compiled as an installed package is (a working tree may have changed sources)
    subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    timed(commands[0][1], quiet_stderr=True)  # the page cache holds every file from here on
    results = alternate(commands, rounds, quiet_stderr=True)
    for runs in results:
        print(runs.line())
    by_label = {runs.label: runs for runs in results}
    run, check = results[0], results[1]
    python_s = by_label["python -c pass"].wall_s
    numpy_s = by_label["python -c 'import numpy'"].wall_s
    tcprewrite_runs = by_label.get("tcprewrite --tos=184 (same capture)")
    anchor = f"floors: `python -c pass` {python_s * 1000:.0f} ms, `import numpy` "
    anchor += f"{numpy_s * 1000:.0f} ms"
    if tcprewrite_runs is not None:
        anchor += f"; `tcprewrite` {tcprewrite_runs.wall_s * 1000:.0f} ms"
    above = run.wall_s - numpy_s
    rows = [
        comparison(
            "`diffserv run` on the bundled 1 295-packet example, warm",
            run,
            None,
            "<= 150 ms, <= 80 MiB",
            floor_python_s=python_s,
            floor_numpy_s=numpy_s,
            anchor_text=anchor,
            ratio_text=f"{above * 1000:.0f} ms above the numpy floor",
        ),
        comparison(
            "`diffserv check` on the bundled policy",
            check,
            None,
            "no kernels, no numpy",
            anchor_text=f"floor: `python -c pass` {python_s * 1000:.0f} ms",
            ratio_text=f"{(check.wall_s - python_s) * 1000:.0f} ms above it",
        ),
    ]
    return rows


def _first_run(rounds: int, work: Path) -> dict[str, object]:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    print("pip install . into a fresh venv ...", flush=True)
    install = timed([*pip, "install", str(ROOT)])
    print(f"  installed in {install.wall_s:.1f} s")
    diffserv = [str(venv / "bin" / "diffserv")]
    example = _run_example
    first = Runs(
        "first run after pip install",
        (timed(example(diffserv, work / "o1"), quiet_stderr=True),),
    )
    warm = Runs(
        "the runs after it",
        tuple(timed(example(diffserv, work / "o2"), quiet_stderr=True) for _ in range(rounds)),
    )
    print(first.line())
    print(warm.line())
    ratio = first.wall_s / warm.wall_s
    print(f"  first / warm: {ratio:.2f}x (target <= 2x)")
    row = comparison(
        "first `diffserv run` after `pip install .` into a fresh venv",
        first,
        None,
        "<= 2× warm",
        anchor_text=f"the runs after it: {warm.wall_s * 1000:.0f} ms",
        ratio_text=f"first / warm **{ratio:.2f}×**",
    )
    row.update(warm_s=warm.wall_s, first_over_warm=ratio, install_s=install.wall_s)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no-first-run", action="store_true", help="skip the fresh install")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        rows = _warm(args.rounds, work)
        if not args.no_first_run:
            rows.append(_first_run(5, work))
    save_results("bench_startup", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
