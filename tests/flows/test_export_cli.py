"""Export URLs, `diffserv export` and `run --export`: what users type and what they are told."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffserv.cli.main import main
from diffserv.cli.run_cmd import _classes_of
from diffserv.errors import UsageError
from diffserv.flows.datagram_capture import iter_datagrams
from diffserv.flows.export import Exporter, ExportTarget, FanOut, parse_export_url
from diffserv.policy.build import load
from diffserv.records import FlowRecords, parse_address
from support import synth
from support.policies import account_everything
from support.tools import require_tool, unavailable

POLICY = account_everything(timeout_ms=60_000, max_limit=1000)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ipfix://127.0.0.1:4739", ExportTarget("", "ipfix", "127.0.0.1", 4739)),
        ("ipfix://collector.example", ExportTarget("", "ipfix", "collector.example", 4739)),
        ("netflow9://10.0.0.1", ExportTarget("", "netflow9", "10.0.0.1", 2055)),
        ("NETFLOW5://10.0.0.1:9996", ExportTarget("", "netflow5", "10.0.0.1", 9996)),
        ("ipfix://[::1]:4740", ExportTarget("", "ipfix", "::1", 4740)),
        ("ipfix://[2001:db8::1]", ExportTarget("", "ipfix", "2001:db8::1", 4739)),
        ("ipfix://h:1?mtu=9000&domain=7", ExportTarget("", "ipfix", "h", 1, mtu=9000, domain=7)),
        ("file:///tmp/x.pcap", ExportTarget("", "ipfix", path="/tmp/x.pcap")),
        ("file://out.pcap?format=netflow9", ExportTarget("", "netflow9", path="out.pcap")),
        ("file://a%20b.pcap?format=NetFlow5", ExportTarget("", "netflow5", path="a b.pcap")),
    ],
)
def test_urls_parse(url: str, expected: ExportTarget) -> None:
    got = parse_export_url(url)
    assert got == ExportTarget(
        url, *[getattr(expected, f) for f in ExportTarget.__struct_fields__[1:]]
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("127.0.0.1:4739", "want SCHEME://"),
        ("sflow://127.0.0.1:6343", "unknown scheme 'sflow'"),
        ("ipfix://", "no host"),
        ("ipfix://:4739", "no host"),
        ("ipfix://127.0.0.1:", "empty port"),
        ("ipfix://127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("ipfix://127.0.0.1:70000", "port must be"),
        ("ipfix://127.0.0.1:47x9", "port must be"),
        ("ipfix://::1:4739", "in brackets"),
        ("ipfix://[::1:4739", "missing ']'"),
        ("ipfix://[10.0.0.1]:4739", "not an IPv6 address"),
        ("ipfix://[::1]x", "want [IPv6]:PORT"),
        ("ipfix://host:1/path", "only HOST:PORT"),
        ("ipfix://host:1?format=netflow9", "format= is for file://"),
        ("file://", "no file name"),
        ("file://x.pcap?format=sflow", "unknown format 'sflow'"),
        ("file://x.pcap?colour=red", "unknown option 'colour'"),
        ("file://x.pcap?mtu=100", "mtu must be a number from 576"),
        ("ipfix://h?domain=-1", "domain must be"),
        ("ipfix://h?mtu=600&mtu=700", "given twice"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_export_url(url)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def one_line_error(capsys: pytest.CaptureFixture[str], status: int) -> str:
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows.jsonl"
    path.write_text(
        '{"saddr":"10.0.0.1","daddr":"10.0.0.2","sport":1,"dport":2,"protocol":17,'
        '"npackets":3,"nbytes":300,"action":"acct","dsfield":184,"dscp":46,"ecn":0,'
        '"first_seen":"2026-01-01T00:00:00.5Z","last_seen":"2026-01-01T00:00:01Z",'
        '"projid":null,"uid":null}\n'
    )
    return path


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sflow://127.0.0.1", "unknown scheme"),
        ("ipfix://no-such-host.invalid:4739", "cannot resolve"),
        ("ipfix//127.0.0.1", "want SCHEME://"),
    ],
)
def test_export_command_bad_urls_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, words: str
) -> None:
    status = main(["export", str(records_file(tmp_path)), "--to", url])
    assert words in one_line_error(capsys, status)


@pytest.mark.tools
def test_an_unreachable_host_exits_2_with_one_line(tmp_path: Path) -> None:
    """In a network namespace of its own (no interface up) nothing is reachable."""
    unshare = require_tool("unshare")
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, check=False)
    if probe.returncode:
        unavailable("unshare --net is not permitted here")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [unshare, "--net", sys.executable, "-m", "diffserv", "export",
         str(records_file(tmp_path)), "--to", "ipfix://192.0.2.1:4739"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cannot export to ipfix://192.0.2.1:4739: Network is unreachable"
    ]


def test_a_refused_destination_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["export", str(records_file(tmp_path)), "--to", "ipfix://255.255.255.255"])
    assert "cannot export to ipfix://255.255.255.255: Permission denied" in one_line_error(
        capsys, status
    )


def test_export_command_checks_its_source_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["export", str(tmp_path / "missing.jsonl"), "--to", "file://x.pcap"])
    assert "missing.jsonl" in one_line_error(capsys, status)
    basic = tmp_path / "basic.jsonl"
    basic.write_text(
        '{"saddr":"10.0.0.1","daddr":"10.0.0.2","sport":1,"dport":2,"protocol":17,'
        '"npackets":3,"nbytes":300,"action":"acct"}\n'
    )
    status = main(["export", str(basic), "--to", f"file://{tmp_path / 'x.pcap'}"])
    assert "basic flow records" in one_line_error(capsys, status)
    status = main(["export", str(records_file(tmp_path)), "--to", "file://x.pcap", "--mtu", "9"])
    assert "--mtu" in one_line_error(capsys, status)
    source = records_file(tmp_path)
    status = main(["export", str(source), "--to", f"file://{source}"])
    assert "both SRC" in one_line_error(capsys, status)
    status = main(["export", str(source), "--to", "netflow5://127.0.0.1?domain=70000"])
    assert "engine" in one_line_error(capsys, status)


def test_export_command_to_a_file_then_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.pcap"
    assert main(["export", str(records_file(tmp_path)), "--to", f"file://{out}"]) == 0
    assert "exported 1 flow records in 1 datagrams" in capsys.readouterr().err
    ((payload, source, when),) = list(iter_datagrams(str(out), [4739]))
    assert payload[:2] == b"\x00\x0a"
    assert source[0] == "127.0.0.1"
    assert when == 1_767_225_601_000_000_000  # the record's last_seen: reproducible


def test_refused_datagrams_are_counted_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    capture = tmp_path / "in.pcap"
    frames = [
        synth.Packet(synth.simple_frame(proto="udp", sport=1000 + i), ts_ns=i * 10**9)
        for i in range(40)
    ]
    synth.write_file(capture, synth.pcap_bytes(frames))
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY.replace("timeout 60000", "timeout 500"))
    records = tmp_path / "f.jsonl"
    status = main(
        [
            "run",
            str(policy),
            str(capture),
            "-o",
            str(tmp_path / "o.pcap"),
            "-q",
            "--batch-size",
            "4",
            "--flows",
            str(records),
            "--export",
            f"ipfix://127.0.0.1:{port}",
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    assert "datagrams were refused" in err
    assert len(records.read_text().splitlines()) == 40


def test_run_refuses_a_bad_export_url_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.conf"
    policy.write_text(POLICY)
    out = tmp_path / "o.pcap"
    status = main(["run", str(policy), "missing.pcap", "-o", str(out), "--export", "ipfix:/x"])
    assert "want SCHEME://" in one_line_error(capsys, status)
    assert not out.exists()


def make_records(n: int) -> FlowRecords:
    hi, lo = parse_address("10.0.0.1")
    t = np.arange(n, dtype=np.int64) * 10**6 + 10**18
    return FlowRecords(
        "acct",
        np.full(n, hi, np.uint64),
        np.full(n, lo, np.uint64),
        np.full(n, hi, np.uint64),
        np.full(n, lo, np.uint64),
        np.arange(n, dtype=np.uint16),
        np.full(n, 53, np.uint16),
        np.full(n, 17, np.uint8),
        np.full(n, 0x48, np.uint8),
        np.full(n, -1, np.int32),
        np.full(n, -1, np.int32),
        np.ones(n, np.int64),
        np.full(n, 64, np.int64),
        t,
        t,
    )


class Sink:
    def __init__(self, log: list[str], name: str, fail: str = "") -> None:
        self.log, self.name, self.fail = log, name, fail

    def write(self, records: FlowRecords) -> None:
        self.log.append(f"{self.name}.write({records.n})")

    def close(self) -> None:
        self.log.append(f"{self.name}.close")
        if self.fail == "close":
            raise OSError("disk full")

    def abort(self) -> None:
        self.log.append(f"{self.name}.abort")


def test_fan_out_writes_every_sink_and_aborts_the_rest_when_one_fails() -> None:
    log: list[str] = []
    fan = FanOut([Sink(log, "a", fail="close"), Sink(log, "b")])
    fan.write(make_records(3))
    with pytest.raises(OSError):
        fan.close()
    assert log == ["a.write(3)", "b.write(3)", "a.close", "b.abort"]


def test_exporter_is_a_record_sink_into_a_file(tmp_path: Path) -> None:
    target = parse_export_url(f"file://{tmp_path / 'e.pcap'}?format=netflow5")
    exporter = Exporter(target)
    exporter.write(make_records(70))
    exporter.abort()  # keeps what was written
    exporter.abort()
    assert exporter.counts.datagrams == 3  # 30 + 30 + 10 records
    assert exporter.counts.records == 70
    assert len(list(iter_datagrams(str(tmp_path / "e.pcap"), [2055]))) == 3


CLASSES_POLICY = """fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify
	class {
		name web
		next_action markAF11
	}
	class {
		name other
		next_action acct_shared
	}
	class {
		name more
		next_action acct_shared
	}
	filter {
		name webf
		class web
		dport 443
	}
	filter {
		name otherf
		class other
		dport 53
	}
	filter {
		name moref
		class more
		dport 54
	}
}

action {
	module dscpmk
	name markAF11
	params {
		dscp_map {0-63:10}
		next_action acct_web
	}
}
""" + "".join(
    f"""
action {{
	module flowacct
	name {name}
	params {{
		timer 1000
		timeout 2000
		max_limit 1000
		next_action continue
	}}
}}
"""
    for name in ("acct_web", "acct_shared")
)


def test_run_exports_the_one_class_that_reaches_a_flowacct_action(tmp_path: Path) -> None:
    path = tmp_path / "p.conf"
    path.write_text(CLASSES_POLICY)
    assert _classes_of(load(str(path))) == {"acct_web": "web"}  # acct_shared has two
