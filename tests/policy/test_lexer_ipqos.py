"""The ipqosconf tokeniser: comments, quotes, braces, line and column numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from diffserv.policy.diagnostics import Reporter
from diffserv.policy.lexer import Token, TokenKind, strip_comment, tokenize


def kinds_texts(text: str) -> list[tuple[str, str]]:
    return [(t.kind.value, t.text) for t in tokenize(text) if t.kind is not TokenKind.EOF]


def test_braces_split_words_and_are_tokens() -> None:
    assert kinds_texts("params{a 1}") == [
        ("word", "params"),
        ("{", "{"),
        ("word", "a"),
        ("word", "1"),
        ("}", "}"),
    ]


def test_commas_colons_slashes_are_ordinary_characters() -> None:
    assert kinds_texts("{0-20,22:GREEN;21:RED} 10.0.0.0/8 a=b") == [
        ("{", "{"),
        ("word", "0-20,22:GREEN;21:RED"),
        ("}", "}"),
        ("word", "10.0.0.0/8"),
        ("word", "a=b"),
    ]


def test_comment_cuts_rest_of_line_even_inside_quotes() -> None:
    assert kinds_texts("name a # comment\nmodule b") == [
        ("word", "name"),
        ("word", "a"),
        ("word", "module"),
        ("word", "b"),
    ]
    reporter = Reporter("f", 'name "a#b"\n')
    tokens = tokenize('name "a#b"\n', reporter)
    assert [t.text for t in tokens[:-1]] == ["name", "a"]
    assert reporter.diagnostics[0].message.startswith("quoted string exceeds line")
    assert str(reporter.diagnostics[0].location) == "f:1:6"


def test_quoted_strings_keep_spaces_and_braces_and_may_be_empty() -> None:
    tokens = tokenize('name "my { class }" x ""')
    assert [(t.kind, t.text) for t in tokens[:-1]] == [
        (TokenKind.WORD, "name"),
        (TokenKind.QUOTED, "my { class }"),
        (TokenKind.WORD, "x"),
        (TokenKind.QUOTED, ""),
    ]


def test_lines_and_columns_are_one_based_and_tabs_count_one() -> None:
    tokens = tokenize("fmt_version 1.0\n\n\taction {\n")
    assert [(t.text, t.line, t.column) for t in tokens] == [
        ("fmt_version", 1, 1),
        ("1.0", 1, 13),
        ("action", 3, 2),
        ("{", 3, 9),
        ("", 3, 10),
    ]


def test_crlf_and_vertical_whitespace_are_separators() -> None:
    assert kinds_texts("a\r\nb\x0bc\x0cd") == [("word", x) for x in "abcd"]


def test_eof_token_always_last() -> None:
    assert tokenize("")[-1].kind is TokenKind.EOF
    assert tokenize("# only a comment\n")[-1].kind is TokenKind.EOF


def test_strip_comment() -> None:
    assert strip_comment("abc # d") == "abc "
    assert strip_comment("#") == ""
    assert strip_comment("abc") == "abc"


WORD = st.text(alphabet="abcdefgXYZ0123456789._-,:;/=!", min_size=1, max_size=8)
SEP = st.sampled_from([" ", "\t", "  ", "\n", " \n\t"])


@given(st.lists(st.one_of(WORD, st.sampled_from(["{", "}"])), max_size=30), st.data())
def test_tokens_round_trip_through_any_whitespace(words: list[str], data: st.DataObject) -> None:
    text = "".join(w + data.draw(SEP) for w in words)
    assert [t.text for t in tokenize(text)[:-1]] == words


@given(st.lists(WORD, min_size=1, max_size=10))
def test_columns_point_at_token_text(words: list[str]) -> None:
    line = " ".join(words)
    for token in tokenize(line)[:-1]:
        assert isinstance(token, Token)
        assert line[token.column - 1 : token.column - 1 + len(token.text)] == token.text


@given(st.text(max_size=60))
def test_lexer_never_crashes(text: str) -> None:
    reporter = Reporter("f", text)
    tokens = tokenize(text, reporter)
    assert tokens[-1].kind is TokenKind.EOF
