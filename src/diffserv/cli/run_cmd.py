"""`diffserv run`: apply an IPQoS policy to a capture file and write the marked capture.

The output keeps the input's format and every byte of it, except the DS bytes, IPv4
checksums and 802.1Q PCP bits the policy rewrites; dropped packets are left out. The file
is written next to the target under a temporary name and renamed at the end, so a failed
run never leaves a half-written capture behind (``-o -`` streams to standard output).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from diffserv.errors import HostSystemError, InputDataError, UsageError

if TYPE_CHECKING:
    from diffserv.engine.batch import PacketBatch

DIRECTIONS = {"local-in": 0x01, "local-out": 0x02, "fwd-in": 0x04, "fwd-out": 0x08}
REWRITING_MODULES = frozenset({"dscpmk", "dlcosmk"})  # the actions that write packet bytes
PROGRESS_AFTER_S = 0.5  # the progress line appears only once a run has taken this long


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
        choices=sorted(DIRECTIONS),
        help="callout position of every packet (default: from the capture, else local-out)",
    )
    parser.add_argument(
        "--interface", metavar="NAME", help="interface name of a classic pcap file's packets"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=65536,
        metavar="N",
        help="packets per batch (default 65536; results never depend on it)",
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


class _AtomicOutput:
    """A binary file created next to ``target`` and renamed onto it only by ``commit``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.tmp = ""
        if _is_special_file(target):
            # /dev/null, a FIFO, a terminal: write straight to it, never rename over it
            try:
                self.file: BinaryIO = open(target, "wb", buffering=1 << 20)  # noqa: SIM115
            except OSError as exc:
                raise HostSystemError(f"cannot open {target}: {exc.strerror or exc}") from None
            return
        directory = os.path.dirname(os.path.abspath(target))
        try:
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(target)}.", suffix=".part", dir=directory
            )
        except OSError as exc:
            raise HostSystemError(f"cannot create {target}: {exc.strerror or exc}") from None
        from diffserv.capture.direct_io import DirectWriter

        self.file = DirectWriter(self.tmp, fd)  # type: ignore[assignment]

    def commit(self) -> None:
        self.file.close()
        if not self.tmp:
            return
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise HostSystemError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        if self.tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def _is_special_file(path: str) -> bool:
    """True for an existing target that is not a regular file (a device, FIFO or socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def run(args: argparse.Namespace) -> int:
    from diffserv.policy.build import load
    from diffserv.policy.diagnostics import format_diagnostic

    policy = load(args.policy)
    for warning in policy.warnings:
        print(format_diagnostic(warning), file=sys.stderr)
    if args.output != "-" and args.input != "-" and _same_file(args.output, args.input):
        raise UsageError("the output file must not be the input file")
    if args.output == "-" and "-" in (args.flows, args.stats):
        raise UsageError("-o - writes the capture to standard output: --stats/--flows need a file")
    if args.flows and not any(action.module == "flowacct" for action in policy.actions):
        print(
            f"warning: --flows {args.flows}: the policy has no flowacct action, "
            "so no flow records will be written",
            file=sys.stderr,
        )

    stats = _run_capture(policy, args)
    if args.stats:
        _write_stats(args.stats, stats)
    if not args.quiet:
        from diffserv.cli.report import format_summary

        print(format_summary(stats), file=sys.stderr)
    if "input_error" in stats:
        # everything before the damage was processed and written; still a failed run
        print(f"error: {stats['input_error']}", file=sys.stderr)
        return 2
    return 0


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _run_capture(policy: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Open the input, then the flow records, compile, run; a failure removes what it made."""
    from diffserv.capture import open_capture

    direction = DIRECTIONS[args.direction] if args.direction else None
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
        if not args.flows:
            return _run_opened(policy, reader, None, args)
        from diffserv.flows.writers import open_record_writer

        existed = os.path.exists(args.flows)
        flow_sink = open_record_writer(args.flows, args.acct)
        try:
            stats = _run_opened(policy, reader, flow_sink, args)
        except Exception:  # bad input or policy: no records of a run that did not happen
            flow_sink.close()
            if not existed:
                with contextlib.suppress(OSError):
                    os.unlink(args.flows)
            raise
        finally:  # an interrupted run keeps the records of the flows that already expired
            flow_sink.close()
        return stats


def _run_opened(
    policy: Any, reader: Any, flow_sink: Any, args: argparse.Namespace
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
    target: _AtomicOutput | None = None
    out: BinaryIO
    if args.output == "-":
        out = sys.stdout.buffer
    else:
        target = _AtomicOutput(args.output)
        out = target.file
    progress = _progress_bar(args, reader.name)
    previous = _terminate_as_exit()
    cut_short: list[InputDataError] = []
    try:
        writer = CaptureWriter(out, reader)
        result = run_batches(
            graph,
            _until_input_error(read_ahead(reader), cut_short),
            writer,
            input_name=args.input,
            output_name=args.output,
            progress=progress.update if progress is not None else None,
        )
    except BaseException:
        if target is not None:
            target.abort()
        raise
    finally:
        _restore_signals(previous)
        if progress is not None:
            progress.stop()
    if target is not None:
        target.commit()
    stats = {"policy": args.policy, **result.stats}
    stats["truncated"] = reader.counters.truncated
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


def _terminate_as_exit() -> dict[int, Any]:
    """Make SIGTERM/SIGHUP unwind like Ctrl-C, so the temporary output is removed."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[signum] = signal.signal(signum, _exit)
        except ValueError:  # not the main thread (embedded use): leave signals alone
            break
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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
    try:
        out: IO[str]
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise HostSystemError(f"cannot write {path}: {exc.strerror or exc}") from None
