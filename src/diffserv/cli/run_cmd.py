"""`diffserv run`: apply an IPQoS policy to a capture file and write the marked capture.

The output keeps the input's format and every byte of it, except the DS bytes, IPv4
checksums and 802.1Q PCP bits the policy rewrites; dropped packets are left out. The file
is written next to the target under a temporary name and renamed at the end, so a failed
or interrupted run never leaves a half-written capture behind and never damages the file
it would have replaced (``-o -`` streams to standard output). No output may be an input
or another output. When a run fails part-way, its message says what was and was not
written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from diffserv.cli.interrupts import interrupts_unwind
from diffserv.cli.outputs import (
    AtomicFile,
    NamedPath,
    check_distinct,
    check_writable,
    write_text_atomically,
)
from diffserv.cli.position import set_position
from diffserv.directions import BY_OPTION
from diffserv.errors import (
    DiffservError,
    InputDataError,
    Interrupted,
    PolicyFileError,
    UsageError,
)

if TYPE_CHECKING:
    from diffserv.columns import PacketBatch

REWRITING_MODULES = frozenset({"dscpmk", "dlcosmk"})  # the actions that write packet bytes
PROGRESS_AFTER_S = 0.5  # the progress line appears only once a run has taken this long
MAX_BATCH_SIZE = 1 << 20  # rows of one batch: its columns take ~100 bytes a packet, twice


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="apply a policy to a pcap/pcapng capture and write the marked capture",
        description=(
            "Classify, meter, mark and account every packet of INPUT with the IPQoS "
            "policy POLICY, writing the result in the input's own format."
        ),
        epilog=(
            "example: diffserv run edge.conf wan.pcapng -o marked.pcapng --direction fwd-out "
            "--stats stats.json.  Exit status: 0 success, 1 invalid policy, "
            "2 usage error or unreadable capture."
        ),
    )
    parser.add_argument("policy", metavar="POLICY", help="ipqosconf policy file")
    parser.add_argument("input", metavar="INPUT", help="pcap or pcapng capture ('-' = stdin)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="output capture ('-' = stdout)"
    )
    parser.add_argument("--stats", metavar="FILE.json", help="write every counter as JSON")
    parser.add_argument(
        "--direction",
        choices=sorted(BY_OPTION),
        help="callout position of every packet (default: from the capture, else local-out)",
    )
    parser.add_argument(
        "--interface", metavar="NAME", help="interface name of a classic pcap file's packets"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress")
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=65536,
        metavar="N",
        help=f"packets per batch (default 65536, at most {MAX_BATCH_SIZE}; results never "
        "depend on it)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of tswtclmt's random source (default fixed, so runs are reproducible)",
    )
    parser.add_argument(
        "--cos-mode",
        choices=("illumos", "plain"),
        default="illumos",
        help="dlcosmk cos → PCP: illumos maps cos 1 and 2 to 0 (default); plain writes cos",
    )
    parser.add_argument(
        "--trace",
        type=_positive,
        default=0,
        metavar="N",
        help="print the path of the first N packets through the policy (class, actions, marks)",
    )
    parser.add_argument(
        "--flows", metavar="FILE", help="write flowacct records (.jsonl, .csv or .parquet)"
    )
    parser.add_argument(
        "--acct",
        choices=("basic", "extended"),
        default="extended",
        help="flow record attribute group (acctadm basic or extended; default extended)",
    )
    parser.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _batch_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(
            f"{value} is more than the largest batch, {MAX_BATCH_SIZE:,} packets"
        )
    return value


def _named_files(args: argparse.Namespace) -> tuple[list[NamedPath], list[NamedPath]]:
    inputs = [NamedPath("the policy", args.policy), NamedPath("the input capture", args.input)]
    outputs = [NamedPath("-o", args.output)]
    if args.stats:
        outputs.append(NamedPath("--stats", args.stats))
    if args.flows:
        outputs.append(NamedPath("--flows", args.flows))
    return inputs, outputs


@dataclass(slots=True)
class _Outputs:
    """What a run has put on disk so far, for the message when it fails part-way."""

    capture: str
    capture_written: bool = False
    flows: str | None = None
    flow_records: int = 0
    flows_removed: bool = False

    def note(self) -> str:
        """One clause per output: what the user finds on disk after a failure."""
        parts = []
        if self.capture != "-":
            parts.append(f"{self.capture} {'written' if self.capture_written else 'not written'}")
        if self.flows and self.flows != "-":
            if self.flows_removed or not self.flow_records:
                parts.append(f"no flow records written to {self.flows}")
            else:
                parts.append(f"{self.flows} keeps {self.flow_records:,} flow records")
        return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    from diffserv.policy.build import load
    from diffserv.policy.diagnostics import format_diagnostic

    inputs, outputs = _named_files(args)
    check_distinct(inputs, outputs)
    check_writable(outputs)
    policy = load(args.policy)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    if args.flows and not any(action.module == "flowacct" for action in policy.actions):
        print(
            f"warning: --flows {args.flows}: the policy has no flowacct action, "
            "so no flow records will be written",
            file=sys.stderr,
        )
    done = _Outputs(capture=args.output, flows=args.flows)
    try:
        with interrupts_unwind():
            stats = _run_capture(policy, args, done)
            if args.stats:
                _write_stats(args.stats, stats)
    except (DiffservError, Interrupted) as exc:
        note = done.note()
        if note and not isinstance(exc, (PolicyFileError, UsageError)):
            exc.add_note(note)
        raise
    set_position(None)  # kept on failure: the top level reports an internal error's place
    if not args.quiet:
        from diffserv.cli.report import format_summary

        print(format_summary(stats), file=sys.stderr)
    if "input_error" in stats:
        # everything before the damage was processed and written; still a failed run
        print(f"error: {stats['input_error']}", file=sys.stderr)
        return 2
    return 0


def _run_capture(policy: Any, args: argparse.Namespace, done: _Outputs) -> dict[str, Any]:
    """Open the input, then the flow records, compile, run; a failure removes what it made."""
    from diffserv.capture import open_capture

    direction = BY_OPTION[args.direction] if args.direction else None
    # a mapped input saves copying it, but every page a marker writes is copied on the
    # fault instead, which costs more: map only when no action rewrites packets
    rewrites = any(action.module in REWRITING_MODULES for action in policy.actions)
    with open_capture(
        args.input,
        batch_size=args.batch_size,
        interface=args.interface,
        direction=direction,
        use_mmap=not rewrites,
    ) as reader:
        set_position(lambda: f"{reader.name}: near packet {reader.counters.packets + 1}")
        if not args.flows:
            return _run_opened(policy, reader, None, args, done)
        from diffserv.flows.writers import open_record_writer

        existed = os.path.exists(args.flows)
        flow_sink = open_record_writer(args.flows, args.acct)
        try:
            stats = _run_opened(policy, reader, flow_sink, args, done)
        except BaseException:
            # records of flows that ended before a failure or an interrupt are real: they
            # stay; a file that got no record at all is not left behind
            with contextlib.suppress(DiffservError):
                flow_sink.close()
            _note_flows(done, flow_sink)
            if not flow_sink.records_written and not existed:
                with contextlib.suppress(OSError):
                    os.unlink(args.flows)
                done.flows_removed = True
            raise
        try:
            flow_sink.close()
        finally:
            _note_flows(done, flow_sink)
        return stats


def _note_flows(done: _Outputs, flow_sink: Any) -> None:
    """Record what the flow file keeps; a writer that failed has said so in its own error."""
    done.flow_records = flow_sink.records_written
    if flow_sink.failed:
        done.flows = None


def _run_opened(
    policy: Any, reader: Any, flow_sink: Any, args: argparse.Namespace, done: _Outputs
) -> dict[str, Any]:
    from diffserv.capture import CaptureWriter
    from diffserv.capture.read_ahead import read_ahead
    from diffserv.engine.context import DEFAULT_SEED, EngineOptions
    from diffserv.engine.graph import compile_policy
    from diffserv.engine.pipeline import run_batches

    options = EngineOptions(
        seed=DEFAULT_SEED if args.seed is None else args.seed,
        cos_mode=args.cos_mode,
        flow_sink=flow_sink,
    )
    graph = compile_policy(policy, options)
    graph.trace_limit = args.trace
    target: AtomicFile | None = None
    out: BinaryIO
    if args.output == "-":
        out = sys.stdout.buffer
    else:
        target = AtomicFile(args.output, direct=True)
        out = target.file
    progress = _progress_bar(args, reader.name)
    cut_short: list[InputDataError] = []
    try:
        writer = CaptureWriter(out, reader, name=args.output if target else "standard output")
        result = run_batches(
            graph,
            _until_input_error(read_ahead(reader), cut_short),
            writer,
            input_name=args.input,
            output_name=args.output,
            progress=progress.update if progress is not None else None,
        )
        if target is not None:
            target.commit()
    except BaseException:
        if target is not None:
            target.abort()
        raise
    finally:
        if progress is not None:
            progress.stop()
    done.capture_written = True
    stats = {"policy": args.policy, **result.stats}
    stats.update(reader.counters.as_stats())
    if cut_short:
        stats["input_error"] = str(cut_short[0])
    if args.trace:
        stats["trace"] = {str(number): steps for number, steps in sorted(graph.trace.items())}
        for number, steps in sorted(graph.trace.items()):
            print(f"packet {number}: {_trace_line(steps)}", file=sys.stderr)
    for warning in reader.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return stats


def _until_input_error(
    batches: Iterator[PacketBatch], errors: list[InputDataError]
) -> Iterator[PacketBatch]:
    """Stop at broken input, keeping the error: what was read before it is still written."""
    try:
        yield from batches
    except InputDataError as exc:
        errors.append(exc)


def _trace_line(steps: list[str]) -> str:
    """``head: class web → markAF11 → continue; DS 0x00 → 0x28`` from a graph trace."""
    if len(steps) < 3:
        return "; ".join(steps)
    path = " → ".join(steps[1:-1])
    return f"{steps[0]}: {path}; {steps[-1]}"


class _Progress:
    """A rich progress line on stderr (packets, packets/s), started once a run takes a while."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._bar: Any = None
        self._task: Any = None

    def update(self, packets: int, elapsed: float) -> None:
        if self._bar is None:
            if elapsed < PROGRESS_AFTER_S:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[packets]:>12,} packets  {task.fields[rate]:>12} pkt/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(self.name, total=None, packets=0, rate="")
            self._bar.start()
        rate = f"{packets / elapsed:,.0f}" if elapsed > 0 else ""
        self._bar.update(self._task, packets=packets, rate=rate)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _progress_bar(args: argparse.Namespace, name: str) -> _Progress | None:
    if args.quiet or not sys.stderr.isatty():
        return None
    return _Progress(os.path.basename(name))


def _write_stats(path: str, stats: dict[str, Any]) -> None:
    text = json.dumps(stats, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    write_text_atomically(path, text)
