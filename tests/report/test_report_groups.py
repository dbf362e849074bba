"""Group files: what they accept, the file:line errors of what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffserv.codepoints import DSCP_COUNT
from diffserv.errors import InputDataError, UsageError
from diffserv.report.groups import OTHER, default_groups, load_groups, parse_groups


def test_ranges_names_and_other() -> None:
    groups = parse_groups("# comment\nVoice = EF, cs5\nBulk = AF11-AF13, 0x08\n", "g")
    assert groups.names == ("Voice", "Bulk", OTHER)
    assert groups.members(0) == [40, 46]
    assert groups.members(1) == [8, 10, 11, 12, 13, 14]
    assert groups.of_dscp[0] == 2 and groups.index("voice") == 0


def test_default_groups_cover_every_dscp_once() -> None:
    groups = default_groups()
    assert len(groups.of_dscp) == DSCP_COUNT
    assert groups.names[groups.of_dscp[46]] == "Telephony"
    assert sum(len(groups.members(i)) for i in range(len(groups.names))) == DSCP_COUNT


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("A = EF\nB = 46\n", 2, "already (line 1)"),  # overlap
        ("A = AF11-AF13\nB = 12\n", 2, "DSCP 12 is in group A"),
        ("A = EF\n= CS5\n", 2, "expected `Name"),  # no name
        ("Voice EF\n", 1, "expected `Name"),
        ("A = XX\n", 1, "group A"),  # unknown DSCP
        ("A = 64\n", 1, "group A"),
        ("A = CS5-CS1\n", 1, "runs backwards"),
        ("A = EF,\n", 1, "empty item"),
        ("other = EF\n", 1, "Other"),
        ("A = EF\na = CS5\n", 2, "already defined on line 1"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "g.txt"
    path.write_text(text)
    with pytest.raises(InputDataError) as caught:
        load_groups(str(path))
    message = str(caught.value)
    assert f"{path}:{line}" in message and words in message and "\n" not in message


def test_empty_file_missing_file_binary_file(tmp_path: Path) -> None:
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(InputDataError, match="no groups"):
        load_groups(str(empty))
    with pytest.raises(UsageError, match="cannot read the group file"):
        load_groups(str(tmp_path / "missing"))
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00A")
    with pytest.raises(InputDataError, match="UTF-8"):
        load_groups(str(binary))


_LINES = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda n, items: f"{n} = {', '.join(items)}",
            st.sampled_from(["A", "B", "Voice", "x y", "Other", "", "#c"]),
            st.lists(
                st.one_of(
                    st.sampled_from(["EF", "af11", "CS5", "0x2e", "63", "64", "AF11-AF13", "",
                                     "LE", "cs7-cs1", "0-63", "-", "1-"]),
                    st.text(max_size=6),
                ),
                max_size=4,
            ),
        ),
    ),
    max_size=6,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_LINES)
def test_parse_groups_raises_only_input_data_errors(lines: list[str]) -> None:
    try:
        groups = parse_groups("\n".join(lines), "g")
    except InputDataError as exc:
        assert str(exc)
        return
    assert len(groups.of_dscp) == DSCP_COUNT
    assert groups.names[-1] == OTHER
    members = [d for i in range(len(groups.names)) for d in groups.members(i)]
    assert sorted(members) == list(range(DSCP_COUNT))  # every DSCP in exactly one group
