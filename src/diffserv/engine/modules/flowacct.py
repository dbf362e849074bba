"""flowacct: per-flow packet and byte accounting with IPQoS semantics on packet time.

The operator owns one flow table (see ``_flow_table``) and hands every expired
item, as it expires, to the session's record sink (``EngineOptions.record_sink``).
Semantics (docs/flows.md, "The flowacct action"):

* key: 5-tuple flow, items under it by (dsfield as marked, projid, uid);
* timer: starts at the first packet this action sees and fires every ``timer`` ms
  of packet time; a sweep runs *before* the first packet whose time reaches a
  deadline, once, at the latest deadline not after that packet (missed deadlines
  have nothing more to expire); ``timer 0`` sweeps before every packet;
* a sweep expires flows, oldest last-seen first, idle for at least ``timeout`` ms;
  all items of a flow go together;
* a new item when the table holds ``max_limit`` items: one try to expire the
  oldest other flow if it timed out at the packet's time, else the packet fails
  (``epackets``, dropped) and changes nothing else;
* end of input writes every remaining flow, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from diffserv.columns import ACTION_DROP, PacketBatch
from diffserv.engine.context import BuildContext
from diffserv.engine.modules import _flow_table as ft
from diffserv.policy.interpret import flowacct_params
from diffserv.policy.model import Action
from diffserv.records import FlowRecords, RecordSink

NS_PER_MS = 1_000_000
INITIAL_CAPACITY = 1024
RECORD_BUFFER = 8192  # expired items collected before they go to the sink


def _pow2_at_least(n: int) -> int:
    size = 1
    while size < n:
        size <<= 1
    return size


class FlowTable:
    """The flow table of one flowacct action, usable without a policy (tests, benchmarks)."""

    def __init__(  # noqa: PLR0917
        self,
        name: str,
        timer_ms: int,
        timeout_ms: int,
        max_limit: int,
        sink: RecordSink | None,
        record_buffer: int = RECORD_BUFFER,
    ) -> None:
        self.name = name
        self.timer_ns = timer_ms * NS_PER_MS
        self.timeout_ns = timeout_ms * NS_PER_MS
        self.max_limit = max_limit
        self.sink = sink
        self.records_written = 0
        self.scalars = ft.new_scalars()
        cap = min(INITIAL_CAPACITY, max_limit + 1)
        self.flows = ft.new_flow_pool(cap)
        self.items = ft.new_item_pool(cap)
        self.scalars[ft.S_FFREE] = ft.link_free_rows(self.flows, 0, ft.F_NEXT)
        self.scalars[ft.S_IFREE] = ft.link_free_rows(self.items, 0, ft.I_NEXT)
        self.index = np.full(_pow2_at_least(2 * cap), ft.EMPTY, np.int64)
        self.out = np.zeros((max(1, record_buffer), ft.OUT_NCOLS), np.int64)

    # -- capacity -------------------------------------------------------------

    def _grow(self) -> None:
        limit = self.max_limit + 1
        if self.scalars[ft.S_FFREE] == ft.EMPTY:
            old = self.flows.shape[0]
            new = min(2 * old, limit) if old < limit else old + 1
            pool = ft.new_flow_pool(new)
            pool[:old] = self.flows
            self.scalars[ft.S_FFREE] = ft.link_free_rows(pool, old, ft.F_NEXT)
            self.flows = pool
            self.index = np.full(_pow2_at_least(2 * new), ft.EMPTY, np.int64)
            ft.rebuild_index(self.flows, self.index, int(self.scalars[ft.S_HEAD]))
        if self.scalars[ft.S_IFREE] == ft.EMPTY:
            old = self.items.shape[0]
            new = min(2 * old, limit) if old < limit else old + 1
            pool = ft.new_item_pool(new)
            pool[:old] = self.items
            self.scalars[ft.S_IFREE] = ft.link_free_rows(pool, old, ft.I_NEXT)
            self.items = pool

    def _drain(self) -> None:
        """Hand the buffered records to the sink; a buffer too small for one flow grows."""
        count = int(self.scalars[ft.S_NOUT])
        if count == 0:
            self.out = np.zeros((2 * self.out.shape[0], ft.OUT_NCOLS), np.int64)
            return
        self.scalars[ft.S_NOUT] = 0
        self.records_written += count
        if self.sink is not None:
            self.sink.write(FlowRecords.from_matrix(self.name, self.out[:count]))

    # -- packets --------------------------------------------------------------

    def account(self, batch: PacketBatch, rows: NDArray[np.int64]) -> NDArray[np.uint8]:
        """Account ``rows`` of ``batch`` in order; return per-row V_PASS/V_FAIL.

        Rows that are not IP, or cut inside their IP header, pass unaccounted; the DS byte
        is the one as marked.
        """
        verdict = np.zeros(rows.shape[0], np.uint8)
        position = 0
        while True:
            status, position = ft.account(
                self.flows,
                self.items,
                self.index,
                self.scalars,
                self.out,
                self.timer_ns,
                self.timeout_ns,
                self.max_limit,
                rows,
                position,
                batch.cols,
                verdict,
            )
            if status == ft.NEED_GROW:
                self._grow()
            elif status == ft.NEED_DRAIN:
                self._drain()
            else:
                break
        if self.scalars[ft.S_NOUT]:
            self._drain()
        return verdict

    def advance(self, now_ns: int) -> None:
        """Time has passed without packets: run the timer as a packet at ``now_ns`` would.

        The sweep is the one that packet would run before being accounted (at the latest
        deadline not after ``now_ns``), so the records are the same ones, in the same
        order, whether time is told by packets alone or also by ``advance``; they only
        come out sooner. Before the first packet there is no timer yet; the table's clock
        never runs backwards.
        """
        s = self.scalars
        if s[ft.S_STARTED] == 0:
            return
        self._sweep_until_done(int(s[ft.S_SWEEP_AT]), pending_only=True)
        now = max(now_ns, int(s[ft.S_CLOCK]))
        s[ft.S_CLOCK] = now
        deadline = int(s[ft.S_DEADLINE])
        if self.timer_ns == 0:
            when = now
        elif now >= deadline:
            when = deadline + ((now - deadline) // self.timer_ns) * self.timer_ns
            s[ft.S_DEADLINE] = when + self.timer_ns
        else:
            return
        self._sweep_until_done(when)

    def _sweep_until_done(self, when: int, *, pending_only: bool = False) -> None:
        s = self.scalars
        if pending_only and s[ft.S_PENDING] == 0:
            return
        if s[ft.S_HEAD] != ft.EMPTY:
            while not ft.sweep(
                self.flows, self.items, self.index, s, self.out, when, self.timeout_ns
            ):
                self._drain()
        s[ft.S_PENDING] = 0
        if s[ft.S_NOUT]:
            self._drain()

    def flush(self) -> None:
        """Write every flow still in the table (end of input)."""
        while not ft.flush_all(self.flows, self.items, self.index, self.scalars, self.out):
            self._drain()
        if self.scalars[ft.S_NOUT]:
            self._drain()

    def counters(self) -> dict[str, int]:
        s = self.scalars
        return {
            "bytes_in_tbl": int(s[ft.S_TBYTES]),
            "nbytes": int(s[ft.S_NBYTES]),
            "npackets": int(s[ft.S_NPACKETS]),
            # every array the table owns: flow and item pools, hash index, record buffer
            "usedmem": int(
                self.flows.nbytes + self.items.nbytes + self.index.nbytes + self.out.nbytes
            ),
            "flows_in_tbl": int(s[ft.S_NITEMS]),
            "epackets": int(s[ft.S_EPACKETS]),
        }


class FlowacctOperator:
    """The compiled flowacct action."""

    module = "flowacct"
    # a policy swap hands an unchanged action its whole flow table (engine.carry)
    state_attributes = ("table",)

    def __init__(self, name: str, next_action: int, table: FlowTable) -> None:
        self.name = name
        self.next_action = next_action
        self.table = table

    def process(self, batch: PacketBatch, idx: NDArray[np.int64]) -> NDArray[np.int32]:
        rows = np.ascontiguousarray(idx, dtype=np.int64)
        result = np.full(rows.shape[0], self.next_action, np.int32)
        if rows.shape[0] == 0:
            return result
        verdict = self.table.account(batch, rows)
        result[verdict == ft.V_FAIL] = ACTION_DROP
        return result

    def advance(self, now_ns: int) -> None:
        self.table.advance(now_ns)

    def finish(self) -> None:
        self.table.flush()

    def counters(self) -> Mapping[str, int]:
        return self.table.counters()


def build(action: Action, ctx: BuildContext) -> FlowacctOperator:
    """The operator for a flowacct action of a validated policy."""
    params = flowacct_params(action)
    table = FlowTable(
        name=action.name,
        timer_ms=params.timer_ms,
        timeout_ms=params.timeout_ms,
        max_limit=params.max_limit,
        sink=ctx.options.record_sink,
    )
    return FlowacctOperator(action.name, ctx.action_id(params.next_action), table)
