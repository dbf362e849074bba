"""Our codepoint tables against independent tools: tshark's IP dissector and nft's symbol tables."""

from __future__ import annotations

import argparse
import io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from diffserv.cli import dscp_cmd
from diffserv.codepoints import DSCP_TABLE, parse_ecn, standard_name, tos_to_dscp, tos_to_ecn
from support.tools import require_tool, unavailable

pytestmark = pytest.mark.tools


def ipv4_header(tos: int) -> bytes:
    """A minimal valid IPv4 header (protocol 253, RFC 3692 experimental) with this ToS."""
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            tos,
            20,
            0,
            0,
            64,
            253,
            0,
            b"\xc0\x00\x02\x01",
            b"\xc0\x00\x02\x02",
        )
    )
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    header[10:12] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(header)


@pytest.fixture(scope="module")
def every_tos_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classic pcap (LINKTYPE_RAW) with one IPv4 packet per ToS byte 0..255."""
    path = tmp_path_factory.mktemp("tos") / "every-tos.pcap"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for tos in range(256):
            packet = ipv4_header(tos)
            out.write(struct.pack("<IIII", tos, 0, len(packet), len(packet)) + packet)
    return path


def tshark(pcap: Path, *args: str) -> str:
    done = subprocess.run(
        [require_tool("tshark"), "-r", str(pcap), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_tshark_splits_every_byte_as_we_do(every_tos_pcap: Path) -> None:
    out = tshark(every_tos_pcap, "-T", "fields", "-e", "ip.dsfield.dscp", "-e", "ip.dsfield.ecn")
    rows = [tuple(int(v) for v in line.split("\t")) for line in out.splitlines()]
    assert rows == [(tos_to_dscp(tos), tos_to_ecn(tos)) for tos in range(256)]


def tshark_name_to_ours(name: str) -> str | None:
    if match := re.fullmatch(r"Class Selector (\d)", name):
        return f"CS{match[1]}"
    if match := re.fullmatch(r"Assured Forwarding (\d\d)", name):
        return f"AF{match[1]}"
    fixed = {
        "Default": "DF",
        "Expedited Forwarding": "EF",
        "Lower Effort": "LE",
        "Voice Admit": "VOICE-ADMIT",
    }
    return fixed.get(name)


def test_tshark_names_the_same_dscps(every_tos_pcap: Path) -> None:
    out = tshark(every_tos_pcap, "-V")
    named = {
        int(value): tshark_name_to_ours(name)
        for name, value in re.findall(r"Differentiated Services Codepoint: (.+) \((\d+)\)", out)
    }
    assert named == {dscp: standard_name(dscp) for dscp in range(64)}


def nft_symbols(datatype: str) -> dict[str, int]:
    done = subprocess.run(
        [require_tool("nft"), "describe", datatype],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"nft describe does not run here: {done.stderr.strip()}")
    return {
        word: int(value, 16)
        for word, value in re.findall(r"^\s+(\S+)\s+(0x[0-9a-f]+)$", done.stdout, re.M)
    }


def test_nft_dscp_keywords_are_ours() -> None:
    ours = {word: info.dscp for info in DSCP_TABLE for word in info.spellings.get("nft", ())}
    assert nft_symbols("ip dscp") == ours


def test_nft_ecn_keywords_parse_to_the_same_values() -> None:
    symbols = nft_symbols("ip ecn")
    assert symbols
    assert {word: parse_ecn(word) for word in symbols} == symbols


def test_cli_annotates_tsharks_column(
    every_tos_pcap: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tshark's ip.dsfield column, piped into `diffserv dscp --tos --json`, round-trips."""
    column = tshark(every_tos_pcap, "-T", "fields", "-e", "ip.dsfield")
    parser = argparse.ArgumentParser(prog="diffserv")
    dscp_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["dscp", "--tos", "--json"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(column))
    assert args.func(args) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["tos"] for r in records] == list(range(256))
    assert [r["input"] for r in records] == [f"0x{tos:02x}" for tos in range(256)]
