"""`diffserv audit POLICY SOURCE...`: does the traffic carry the marks the policy says?

Exit status: 0 when everything evaluable conforms, 1 when something is mismarked or
leaks a priority mark, 2 for a usage error or unreadable input — so an audit can gate
a CI job or a cron check.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from diffserv.cli.arguments import whole_number
from diffserv.cli.position import set_position
from diffserv.cli.report_cmd import add_record_options
from diffserv.directions import BY_OPTION
from diffserv.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        usage=(
            "diffserv audit POLICY SOURCE... [options]\n"
            "       diffserv audit --compare BEFORE AFTER [POLICY] [options]"
        ),
        help="check observed DSCP marks against a policy (captures, records, a flow store)",
        description=(
            "Classify every flow (every packet of a capture) with POLICY's filters and "
            "check the mark it carries against the marks the policy allows for its class. "
            "SOURCE is a pcap/pcapng capture, a flow record file or a flow store. With "
            "--compare, BEFORE and AFTER are two captures of the same traffic on either "
            "side of a hop, and POLICY is optional."
        ),
    )
    parser.add_argument(
        "args", nargs="+", metavar="FILE", help="POLICY SOURCE... (or BEFORE AFTER [POLICY])"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="BEFORE AFTER [POLICY]: match the packets of two captures and report re-marking",
    )
    add_record_options(parser)
    parser.add_argument(
        "--direction",
        choices=sorted(BY_OPTION),
        help="where a capture's packets were seen (as diffserv run --direction)",
    )
    parser.add_argument("--interface", metavar="NAME", help="interface of a classic pcap's packets")
    parser.add_argument(
        "--priority",
        metavar="DSCPS",
        help="marks that leak when unclassified traffic carries them (EF,VA,CS5,CS6,CS7)",
    )
    parser.add_argument(
        "--top", type=whole_number(1), default=10, metavar="N", help="flows per list (10)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the audit as JSON")
    output.add_argument("--html", metavar="FILE", help="write the audit as one HTML page")
    parser.set_defaults(func=run)


def _priority(text: str | None) -> frozenset[int]:
    from diffserv.audit.verdicts import PRIORITY_DSCPS
    from diffserv.codepoints import parse_dscp

    if text is None:
        return PRIORITY_DSCPS
    try:
        return frozenset(parse_dscp(word) for word in text.split(",") if word.strip())
    except ValueError as exc:
        raise UsageError(f"--priority {text}: {exc}") from None


def _policy(path: str) -> Any:
    """The policy at ``path``, its warnings printed (an invalid one: exit 2 via the error)."""
    from diffserv.policy import SYSTEM_HOSTS
    from diffserv.policy.build import load
    from diffserv.policy.diagnostics import format_diagnostic

    policy = load(path, hosts=SYSTEM_HOSTS)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    return policy


def _print(result: dict[str, Any], args: argparse.Namespace, compare: bool) -> None:
    if args.html:
        from diffserv.audit.render import write_audit_html

        write_audit_html(args.html, result, compare=compare)
    elif args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        from diffserv.audit.render import render_audit, render_compare

        (render_compare if compare else render_audit)(result, Console(highlight=False))


def _compare(args: argparse.Namespace) -> int:
    from diffserv.audit.compare import compare_captures
    from diffserv.audit.compare_report import compare_result

    before, after = args.args[0], args.args[1]
    policy = _policy(args.args[2]) if len(args.args) == 3 else None
    if args.filter or args.start or args.end:
        raise UsageError("audit --compare reads two whole captures: no --filter, --from, --to")
    set_position(lambda: f"{before} / {after}")
    comparison = compare_captures(before, after)
    position = BY_OPTION[args.direction] if args.direction else None
    name = args.args[2] if policy is not None else ""
    result = compare_result(comparison, policy, position=position, policy_name=name)
    _print(result, args, compare=True)
    return 0 if result["meta"]["passed"] else 1


def run(args: argparse.Namespace) -> int:
    from diffserv.errors import PolicyFileError

    try:
        return _run(args)
    except PolicyFileError as exc:  # 2, not run's 1: an audit's 1 means "mismarked"
        print(str(exc), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from diffserv.heap import keep_freed_memory

    keep_freed_memory()  # an audit makes megabytes of temporaries per batch
    if args.compare:
        if len(args.args) not in (2, 3):
            raise UsageError("audit --compare: expected BEFORE AFTER [POLICY]")
        return _compare(args)
    if len(args.args) < 2:
        raise UsageError("audit: expected POLICY SOURCE... (a capture, records, a flow store)")
    from diffserv.audit.sources import audit_sources

    policy = _policy(args.args[0])
    set_position(lambda: ", ".join(args.args[1:]))
    result = audit_sources(
        policy,
        args.args[1:],
        filters=args.filter,
        start=args.start,
        end=args.end,
        direction=BY_OPTION[args.direction] if args.direction else None,
        interface=args.interface,
        priority=_priority(args.priority),
        top=args.top,
        policy_name=args.args[0],
    )
    _print(result, args, compare=False)
    return 0 if result["meta"]["passed"] else 1
