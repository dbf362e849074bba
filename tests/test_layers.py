"""The package's layers hold: the import-linter contracts of pyproject.toml are kept.

``[tool.importlinter]`` in pyproject.toml orders the top-level modules (cli on top, the
shared tables at the bottom, independent siblings side by side) and forbids import cycles
between the modules of any package. The second test runs the same contracts against a
stand-in package that breaks them, so a check that could never fail would be noticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts, in a child process (no cache)."""
    env = dict(os.environ)
    if pythonpath is not None:  # a stand-in `diffserv` found before the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_contracts_are_kept() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, f"layer contracts broken:\n{done.stdout}{done.stderr}"
    assert "BROKEN" not in done.stdout and " KEPT" in done.stdout


def _layer_modules() -> list[str]:
    """Every top-level module the layers contract names (so the stand-in has them all)."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    return [name.strip("() ") for layer in layers for name in layer.split("|")]


def test_a_forbidden_import_and_a_cycle_break_the_contracts(tmp_path: Path) -> None:
    package = tmp_path / "diffserv"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in _layer_modules():
        (package / name).mkdir()
        (package / name / "__init__.py").write_text("")
    (package / "engine" / "graph.py").write_text("")
    # the pure language reaching up into the engine, inside a function (still an import)
    (package / "policy" / "model.py").write_text(
        "def compile_it():\n    from diffserv.engine import graph\n    return graph\n"
    )
    # two sibling modules importing each other
    (package / "packet" / "decode.py").write_text("from diffserv.packet import rewrite\n")
    (package / "packet" / "rewrite.py").write_text(
        "def decoder():\n    from diffserv.packet import decode\n    return decode\n"
    )
    done = _lint_imports(tmp_path, pythonpath=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "diffserv.policy.model -> diffserv.engine.graph" in out, out
    assert "Contracts: 0 kept, 2 broken." in out, out
