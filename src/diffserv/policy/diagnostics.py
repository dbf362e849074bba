"""Compiler-style diagnostics for policy files: collection, formatting, JSON, and the error type.

Every problem is reported as ``FILE:LINE:COL: severity: message`` followed by the source line
and a caret, so an IPQoS administrator sees the ipqosconf meaning at the ipqosconf line number.
Problems that belong to the whole file (no ipgpc action) carry line 0 and print as ``FILE:``.

What a hostile or broken file can make us print is bounded: a quoted source line is cut to a
window around the column, user text quoted in a message is clipped, control characters are
shown escaped, and a file reports at most ``MAX_ERRORS`` errors (checking stops at the next
one) and ``MAX_WARNINGS`` warnings (the rest are counted).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

import msgspec

from diffserv.errors import PolicyFileError
from diffserv.policy.model import Action, Diagnostic, Location, Policy

ERROR = "error"
WARNING = "warning"

MAX_ERRORS = 100  # checking a file stops when it finds one more
MAX_WARNINGS = 100  # later warnings are counted, not kept
SOURCE_WINDOW = 100  # characters of a source line shown around the column
MAX_QUOTED = 48  # characters of user text quoted in a message
MAX_HINT_WORD = 64  # longer words get no "did you mean" hint
ELLIPSIS = "…"

Hint = str | Callable[[], str | None] | None


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\t" or not (code < 0x20 or 0x7F <= code < 0xA0):
        return ch
    return f"\\x{code:02x}"


def printable(text: str) -> str:
    """``text`` with control characters (tab excepted) written as ``\\xNN``."""
    if text.isprintable() or all(_escape_char(c) == c for c in text):
        return text
    return "".join(_escape_char(c) for c in text)


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """User text for a message: control characters escaped, cut to ``limit`` with '…'."""
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return printable(text)


def excerpt(source: str, column: int, width: int = SOURCE_WINDOW) -> tuple[str, str]:
    """The part of ``source`` shown for a diagnostic at 1-based ``column``, and its caret line.

    A line longer than ``width`` is cut to a window around the column with '…' on each cut
    side. Control characters are escaped; tabs are kept in both lines so the caret stays
    under the right character whatever the terminal's tab width.
    """
    index = min(max(column - 1, 0), len(source))
    start, end = 0, len(source)
    if end > width:
        start = max(0, min(index - width // 2, end - width))
        end = min(end, start + width)
    head = (ELLIPSIS if start > 0 else "") + printable(source[start:index])
    tail = printable(source[index:end]) + (ELLIPSIS if end < len(source) else "")
    pad = "".join("\t" if ch == "\t" else " " for ch in head)
    return head + tail, pad + "^"


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
        shown, caret = excerpt(diagnostic.source_line.rstrip("\r\n"), loc.column)
        lines.append(f"    {shown}")
        lines.append(f"    {caret}")
    if diagnostic.hint:
        lines.append(f"    hint: {diagnostic.hint}")
    return "\n".join(lines)


def format_diagnostics(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(format_diagnostic(d) for d in diagnostics)


def _json_source(diagnostic: Diagnostic) -> str | None:
    source, loc = diagnostic.source_line, diagnostic.location
    if source is None or len(source) <= SOURCE_WINDOW or loc is None:
        return source
    index = min(max(loc.column - 1, 0), len(source))
    start = max(0, min(index - SOURCE_WINDOW // 2, len(source) - SOURCE_WINDOW))
    end = start + SOURCE_WINDOW
    return (
        (ELLIPSIS if start > 0 else "")
        + source[start:end]
        + (ELLIPSIS if end < len(source) else "")
    )


def diagnostic_to_dict(diagnostic: Diagnostic) -> dict[str, object]:
    """JSON form; a source line longer than SOURCE_WINDOW is cut as in the text form."""
    loc = diagnostic.location
    return {
        "severity": diagnostic.severity,
        "message": diagnostic.message,
        "file": None if loc is None else loc.filename,
        "line": None if loc is None or loc.line <= 0 else loc.line,
        "column": None if loc is None or loc.line <= 0 else loc.column,
        "source_line": _json_source(diagnostic),
        "hint": diagnostic.hint,
    }


def diagnostics_to_json(diagnostics: Iterable[Diagnostic], *, indent: int | None = None) -> str:
    """A JSON array of diagnostics (keys: severity, message, file, line, column, ...)."""
    import json  # only --format json needs it: not loaded at every start-up

    return json.dumps([diagnostic_to_dict(d) for d in diagnostics], indent=indent)


class PolicyCheckError(PolicyFileError):
    """A policy file has errors; ``diagnostics`` holds every error and warning found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(format_diagnostics(self.diagnostics))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == ERROR)


class LocatedPolicyError(PolicyFileError):
    """A policy rejected because of one action (the engine's build checks).

    ``location`` is where the action is written (None for an Action built in code) and
    ``diagnostic`` the same problem as a Diagnostic, for ``--json`` and editors; the
    message is the one-line text a terminal shows.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str | None,
        location: Location | None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.location = location
        self.diagnostic = Diagnostic(ERROR, detail if detail is not None else message, location)

    @classmethod
    def of_action(cls, action: Action, detail: str, *, marker: str = "") -> LocatedPolicyError:
        """``detail`` about ``action``, placed at its ``action`` keyword when that is known.

        ``marker`` follows the location in the message (the modules' rejections say
        ``error:`` there, as ipqosconf's do).
        """
        where = f"{action.location}: {marker}" if action.location is not None else ""
        return cls(f"{where}{detail}", action=action.name, location=action.location, detail=detail)


class CheckResult(msgspec.Struct, frozen=True):
    """Outcome of checking a policy without raising: the policy (None on error) and messages.

    ``stopped`` says checking gave up after MAX_ERRORS errors (the last diagnostic says so);
    ``omitted_warnings`` counts warnings beyond MAX_WARNINGS that are not in ``diagnostics``.
    """

    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...]
    stopped: bool = False
    omitted_warnings: int = 0

    @property
    def ok(self) -> bool:
        return self.policy is not None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == WARNING)

    @property
    def error_count(self) -> int:
        """Errors found (the closing "too many errors" line aside)."""
        return len(self.errors) - (1 if self.stopped else 0)

    @property
    def warning_count(self) -> int:
        """Warnings found, those not kept included (the closing count line aside)."""
        return len(self.warnings) - (1 if self.omitted_warnings else 0) + self.omitted_warnings


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``word`` (difflib), or None when nothing is close."""
    if len(word) > MAX_HINT_WORD:
        return None
    import difflib  # only a mistake needs it: not loaded at every start-up

    pool = [c for c in candidates if c != word and len(c) <= MAX_HINT_WORD]
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
    return None if guess is None else f"did you mean `{clip(guess)}`?"


class TooManyErrors(Exception):  # noqa: N818 - a signal, not an error shown to anyone
    """Raised by ``Reporter.error`` past MAX_ERRORS; ``check`` stops and says so."""


_CHUNK = 4096  # characters per entry of the reporter's line index


class Reporter:
    """Collects diagnostics for one file, attaching source lines; ``strict`` upgrades warnings.

    Source lines are looked up only for the (bounded number of) kept diagnostics, through a
    coarse index of line numbers built on demand, so a large file is never split into lines.
    """

    def __init__(
        self,
        filename: str,
        text: str,
        *,
        strict: bool = False,
        max_errors: int = MAX_ERRORS,
        max_warnings: int = MAX_WARNINGS,
    ) -> None:
        self.filename = filename
        self.text = text
        self.strict = strict
        self.max_errors = max_errors
        self.max_warnings = max_warnings
        self.diagnostics: list[Diagnostic] = []
        self.error_count = 0
        self.warning_count = 0
        self.omitted_warnings = 0
        self._line_at_chunk: list[int] = [1]  # line number at offset k * _CHUNK
        self._lines: dict[int, str | None] = {}

    def location(self, line: int, column: int) -> Location:
        return Location(self.filename, line, column)

    def source_line(self, line: int) -> str | None:
        """Text of 1-based ``line`` (without its newline), or None past the end."""
        if line <= 0:
            return None
        if line not in self._lines:
            self._lines[line] = self._find_line(line)
        return self._lines[line]

    def _find_line(self, line: int) -> str | None:
        text, index = self.text, self._line_at_chunk
        while index[-1] <= line and (len(index) - 1) * _CHUNK < len(text):
            base = (len(index) - 1) * _CHUNK
            index.append(index[-1] + text.count("\n", base, base + _CHUNK))
        chunk = bisect.bisect_left(index, line) - 1
        if chunk < 0:
            start = 0
        else:
            # Line `line` starts after the (line - index[chunk])-th newline of this chunk.
            start = chunk * _CHUNK
            for _ in range(line - index[chunk]):
                start = text.find("\n", start) + 1
                if start == 0:
                    return None
        if start >= len(text):
            return None
        end = text.find("\n", start)
        return text[start:] if end < 0 else text[start:end]

    def _source(self, loc: Location | None) -> str | None:
        if loc is None or loc.line <= 0:
            return None
        return self.source_line(loc.line)

    def _hint(self, hint: Hint) -> str | None:
        return hint() if callable(hint) else hint

    def error(self, message: str, loc: Location | None, hint: Hint = None) -> None:
        if self.error_count >= self.max_errors:
            raise TooManyErrors
        self.error_count += 1
        self.diagnostics.append(
            Diagnostic(ERROR, message, loc, self._source(loc), self._hint(hint))
        )

    def warning(self, message: str, loc: Location | None, hint: Hint = None) -> None:
        if self.strict:
            self.error(message, loc, hint)
            return
        if self.warning_count >= self.max_warnings:
            self.omitted_warnings += 1
            return
        self.warning_count += 1
        self.diagnostics.append(
            Diagnostic(WARNING, message, loc, self._source(loc), self._hint(hint))
        )

    def file_error(self, message: str, hint: Hint = None) -> None:
        self.error(message, Location(self.filename, 0, 0), hint)

    @property
    def has_errors(self) -> bool:
        return self.error_count > 0

    def closing_notes(self, *, stopped: bool) -> list[Diagnostic]:
        """File-level lines saying what was left out (after the kept diagnostics)."""
        notes = []
        where = Location(self.filename, 0, 0)
        if stopped:
            notes.append(
                Diagnostic(
                    ERROR,
                    f"too many errors: checking stopped after {self.max_errors} errors "
                    "(the rest of the file was not checked)",
                    where,
                )
            )
        if self.omitted_warnings:
            count = self.omitted_warnings
            notes.append(
                Diagnostic(
                    WARNING,
                    f"{count} more warning{'' if count == 1 else 's'} not shown "
                    f"(a file reports at most {self.max_warnings})",
                    where,
                )
            )
        return notes

    def sorted(self) -> tuple[Diagnostic, ...]:
        """Diagnostics by position (file-level ones last), stable for equal positions."""

        def key(d: Diagnostic) -> tuple[int, int]:
            loc = d.location
            if loc is None or loc.line <= 0:
                return (1 << 30, 0)
            return (loc.line, loc.column)

        return tuple(sorted(self.diagnostics, key=key))
