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
import ctypes
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from diffserv.cli.arguments import whole_number
from diffserv.cli.interrupts import interrupts_unwind
from diffserv.cli.outputs import (
    AtomicFile,
    NamedPath,
    check_distinct,
    check_writable,
    write_json_atomically,
)
from diffserv.cli.position import set_position
from diffserv.directions import BY_OPTION
from diffserv.errors import (
    DiffservError,
    Interrupted,
    PolicyFileError,
    UsageError,
)
from diffserv.flows.store_layout import is_store_path
from diffserv.policy.interpret import COS_MODES, DEFAULT_COS_MODE, has_accounting, has_marker

if TYPE_CHECKING:
    from diffserv.capture.reader import CaptureReader
    from diffserv.columns import PacketBatch
    from diffserv.engine.stats import SessionStats
    from diffserv.flows.export import Exporter
    from diffserv.flows.writers import RecordWriter
    from diffserv.policy.model import Policy
    from diffserv.records import RecordSink

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
        choices=COS_MODES,
        default=DEFAULT_COS_MODE,
        help="dlcosmk cos → PCP: illumos maps cos 1 and 2 to 0 (default); plain writes cos",
    )
    parser.add_argument(
        "--trace",
        type=_at_least_one,
        default=0,
        metavar="N",
        help="print the path of the first N packets through the policy (class, actions, marks)",
    )
    parser.add_argument(
        "--flows", metavar="FILE", help="write flowacct records (.jsonl, .csv or .parquet)"
    )
    parser.add_argument(
        "--export",
        metavar="URL",
        help="also send flowacct records as they expire: ipfix://HOST:PORT, netflow9://, "
        "netflow5:// or file://PATH.pcap",
    )
    parser.add_argument(
        "--acct",
        choices=("basic", "extended"),
        default="extended",
        help="flow record attribute group (acctadm basic or extended; default extended)",
    )
    # the collector comes back on once started (_settle_for_a_long_run), not before
    parser.set_defaults(func=run, settles_itself=True)


_at_least_one = whole_number()


def _batch_size(text: str) -> int:
    value = _at_least_one(text)
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
    if args.flows and not is_store_path(args.flows):  # a flow store checks its directory
        outputs.append(NamedPath("--flows", args.flows))
    if args.export:  # a bad URL is a usage error before anything is read
        from diffserv.flows.export import parse_export_url

        path = parse_export_url(args.export).path
        if path is not None:
            outputs.append(NamedPath("--export", path))
    return inputs, outputs


class _Outputs(msgspec.Struct):
    """What a run has put on disk so far, for the message when it fails part-way."""

    capture: str
    capture_written: bool = False
    flows: str | None = None
    records: RecordWriter | None = None  # the --flows writer, once it is open
    exporter: Exporter | None = None  # the --export sink, once it is open

    def note(self) -> str:
        """One clause per output: what the user finds on disk after a failure."""
        parts = []
        if self.capture != "-":
            parts.append(f"{self.capture} {'written' if self.capture_written else 'not written'}")
        records = self.records
        # a writer that failed has said what its file keeps in its own error
        if self.flows and self.flows != "-" and not (records is not None and records.failed):
            if records is None or records.removed or not records.records_written:
                parts.append(f"no flow records written to {self.flows}")
            else:
                parts.append(f"{self.flows} keeps {records.records_written:,} flow records")
        return "; ".join(parts)


def _settle_for_a_long_run() -> None:
    """Tune the process for the batch loop that follows (measured on the 2 M-packet run).

    Every object made while starting moves out of the collector's way (``gc.freeze``):
    full collections were walking them again and again (3 % of the run's samples, 1 %
    after). And glibc is asked to keep freed memory instead of returning each large
    block to the kernel: the engine's per-batch temporaries are a hundred kilobytes and
    more, above malloc's mapping threshold, so each was a fresh mapping to fault in and
    zero (page clearing went from 2.5 % of the samples to 1.6 %). What is kept stays
    bounded by one batch's temporaries.
    """
    gc.freeze()
    gc.enable()  # off while starting (cli/main.py): from here on there is garbage to find
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MALLOC_KEEP)
        libc.mallopt(_M_TRIM_THRESHOLD, _MALLOC_KEEP)


_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_MALLOC_KEEP = 32 << 20  # blocks below this come from (and go back to) the heap


def run(args: argparse.Namespace) -> int:
    from diffserv.policy import SYSTEM_HOSTS
    from diffserv.policy.build import load
    from diffserv.policy.diagnostics import format_diagnostic

    inputs, outputs = _named_files(args)
    check_distinct(inputs, outputs)
    check_writable(outputs)
    policy = load(args.policy, hosts=SYSTEM_HOSTS)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    for option, value in (("--flows", args.flows), ("--export", args.export)):
        if value and not has_accounting(policy):
            print(
                f"warning: {option} {value}: the policy has no flowacct action, "
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
    if done.exporter is not None:
        from diffserv.cli.export_cmd import export_warnings

        for line in export_warnings(done.exporter):
            print(f"warning: {line}", file=sys.stderr)
    for number, steps in stats.trace.items():
        print(f"packet {number}: {_trace_line(list(steps))}", file=sys.stderr)
    if not args.quiet:
        from diffserv.cli.report import format_summary

        print(format_summary(stats), file=sys.stderr)
    if stats.input_error is not None:
        # everything before the damage was processed and written; still a failed run
        print(f"error: {stats.input_error}", file=sys.stderr)
        return 2
    return 0


def _run_capture(policy: Policy, args: argparse.Namespace, done: _Outputs) -> SessionStats:
    """Open the input, the flow records and the output, then run the session over them."""
    from diffserv.capture import open_capture
    from diffserv.capture.read_ahead import read_ahead
    from diffserv.engine.context import DEFAULT_SEED, EngineOptions
    from diffserv.engine.session import Labels, Session, drive

    direction = BY_OPTION[args.direction] if args.direction else None
    # a mapped input saves copying it, but every page a marker writes is copied on the
    # fault instead, which costs more: map only when no action rewrites packets
    rewrites = has_marker(policy)
    with open_capture(
        args.input,
        batch_size=args.batch_size,
        interface=args.interface,
        direction=direction,
        use_mmap=not rewrites,
    ) as reader:
        set_position(lambda: f"{reader.name}: near packet {reader.packets + 1}")
        records = _open_records(args, done, policy)
        packets: _CaptureFile | None = None
        try:
            options = EngineOptions(
                seed=DEFAULT_SEED if args.seed is None else args.seed,
                cos_mode=args.cos_mode,
                record_sink=records,
                trace_limit=args.trace,
            )
            labels = Labels(policy=args.policy, input=args.input, output=args.output)
            session = Session(policy, options, labels=labels)
            # the output is created once the policy has compiled, not before
            session.packet_sink = packets = _CaptureFile(args.output, reader, done)
        except BaseException:
            if packets is not None:
                packets.abort()
            if records is not None:
                records.abort()
            raise
        progress = _progress_bar(args, reader.name)
        _settle_for_a_long_run()
        try:
            stats = drive(
                session,
                read_ahead(reader),
                progress=progress.update if progress is not None else None,
            )
        finally:
            if progress is not None:
                progress.stop()
    for warning in reader.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return stats


def _open_records(args: argparse.Namespace, done: _Outputs, policy: Policy) -> RecordSink | None:
    """The run's record sink: the --flows file, the --export target, or both."""
    sinks: list[RecordSink] = []
    callout = BY_OPTION[args.direction] if args.direction else 0
    if args.flows:
        from diffserv.flows.writers import open_record_writer

        done.records = open_record_writer(
            args.flows, args.acct, callout=callout, classes=_classes_of(policy)
        )
        sinks.append(done.records)
    if args.export:
        from diffserv.flows.export import Exporter, FanOut, parse_export_url

        try:
            done.exporter = Exporter(
                parse_export_url(args.export), callout=callout, classes=_classes_of(policy)
            )
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        sinks.append(done.exporter)
        if len(sinks) > 1:
            return FanOut(sinks)
    return sinks[0] if sinks else None


def _classes_of(policy: Policy) -> dict[str, str]:
    """flowacct action -> the one ipgpc class whose packets reach it (exported as its class).

    An action reached from several classes (or none) has no class of its own.
    """
    from diffserv.policy.schema import FLOWACCT, action_references

    by_name = {action.name: action for action in policy.actions}
    reached: dict[str, set[str]] = {}
    for action in policy.actions:
        for klass in action.classes:
            seen: set[str] = set()
            todo = [klass.next_action]
            while todo:
                name = todo.pop()
                target = by_name.get(name)
                if name in seen or target is None or target.classes:
                    continue
                seen.add(name)
                if target.module == FLOWACCT.name:
                    reached.setdefault(name, set()).add(klass.name)
                todo.extend(action_references(target))
    return {name: next(iter(classes)) for name, classes in reached.items() if len(classes) == 1}


class _CaptureFile:
    """The session's packet sink for ``-o``: the capture writer over an atomic file.

    Closing writes the rest and renames the file into place; aborting discards it, so a
    failed or interrupted run never leaves half a capture (``-`` streams to stdout).
    """

    def __init__(self, output: str, reader: CaptureReader, done: _Outputs) -> None:
        from diffserv.capture import CaptureWriter

        self._done = done
        self._target: AtomicFile | None = None
        out: BinaryIO
        if output == "-":
            out = sys.stdout.buffer
        else:
            self._target = AtomicFile(output, direct=True)
            out = self._target.file
        try:
            self._writer = CaptureWriter(
                out, reader.capture_format, name=output if self._target else "standard output"
            )
        except BaseException:
            if self._target is not None:
                self._target.abort()
            raise

    def write(self, batch: PacketBatch) -> None:
        self._writer.write(batch)

    def close(self) -> None:
        self._writer.close()
        if self._target is not None:
            self._target.commit()
        self._done.capture_written = True

    def abort(self) -> None:
        try:
            self._writer.abort()
        finally:
            if self._target is not None:
                self._target.abort()


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


def _write_stats(path: str, stats: SessionStats) -> None:
    write_json_atomically(path, stats.to_json())
