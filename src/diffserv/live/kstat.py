"""The statistics document as kstat rows: ``module:action:name:statistic value``.

illumos names each IPQoS counter by kstat module (the IPP module), instance, name (the stat
set: ``tokenmt statistics``, an ipgpc class, ``dscpmk_dscp0x2e`` …) and statistic. `diffserv
stat` prints the same four-part names (with the action name as the instance, which is what
a user knows the action by) and selects rows with kstat(1M)'s ``module:instance:name``
patterns; the Prometheus endpoint derives its metric names from the same rows. Both work
on the ``diffserv run --stats`` document, so a daemon and a capture run are read alike.
The session's own totals appear under module ``diffserv``, instance ``session``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any, Final, NamedTuple

from diffserv.errors import UsageError

# the stat-set name of each module's counters, as the illumos modules create them
SET_NAMES: Final[Mapping[str, str]] = {
    "ipgpc": "ipgpc_global_stats",
    "tokenmt": "tokenmt statistics",
    "tswtclmt": "tswtclmtr statistics",
    "dscpmk": "dscpmk_stats",
    "dlcosmk": "dlcosmk statistics",
    "flowacct": "Flowacct statistics",
}
SESSION_MODULE: Final = "diffserv"
SESSION_INSTANCE: Final = "session"


class Row(NamedTuple):
    """One counter under its kstat name."""

    module: str
    action: str
    name: str
    statistic: str
    value: int

    def __str__(self) -> str:
        return f"{self.module}:{self.action}:{self.name}:{self.statistic}\t{self.value}"


def _session_rows(doc: Mapping[str, Any]) -> Iterator[Row]:
    totals = {
        "packets": doc["packets"],
        "bytes": doc["bytes"],
        "written": doc["written"],
        "dropped": doc["dropped"],
        "deferred": doc["deferred"],
        "not_ip_packets": doc["not_ip"]["packets"],
        "not_ip_bytes": doc["not_ip"]["bytes"],
        "malformed": doc["malformed"]["count"],
        "truncated": doc["truncated"],
        "header_cut": doc["header_cut"],
        "length_from_frame": doc["length_from_frame"],
    }
    for statistic, value in totals.items():
        yield Row(SESSION_MODULE, SESSION_INSTANCE, "totals", statistic, int(value))


def rows(doc: Mapping[str, Any]) -> Iterator[Row]:
    """Every counter of a statistics document, session totals first, then by action."""
    yield from _session_rows(doc)
    for action, entry in doc["actions"].items():
        module = entry["module"]
        set_name = SET_NAMES.get(module, f"{module} statistics")
        for statistic, value in entry["counters"].items():
            yield Row(module, action, set_name, statistic, int(value))
        for group in ("classes", "detailed"):
            for name, counters in (entry.get(group) or {}).items():
                for statistic, value in counters.items():
                    yield Row(module, action, name, statistic, int(value))


class Selector(NamedTuple):
    """kstat(1M)'s ``module:instance:name:statistic``; each part a shell pattern, "" = any."""

    module: str = ""
    action: str = ""
    name: str = ""
    statistic: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Selector:
        """``MODULE[:ACTION[:NAME[:STATISTIC]]]``; UsageError for more than four parts.

        An action name holds dots but never a colon, so splitting at colons is exact.
        """
        if not text:
            return cls()
        parts = text.split(":")
        if len(parts) > 4:
            raise UsageError(f"selector {text!r}: expected MODULE[:ACTION[:NAME[:STATISTIC]]]")
        return cls(*parts)

    def matches(self, row: Row) -> bool:
        return all(
            not pattern or fnmatchcase(value, pattern)
            for pattern, value in zip(self, row[:4], strict=True)
        )

    def select(self, doc: Mapping[str, Any]) -> list[Row]:
        return [row for row in rows(doc) if self.matches(row)]

    def filter_document(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The document with only the actions (and their sets) the selector names.

        Without a selector it is the document unchanged; the session totals stay whatever
        is selected (they describe the whole run).
        """
        out = dict(doc)
        if self == Selector():
            return out
        kept = {(row.action, row.name) for row in self.select(doc)}
        actions: dict[str, Any] = {}
        for action, entry in doc["actions"].items():
            set_name = SET_NAMES.get(entry["module"], f"{entry['module']} statistics")
            names = {name for a, name in kept if a == action}
            if not names:
                continue
            filtered = dict(entry)
            if set_name not in names:
                filtered["counters"] = {}
            for group in ("classes", "detailed"):
                if entry.get(group) is not None:
                    filtered[group] = {k: v for k, v in entry[group].items() if k in names}
            actions[action] = filtered
        out["actions"] = actions
        classes = {
            name: value
            for name, value in doc["classes"].items()
            if any(name in (entry.get("classes") or {}) for entry in actions.values())
        }
        out["classes"] = classes
        return out
