"""The C kernels' view of the column table and shared constants is generated, and current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from diffserv.columns import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "src" / "kernels" / "gen_layout.py"


def test_the_committed_layout_header_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, "src/kernels/layout.h is stale: run src/kernels/gen_layout.py"


def test_the_header_declares_every_column_and_flag() -> None:
    text = (GENERATOR.parent / "layout.h").read_text(encoding="utf-8")
    for column in COLUMNS:
        assert f"*{column.name};" in text
    assert "#define FLAG_MALFORMED 0x01" in text
    assert "#define LINKTYPE_ETHERNET 1" in text
    assert "#define DIR_FWD_OUT 8" in text
