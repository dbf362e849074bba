"""`diffserv dscp`: explain DSCP names, numbers and ToS bytes in every representation.

Values come from the command line or one per line from standard input, so a
ToS column printed by a flow tool can be annotated in a pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import msgspec

from diffserv.codepoints import (
    DSCP_COUNT,
    DSCP_NAME_INDEX,
    ECN_MASK,
    LEGACY_TOS_MASK,
    MINIMIZE_COST_WARNING,
    DscpInfo,
    DsField,
    describe_dscp,
    ecn_name,
    legacy_tos_names,
    legacy_tos_value,
    parse_dscp,
    parse_ecn,
    parse_number,
    parse_tos,
    precedence_name,
)
from diffserv.errors import UsageError

STDIN = "-"
STDIN_LABEL = "<stdin>"
_CACHE_LIMIT = 4096
_LONGEST_VALUE = 64
_TOOL_LABELS = {
    "nft": "nft",
    "iptables": "iptables --set-dscp-class",
    "cisco": "Cisco IOS",
    "juniper": "Junos",
}

EPILOG = """\
examples:
  diffserv dscp ef AF21 cs3 le va default     names, any case
  diffserv dscp 46 0x2e 0b101110              DSCP numbers (a bare number is a DSCP)
  diffserv dscp --tos 0x48 b8 185             DS/ToS bytes (bare digits are decimal)
  diffserv dscp ef --ecn ect1                 EF sent ECN-capable: ToS 0xb9
  diffserv dscp --table                       all 64 DSCPs
  nfdump -R DIR -q -o 'fmt:%tos' | diffserv dscp --tos     annotate a flow column
"""


class Reading(msgspec.Struct, frozen=True):
    """One input value, how it was read and what it means."""

    text: str
    read_as: str
    field: DsField
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"input": self.text, "read_as": self.read_as}
        return record | self.field.as_dict() | {"notes": list(self.notes)}


def register(subparsers: Any) -> None:
    """Add the `dscp` sub-command."""
    parser = subparsers.add_parser(
        "dscp",
        help="explain DSCP names/numbers and ToS bytes (DSCP, ToS, ECN, PHB, 802.1p)",
        description=(
            "Explain each VALUE in every representation: DSCP, DS byte (ToS), precedence,\n"
            "ECN, PHB, RFC 4594 service class and default 802.1p priority. With no VALUE\n"
            "and a pipe on standard input, read one value per line."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "values",
        nargs="*",
        metavar="VALUE",
        help="DSCP name or number (EF, af21, cs3, 46, 0x2e), or '-' for standard input",
    )
    parser.add_argument(
        "--tos",
        action="store_true",
        help="read values as whole DS/ToS bytes 0-255 (184, 0xb8, b8, Minimize-Delay)",
    )
    parser.add_argument(
        "--hex",
        action="store_true",
        help="with --tos, read bare digits as hex (48 = 0x48), as Cisco flow caches print",
    )
    parser.add_argument(
        "--ecn",
        metavar="ECN",
        help="ECN codepoint to combine with DSCP values: Not-ECT, ECT(1), ECT(0), CE or 0-3",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array of objects")
    parser.add_argument(
        "--brief", action="store_true", help="one line per value (the default for standard input)"
    )
    parser.add_argument("--table", action="store_true", help="print all 64 DSCPs, one per line")
    parser.set_defaults(func=run)


# ----------------------------------------------------------------- reading


class _Reader:
    """Turns input text into a Reading under the options given (results cached)."""

    def __init__(self, *, tos: bool, hex_digits: bool, ecn: int) -> None:
        self.tos = tos
        self.hex_digits = hex_digits
        self.ecn = ecn
        self._cache: dict[str, Reading] = {}

    def read(self, text: str) -> Reading:
        """A Reading, or ValueError with the message to show."""
        cached = self._cache.get(text)
        if cached is None:
            if len(text) > _LONGEST_VALUE:
                raise ValueError(f"not a value: {text[:16]!r}... ({len(text)} characters)")
            cached = self._read_tos(text) if self.tos else self._read_dscp(text)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[text] = cached
        return cached

    def _read_dscp(self, text: str) -> Reading:
        try:
            dscp = parse_dscp(text)
        except ValueError as exc:
            number = parse_number(text)
            if number is not None and number <= 0xFF:
                raise ValueError(f"{exc} (use --tos for ToS bytes)") from None
            raise
        field = describe_dscp(dscp, self.ecn)
        notes: list[str] = []
        if parse_number(text) is not None:
            as_tos = describe_dscp(dscp >> 2, dscp & 3)
            notes.append(
                f"{text.strip()} read as a DSCP; as a ToS byte (--tos) it would be "
                f"{_dscp_label(as_tos)} with ECN {ecn_name(as_tos.ecn)}"
            )
        return Reading(text, "dscp", field, tuple(notes))

    def _read_tos(self, text: str) -> Reading:
        tos = parse_tos(text, hex_digits=self.hex_digits)
        word = text.strip()
        notes: list[str] = []
        legacy = legacy_tos_value(word)
        if legacy is not None and legacy & ECN_MASK:
            notes.append(MINIMIZE_COST_WARNING)
        if word.isdigit() and not self.hex_digits and len(word) <= 2:
            notes.append(
                f"{word} read as decimal (0x{tos:02x}); write 0x{word} or use --hex for hex"
            )
        elif legacy is None and parse_number(word) is None and word.lower() in DSCP_NAME_INDEX:
            notes.append(
                f"{word!r} read as the hex byte 0x{tos:02x}; drop --tos to read it as a DSCP name"
            )
        return Reading(text, "tos", DsField(tos), tuple(notes))


def _stdin_lines(stdin: TextIO | None) -> Iterator[str]:
    """Standard input's lines; bytes that are not UTF-8 become U+FFFD instead of a crash."""
    if stdin is None:
        return iter(())
    binary = getattr(stdin, "buffer", None)
    if binary is None:
        return iter(stdin)
    return (raw.decode("utf-8", errors="replace") for raw in binary)


def _inputs(values: Sequence[str], stdin: TextIO | None) -> Iterator[tuple[str, int, str]]:
    """(source, line number, text) for each value; '-' expands to standard input's lines."""
    for value in values:
        if value != STDIN:
            yield "", 0, value
            continue
        for number, line in enumerate(_stdin_lines(stdin), start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield STDIN_LABEL, number, text


# ----------------------------------------------------------------- printing


def _spellings_text(field: DsField) -> str:
    parts = [
        f"{_TOOL_LABELS[tool]} {'/'.join(words)}" for tool, words in field.info.spellings.items()
    ]
    return "; ".join(parts) if parts else f"none (use the number {field.dscp})"


def _any_ecn_text(field: DsField) -> str:
    """The four ToS bytes a DSCP appears as, since collectors report the whole byte."""
    return ", ".join(f"{tos} 0x{tos:02x} {ecn_name(tos & ECN_MASK)}" for tos in field.tos_any_ecn)


def _legacy_text(field: DsField) -> str:
    names = ", ".join(legacy_tos_names(field.tos))
    bits = field.tos & LEGACY_TOS_MASK
    return f"precedence {field.precedence} + {names} (RFC 1349 bits 0x{bits:02x})"


def _dscp_label(field: DsField) -> str:
    """'DSCP 46 EF', or 'DSCP 11 (no standard name)'."""
    name = field.info.name
    return f"DSCP {field.dscp} {name}" if name else f"DSCP {field.dscp} (no standard name)"


def _phb_text(info: DscpInfo) -> str:
    if info.name is None:
        return f"{info.phb_description} ({info.rfc})"
    return f"{info.phb}: {info.phb_description} ({info.rfc})"


def _full_text(reading: Reading) -> list[str]:
    field, info = reading.field, reading.field.info
    pcp = field.pcp
    also = ", ".join(info.aliases)
    name = f"{field.name} (also {also})" if also else field.name
    service = field.info.service_class
    rows = [
        ("DSCP", f"{field.dscp:<4} 0x{field.dscp:02x}  0b{field.dscp:06b}"),
        (
            "DS byte (ToS)",
            f"{field.tos:<4} 0x{field.tos:02x}  0b{field.tos:08b}  = DSCP << 2 | ECN",
        ),
        ("ECN", f"{field.ecn:<4} {ecn_name(field.ecn)} (0b{field.ecn:02b})"),
        ("ToS, any ECN", _any_ecn_text(field)),
        ("Precedence", f"{field.precedence:<4} {precedence_name(field.precedence)}"),
        ("Name", name),
        ("PHB", _phb_text(info)),
        (
            "Service class",
            f"{service} ({field.service_class_source})" if service else "none in RFC 4594",
        ),
        (
            "802.1p (PCP)",
            f"{pcp.pcp:<4} {pcp.acronym} {pcp.name}; 802.1D-1998: {pcp.legacy_acronym} "
            f"{pcp.legacy_name} (default map: DSCP >> 3)",
        ),
        ("Spellings", _spellings_text(field)),
        ("Legacy ToS", _legacy_text(field)),
    ]
    head = f"{reading.text}: {_dscp_label(field)}, ToS {field.tos} (0x{field.tos:02x})"
    if field.ecn:
        head += f", ECN {ecn_name(field.ecn)}"
    lines = [head, *(f"  {label:<14} {value}" for label, value in rows)]
    lines += [f"  note: {note}" for note in reading.notes]
    return lines


def _brief_text(reading: Reading) -> str:
    field = reading.field
    meaning = field.info.service_class or field.info.phb
    return (
        f"{reading.text:<8} {field.name:<11} dscp {field.dscp:>2}  "
        f"tos {field.tos:>3} 0x{field.tos:02x}  ecn {ecn_name(field.ecn):<7}  "
        f"prec {field.precedence}  pcp {field.pcp.pcp}  {meaning}"
    )


def _other_spellings(info: DscpInfo) -> list[str]:
    """Aliases, then tool keywords, each once whatever its case, the name itself left out."""
    seen = {(info.name or "").lower()}
    words: list[str] = []
    for word in [*info.aliases, *(w for ws in info.spellings.values() for w in ws)]:
        if word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    return words


def _table_lines() -> list[str]:
    header = (
        f"{'DSCP':>4} {'HEX':<4} {'BINARY':<6} {'TOS':>3} {'TOSHEX':<6} {'PREC':<4} "
        f"{'NAME':<11} {'PHB':<10} {'SERVICE CLASS':<27} {'PCP':<6} ALSO"
    )
    lines = [header]
    for dscp in range(DSCP_COUNT):
        field = describe_dscp(dscp)
        info = field.info
        also = _other_spellings(info)
        lines.append(
            f"{dscp:>4} 0x{dscp:02x} {dscp:06b} {field.tos:>3} 0x{field.tos:02x}   "
            f"{field.precedence:<4} {field.name:<11} {info.phb:<10} "
            f"{info.service_class or '-':<27} {field.pcp.pcp} {field.pcp.acronym:<4} "
            f"{', '.join(also)}".rstrip()
        )
    return lines


class _JsonArray:
    """Streams a JSON array, one object per line, so long pipes need no memory."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    def add(self, item: dict[str, Any]) -> None:
        self.out.write(("[\n  " if self.count == 0 else ",\n  ") + json.dumps(item))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")


# ----------------------------------------------------------------- command


def _reader(args: argparse.Namespace) -> _Reader:
    if args.hex and not args.tos:
        raise UsageError("dscp: --hex applies to --tos values")
    if args.ecn is not None and args.tos:
        raise UsageError("dscp: --ecn combines with DSCP values; a --tos byte carries its own ECN")
    try:
        ecn = 0 if args.ecn is None else parse_ecn(args.ecn)
    except ValueError as exc:
        raise UsageError(f"dscp: --ecn: {exc}") from None
    return _Reader(tos=args.tos, hex_digits=args.hex, ecn=ecn)


def _print_table(as_json: bool, out: TextIO) -> int:
    if as_json:
        array = _JsonArray(out)
        for dscp in range(DSCP_COUNT):
            array.add(describe_dscp(dscp).as_dict())
        array.close()
    else:
        out.write("\n".join(_table_lines()) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Explain every value; exit 2 if any value from standard input was bad."""
    out, stdin = sys.stdout, sys.stdin
    if args.table:
        if args.values or args.tos or args.ecn is not None:
            raise UsageError("dscp: --table takes no VALUE, --tos or --ecn")
        return _print_table(args.json, out)
    reader = _reader(args)
    values: list[str] = list(args.values)
    if not values:
        if stdin is None or stdin.isatty():
            raise UsageError(
                "dscp: no VALUE given (name DSCPs or ToS bytes, pipe them in, or use --table)"
            )
        values = [STDIN]
    for value in values:  # command-line values are checked before anything is printed
        if value != STDIN:
            try:
                reader.read(value)
            except ValueError as exc:
                raise UsageError(f"dscp: {exc}") from None
    brief = args.brief or STDIN in values
    try:
        return _explain_all(values, reader, as_json=args.json, brief=brief, stdin=stdin, out=out)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 0


def _explain_all(
    values: Sequence[str],
    reader: _Reader,
    *,
    as_json: bool,
    brief: bool,
    stdin: TextIO,
    out: TextIO,
) -> int:
    status = 0
    array = _JsonArray(out) if as_json else None
    for count, (source, line, text) in enumerate(_inputs(values, stdin)):
        try:
            reading = reader.read(text)
        except ValueError as exc:
            out.flush()
            print(f"{source}:{line}: {exc}", file=sys.stderr)
            status = 2
            continue
        if array is not None:
            array.add(reading.as_dict())
        elif brief:
            out.write(_brief_text(reading) + "\n")
        else:
            out.write(("\n" if count else "") + "\n".join(_full_text(reading)) + "\n")
    if array is not None:
        array.close()
    out.flush()
    return status
