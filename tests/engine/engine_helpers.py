"""Shared builders for engine tests: policies from filters, batches from packet dicts."""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np

from diffserv.columns import PacketBatch
from diffserv.directions import LOCAL_OUT
from diffserv.engine.context import EngineOptions
from diffserv.engine.graph import ActionGraph, compile_policy
from diffserv.policy.model import Action, Class, Filter, Policy

V4_MAPPED = 0xFFFF << 32


def addr_words(text: str) -> tuple[int, int, int]:
    """(ip_version, hi, lo) of an address as the batch stores it (IPv4 v4-mapped)."""
    ip = ipaddress.ip_address(text)
    value = int(ip) | V4_MAPPED if ip.version == 4 else int(ip)
    return ip.version, value >> 64, value & ((1 << 64) - 1)


def make_batch(packets: list[dict[str, Any]], interfaces: tuple[str, ...] = ("",)) -> PacketBatch:
    """A batch from dicts with keys src, dst, proto, sport, dport, ds, dir, ifindex, uid, ..."""
    n = len(packets)
    batch = PacketBatch.allocate(np.zeros(16, np.uint8), n)
    batch.interfaces = interfaces
    for i, p in enumerate(packets):
        batch.cols.number[i] = i + 1
        batch.cols.ts_ns[i] = p.get("ts", 1000 * (i + 1))
        if p.get("ip", True):
            ver, shi, slo = addr_words(p.get("src", "192.0.2.1"))
            _, dhi, dlo = addr_words(p.get("dst", "198.51.100.1"))
            batch.cols.ip_version[i] = ver
            batch.cols.saddr_hi[i], batch.cols.saddr_lo[i] = shi, slo
            batch.cols.daddr_hi[i], batch.cols.daddr_lo[i] = dhi, dlo
            batch.cols.l3_off[i] = 14
        batch.cols.protocol[i] = p.get("proto", 17)
        batch.cols.sport[i] = p.get("sport", 1024)
        batch.cols.dport[i] = p.get("dport", 80)
        batch.cols.ds_byte[i] = p.get("ds", 0)
        batch.cols.direction[i] = p.get("dir", LOCAL_OUT)
        batch.cols.ifindex[i] = p.get("ifindex", 0)
        batch.cols.uid[i] = p.get("uid", -1)
        batch.cols.projid[i] = p.get("projid", -1)
        batch.cols.flags[i] = p.get("flags", 0)
        batch.cols.ip_len[i] = p.get("len", 100)
        batch.cols.wire_len[i] = p.get("len", 100) + 14
        batch.cols.vlan_off[i] = 12 if p.get("vlan") else -1
    return batch


def classifier_policy(
    filters: list[Filter], extra: tuple[Action, ...] = (), classes: list[Class] | None = None
) -> Policy:
    """An ipgpc action with one class per distinct filter class (next action continue)."""
    if classes is None:
        names = dict.fromkeys(f.class_name for f in filters if f.class_name != "default")
        classes = [Class(name, "ipp.continue") for name in names]
    ipgpc = Action("ipgpc.classify", "ipgpc", classes=tuple(classes), filters=tuple(filters))
    return Policy(actions=(ipgpc, *extra))


def graph_for(policy: Policy, **options: Any) -> ActionGraph:
    return compile_policy(policy, EngineOptions(**options))


def classes_of(graph: ActionGraph, batch: PacketBatch) -> list[str]:
    """Run the batch; the class name each packet got ('-' for none)."""
    graph.run(batch)
    op: Any = graph.classifier
    return [op.classes[c].name if c >= 0 else "-" for c in batch.cols.class_id]
