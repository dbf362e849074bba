"""Turn checked raw actions into the immutable ``Policy`` and run the whole pipeline.

``check`` is the one place where lexing, parsing, validation and model building meet; the
public ``parse``/``load`` wrap it and raise when it found errors.

Whatever the text, ``check`` returns diagnostics (``parse`` raises ``PolicyCheckError``):
every failure below it is a reported problem, never an exception of another kind. A
file with too many errors stops being checked at ``diagnostics.MAX_ERRORS``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

from diffserv.errors import InputDataError
from diffserv.policy.diagnostics import CheckResult, PolicyCheckError, Reporter, TooManyErrors
from diffserv.policy.hosts import HostDatabase, Resolver, host_database
from diffserv.policy.lexer import TokenStream
from diffserv.policy.model import Action, Class, Filter, Policy
from diffserv.policy.parser import Parser
from diffserv.policy.raw import RawAction, RawFilter, translate_reference
from diffserv.policy.schema import ParamType, module_schema
from diffserv.policy.validate import validate

# The largest policy file read: real ones (10 006 filters at most) stay under a few MB.
MAX_POLICY_BYTES = 64 << 20


def _build_filter(raw: RawFilter) -> Filter:
    assert raw.name is not None and raw.class_name is not None
    values = {key: item.value for key, item in raw.selectors.items()}
    return Filter(name=raw.name, class_name=raw.class_name, location=raw.location, **values)  # type: ignore[arg-type]


def _build_action(raw: RawAction) -> Action:
    assert raw.name is not None and raw.module is not None
    schema = module_schema(raw.module)
    params = []
    for spec in schema.params:
        item = raw.params.get(spec.name)
        if item is None:
            continue
        value = item.value
        if spec.type is ParamType.ACTION and isinstance(value, str):
            value = translate_reference(value)
        params.append((spec.name, value))
    classes = tuple(
        Class(c.name, c.next_action, c.enable_stats, c.location)
        for c in raw.classes
        if c.name is not None and c.next_action is not None
    )
    return Action(
        name=raw.name,
        module=raw.module,
        global_stats=raw.global_stats,
        params=tuple(params),  # type: ignore[arg-type]
        classes=classes,
        filters=tuple(_build_filter(f) for f in raw.filters),
        location=raw.location,
    )


def check(
    text: str,
    filename: str = "<string>",
    *,
    strict: bool = False,
    resolver: Resolver | None = None,
    hosts: HostDatabase | None = None,
) -> CheckResult:
    """Check a policy text without raising: the Policy (None on any error) and every message.

    Names are looked up in ``hosts`` (the built-in service and protocol tables when None:
    the same answers on every machine; the commands pass the system's); ``resolver``,
    when given, resolves host names instead of ``hosts.resolve`` (the ``--host`` option).
    """
    reporter = Reporter(filename, text, strict=strict)
    database = host_database(hosts)
    parser = Parser(TokenStream(text, reporter), reporter, resolver or database.resolve, database)
    try:
        parsed = parser.parse_file()
        validate(parsed.actions, reporter, parse_failed=reporter.has_errors)
    except TooManyErrors:
        notes = reporter.closing_notes(stopped=True)
        return CheckResult(None, (*reporter.sorted(), *notes), True, reporter.omitted_warnings)
    diagnostics = (*reporter.sorted(), *reporter.closing_notes(stopped=False))
    if reporter.has_errors:
        return CheckResult(None, diagnostics, False, reporter.omitted_warnings)
    # Build from the front while dropping each raw action, so both never coexist in full.
    pending = parsed.actions[::-1]
    parsed.actions.clear()
    built = []
    while pending:
        built.append(_build_action(pending.pop()))
    policy = Policy(
        actions=tuple(built),
        fmt_version=parsed.fmt_version,
        source=filename,
        warnings=diagnostics,
    )
    return CheckResult(policy, diagnostics, False, reporter.omitted_warnings)


def parse(
    text: str,
    filename: str = "<string>",
    *,
    strict: bool = False,
    resolver: Resolver | None = None,
    hosts: HostDatabase | None = None,
) -> Policy:
    """Parse and validate a policy text; raises PolicyCheckError listing every problem."""
    result = check(text, filename, strict=strict, resolver=resolver, hosts=hosts)
    if result.policy is None:
        raise PolicyCheckError(result.diagnostics)
    return result.policy


STDIN_NAME = "<stdin>"


class UnreadablePolicyError(InputDataError):
    """A policy file that cannot be read or decoded: ``cannot read FILE: REASON``.

    An input file the command cannot use, like an unreadable capture (exit status 2).
    """

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(filename, reason)
        self.args = (f"cannot read {filename}: {reason}",)
        self.filename = filename

    def __str__(self) -> str:
        return str(self.args[0])


def _read_limited(handle: BinaryIO, name: str) -> bytes:
    data = handle.read(MAX_POLICY_BYTES + 1)
    if len(data) > MAX_POLICY_BYTES:
        raise UnreadablePolicyError(
            name, f"larger than {MAX_POLICY_BYTES >> 20} MiB: not a policy file"
        )
    return data


def decode_policy(name: str, data: bytes) -> str:
    """The text of a policy file's bytes (UTF-8); raises ``UnreadablePolicyError``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadablePolicyError(name, f"not UTF-8 text (byte {exc.start})") from None


def read_policy(path: str | Path, *, stdin_dash: bool = False) -> tuple[str, str]:
    """(display name, text) of a policy file: the one place policy files are read.

    With ``stdin_dash``, ``-`` is standard input (read as bytes and decoded like a file).
    An unreadable, oversized or non-UTF-8 file raises ``UnreadablePolicyError``.
    """
    if stdin_dash and str(path) == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text stream without bytes underneath (tests, embedding)
            return STDIN_NAME, sys.stdin.read(MAX_POLICY_BYTES + 1)[:MAX_POLICY_BYTES]
        return STDIN_NAME, decode_policy(STDIN_NAME, _read_limited(stdin, STDIN_NAME))
    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = _read_limited(handle, name)
    except IsADirectoryError:
        raise UnreadablePolicyError(name, "is a directory") from None
    except OSError as exc:
        raise UnreadablePolicyError(name, exc.strerror or str(exc)) from None
    except ValueError:  # a NUL in the path
        raise UnreadablePolicyError(repr(name), "not a file name") from None
    return name, decode_policy(name, data)


def read_policy_text(path: str | Path) -> str:
    """The text of a policy file (``-`` is not special); see ``read_policy``."""
    return read_policy(path)[1]


def load(
    path: str | Path,
    *,
    strict: bool = False,
    resolver: Resolver | None = None,
    hosts: HostDatabase | None = None,
) -> Policy:
    """Read, parse and validate a policy file (``-`` is not special here)."""
    return parse(read_policy_text(path), str(path), strict=strict, resolver=resolver, hosts=hosts)


def check_file(
    path: str | Path,
    *,
    strict: bool = False,
    resolver: Resolver | None = None,
    hosts: HostDatabase | None = None,
) -> CheckResult:
    """``check`` on a file; an unreadable file raises UnreadablePolicyError."""
    return check(read_policy_text(path), str(path), strict=strict, resolver=resolver, hosts=hosts)
