"""Test traffic for the live data plane: senders and sinks run inside namespaces.

Run as ``python tests/support/traffic.py COMMAND ...`` (``Namespace.popen`` starts it in
a namespace, optionally as another user); each prints one JSON line with what it did.

  udp-send DST PORT COUNT [--tos N] [--size N] [--pps N] [--sport N]
  udp-sink ADDR PORT IDLE_S        (counts datagrams and their TOS / traffic class)
  tcp-send DST PORT BYTES [--sport N]
  tcp-sink ADDR PORT IDLE_S        (bytes per connection)
  udp-echo ADDR PORT IDLE_S        (sends every datagram back)
  udp-ping DST PORT COUNT PPS      (round trips through an echo: p50/p99 in µs)
  capture IFNAME PATH              (every frame arriving on IFNAME into a pcap file, until
                                    SIGTERM; ready as soon as the socket is bound, unlike
                                    tshark, which misses what comes in its first moments)
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import time


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _set_tos(sock: socket.socket, family: int, tos: int) -> None:
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)


def udp_send(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.dst)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    _set_tos(sock, family, args.tos)
    if args.sport:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", args.sport))
    payload = b"\xa5" * args.size
    start = time.monotonic()
    sent = 0
    for i in range(args.count):
        if args.pps:
            due = start + i / args.pps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            sock.sendto(payload, (args.dst, args.port))
            sent += 1
        except OSError:
            pass  # a refused send (no route yet, EPERM from a DROP) is simply not counted
    return {"sent": sent, "seconds": time.monotonic() - start, "sport": sock.getsockname()[1]}


def udp_sink(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.addr)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((args.addr, args.port))
    print(json.dumps({"ready": True}), flush=True)
    sock.settimeout(args.idle)
    tos: dict[int, int] = {}
    received = 0
    try:
        while True:
            _data, anc, _flags, _addr = sock.recvmsg(65536, 64)
            received += 1
            for _level, _kind, value in anc:
                tos[value[0]] = tos.get(value[0], 0) + 1
    except TimeoutError:
        pass
    return {"received": received, "tos": tos}


def tcp_send(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.dst)
    sock = socket.socket(family, socket.SOCK_STREAM)
    if args.sport:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", args.sport))
    sock.settimeout(10)
    sock.connect((args.dst, args.port))
    chunk = b"\x5a" * 16384
    left = args.bytes
    while left > 0:
        sent = sock.send(chunk[: min(left, len(chunk))])
        left -= sent
    sock.shutdown(socket.SHUT_WR)
    sock.recv(1)  # the peer closes when it has read everything
    sock.close()
    return {"sent": args.bytes}


def tcp_sink(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.addr)
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.addr, args.port))
    server.listen(8)
    print(json.dumps({"ready": True}), flush=True)
    server.settimeout(args.idle)
    counts: list[int] = []
    try:
        while True:
            conn, _peer = server.accept()
            conn.settimeout(10)
            total = 0
            while data := conn.recv(1 << 16):
                total += len(data)
            conn.close()
            counts.append(total)
    except TimeoutError:
        pass
    return {"connections": counts}


SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


def udp_echo(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.addr)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((args.addr, args.port))
    print(json.dumps({"ready": True}), flush=True)
    sock.settimeout(args.idle)
    echoed = 0
    try:
        while True:
            data, peer = sock.recvfrom(65536)
            sock.sendto(data, peer)
            echoed += 1
    except TimeoutError:
        pass
    return {"echoed": echoed}


def udp_ping(args: argparse.Namespace) -> dict[str, object]:
    family = _family(args.dst)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(0.2)
    rtts: list[int] = []
    lost = 0
    start = time.monotonic()
    for i in range(args.count):
        due = start + i / args.pps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter_ns()
        sock.sendto(struct.pack("!Q", i) + b"\0" * 56, (args.dst, args.port))
        try:
            while True:
                data = sock.recv(2048)
                if struct.unpack_from("!Q", data)[0] == i:
                    break
        except TimeoutError:
            lost += 1
            continue
        rtts.append(time.perf_counter_ns() - sent)
    rtts.sort()

    def pct(q: float) -> float:
        return rtts[min(len(rtts) - 1, int(q * len(rtts)))] / 1000 if rtts else float("nan")

    return {"p50_us": pct(0.5), "p99_us": pct(0.99), "lost": lost, "samples": len(rtts)}


ETH_P_ALL = 0x0003


def capture(args: argparse.Namespace) -> dict[str, object]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: a burst waits here
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.bind((args.ifname, 0))
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    frames = 0
    with open(args.path, "wb") as out:
        out.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        print(json.dumps({"ready": True}), flush=True)
        sock.settimeout(0.1)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                if stop:
                    break
                continue
            except InterruptedError:
                continue
            now = time.time_ns()
            out.write(struct.pack("=IIII", now // 10**9, now % 10**9 // 1000, len(data), len(data)))
            out.write(data)
            frames += 1
    return {"frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("udp-send")
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--pps", type=float, default=0)
    p.add_argument("--sport", type=int, default=0)
    p.set_defaults(func=udp_send)
    p = sub.add_parser("udp-sink")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("idle", type=float)
    p.set_defaults(func=udp_sink)
    p = sub.add_parser("tcp-send")
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("bytes", type=int)
    p.add_argument("--sport", type=int, default=0)
    p.set_defaults(func=tcp_send)
    p = sub.add_parser("tcp-sink")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("idle", type=float)
    p.set_defaults(func=tcp_sink)
    p = sub.add_parser("udp-echo")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("idle", type=float)
    p.set_defaults(func=udp_echo)
    p = sub.add_parser("udp-ping")
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("pps", type=float)
    p.set_defaults(func=udp_ping)
    p = sub.add_parser("capture")
    p.add_argument("ifname")
    p.add_argument("path")
    p.set_defaults(func=capture)
    args = parser.parse_args()
    print(json.dumps(args.func(args)), flush=True)


if __name__ == "__main__":
    main()
