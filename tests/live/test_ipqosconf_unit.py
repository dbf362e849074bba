"""The shipped systemd unit: systemd itself accepts it, and it runs ipqosconf on the boot file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from diffserv.live.apply import INIT_FILE
from support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "diffserv-ipqosconf.service"


def test_the_unit_applies_and_flushes_the_boot_file() -> None:
    text = UNIT.read_text()
    assert f"ExecStart=/usr/bin/ipqosconf -a {INIT_FILE}\n" in text
    assert "ExecStop=/usr/bin/ipqosconf -f\n" in text
    assert f"ConditionPathExists={INIT_FILE}\n" in text


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    # verify insists the commands exist: point them at a real ipqosconf of this tree
    wrapper = tmp_path / "ipqosconf"
    wrapper.write_text(
        f"#!/bin/sh\nPYTHONPATH={ROOT / 'src'} exec {sys.executable} "
        '-m diffserv.cli.ipqosconf_cmd "$@"\n'
    )
    wrapper.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/ipqosconf", str(wrapper)))
    done = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [
        line
        for line in done.stderr.splitlines()
        # a container without a booted systemd has no manager to ask about other units
        if UNIT.name in line or "diffserv" in line
    ]
    assert (done.returncode, complaints) == (0, []), done.stderr
    usage = subprocess.run([str(wrapper), "-x"], capture_output=True, text=True, check=False)
    assert usage.returncode == 1 and usage.stderr.startswith("usage:")
