"""Recursive-descent parser for ipqosconf files (docs/policy.md), with error recovery.

It turns tokens into located "raw" actions (values already converted to their real types)
so validation can point at the exact token, and keeps going after an error: a bad value
skips to the next item, a broken block resyncs at the next ``action`` at brace depth 0,
so every independent error of a file is reported in one run.

Tokens come from a ``TokenStream`` through a small buffer, and recovery skims the raw text,
so neither memory nor time depends on how broken a file is beyond its size.
"""

from __future__ import annotations

import itertools
import re

from diffserv.policy.addresses import AddressResolver
from diffserv.policy.diagnostics import Reporter, clip, did_you_mean
from diffserv.policy.hosts import HostDatabase, Resolver
from diffserv.policy.lexer import Position, Token, TokenKind, TokenStream
from diffserv.policy.model import (
    CLASSIFIER_ACTION,
    CONTINUE,
    DEFER,
    DROP,
    HostName,
    Location,
)
from diffserv.policy.raw import (
    ParsedFile,
    RawAction,
    RawClass,
    RawFilter,
    RawItem,
    SelectorValue,
    translate_reference,
)
from diffserv.policy.schema import (
    FILTER,
    MAX_NAME_LENGTH,
    MODULE_NAMES,
    PARAM_ALIASES,
    PARAMS,
    ModuleSchema,
    ParamSpec,
    ParamType,
    lookup_param,
    param_names,
)
from diffserv.policy.values import (
    MAX_NUMBER_DIGITS,
    BadValueError,
    check_host_name,
    parse_address_literal,
    parse_boolean,
    parse_enum,
    parse_int_array,
    scalar_value,
)

RESERVED_ACTION_NAMES = frozenset({"continue", "drop", "defer", CONTINUE, DROP, DEFER})
CLAUSES = ("params", "class", "filter")
# Tokens a braced value may hold: a full 64-entry array written one token per number and
# separator is about 400; anything longer is not a value.
MAX_VALUE_TOKENS = 1024
_BATCH = 256  # tokens lexed at a time
_KEEP_BEHIND = 2  # consumed tokens kept for look-behind (missing_close)
_EOF = TokenKind.EOF
# One string object per module name, shared by every action of the file.
_MODULE_NAME = {name: name for name in MODULE_NAMES}


class _ResyncError(Exception):
    """Abandon the current action; the caller skips to the next one."""


class Parser:
    def __init__(
        self,
        stream: TokenStream,
        reporter: Reporter,
        resolver: Resolver,
        hosts: HostDatabase,
    ) -> None:
        self.stream = stream
        self._source = stream.tokens()
        # A window on the token stream: tokens[pos] is the next one; a few consumed ones
        # stay behind it, the rest are dropped as the window moves.
        self.tokens: list[Token] = []
        self.pos = 0
        self.reporter = reporter
        self.hosts = hosts
        self.addresses = AddressResolver(reporter, resolver)
        self._eof_reported = False
        self._interfaces: dict[str, bool] = {}

    # -- token helpers ---------------------------------------------------------------

    def _fill(self) -> None:
        if self.pos > _BATCH:
            del self.tokens[: self.pos - _KEEP_BEHIND]
            self.pos = _KEEP_BEHIND
        self.tokens.extend(itertools.islice(self._source, _BATCH))

    def peek(self) -> Token:
        if self.pos >= len(self.tokens):
            self._fill()
        return self.tokens[self.pos]

    def advance(self) -> Token:
        pos = self.pos
        if pos >= len(self.tokens):
            self._fill()
            pos = self.pos
        tok = self.tokens[pos]
        if tok.kind is not _EOF:
            self.pos = pos + 1
        return tok

    def _restart(self, where: Position) -> None:
        """Continue with the token at text position ``where`` (recovery skipped ahead)."""
        self._source = self.stream.tokens(where)
        self.tokens = []
        self.pos = 0

    def loc(self, tok: Token) -> Location:
        return Location(self.reporter.filename, tok.line, tok.column)

    def error(self, message: str, tok: Token, hint: str | None = None) -> None:
        self.reporter.error(message, self.loc(tok), hint)

    def eof(self, tok: Token, what: str) -> _ResyncError:
        if not self._eof_reported:
            self._eof_reported = True
            self.error(f"unexpected EOF: {what} is not closed with '}}'", tok)
        return _ResyncError()

    def missing_close(self, tok: Token, what: str) -> None:
        """At ``action {`` opening a line inside a block: report the missing '}' and resync."""
        if not tok.is_word("action"):
            return
        nxt = self.peek()
        prev = self.tokens[self.pos - 2] if self.pos >= 2 else None
        if nxt.kind is TokenKind.LBRACE and (prev is None or prev.line != tok.line):
            self.error(f"'}}' missing: {what} is not closed before this action", tok)
            self.pos -= 1  # resync right here
            raise _ResyncError

    def expect_lbrace(self, after: Token) -> None:
        tok = self.peek()
        if tok.kind is TokenKind.LBRACE:
            self.advance()
            return
        self.error(f"'{{' missing after `{clip(after.text)}`", tok)
        raise _ResyncError

    # -- file --------------------------------------------------------------------------

    def parse_file(self) -> ParsedFile:
        version = self.parse_version()
        actions: list[RawAction] = []
        while True:
            tok = self.peek()
            if tok.kind is TokenKind.EOF:
                break
            if not tok.is_word("action"):
                hint = "is there an extra '}' above?" if tok.kind is TokenKind.RBRACE else None
                self.error(f"missing action token: found {tok.describe()}", tok, hint)
                self.advance()
                self.resync()
                continue
            action = RawAction(self.loc(tok))
            self.advance()
            try:
                self.parse_action(action)
            except _ResyncError:
                action.broken = True
                self.resync()
            actions.append(action)
        return ParsedFile(version, actions)

    def parse_version(self) -> str:
        tok = self.peek()
        if tok.kind is TokenKind.WORD and tok.text.lower() == "fmt_version":
            self.advance()
            value = self.peek()
            match = re.fullmatch(r"([0-9]+)\.([0-9]+)", value.text) if value.is_string else None
            if match is not None and any(
                len(part.lstrip("0")) > MAX_NUMBER_DIGITS for part in match.groups()
            ):
                self.error(
                    f"unsupported config file format version {clip(value.text)}: "
                    "number too large; only 1.0 is supported",
                    value,
                )
                self.advance()
                return "1.0"
            if match is None:
                self.error(
                    "missing/invalid config file fmt_version: expected `fmt_version 1.0`", value
                )
                if value.is_string and not value.is_word("action"):
                    self.advance()
                return "1.0"
            self.advance()
            major, minor = int(match.group(1)), int(match.group(2))
            if major > 1 or minor > 0:
                self.error(
                    f"unsupported config file format version {clip(value.text)}: "
                    "only 1.0 is supported",
                    value,
                )
            return f"{major}.{minor}"
        if tok.kind is TokenKind.EOF:
            self.reporter.file_error(
                "missing/invalid config file fmt_version: the file is empty",
                hint="a policy starts with `fmt_version 1.0`",
            )
        else:
            self.error(
                "missing/invalid config file fmt_version: it must be the first token",
                tok,
                hint="a policy starts with `fmt_version 1.0`",
            )
        return "1.0"

    def resync(self) -> None:
        """Skip from the next token to the next ``action`` at brace depth 0 (counted from
        there), or to an ``action {`` that begins a line if that comes first (a '}' is
        missing above it).

        Each call skips what it scans, so recovery costs one pass over the file in all.
        """
        tok = self.peek()
        if tok.kind is TokenKind.EOF:
            return
        prev_line = self.tokens[self.pos - 1].line if self.pos >= 1 else 0
        where = self.stream.skim_to_action(tok, prev_line)
        if where.offset != tok.offset:
            self._restart(where)

    # -- action ------------------------------------------------------------------------

    def parse_action(self, action: RawAction) -> None:
        self.expect_lbrace(self.tokens[self.pos - 1])
        self.parse_head(action)
        if action.module is None:
            return  # the action already ended (missing name/module)
        if action.module not in MODULE_NAMES:
            raise _ResyncError  # nothing in it can be checked: skip to its end
        params_seen = False
        while True:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                return
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, f"action `{clip(action.name or '')}`")
            if tok.is_word("params"):
                second = params_seen
                if second:
                    self.error("second parameter clause not supported", tok)
                    action.broken = True
                params_seen = True
                self.expect_lbrace(tok)
                if not second:
                    action.params_loc = self.loc(tok)
                self.parse_params(action, keep=not second)
            elif tok.is_word("class"):
                self.check_classifies(action, tok)
                self.expect_lbrace(tok)
                action.classes.append(self.parse_class(action, tok))
            elif tok.is_word("filter"):
                self.check_classifies(action, tok)
                self.expect_lbrace(tok)
                action.filters.append(self.parse_filter(action, tok))
            else:
                if tok.text == "action":
                    self.missing_close(tok, f"action `{clip(action.name or '')}`")
                hint = did_you_mean(tok.text, CLAUSES) if tok.is_string else None
                self.error(
                    f"params/filter/class clause expected, found {tok.describe()}", tok, hint
                )
                raise _ResyncError

    def check_classifies(self, action: RawAction, tok: Token) -> None:
        if action.module is not None and action.schema is not None and action.module != "ipgpc":
            self.error(
                f"module {action.module} has no classes or filters (only ipgpc classifies)",
                tok,
            )
            action.broken = True

    def parse_head(self, action: RawAction) -> None:
        while action.name is None or action.module is None:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                self.error(
                    "missing action name/module before this '}': an action needs both "
                    "`name` and `module`",
                    tok,
                )
                action.broken = True
                action.module = None
                return
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, "action")
            if tok.text == "action":
                self.missing_close(tok, "the previous action")
            if tok.is_word("name") or tok.is_word("module"):
                if (tok.text == "name" and action.name is not None) or (
                    tok.text == "module" and action.module is not None
                ):
                    self.error(f"duplicate parameter `{clip(tok.text)}`", tok)
                    raise _ResyncError
                value = self.read_word(tok)
                if tok.text == "name":
                    action.name, action.name_loc = value.text, self.loc(value)
                else:
                    module = _MODULE_NAME.get(value.text, value.text)
                    action.module, action.module_loc = module, self.loc(value)
                continue
            hint = "an action begins with `name` and `module`, before params/class/filter"
            if tok.is_string and tok.text not in CLAUSES:
                hint = did_you_mean(tok.text, ("name", "module")) or hint
            self.error(f"unexpected parameter {tok.describe()}", tok, hint)
            raise _ResyncError
        self.check_action_head(action)

    def check_action_head(self, action: RawAction) -> None:
        assert action.name is not None and action.module is not None
        assert action.name_loc is not None and action.module_loc is not None
        self.check_name(action.name, action.name_loc)
        if action.name in RESERVED_ACTION_NAMES:
            self.reporter.error(
                f"invalid action name `{action.name}`: reserved for a virtual action",
                action.name_loc,
            )
        if action.module not in MODULE_NAMES:
            hint = did_you_mean(action.module, MODULE_NAMES) or (
                "modules are " + ", ".join(MODULE_NAMES)
            )
            self.reporter.error(
                f"invalid module name `{clip(action.module)}`", action.module_loc, hint=hint
            )
            action.broken = True
        elif action.module == "ipgpc" and action.name != CLASSIFIER_ACTION:
            self.reporter.error(
                f"ipgpc action has incorrect name `{clip(action.name)}`: the classifier must be "
                f"named {CLASSIFIER_ACTION}",
                action.location,
            )

    def check_name(self, name: str, loc: Location) -> None:
        if len(name) > MAX_NAME_LENGTH:
            self.reporter.error(
                f"name `{clip(name)}` exceeds maximum name length ({MAX_NAME_LENGTH} characters)",
                loc,
            )
        if name.startswith("!"):
            self.reporter.error(f"name `{clip(name)}` not allowed to start with '!'", loc)

    def read_word(self, key: Token) -> Token:
        """The single-token value after ``key``; a brace there is 'missing parameter value'."""
        tok = self.peek()
        if tok.kind is TokenKind.EOF:
            raise self.eof(tok, "block")
        if not tok.is_string:
            self.error(f"missing parameter value for `{clip(key.text)}`", tok)
            raise _ResyncError
        return self.advance()

    def read_braced(self, key: Token) -> list[Token]:
        """Tokens between ``{`` (already consumed) and the matching ``}``."""
        words: list[Token] = []
        while True:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                return words
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, f"value of `{clip(key.text)}`")
            if tok.kind is TokenKind.LBRACE:
                self.error(f"malformed value of `{clip(key.text)}`: nested '{{'", tok)
                raise _ResyncError
            if len(words) >= MAX_VALUE_TOKENS:
                self.error(
                    f"malformed value of `{clip(key.text)}`: more than {MAX_VALUE_TOKENS} "
                    "tokens before its '}'",
                    tok,
                )
                raise _ResyncError
            words.append(tok)

    # -- values ------------------------------------------------------------------------

    def skip_value(self, key: Token) -> None:
        tok = self.peek()
        if tok.kind is TokenKind.LBRACE:
            self.advance()
            self.read_braced(key)
        elif tok.is_string:
            self.advance()

    def read_value(self, key: Token, spec: ParamSpec) -> tuple[SelectorValue, Token] | None:
        """Read and convert the value of ``key``; None after reporting a bad value."""
        tok = self.peek()
        if tok.kind is TokenKind.EOF:
            raise self.eof(tok, "block")
        if tok.kind is TokenKind.RBRACE:
            self.error(f"missing parameter value for `{clip(key.text)}`", tok)
            return None
        braced = tok.kind is TokenKind.LBRACE
        if spec.type is ParamType.INT_ARRAY and not braced:
            self.advance()
            self.error(
                f"'{{' missing at `{clip(tok.text)}`: `{clip(key.text)}` is an array like "
                "{0-63:0}",
                tok,
            )
            return None
        if braced and spec.type not in (ParamType.INT_ARRAY, ParamType.ENUM):
            self.advance()
            self.read_braced(key)
            self.error(f"invalid {spec.type.value}: `{clip(key.text)}` takes a single value", tok)
            return None
        self.advance()
        inner: list[Token] = []
        try:
            if braced:
                inner = self.read_braced(key)
                words = [w.text for w in inner]
                if spec.type is ParamType.INT_ARRAY:
                    return parse_int_array(words, spec), tok
                return parse_enum(words, spec, listed=True), tok
            if spec.type is ParamType.ADDRESS:
                literal = parse_address_literal(tok.text)
                if literal is not None:
                    return literal, tok
                return HostName(check_host_name(tok.text), ()), tok
            value = scalar_value(tok.text, spec, self.hosts)
            if spec.type is ParamType.IFNAME and not self.interface_exists(tok.text):
                self.reporter.warning(
                    f"invalid interface `{clip(tok.text)}`: it does not exist on this host",
                    self.loc(tok),
                    hint="the filter still matches captures that name this interface",
                )
            return value, tok
        except BadValueError as problem:
            self.reporter.error(
                problem.message, self.problem_location(tok, inner, problem), problem.hint
            )
            return None

    def interface_exists(self, name: str) -> bool:
        """The host database's ``interface_exists``, asked once per name per file."""
        if name not in self._interfaces:
            self._interfaces[name] = self.hosts.interface_exists(name)
        return self._interfaces[name]

    def problem_location(
        self, brace: Token, inner: list[Token], problem: BadValueError
    ) -> Location:
        """Point at the bad element of a braced value, on the line ipqosconf reports.

        An enum list is read token by token, so its error is on the token's line; an array is
        reported at the line where it starts, so the caret moves only along that line.
        """
        if problem.word is not None:
            for tok in inner:
                if problem.word in tok.text.replace(",", " ").split():
                    return self.loc(tok)
        if problem.offset is not None:
            position = 0
            for tok in inner:
                end = position + len(tok.text)
                if position <= problem.offset < end:
                    if tok.line != brace.line:
                        break
                    skip = 1 if tok.kind is TokenKind.QUOTED else 0
                    column = tok.column + skip + problem.offset - position
                    return self.reporter.location(tok.line, column)
                position = end
        return self.loc(brace)

    def parse_params(self, action: RawAction, *, keep: bool) -> None:
        schema = action.schema
        seen: dict[str, RawItem] = {}
        while True:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                break
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, "params clause")
            if tok.text == "action":
                self.missing_close(tok, "the params clause")
            if not tok.is_string:
                self.error("missing parameter name before '{'", tok)
                self.read_braced(tok)
                action.broken = True
                continue
            if tok.text in seen:
                self.error(f"duplicate parameter `{clip(tok.text)}`", tok)
                self.skip_value(tok)
                continue
            if schema is None:
                self.skip_value(tok)
                continue
            spec = lookup_param(schema.name, tok.text, PARAMS)
            if spec is None:
                self.invalid_parameter(tok, schema, PARAMS)
                action.failed(tok.text)  # maybe a misspelt required one
                self.skip_value(tok)
                continue
            result = self.read_value(tok, spec)
            if result is None:
                if keep:
                    action.failed(tok.text)
                continue
            value, value_tok = result
            if spec.is_action and isinstance(value, str):
                value = translate_reference(value)
            seen[tok.text] = RawItem(value, self.loc(tok), self.loc(value_tok))
        if keep:
            if "global_stats" in seen:
                stats = seen.pop("global_stats").value
                action.global_stats = bool(stats)
            action.params = seen

    def invalid_parameter(self, tok: Token, schema: ModuleSchema, place: str) -> None:
        names = param_names(schema.name, place)
        hint = did_you_mean(tok.text, names)
        other = FILTER if place == PARAMS else PARAMS
        alias = PARAM_ALIASES.get(tok.text)
        if alias is not None and alias in names:
            hint = f"did you mean `{alias}`?"
        if lookup_param(schema.name, tok.text, other) is not None:
            hint = f"`{tok.text}` belongs in a {other} clause"
        elif tok.text in ("enable_stats", "next_action") and schema.name == "ipgpc":
            hint = f"`{tok.text}` belongs in a class clause"
        elif tok.text == "enable_stats":
            hint = "per-class `enable_stats` exists only in ipgpc classes; use global_stats"
        elif hint is None:
            owners = [
                f"{m} {p}"
                for m in MODULE_NAMES
                for p in (PARAMS, FILTER)
                if m != schema.name and lookup_param(m, tok.text, p) is not None
            ]
            if owners:
                hint = f"`{tok.text}` is a parameter of " + " and ".join(owners) + " clauses"
        if hint is None:
            hint = f"{schema.name} accepts: " + (", ".join(names) if names else "global_stats")
        self.error(f"invalid parameter, {clip(tok.text)}, for module {schema.name}", tok, hint)

    # -- class and filter --------------------------------------------------------------

    def parse_class(self, action: RawAction, keyword: Token) -> RawClass:
        cls = RawClass(self.loc(keyword))
        seen: set[str] = set()
        while True:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                break
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, "class clause")
            if tok.text == "action":
                self.missing_close(tok, "the class clause")
            if tok.text in seen and tok.is_string:
                self.error(f"duplicate parameter `{clip(tok.text)}`", tok)
                self.skip_value(tok)
                continue
            if tok.is_word("name"):
                value = self.read_word(tok)
                cls.name, cls.name_loc = value.text, self.loc(value)
                self.check_name(value.text, cls.name_loc)
            elif tok.is_word("next_action"):
                value = self.read_word(tok)
                cls.next_action = translate_reference(value.text)
                cls.next_loc = self.loc(value)
            elif tok.is_word("enable_stats"):
                value = self.read_word(tok)
                try:
                    cls.enable_stats = parse_boolean(value.text)
                except BadValueError as problem:
                    self.error(problem.message, value, problem.hint)
                    action.broken = True
            else:
                items = ("name", "next_action", "enable_stats")
                hint = did_you_mean(tok.text, items) if tok.is_string else None
                self.error(
                    f"unexpected parameter {tok.describe()} in class",
                    tok,
                    hint or "a class has name, next_action and optionally enable_stats",
                )
                action.broken = True
                self.skip_value(tok)
                continue
            seen.add(tok.text)
        if cls.name is None or cls.next_action is None:
            self.error("missing class name/next action before this '}'", tok)
            action.broken = True
        return cls

    def parse_filter(self, action: RawAction, keyword: Token) -> RawFilter:
        flt = RawFilter(self.loc(keyword))
        schema = action.schema
        seen: set[str] = set()
        while True:
            tok = self.advance()
            if tok.kind is TokenKind.RBRACE:
                break
            if tok.kind is TokenKind.EOF:
                raise self.eof(tok, "filter clause")
            if tok.text == "action":
                self.missing_close(tok, "the filter clause")
            if not tok.is_string:
                self.error("missing parameter name before '{'", tok)
                self.read_braced(tok)
                action.broken = True
                continue
            if tok.text in seen and not (tok.text == "if_name" and tok.kind is TokenKind.WORD):
                self.error(f"duplicate parameter `{clip(tok.text)}`", tok)
                self.skip_value(tok)
                continue
            seen.add(tok.text)
            if tok.is_word("name"):
                value = self.read_word(tok)
                flt.name, flt.name_loc = value.text, self.loc(value)
                self.check_name(value.text, flt.name_loc)
                continue
            if tok.is_word("class"):
                value = self.read_word(tok)
                flt.class_name, flt.class_loc = value.text, self.loc(value)
                continue
            if schema is None:
                self.skip_value(tok)
                continue
            spec = lookup_param(schema.name, tok.text, FILTER)
            if spec is None:
                self.invalid_parameter(tok, schema, FILTER)
                flt.broken = True
                self.skip_value(tok)
                continue
            result = self.read_value(tok, spec)
            if result is None:
                flt.broken = True
                continue
            flt.selectors[tok.text] = RawItem(result[0], self.loc(tok), self.loc(result[1]))
        if flt.name is None or flt.class_name is None:
            self.error("missing filter/class name before this '}'", tok)
            flt.broken = True
        if not self.addresses.finish_filter(flt):
            flt.broken = True
        return flt
