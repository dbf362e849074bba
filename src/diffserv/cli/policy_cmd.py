"""``diffserv check``, ``fmt`` and ``explain``: the policy file commands.

``check`` is what an administrator (or CI) runs before applying a policy: compiler-style
messages on stderr, a one-line verdict per file, JSON for editors. ``fmt`` writes the
canonical form (the ``ipqosconf -l`` layout). ``explain`` says in plain words what each
class gets. Exit status: 0 valid, 1 invalid (or not canonical for ``fmt --check``),
2 usage error or unreadable file.

Standard input is read as bytes and decoded like a file, and a policy larger than
``MAX_POLICY_BYTES`` is refused as unreadable, so no input reaches the checker in a form
it was not meant to handle.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from diffserv.cli.position import set_position
from diffserv.errors import UsageError
from diffserv.policy import (
    Resolver,
    check,
    diagnostics_to_json,
    format_diagnostic,
    static_resolver,
)
from diffserv.policy.build import UnreadablePolicyError, decode_policy, read_policy
from diffserv.policy.explain import explain_policy, summary_line
from diffserv.policy.hosts import SYSTEM_HOSTS, HostDatabase
from diffserv.policy.model import Diagnostic, Location, Policy
from diffserv.policy.printer import format_policy

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
# The host database the commands look names up in: this machine's (the one place the
# system is chosen; a test may pin a StaticHostDatabase here).
HOSTS: HostDatabase = SYSTEM_HOSTS

__all__ = ["UnreadableFileError", "decode_policy", "load_policy", "register"]


class Loaded(msgspec.Struct, frozen=True):
    """A policy file read and checked: the policy (None if invalid) and its messages."""

    filename: str
    text: str
    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...]
    error_count: int = 0
    warning_count: int = 0
    stopped: bool = False  # checking gave up after too many errors


# The one policy-file reader is the language's; these names stay for the callers.
UnreadableFileError = UnreadablePolicyError


def _read(path: str) -> tuple[str, str]:
    """(display name, text) of ``path``; ``-`` is standard input."""
    return read_policy(path, stdin_dash=True)


def parse_host_option(values: Sequence[str] | None) -> Resolver | None:
    """``--host NAME=ADDR[,ADDR…]`` options as a static resolver, or None for the system's."""
    if not values:
        return None
    table: dict[str, list[str]] = {}
    for value in values:
        name, eq, addresses = value.partition("=")
        if not eq or not name or not addresses:
            raise UsageError(f"--host expects NAME=ADDR[,ADDR...], got {value!r}")
        for address in addresses.split(","):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise UsageError(f"--host {name}: {address!r} is not an IP address") from None
            table.setdefault(name, []).append(address)
    return static_resolver(table)


def load_policy(
    path: str,
    *,
    strict: bool = False,
    resolver: Resolver | None = None,
    hosts: HostDatabase | None = None,
) -> Loaded:
    """Read and check one file; raises ``UnreadableFileError`` when it cannot be read.

    Names are looked up in ``hosts``, by default the commands' ``HOSTS``.
    """
    filename, text = _read(path)
    set_position(lambda: filename)  # for the report of an internal error
    result = check(
        text, filename, strict=strict, resolver=resolver, hosts=HOSTS if hosts is None else hosts
    )
    return Loaded(
        filename,
        text,
        result.policy,
        tuple(result.diagnostics),
        result.error_count,
        result.warning_count,
        result.stopped,
    )


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(format_diagnostic(diagnostic), file=sys.stderr)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- check ----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    resolver = parse_host_option(args.host)
    status = EXIT_OK
    collected: list[Diagnostic] = []
    for path in args.files:
        try:
            loaded = load_policy(path, strict=args.strict, resolver=resolver)
        except UnreadableFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            collected.append(Diagnostic("error", str(exc), Location(exc.filename, 0, 0)))
            status = max(status, EXIT_USAGE)
            continue
        collected.extend(loaded.diagnostics)
        if not args.json:
            _print_diagnostics(loaded.diagnostics)
        if loaded.policy is None:
            if not args.json:
                count = _plural(loaded.error_count, "error")
                if loaded.stopped:
                    count = f"more than {count}; checking stopped"
                print(f"{loaded.filename}: invalid ({count})", file=sys.stderr)
            status = max(status, EXIT_INVALID)
            continue
        if not args.json:
            warnings = loaded.warning_count
            tail = f", {_plural(warnings, 'warning')}" if warnings else ""
            print(f"{loaded.filename}: ok ({summary_line(loaded.policy)}){tail}")
    if args.json:
        print(diagnostics_to_json(collected, indent=2))
    return status


# --- fmt ------------------------------------------------------------------------------


def _write_atomically(path: str, text: str) -> None:
    """Replace ``path`` by ``text`` via a temporary file in the same directory.

    A symbolic link is followed, so the link stays and its target is rewritten.
    """
    target = Path(path).resolve()
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = 0o644
    import tempfile  # fmt --write only: `check` starts without it (and shutil)

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_fmt(args: argparse.Namespace) -> int:
    if args.in_place and args.check:
        raise UsageError("fmt: --in-place and --check cannot be combined")
    if len(args.files) > 1 and not (args.in_place or args.check):
        raise UsageError("fmt: several files need --in-place or --check")
    if args.in_place and "-" in args.files:
        raise UsageError("fmt: --in-place cannot rewrite standard input")
    resolver = parse_host_option(args.host)
    status = EXIT_OK
    for path in args.files:
        try:
            loaded = load_policy(path, resolver=resolver)
        except UnreadableFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = max(status, EXIT_USAGE)
            continue
        _print_diagnostics(loaded.diagnostics)
        if loaded.policy is None:
            print(f"{loaded.filename}: not formatted: the file is invalid", file=sys.stderr)
            status = max(status, EXIT_INVALID)
            continue
        canonical = format_policy(loaded.policy, HOSTS)
        if args.check:
            if loaded.text != canonical:
                print(f"{loaded.filename}: not in canonical form", file=sys.stderr)
                if args.diff:
                    import difflib  # fmt --diff only: `check` starts without it

                    sys.stdout.writelines(
                        difflib.unified_diff(
                            loaded.text.splitlines(keepends=True),
                            canonical.splitlines(keepends=True),
                            fromfile=loaded.filename,
                            tofile=f"{loaded.filename} (canonical)",
                        )
                    )
                status = max(status, EXIT_INVALID)
            continue
        if args.in_place:
            if loaded.text != canonical:
                try:
                    _write_atomically(path, canonical)
                except OSError as exc:
                    print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
                    status = max(status, EXIT_USAGE)
            continue
        sys.stdout.write(canonical)
    return status


# --- explain --------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    resolver = parse_host_option(args.host)
    try:
        loaded = load_policy(args.file, strict=args.strict, resolver=resolver)
    except UnreadableFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_diagnostics(loaded.diagnostics)
    if loaded.policy is None:
        print(f"{loaded.filename}: invalid, nothing to explain", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(explain_policy(loaded.policy, title=loaded.filename, hosts=HOSTS))
    return EXIT_OK


# --- registration ---------------------------------------------------------------------

_HOST_HELP = (
    "resolve host name NAME to these addresses instead of asking the system "
    "(repeatable; for offline checks)"
)


def _add_host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", action="append", metavar="NAME=ADDR[,ADDR]", help=_HOST_HELP)


def register(subparsers: Any) -> None:
    """Add ``check``, ``fmt`` and ``explain`` to the ``diffserv`` command."""
    check = subparsers.add_parser(
        "check",
        help="validate ipqosconf policy files",
        description=(
            "Check IPQoS (ipqosconf) policy files: syntax, types, references, cycles, and the "
            "kernel's parameter rules. Exit 0 if all are valid, 1 if one is invalid, 2 if a "
            "file cannot be read."
        ),
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="policy file, or - for stdin")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument(
        "--json", action="store_true", help="print the diagnostics as a JSON array on stdout"
    )
    _add_host_option(check)
    check.set_defaults(func=cmd_check)

    fmt = subparsers.add_parser(
        "fmt",
        help="print a policy in canonical form",
        description=(
            "Print the canonical form of a policy (the ipqosconf -l layout: tabs, one "
            "parameter per line, schema order). Comments are not kept. Exit 1 if the file is "
            "invalid, or with --check if it is not already canonical."
        ),
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help="policy file, or - for stdin")
    fmt.add_argument(
        "-i", "--in-place", action="store_true", help="rewrite the file (atomically) if valid"
    )
    fmt.add_argument(
        "--check", action="store_true", help="exit 1 if a file is not already in canonical form"
    )
    fmt.add_argument("--diff", action="store_true", help="with --check, print a unified diff")
    _add_host_option(fmt)
    fmt.set_defaults(func=cmd_fmt)

    explain = subparsers.add_parser(
        "explain",
        help="say in plain words what a policy does",
        description=(
            "For each class: the filters that select it and the chain of actions its packets "
            "take (meters with their rates, DSCP and 802.1p marks, flow accounting)."
        ),
    )
    explain.add_argument("file", metavar="FILE", help="policy file, or - for stdin")
    explain.add_argument("--strict", action="store_true", help="treat warnings as errors")
    _add_host_option(explain)
    explain.set_defaults(func=cmd_explain)
