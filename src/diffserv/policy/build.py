"""Turn checked raw actions into the immutable ``Policy`` and run the whole pipeline.

``check`` is the one place where lexing, parsing, validation and model building meet; the
public ``parse``/``load`` wrap it and raise when it found errors.
"""

from __future__ import annotations

from pathlib import Path

from diffserv.errors import UsageError
from diffserv.policy import hosts
from diffserv.policy.diagnostics import CheckResult, PolicyCheckError, Reporter
from diffserv.policy.lexer import tokenize
from diffserv.policy.model import Action, Class, Filter, Policy
from diffserv.policy.parser import Parser
from diffserv.policy.raw import RawAction, RawFilter, translate_reference
from diffserv.policy.schema import ParamType, module_schema
from diffserv.policy.validate import validate


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
    tokens = tokenize(text, reporter)
    parser = Parser(tokens, reporter, resolver or hosts.system_resolver)
    parsed = parser.parse_file()
    validate(parsed.actions, reporter, parse_failed=reporter.has_errors)
    diagnostics = reporter.sorted()
    if reporter.has_errors:
        return CheckResult(None, diagnostics)
    policy = Policy(
        actions=tuple(_build_action(a) for a in parsed.actions),
        fmt_version=parsed.fmt_version,
        source=filename,
        warnings=diagnostics,
    )
    return CheckResult(policy, diagnostics)


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
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot read policy file {path}: {reason}") from None
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
