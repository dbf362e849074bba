"""What an operator factory gets besides its Action: ids of other actions and run options."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from diffserv.columns import ACTION_CONTINUE, ACTION_DEFER, ACTION_DROP
from diffserv.policy.interpret import DEFAULT_COS_MODE
from diffserv.policy.model import CONTINUE, DEFER, DROP
from diffserv.records import RecordSink

DEFAULT_SEED = 20260101  # tswtclmt's random source; fixed so runs are reproducible

VIRTUAL_ACTION_IDS: Mapping[str, int] = {
    CONTINUE: ACTION_CONTINUE,
    DEFER: ACTION_DEFER,
    DROP: ACTION_DROP,
}


class EngineOptions(msgspec.Struct, frozen=True):
    """Knobs of one session that are not part of the policy."""

    seed: int = DEFAULT_SEED
    # "illumos": cos 1 and 2 write PCP 0 as the shipped dlcosmk maps do; "plain": cos = PCP
    cos_mode: str = DEFAULT_COS_MODE
    # where flowacct's expired records go; None = they are counted, not kept
    record_sink: RecordSink | None = None
    # the path of the first ``trace_limit`` packets (by number) is kept for the statistics
    trace_limit: int = 0
    # write the marks into the packet bytes (False: the columns only, for sources without
    # packet bytes, such as flow records being audited)
    rewrite_packets: bool = True
    # dlcosmk marks untagged outbound frames too: the packet sink carries the CoS out of
    # band (NFQUEUE verdicts set skb->priority; a VLAN egress-qos-map makes it the PCP)
    cos_untagged: bool = False


class BuildContext(msgspec.Struct, frozen=True):
    """Handed to every module factory while the action graph is compiled."""

    action_ids: Mapping[str, int]
    options: EngineOptions

    def action_id(self, name: str) -> int:
        """Id of a real action (>= 0) or of a virtual one (ACTION_CONTINUE/DROP/DEFER)."""
        if name in VIRTUAL_ACTION_IDS:
            return VIRTUAL_ACTION_IDS[name]
        return self.action_ids[name]
