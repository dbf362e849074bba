"""`diffserv live`: run a policy on this host's traffic through NFQUEUE until stopped.

The policy is checked exactly as ``diffserv check`` checks it (same diagnostics, exit
status 1); then the daemon binds the queue, installs its iptables rules and runs until
SIGTERM, SIGINT or SIGHUP, when it removes exactly the rules it installed, gives every
queued packet its verdict, writes the last flow records and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from diffserv.cli.arguments import firewall_mark, whole_number
from diffserv.errors import UsageError
from diffserv.policy.interpret import COS_MODES, DEFAULT_COS_MODE, has_accounting

_queue_number = whole_number(0, 65535)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "live",
        help="apply a policy to this host's live traffic (NFQUEUE; needs root)",
        description=(
            "Classify, meter, mark and account the packets this host receives, sends and "
            "forwards with the IPQoS policy POLICY, through netfilter queue N."
        ),
        epilog=(
            "example: diffserv live edge.conf --flows /var/lib/diffserv/flows "
            "--stats-socket /run/diffserv.sock.  Exit status: 0 stopped by a signal, "
            "1 invalid policy, 2 usage error or the host refused (not root, queue busy, "
            "iptables failed)."
        ),
    )
    parser.add_argument("policy", metavar="POLICY", help="ipqosconf policy file")
    parser.add_argument(
        "--queue", type=_queue_number, default=0, metavar="N", help="netfilter queue (default 0)"
    )
    parser.add_argument(
        "--queue-mark",
        type=firewall_mark,
        metavar="MARK",
        help="queue only packets whose firewall mark has these bits (the kernel handles the "
        "rest: `diffserv compile --hybrid --queue-via mark`)",
    )
    parser.add_argument(
        "--no-queue-rules",
        action="store_true",
        help="install no queue rules: something else queues to N (a compiled nftables "
        "table's queue statement, `diffserv compile --hybrid`)",
    )
    parser.add_argument(
        "--flows",
        metavar="DIR",
        help="write flowacct records as flows expire: a flow store directory (or a "
        ".jsonl/.csv/.parquet file)",
    )
    parser.add_argument(
        "--export",
        metavar="URL",
        help="send flowacct records as they expire: ipfix://HOST:PORT, netflow9://, netflow5://",
    )
    parser.add_argument(
        "--metrics", metavar="ADDR", help="Prometheus endpoint, e.g. 127.0.0.1:9464"
    )
    parser.add_argument(
        "--stats-socket",
        metavar="PATH",
        help="control socket for `diffserv stat` and ipqosconf (root only, mode 0600)",
    )
    parser.add_argument(
        "--cos-mode",
        choices=COS_MODES,
        default=DEFAULT_COS_MODE,
        help="dlcosmk cos → priority: illumos maps cos 1 and 2 to 0 (default); plain writes cos",
    )
    parser.add_argument(
        "--acct",
        choices=("basic", "extended"),
        default="extended",
        help="flow record attribute group (default extended)",
    )
    parser.add_argument(
        "--stats", metavar="FILE.json", help="at exit, write every counter as JSON (as run does)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary at exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffserv.cli.run_cmd import _classes_of
    from diffserv.live.daemon import LiveDaemon
    from diffserv.policy import SYSTEM_HOSTS
    from diffserv.policy.build import load, read_policy_text
    from diffserv.policy.diagnostics import format_diagnostic

    if args.no_queue_rules and args.queue_mark is not None:
        raise UsageError("--queue-mark and --no-queue-rules: choose one")
    text = read_policy_text(args.policy)
    policy = load(args.policy, hosts=SYSTEM_HOSTS)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    if args.export:
        from diffserv.flows.export import parse_export_url

        if parse_export_url(args.export).path is not None:
            raise UsageError(f"--export {args.export}: a live daemon exports to a collector")
    for option, value in (("--flows", args.flows), ("--export", args.export)):
        if value and not has_accounting(policy):
            print(
                f"warning: {option} {value}: the policy has no flowacct action, "
                "so no flow records will be written",
                file=sys.stderr,
            )
    daemon = LiveDaemon(
        policy,
        text,
        queue=args.queue,
        queue_mark=args.queue_mark,
        install_rules=not args.no_queue_rules,
        flows_dir=args.flows,
        export_url=args.export,
        metrics=args.metrics,
        stats_socket=args.stats_socket,
        policy_name=args.policy,
        acct=args.acct,
        cos_mode=args.cos_mode,
        classes=_classes_of(policy),
    )
    print(f"diffserv live: {args.policy} on queue {args.queue}", file=sys.stderr, flush=True)
    stats = daemon.run()
    if args.stats:
        from diffserv.cli.outputs import write_json_atomically

        write_json_atomically(args.stats, stats.to_json())
    if not args.quiet:
        from diffserv.cli.report import format_summary

        print(format_summary(stats), file=sys.stderr)
        q = daemon.last_queue_stats
        if q is not None:
            print(
                f"  queue {q.queue}: {q.packets:,} packets in {q.receives:,} receives; "
                f"verdicts: {q.rewritten:,} rewritten, {q.dropped:,} dropped, "
                f"{q.priority_set:,} with a priority, {q.batch_verdicts:,} batch accepts; "
                f"{q.malformed_messages:,} malformed messages, "
                f"{q.socket_overflows:,} socket overflows (failed open)",
                file=sys.stderr,
            )
    return 0
