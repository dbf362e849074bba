"""The offline run loop: packet source → action graph → rewrite → sink, one batch at a time.

Kept apart from the CLI so tests, benchmarks and other front ends drive exactly the same
loop. The source and sink are duck-typed (an iterable of PacketBatch; an object with
``write(batch)`` and ``close()``), so the loop never knows where packets come from. Each
batch is written before the next is requested: the reader reuses its buffer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from diffserv.columns import ACTION_DEFER, ACTION_DROP, PacketBatch
from diffserv.engine.graph import ActionGraph
from diffserv.engine.stats import DscpTransitions, RunInfo, run_stats

# progress(packets_done, elapsed_seconds)
ProgressCallback = Callable[[int, float], None]


class BatchSink(Protocol):
    """Where processed batches go (``capture.CaptureWriter`` is one).

    ``abort`` is called instead of ``close`` when the run fails or is interrupted: it
    must stop promptly and release every buffer it holds of the source.
    """

    def write(self, batch: PacketBatch) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class RunResult:
    """What a finished run produced: the statistics document and the compiled graph."""

    stats: dict[str, Any]
    graph: ActionGraph


def _apply_marks(batch: PacketBatch) -> None:
    from diffserv.packet.rewrite import apply_marks

    apply_marks(batch)


def run_batches(
    graph: ActionGraph,
    source: Iterable[PacketBatch],
    sink: BatchSink | None,
    *,
    input_name: str = "",
    output_name: str = "",
    progress: ProgressCallback | None = None,
    rewrite: Callable[[PacketBatch], None] = _apply_marks,
) -> RunResult:
    """Run every batch of ``source`` through ``graph`` into ``sink``; then flush and close.

    Deferred packets leave the output like dropped ones (no IPQoS module ever re-injects
    them); they are counted apart in the statistics. When anything fails or the run is
    interrupted, the sink is aborted first (it may hold buffers the source waits for) and
    then the source is closed, so no helper thread of either is left waiting.
    """
    start = time.perf_counter()
    transitions = DscpTransitions()
    written = 0
    done = 0
    try:
        for batch in source:
            if batch.n:
                graph.run(batch)
                transitions.update(batch)
                deferred = batch.cols.action == ACTION_DEFER
                if deferred.any():
                    batch.cols.action[deferred] = ACTION_DROP
                rewrite(batch)
                written += batch.n - int(np.count_nonzero(batch.cols.action == ACTION_DROP))
                done += batch.n
            if sink is not None:
                sink.write(batch)
            if progress is not None:
                progress(done, time.perf_counter() - start)
        graph.finish()
        if sink is not None:
            sink.close()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
    info = RunInfo(
        input=input_name,
        output=output_name,
        elapsed_s=time.perf_counter() - start,
        written=written,
    )
    return RunResult(stats=run_stats(graph, info, transitions), graph=graph)
