"""Fuzz target for `diffserv dscp` input: values typed or piped in, in every reading mode.

The input's first byte picks the options (--tos, --hex, --ecn, --json/--brief); the rest
is fed as standard input, through the same line reader and printer the command uses.
A value the command rejects is a ValueError there, shown as ``<stdin>:N: message``;
here it counts as the project's own error.
"""

from __future__ import annotations

import contextlib
import io
import json

from harness import FuzzTarget

from diffserv.cli import dscp_cmd
from diffserv.errors import UsageError

SEEDS = [
    b"\x00EF\nAF41\ncs6\n46\n0x2e\n",
    b"\x01184\n0xb8\nlowdelay\nthroughput\n0xff\n",
    b"\x03b8\n28\nff\n",
    b"\x04af21 extra\n# comment\n\n 10 \n",
    b"\x05" + "ＥＦ\n\u00e9\n".encode(),
    b"\x06" + b"9" * 5000 + b"\n-1\n64\n256\n0x\n\xff\xfe\n",
    b"\x07va\nlephb\ndefault\nbe\nnqb\nle\n",
]


def run_dscp(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    reader = dscp_cmd._Reader(tos=bool(mode & 1), hex_digits=bool(mode & 2), ecn=(mode >> 4) & 3)
    out = io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", errors="replace")
    with contextlib.redirect_stderr(io.StringIO()):
        dscp_cmd._explain_all(
            [dscp_cmd.STDIN],
            reader,
            as_json=bool(mode & 4),
            brief=bool(mode & 8),
            stdin=stdin,
            out=out,
        )
    if mode & 4:
        json.loads(out.getvalue())  # the --json output is always one valid document
    # a single value on the command line: rejected values are usage errors
    text = body[:64].decode("utf-8", "replace").strip()
    if text:
        try:
            reader.read(text)
        except ValueError as exc:
            raise UsageError(f"dscp: {exc}") from None


TARGETS = [FuzzTarget("dscp", run_dscp, lambda: list(SEEDS), max_len=48)]
