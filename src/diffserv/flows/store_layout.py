"""Where things live in a flow store directory: partitions, file names, what a reader skips.

Kept apart from the writer and the reader (and free of numpy and pyarrow) because
``diffserv run`` asks :func:`is_store_path` while it checks its command line, before it
loads anything heavy. The decisions are in docs/flowstore.md.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Final

HOUR_NS: Final = 3_600_000_000_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

FILE_PREFIX: Final = "flows-"
FILE_SUFFIX: Final = ".parquet"
TEMP_SUFFIX: Final = ".tmp"


def is_store_path(path: str) -> bool:
    """Whether ``--flows PATH`` names a flow store: a path ending in "/" or a directory."""
    return path.endswith("/") or path.endswith(os.sep) or os.path.isdir(path)


def partition_of(hour: int) -> tuple[str, str]:
    """(``date=YYYY-MM-DD``, ``hour=H``) of an hour number (whole hours since the epoch, UTC).

    The hour is not zero-padded: DuckDB types a partition value "05" as text (a leading
    zero is not a number's spelling) but "5" as BIGINT, as Spark does.
    """
    days, hour_of_day = divmod(hour, 24)
    day = date.fromordinal(_EPOCH_ORDINAL + days)
    return f"date={day.isoformat()}", f"hour={hour_of_day}"


def entry_order(name: str) -> tuple[int, str]:
    """Sort key of directory entries: ``hour=2`` before ``hour=10``, others by name."""
    key, _, value = name.partition("=")
    if key == "hour" and value.isdigit():
        return int(value), name
    return -1, name


def file_name(start_utc: str, pid: int, seq: int) -> str:
    """The name of a finished file: ``flows-<UTC start>-<pid>-<seq>.parquet``."""
    return f"{FILE_PREFIX}{start_utc}-{pid}-{seq}{FILE_SUFFIX}"


def temp_name(final: str) -> str:
    """The hidden name a file is written under until it is complete (never ``*.parquet``)."""
    return f".{final}{TEMP_SUFFIX}"


def is_data_file(name: str) -> bool:
    """A finished store file, as a reader sees it: not hidden, not a temporary, Parquet.

    Names starting with "." or "_" are skipped as Hive and Spark skip them (temporaries,
    ``_SUCCESS`` markers), so tools writing beside the store cannot confuse the reader.
    """
    return name.endswith(FILE_SUFFIX) and not name.startswith((".", "_"))


def is_data_dir(name: str) -> bool:
    """A directory a reader descends into (hidden and ``_`` directories are skipped)."""
    return not name.startswith((".", "_"))
