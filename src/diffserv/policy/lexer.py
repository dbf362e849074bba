"""Tokeniser for ipqosconf files, matching ``readtoken`` of ipqosconf.c (docs/policy.md).

``#`` cuts the rest of the line *before* tokenising (even inside quotes, as ipqosconf does);
braces are tokens of their own; a double-quoted string runs to the next ``"`` on the same
line with no escapes; anything else is a run of characters that are neither whitespace nor
braces. Lines end at newline only.

Tokens are produced on demand from one pass over the text (``TokenStream.tokens``), so the
memory a file costs does not grow with its number of tokens, and error recovery can skip
ahead over raw text (``TokenStream.skim_to_action``) without making a token of every brace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from typing import NamedTuple

from diffserv.policy.diagnostics import Reporter, clip

# C isspace() in the C locale.
C_SPACE = frozenset(" \t\n\v\f\r")


class TokenKind(Enum):
    LBRACE = "{"
    RBRACE = "}"
    WORD = "word"  # a bare run of characters
    QUOTED = "quoted"  # a double-quoted string (quotes stripped)
    EOF = "eof"


class Token(NamedTuple):
    """One token; a named tuple because parsing makes one per word and brace."""

    kind: TokenKind
    text: str
    line: int
    column: int  # 1-based, of the first character (the opening quote for QUOTED)
    offset: int = -1  # index of that character in the text

    @property
    def is_string(self) -> bool:
        return self.kind in (TokenKind.WORD, TokenKind.QUOTED)

    def is_word(self, text: str) -> bool:
        """An unquoted word equal to ``text`` (keywords are never quoted)."""
        return self.kind is TokenKind.WORD and self.text == text

    def describe(self) -> str:
        if self.kind is TokenKind.EOF:
            return "end of file"
        if self.kind is TokenKind.QUOTED:
            return f'"{clip(self.text)}"'
        return f"`{clip(self.text)}`"


def strip_comment(line: str) -> str:
    """The part of a line before its first ``#``."""
    cut = line.find("#")
    return line if cut < 0 else line[:cut]


# Blanks, then (group 1, only if there is one) a newline or comment and all blanks and
# comments after it, then one token or the end of the text. Possessive quantifiers: no
# backtracking, so a long run of blanks costs one pass.
_TOKEN = re.compile(
    r"[ \t\v\f\r]*+((?:\n|#[^\n]*+)(?:[ \t\n\v\f\r]++|#[^\n]*+)*+)?"
    r'(?:(\{)|(\})|"([^"\n#]*+)("?)|([^ \t\n\v\f\r{}"#]++)|(\Z))'
)
_LBRACE, _RBRACE, _QUOTE_END, _WORD, _END = 2, 3, 5, 6, 7
_QUOTED = re.compile(r'"([^"\n#]*+)("?)')
# What recovery can skip in bulk: anything but a comment, a possible `action` word, or a
# quoted string that is unterminated or holds braces (whose braces must not be counted).
_PLAIN = re.compile(r'[^"#a]*+(?:(?:a(?!ction)|"[^"\n#{}]*+")[^"#a]*+)*+')
_NONBLANK = re.compile(r"[^ \t\n\v\f\r]")
_QUOTE_OR_HASH = re.compile(r'["#]')
_WORD_REST = re.compile(r'[^ \t\n\v\f\r{}"#]*+')
_LBRACE_NEXT = re.compile(r"(?:[ \t\n\v\f\r]++|#[^\n]*+)*+\{")
_BEFORE_WORD = frozenset(' \t\n\v\f\r{}"')
_AFTER_WORD = frozenset(' \t\n\v\f\r{}"#')


class Position(NamedTuple):
    """Where to (re)start lexing: a text offset at a token start, its line and line start."""

    offset: int
    line: int
    line_start: int


_new_token = tuple.__new__


class TokenStream:
    """The tokens of one text, made on demand; reports unterminated quotes once each."""

    def __init__(self, text: str, reporter: Reporter | None = None) -> None:
        self.text = text
        self.reporter = reporter
        self._quote_mark = -1  # offset of the last unterminated quote reported

    def _unterminated(self, offset: int, line: int, column: int) -> None:
        if self.reporter is None or offset <= self._quote_mark:
            return
        self._quote_mark = offset
        self.reporter.error(
            "quoted string exceeds line (no closing '\"' on this line)",
            self.reporter.location(line, column),
            hint="a '#' inside quotes starts a comment, as in ipqosconf",
        )

    def tokens(self, start: Position | None = None) -> Iterator[Token]:
        """Tokens from ``start`` (the beginning by default), ending with one EOF token."""
        text = self.text
        offset, line, line_start = start or Position(0, 1, 0)
        word, lbrace, rbrace = TokenKind.WORD, TokenKind.LBRACE, TokenKind.RBRACE
        new = _new_token
        for match in _TOKEN.finditer(text, offset):
            skip_from, skip_to = match.span(1)
            if skip_from >= 0:
                newlines = text.count("\n", skip_from, skip_to)
                if newlines:
                    line += newlines
                    line_start = text.rindex("\n", skip_from, skip_to) + 1
            group = match.lastindex
            if group == _WORD:
                token_at = match.start(_WORD)
                yield new(Token, (word, match[_WORD], line, token_at - line_start + 1, token_at))
                continue
            token_at = match.end() - 1 if group != _QUOTE_END else match.start(4) - 1
            column = token_at - line_start + 1
            if group == _LBRACE:
                yield new(Token, (lbrace, "{", line, column, token_at))
            elif group == _RBRACE:
                yield new(Token, (rbrace, "}", line, column, token_at))
            elif group == _QUOTE_END:
                value = match.group(4)
                if not match.group(_QUOTE_END):
                    self._unterminated(token_at, line, column)
                    # Take the rest of the line as the string so parsing can go on.
                    value = value.rstrip()
                yield _new_token(Token, (TokenKind.QUOTED, value, line, column, token_at))
            else:
                yield self._eof(line, line_start)
                return

    def _eof(self, line: int, line_start: int) -> Token:
        """The EOF token sits after the last character of the last line (ipqosconf's line)."""
        text = self.text
        end = len(text)
        if end and text.endswith("\n"):
            line -= 1
            line_start = text.rfind("\n", 0, end - 1) + 1
            end -= 1
        return Token(TokenKind.EOF, "", max(line, 1), end - line_start + 1, len(text))

    def skim_to_action(self, start: Token, prev_line: int) -> Position:
        """Where error recovery resumes: from ``start`` (included), the first ``action`` word
        at brace depth <= 0 counted from there, or the first ``action {`` that begins a line
        (whichever comes first); the end of the text if there is none.

        Works on the raw text: runs of plain text are measured with string methods, only
        quotes, comments and ``action`` words cost a step each. ``prev_line`` is the line
        of the token before ``start`` (0 if none).
        """
        text, end = self.text, len(self.text)
        pos, line = start.offset, start.line
        line_start = start.offset - start.column + 1
        line_has_token = prev_line == start.line
        depth = 0
        while True:
            plain = _PLAIN.match(text, pos)
            assert plain is not None
            stop = plain.end()
            if stop > pos:
                depth += text.count("{", pos, stop) - text.count("}", pos, stop)
                newlines = text.count("\n", pos, stop)
                if newlines:
                    line += newlines
                    line_start = text.rindex("\n", pos, stop) + 1
                    line_has_token = False
                if not line_has_token:
                    line_has_token = _NONBLANK.search(text, max(pos, line_start), stop) is not None
            if stop == end:
                return Position(end, line, line_start)
            char = text[stop]
            if char == "#":
                newline = text.find("\n", stop)
                pos = end if newline < 0 else newline
                continue
            if char == '"':
                quoted = _QUOTED.match(text, stop)
                assert quoted is not None
                if not quoted.group(2):
                    self._unterminated(stop, line, stop - line_start + 1)
                line_has_token = True
                pos = quoted.end()
                continue
            after = stop + len("action")
            whole = (stop == 0 or text[stop - 1] in _BEFORE_WORD) and (
                after == end or text[after] in _AFTER_WORD
            )
            if not whole:
                rest = _WORD_REST.match(text, stop)
                assert rest is not None
                line_has_token = True
                pos = max(rest.end(), stop + 1)
                continue
            if depth <= 0 or (not line_has_token and _LBRACE_NEXT.match(text, after)):
                return Position(stop, line, line_start)
            line_has_token = True
            pos = after
            # Nothing on the rest of this line can be a stop when no '}' there can bring
            # the depth down: take it whole (unless quotes or a comment need a closer look).
            newline = text.find("\n", after)
            newline = end if newline < 0 else newline
            if text.find("}", after, newline) < 0 and not _QUOTE_OR_HASH.search(
                text, after, newline
            ):
                depth += text.count("{", after, newline)
                pos = newline


def tokenize(text: str, reporter: Reporter | None = None) -> list[Token]:
    """All tokens of a text, ending with one EOF token (for tests and small texts)."""
    return list(TokenStream(text, reporter).tokens())
