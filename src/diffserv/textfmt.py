"""Plain-text presentation shared by the terminal reports (run summary, flow summaries)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def human_bytes(n: int) -> str:
    """Bytes with a decimal unit, as network people count them: 320 B, 1.5 MB."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def text_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    right: set[int],
    indent: str = "",
) -> list[str]:
    """Aligned columns, two spaces apart; column numbers in ``right`` are right-aligned."""
    body = [list(row) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(row) for row in body)]
