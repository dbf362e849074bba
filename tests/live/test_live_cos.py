"""dlcosmk on a live data plane: the CoS travels out of band (the verdict's skb priority),
so untagged outbound packets get it too; captures keep marking tagged frames only."""

from __future__ import annotations

import pytest

from diffserv.columns import UNCHANGED
from diffserv.directions import FWD_OUT, LOCAL_IN, LOCAL_OUT
from diffserv.engine.context import EngineOptions
from diffserv.engine.session import Session
from diffserv.packet.decode import decode_frames
from diffserv.packet.linktypes import LINKTYPE_RAW
from diffserv.policy.build import parse
from support import synth

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name default
		next_action cos
	}
}
action {
	module dlcosmk
	name cos
	params {
		cos 6
		next_action continue
	}
}
"""


@pytest.mark.parametrize("untagged", [True, False])
def test_untagged_outbound_packets_get_the_cos_only_out_of_band(untagged: bool) -> None:
    frame = synth.ipv4("10.99.1.1", "10.99.2.2", synth.udp(1, 2, b"x"))
    batches = [
        decode_frames([frame], LINKTYPE_RAW, direction=d) for d in (LOCAL_OUT, FWD_OUT, LOCAL_IN)
    ]
    session = Session(parse(POLICY, "cos.conf"), EngineOptions(cos_untagged=untagged))
    for batch in batches:
        before = batch.buf.tobytes()
        session.process(batch)
        assert batch.buf.tobytes() == before  # no tag: no byte of the packet changes
    pcp = [int(b.cols.new_pcp[0]) for b in batches]
    assert pcp == ([6, 6, UNCHANGED] if untagged else [UNCHANGED] * 3)
    counters = session.close().actions["cos"].counters
    assert counters["npackets"] == 3
    assert counters["ipackets"] == (1 if untagged else 3)
