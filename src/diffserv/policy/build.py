"""Turn checked raw actions into the immutable ``Policy`` and run the whole pipeline.

``check`` is the one place where lexing, parsing, validation and model building meet; the
public ``parse``/``load`` wrap it and raise when it found errors.

Whatever the text, ``check`` returns diagnostics (``parse`` raises ``PolicyCheckError``):
every failure below it is a reported problem, never an exception of another kind. A
file with too many errors stops being checked at ``diagnostics.MAX_ERRORS``.
"""

from __future__ import annotations

from pathlib import Path

from diffserv.errors import UsageError
from diffserv.policy import hosts
from diffserv.policy.diagnostics import CheckResult, PolicyCheckError, Reporter, TooManyErrors
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
    resolver: hosts.Resolver | None = None,
) -> CheckResult:
    """Check a policy text without raising: the Policy (None on any error) and every message."""
    reporter = Reporter(filename, text, strict=strict)
    parser = Parser(TokenStream(text, reporter), reporter, resolver or hosts.system_resolver)
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
    resolver: hosts.Resolver | None = None,
) -> Policy:
    """Parse and validate a policy text; raises PolicyCheckError listing every problem."""
    result = check(text, filename, strict=strict, resolver=resolver)
    if result.policy is None:
        raise PolicyCheckError(result.diagnostics)
    return result.policy


def read_policy_text(path: str | Path) -> str:
    """The text of a policy file; an unreadable file is a one-line UsageError."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot read policy file {path}: {reason}") from None
    except ValueError:  # a NUL in the path
        raise UsageError(f"cannot read policy file {path!r}: not a file name") from None
    if len(data) > MAX_POLICY_BYTES:
        raise UsageError(
            f"cannot read policy file {path}: larger than {MAX_POLICY_BYTES >> 20} MiB"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read policy file {path}: not UTF-8 text (byte {exc.start})"
        ) from None


def load(
    path: str | Path,
    *,
    strict: bool = False,
    resolver: hosts.Resolver | None = None,
) -> Policy:
    """Read, parse and validate a policy file (``-`` is not special here)."""
    return parse(read_policy_text(path), str(path), strict=strict, resolver=resolver)


def check_file(
    path: str | Path,
    *,
    strict: bool = False,
    resolver: hosts.Resolver | None = None,
) -> CheckResult:
    """``check`` on a file; an unreadable file raises UsageError."""
    return check(read_policy_text(path), str(path), strict=strict, resolver=resolver)
