"""Compiler-style diagnostics for policy files: collection, formatting, JSON, and the error type.

Every problem is reported as ``FILE:LINE:COL: severity: message`` followed by the source line
and a caret, so an IPQoS administrator sees the ipqosconf meaning at the ipqosconf line number.
Problems that belong to the whole file (no ipgpc action) carry line 0 and print as ``FILE:``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from diffserv.errors import PolicyFileError
from diffserv.policy.model import Diagnostic, Location, Policy

ERROR = "error"
WARNING = "warning"


def split_lines(text: str) -> list[str]:
    """Physical lines as ipqosconf reads them: split on newline only, a final newline ends."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def format_diagnostic(diagnostic: Diagnostic) -> str:
    """Render one diagnostic: header line, source line with a caret, optional hint."""
    loc = diagnostic.location
    if loc is None:
        head = f"{diagnostic.severity}: {diagnostic.message}"
    elif loc.line <= 0:
        head = f"{loc.filename}: {diagnostic.severity}: {diagnostic.message}"
    else:
        head = f"{loc}: {diagnostic.severity}: {diagnostic.message}"
    lines = [head]
    if diagnostic.source_line is not None and loc is not None and loc.line > 0:
        source = diagnostic.source_line.rstrip("\r\n")
        lines.append(f"    {source}")
        prefix = source[: max(loc.column - 1, 0)]
        # Keep tabs so the caret lines up under the token whatever the tab width.
        pad = "".join("\t" if ch == "\t" else " " for ch in prefix)
        lines.append(f"    {pad}^")
    if diagnostic.hint:
        lines.append(f"    hint: {diagnostic.hint}")
    return "\n".join(lines)


def format_diagnostics(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(format_diagnostic(d) for d in diagnostics)


def diagnostic_to_dict(diagnostic: Diagnostic) -> dict[str, object]:
    loc = diagnostic.location
    return {
        "severity": diagnostic.severity,
        "message": diagnostic.message,
        "file": None if loc is None else loc.filename,
        "line": None if loc is None or loc.line <= 0 else loc.line,
        "column": None if loc is None or loc.line <= 0 else loc.column,
        "source_line": diagnostic.source_line,
        "hint": diagnostic.hint,
    }


def diagnostics_to_json(diagnostics: Iterable[Diagnostic], *, indent: int | None = None) -> str:
    """A JSON array of diagnostics (keys: severity, message, file, line, column, ...)."""
    return json.dumps([diagnostic_to_dict(d) for d in diagnostics], indent=indent)


class PolicyCheckError(PolicyFileError):
    """A policy file has errors; ``diagnostics`` holds every error and warning found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(format_diagnostics(self.diagnostics))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == ERROR)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of checking a policy without raising: the policy (None on error) and messages."""

    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.policy is not None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == WARNING)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``word`` (difflib), or None when nothing is close."""
    pool = [c for c in candidates if c != word]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # Names like AF31 vs markAF31: a candidate that contains the word is a good guess.
    lowered = word.lower()
    if len(lowered) >= 2:
        for cand in pool:
            if lowered in cand.lower():
                return cand
    return None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    guess = closest(word, candidates)
    return None if guess is None else f"did you mean `{guess}`?"


class Reporter:
    """Collects diagnostics for one file, attaching source lines; ``strict`` upgrades warnings."""

    def __init__(self, filename: str, text: str, *, strict: bool = False) -> None:
        self.filename = filename
        self.lines = split_lines(text)
        self.strict = strict
        self.diagnostics: list[Diagnostic] = []

    def location(self, line: int, column: int) -> Location:
        return Location(self.filename, line, column)

    def _source(self, loc: Location | None) -> str | None:
        if loc is None or loc.line <= 0 or loc.line > len(self.lines):
            return None
        return self.lines[loc.line - 1]

    def error(self, message: str, loc: Location | None, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(ERROR, message, loc, self._source(loc), hint))

    def warning(self, message: str, loc: Location | None, hint: str | None = None) -> None:
        severity = ERROR if self.strict else WARNING
        self.diagnostics.append(Diagnostic(severity, message, loc, self._source(loc), hint))

    def file_error(self, message: str, hint: str | None = None) -> None:
        self.error(message, Location(self.filename, 0, 0), hint)

    @property
    def error_count(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == ERROR)

    @property
    def has_errors(self) -> bool:
        return self.error_count > 0

    def sorted(self) -> tuple[Diagnostic, ...]:
        """Diagnostics by position (file-level ones last), stable for equal positions."""

        def key(d: Diagnostic) -> tuple[int, int]:
            loc = d.location
            if loc is None or loc.line <= 0:
                return (1 << 30, 0)
            return (loc.line, loc.column)

        return tuple(sorted(self.diagnostics, key=key))
