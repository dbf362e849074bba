"""A real engine Session over a real capture, served like the live daemon (for ctl tests).

``CaptureTarget`` implements the control socket's ``Controlled`` protocol with nothing
faked: it runs `diffserv run`'s machinery (``open_capture`` → ``Session``) over a capture
the test wrote, and keeps the session open, as a daemon between batches would be.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from diffserv.capture import open_capture
from diffserv.engine.carry import Swap
from diffserv.engine.context import EngineOptions
from diffserv.engine.session import Labels, Session
from diffserv.engine.stats import SessionStats
from diffserv.policy.build import check
from diffserv.policy.model import Policy
from support.synth import Packet, simple_frame, write_pcap

POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify

	class {
		name web
		next_action meter
	}

	class {
		name voice
		next_action ef
	}

	filter {
		name www
		class web
		dport 80
	}

	filter {
		name rtp
		class voice
		protocol udp
		dport 5004
	}
}

action {
	module tokenmt
	name meter

	params {
		committed_rate 800000
		committed_burst 16000
		red_action_name drop
		green_action_name af
	}
}

action {
	module dscpmk
	name af

	params {
		dscp_map {
			0-63:10
		}
		next_action continue
	}
}

action {
	module dscpmk
	name ef

	params {
		dscp_map {
			0-63:46
		}
		next_action continue
	}
}
"""


def write_traffic(path: Path, count: int = 200) -> str:
    """Web, voice and other packets 1 ms apart: enough web to turn the meter red."""
    packets: list[Packet] = []
    base = 1_700_000_000_000_000_000
    for i in range(count):
        kind = i % 4
        if kind in {0, 1}:
            frame = simple_frame(dport=80, payload_len=900)
        elif kind == 2:
            frame = simple_frame(proto="udp", dport=5004, payload_len=160)
        else:
            frame = simple_frame(dport=22, payload_len=60, version=6)
        packets.append(Packet(frame, ts_ns=base + i * 1_000_000))
    return write_pcap(path, packets, nanosecond=True)


def parse_policy(text: str, name: str) -> Policy:
    result = check(text, name)
    assert result.policy is not None, result.diagnostics
    return result.policy


class CaptureTarget:
    """A Session that has processed a capture and stays open: the daemon's stand-in."""

    def __init__(self, policy_path: str, capture: str, output: str = "-") -> None:
        self.text = Path(policy_path).read_text()
        self.policy = parse_policy(self.text, policy_path)
        self.session = Session(
            self.policy,
            EngineOptions(rewrite_packets=False),
            labels=Labels(policy=policy_path, input=capture, output=output),
        )
        self.capture = capture
        self._lock = threading.Lock()
        self.stopped = threading.Event()
        self.on_stop: list[Callable[[], None]] = []  # a daemon closes its socket on stop
        self.feed()

    def feed(self) -> None:
        """Run the capture (again) through the session, one batch at a time."""
        with self._lock, open_capture(self.capture, batch_size=64) as reader:
            for batch in reader:
                self.session.process(batch)

    def snapshot(self) -> SessionStats:
        with self._lock:
            return self.session.stats()

    def running_policy(self) -> tuple[Policy, str]:
        with self._lock:
            return self.policy, self.text

    def replace_policy(self, policy: Policy, text: str) -> Swap:
        with self._lock:
            swap = self.session.replace_policy(policy)
            self.policy, self.text = policy, text
            return swap

    def stop(self) -> None:
        self.stopped.set()
        for callback in self.on_stop:
            callback()


def private_dir(tmp_path: Path) -> Path:
    """A directory for a control socket: root's, mode 0700 (tmp_path may be shared)."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    return directory
