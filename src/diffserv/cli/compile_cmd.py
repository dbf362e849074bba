"""``diffserv compile``: a policy as an nftables or iptables ruleset (docs/compile.md).

The policy is read and validated as ``diffserv run`` reads it (a bad policy prints the same
diagnostics as ``diffserv check`` and exits 1). ``--check`` reports, per action, whether
the kernel runs it exactly, approximately (how) or only through the daemon (why); without
it the ruleset is written to standard output or, atomically, to ``-o FILE``. Actions only
the daemon can run make the compile fail unless ``--hybrid`` queues their classes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from diffserv.cli.arguments import whole_number
from diffserv.errors import UsageError
from diffserv.policy.interpret import COS_MODES, DEFAULT_COS_MODE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a policy to an nftables (or iptables) ruleset",
        description="Compile an IPQoS policy to a kernel ruleset that marks at kernel speed.",
    )
    p.add_argument("policy", help="the policy file (- for standard input)")
    p.add_argument("--to", choices=("nft", "iptables"), default="nft", help="the backend")
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="nft only: a script for nft -f (text) or libnftables JSON for nft -j -f",
    )
    p.add_argument("--table", default="diffserv", help="the nft table (inet family) to replace")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (atomically), not stdout")
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="send the classes whose actions need the daemon to NFQUEUE (with bypass)",
    )
    p.add_argument("--queue", type=whole_number(0, 65535), default=0, help="the NFQUEUE number (0)")
    p.add_argument(
        "--queue-via",
        choices=("nft", "mark"),
        default="nft",
        help="nft: nft's queue statement; mark: set a mark bit that a companion iptables "
        "rule queues on (written to FILE.iptables)",
    )
    p.add_argument(
        "--cos-mode",
        choices=COS_MODES,
        default=DEFAULT_COS_MODE,
        help="how dlcosmk's cos becomes the skb priority, as for diffserv live",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="list each action as exact / approximate / needs the daemon instead",
    )
    p.add_argument("--json", action="store_true", help="with --check: the report as JSON")
    p.set_defaults(func=cmd_compile)


def _validate(args: argparse.Namespace) -> None:
    if args.json and not args.check:
        raise UsageError("compile: --json goes with --check (use --format json for the ruleset)")
    if args.format == "json" and args.to != "nft":
        raise UsageError("compile: --format json is for --to nft")
    if args.to == "iptables" and not args.check and not args.output:
        raise UsageError("compile: --to iptables writes two files (FILE, FILE.v6): give -o FILE")
    if args.output is not None and not Path(args.output).parent.is_dir():
        raise UsageError(f"compile: -o {args.output}: no such directory")


def cmd_compile(args: argparse.Namespace) -> int:
    _validate(args)
    from diffserv.cli.outputs import write_text_atomically
    from diffserv.compile.api import compile_policy
    from diffserv.compile.check import check_json, check_text
    from diffserv.compile.nft_build import HybridOptions, check_table_name
    from diffserv.compile.plan import build_plan
    from diffserv.policy import SYSTEM_HOSTS, parse
    from diffserv.policy.build import read_policy
    from diffserv.policy.diagnostics import format_diagnostic

    check_table_name(args.table)
    name, source = read_policy(args.policy, stdin_dash=True)
    policy = parse(source, name, hosts=SYSTEM_HOSTS)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    plan = build_plan(policy, args.cos_mode)
    if args.check:
        print(check_json(plan, args.to) if args.json else check_text(plan, args.to), end="")
        return 0
    hybrid = HybridOptions(args.queue, args.queue_via) if args.hybrid else None
    files = compile_policy(plan, args.to, args.format, args.table, hybrid)
    if args.output is None:
        if len(files) > 1:
            names = ", ".join(f"FILE{suffix}" for suffix, _ in files)
            raise UsageError(f"compile: this writes {len(files)} files ({names}): give -o FILE")
        sys.stdout.write(files[0][1])
        return 0
    for suffix, text in files:
        write_text_atomically(args.output + suffix, text)
    return 0
