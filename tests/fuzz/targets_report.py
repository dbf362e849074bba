"""Fuzz target for the report's selection parsers: --filter, --from/--to, --interval, groups.

The input's first byte picks what the rest feeds; every parser must either answer or
raise the project's own one-line error (UsageError, InputDataError), nothing else.
"""

from __future__ import annotations

from harness import FuzzTarget

from diffserv.report.filters import build_selection
from diffserv.report.groups import default_groups, parse_groups
from diffserv.report.queries import parse_interval

SEEDS = [
    b"\x00dscp=EF\naddr=10.0.0.0/8\nsrc=2001:db8::/32\nport=443\n",
    b"\x00dscp=AF11-AF13\ntos=184-185\necn=unknown\ngroup=Telephony\n",
    b"\x00=\nnokey=1\ndscp\nsport=9-1\n",
    b"\x012026-01-01T00:00Z\n-2h\n",
    b"\x011767225600.5\nnow\n",
    b"\x025m\nauto\n0\n99999999999999999d\n",
    b"\x03Voice = EF, CS5\nData = AF11-AF13, 34\n# c\n",
    b"\x03A = EF\nB = 46\nOther = 1\n= x\n",
]


def run_report_parsers(data: bytes) -> None:
    if not data:
        return
    mode, text = data[0] % 4, data[1:].decode("utf-8", "replace")
    lines = text.splitlines()
    if mode == 0:
        build_selection(lines, default_groups(), now_ns=1_767_225_600_000_000_000)
    elif mode == 1:
        times: list[str | None] = [*lines, None, None]
        start, end = times[0], times[1]
        build_selection([], default_groups(), start=start, end=end, now_ns=0)
    elif mode == 2:
        for line in lines[:4]:
            parse_interval(line)
    else:
        groups = parse_groups(text, "<fuzz>")
        assert sorted(d for i in range(len(groups.names)) for d in groups.members(i)) == list(
            range(64)
        )


TARGETS = [FuzzTarget("report-parsers", run_report_parsers, lambda: list(SEEDS), max_len=200)]
