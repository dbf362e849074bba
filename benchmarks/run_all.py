"""Run every ratio benchmark in this folder, one after the other.

Each script generates what it needs under benchmarks/data/ (git-ignored),
runs diffserv and its anchor tool on the same input in the same run, and
prints the ratio. Not part of `make test`: run with `make bench`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    status = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n##### {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], check=False)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
