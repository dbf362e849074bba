"""Start-up: each command loads only what it uses (the policy tools never load the kernels)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

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
# It also counts the garbage collector's passes during the command.
PROBE = """
import gc, json, sys
from diffserv.cli.main import main
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
status = main(sys.argv[1:])
watched = ("dataclasses", "diffserv._kernels", "numpy", "numba", "pyarrow", "rich")
loaded = sorted(m for m in watched if m in sys.modules)
report = {"status": status, "loaded": loaded, "passes": len(passes), "on": gc.isenabled()}
print(json.dumps(report), file=sys.stderr)
"""


def _probe(*argv: str, tmp_path: Path) -> dict[str, Any]:
    path = os.pathsep.join(filter(None, (SOURCE_ROOT, os.environ.get("PYTHONPATH"))))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
    )
    report: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["status"] == 0, result.stderr
    return report


def _loaded(*argv: str, tmp_path: Path) -> list[str]:
    loaded: list[str] = _probe(*argv, tmp_path=tmp_path)["loaded"]
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


def test_the_collector_stays_out_of_the_start_up(tmp_path: Path) -> None:
    """Starting makes only objects that live as long as the process: the collector is off
    until the batch loop (it made 61 passes over them on this run, 8 % of its time)."""
    argv = ("run", POLICY, CAPTURE, "-o", str(tmp_path / "out.pcapng"), "--direction", "fwd-out")
    report = _probe(*argv, tmp_path=tmp_path)
    assert report["passes"] <= 5  # the batch loop's own, over 1 295 packets
    assert report["on"]  # as it was before main()


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_main_leaves_the_collector_as_it_found_it(
    enabled: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.pcapng"
    try:
        for argv in (
            ["check", POLICY],
            ["run", POLICY, CAPTURE, "-o", str(out), "--direction", "fwd-out", "-q"],
            ["run", POLICY, str(tmp_path / "missing.pcap"), "-o", str(out)],  # fails early
        ):
            if enabled:
                gc.enable()
            else:
                gc.disable()
            cli_main.main(argv)
            assert gc.isenabled() == enabled, argv
    finally:
        gc.enable()
    capsys.readouterr()


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
