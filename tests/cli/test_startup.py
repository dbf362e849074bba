"""Start-up: each command loads only what it uses (the policy tools never load the kernels)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import diffserv
from diffserv.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
# the fresh interpreter imports the diffserv under test, not one a relative PYTHONPATH
# would find from its working directory (or the one installed in the environment)
SOURCE_ROOT = str(Path(diffserv.__file__).resolve().parents[1])
POLICY = str(ROOT / "examples" / "policies" / "enterprise-edge.conf")
CAPTURE = str(ROOT / "examples" / "captures" / "edge.pcapng")

# Runs one command in a fresh interpreter and prints which of the watched modules it loaded:
# the heavy ones, and dataclasses (value classes are msgspec Structs, created in C; each
# @dataclass costs about a millisecond of start-up to create)
PROBE = """
import json, sys
from diffserv.cli.main import main
status = main(sys.argv[1:])
watched = ("dataclasses", "diffserv._kernels", "numpy", "numba", "pyarrow", "rich")
loaded = sorted(m for m in watched if m in sys.modules)
print(json.dumps({"status": status, "loaded": loaded}), file=sys.stderr)
"""


def _loaded(*argv: str, tmp_path: Path) -> list[str]:
    path = os.pathsep.join(filter(None, (SOURCE_ROOT, os.environ.get("PYTHONPATH"))))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["status"] == 0, result.stderr
    loaded: list[str] = report["loaded"]
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        ("check", POLICY),
        ("fmt", POLICY),
        ("explain", POLICY),
        ("dscp", "--tos", "0x48", "EF"),
        ("dscp", "--table"),
    ],
    ids=["check", "fmt", "explain", "dscp", "dscp-table"],
)
def test_the_policy_and_codepoint_tools_load_neither_kernels_nor_numpy(
    argv: tuple[str, ...], tmp_path: Path
) -> None:
    assert _loaded(*argv, tmp_path=tmp_path) == []


def test_run_loads_the_compiled_kernels_and_no_jit_compiler(tmp_path: Path) -> None:
    argv = ("run", POLICY, CAPTURE, "-o", str(tmp_path / "out.pcapng"), "--direction", "fwd-out")
    loaded = _loaded(*argv, tmp_path=tmp_path)
    assert "diffserv._kernels" in loaded and "numpy" in loaded
    assert "numba" not in loaded and "pyarrow" not in loaded


def test_run_creates_no_dataclass(tmp_path: Path) -> None:
    argv = ("run", POLICY, CAPTURE, "-o", str(tmp_path / "out.pcapng"), "--direction", "fwd-out")
    assert "dataclasses" not in _loaded(*argv, tmp_path=tmp_path)


def test_the_command_table_names_what_each_module_registers() -> None:
    registered: dict[str, str] = {}
    for module_name in cli_main.SUBCOMMAND_MODULES:
        subparsers = argparse.ArgumentParser().add_subparsers()
        import_module(module_name).register(subparsers)
        registered.update(dict.fromkeys(subparsers.choices, module_name))
    assert registered == cli_main.COMMAND_MODULES


def test_a_command_line_without_a_known_command_still_gets_the_whole_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "'run'" in err and "'check'" in err
