"""The flow store: one directory of hive-partitioned Parquet files every flow source writes
and every report reads (layout, atomicity and schema in docs/flowstore.md).

This module is the public face; the work is in ``store_write`` (StoreWriter),
``store_read`` (reading back, schema-checked) and ``store_arrow`` (the column mapping).
"""

from __future__ import annotations

from diffserv.flows.store_arrow import STORE_COLUMNS, arrow_schema
from diffserv.flows.store_layout import is_store_path
from diffserv.flows.store_read import iter_store_batches, open_store_file, read_store, store_files
from diffserv.flows.store_write import StoreWriter

__all__ = [
    "STORE_COLUMNS",
    "StoreWriter",
    "arrow_schema",
    "is_store_path",
    "iter_store_batches",
    "open_store_file",
    "read_store",
    "store_files",
]
