"""Tokeniser for ipqosconf files, matching ``readtoken`` of ipqosconf.c (§3.1).

The file is read line by line; ``#`` cuts the rest of the line *before* tokenising (even
inside quotes, as ipqosconf does); braces are tokens of their own; a double-quoted string
runs to the next ``"`` on the same line with no escapes; anything else is a run of
characters that are neither whitespace nor braces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from typing import NamedTuple

from diffserv.policy.diagnostics import Reporter, split_lines

# C isspace() in the C locale.
C_SPACE = frozenset(" \t\n\v\f\r")


class TokenKind(Enum):
    LBRACE = "{"
    RBRACE = "}"
    WORD = "word"  # a bare run of characters
    QUOTED = "quoted"  # a double-quoted string (quotes stripped)
    EOF = "eof"


class Token(NamedTuple):
    """One token; a named tuple because big policies have hundreds of thousands of them."""

    kind: TokenKind
    text: str
    line: int
    column: int  # 1-based, of the first character (the opening quote for QUOTED)

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
            return f'"{self.text}"'
        return f"`{self.text}`"


def strip_comment(line: str) -> str:
    """The part of a line before its first ``#``."""
    cut = line.find("#")
    return line if cut < 0 else line[:cut]


_TOKEN = re.compile(r'[ \t\n\v\f\r]+|(\{)|(\})|"([^"]*)("?)|([^ \t\n\v\f\r{}"]+)')


def tokenize_line(line: str, lineno: int, reporter: Reporter | None = None) -> Iterator[Token]:
    """Tokens of one physical line, after cutting its comment."""
    for match in _TOKEN.finditer(strip_comment(line)):
        column = match.start() + 1
        if match.group(1):
            yield Token(TokenKind.LBRACE, "{", lineno, column)
        elif match.group(2):
            yield Token(TokenKind.RBRACE, "}", lineno, column)
        elif match.group(5):
            yield Token(TokenKind.WORD, match.group(5), lineno, column)
        elif match.group(0).startswith('"'):
            text = match.group(3)
            if not match.group(4):
                if reporter is not None:
                    reporter.error(
                        "quoted string exceeds line (no closing '\"' on this line)",
                        reporter.location(lineno, column),
                        hint="a '#' inside quotes starts a comment, as in ipqosconf",
                    )
                # Take the rest of the line as the string so parsing can go on.
                text = text.rstrip()
            yield Token(TokenKind.QUOTED, text, lineno, column)


def tokenize(text: str, reporter: Reporter | None = None) -> list[Token]:
    """All tokens of a file, ending with one EOF token."""
    tokens: list[Token] = []
    lines = split_lines(text)
    for number, line in enumerate(lines, start=1):
        tokens.extend(tokenize_line(line, number, reporter))
    last_line = max(len(lines), 1)
    last_col = len(lines[-1]) + 1 if lines else 1
    tokens.append(Token(TokenKind.EOF, "", last_line, last_col))
    return tokens
