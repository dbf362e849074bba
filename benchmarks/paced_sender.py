"""Send IPFIX to 127.0.0.1:PORT at a steady number of records a second, for a few seconds.

The loss benchmark's exporter, a process of its own so that it does not share a core
(or the GIL) with what it measures. Messages come from gen_exports (30 records each),
cycled; each gets the sequence number it must have (data records sent before it), so a
collector's own gap counter agrees with the count of records sent. Every millisecond
or so it sends, in one burst, as many messages as are due, the way an exporter's
buffer empties; the template goes out first and again every 1000 messages. Prints one
JSON line: records and messages sent, seconds, the rate reached.

    python benchmarks/paced_sender.py --port 4739 --rate 300000 --seconds 2.5
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_exports import RECORDS_PER_MESSAGE, TEMPLATE_EVERY, messages

POOL_MESSAGES = 2000
BURST_MAX = 256  # messages sent back to back before the clock is read again


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="records per second")
    parser.add_argument("--seconds", type=float, default=2.5)
    args = parser.parse_args()

    built = messages(RECORDS_PER_MESSAGE * POOL_MESSAGES)
    template = bytearray(built[0])
    pool = [bytearray(m) for m in built if m[16:18] != b"\x00\x02"]  # data sets only
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    target = ("127.0.0.1", args.port)
    send = sock.sendto
    pack_into = struct.Struct("!I").pack_into
    per_s = args.rate / RECORDS_PER_MESSAGE  # messages a second
    sequence = 0
    sent = 0
    clock = time.perf_counter
    start = clock()
    end = start + args.seconds
    while True:
        now = clock()
        if now >= end:
            break
        due = int((now - start) * per_s) + 1 - sent
        if due <= 0:
            time.sleep(min(0.0005, (sent + 1 - (now - start) * per_s) / per_s))
            continue
        for _ in range(min(due, BURST_MAX)):
            if sent % TEMPLATE_EVERY == 0:
                pack_into(template, 8, sequence)
                send(template, target)
            message = pool[sent % POOL_MESSAGES]
            pack_into(message, 8, sequence)
            send(message, target)
            sequence = (sequence + RECORDS_PER_MESSAGE) & 0xFFFFFFFF
            sent += 1
    elapsed = clock() - start
    records = sent * RECORDS_PER_MESSAGE
    report = {
        "records": records,
        "messages": sent,
        "seconds": elapsed,
        "rate": records / elapsed,
        "target": args.rate,
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
