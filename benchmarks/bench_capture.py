"""Capture data plane vs tcprewrite: read + decode + rewrite every DS byte to 184 + write.

Both tools process the same generated capture in the same run; we print each
one's wall time and packet rate, the ratio, and our peak RSS (our pass runs in
a child process, start-up included, so the numbers are what a user sees).

    python benchmarks/bench_capture.py [--packets N] [--pcapng] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from diffserv.capture import CaptureWriter, open_capture
from diffserv.packet.rewrite import apply_marks

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_capture import DATA_DIR, DEFAULT_PACKETS, ensure  # noqa: E402
from measure import fresh_disk, timed  # noqa: E402

TOS = 184


def our_pass(src: str, dst: str) -> None:
    """The measured work: every IP packet gets DS byte 184, then the file is written."""

    with open_capture(src) as reader, open(dst, "wb", buffering=0) as out:
        writer = CaptureWriter(out, reader.capture_format)
        for batch in reader:
            batch.cols.new_ds[batch.cols.ip_version != 0] = TOS
            apply_marks(batch)
            writer.write(batch)
        writer.close()
        print(f"packets={reader.packets}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    parser.add_argument("--pcapng", action="store_true", help="use the pcapng capture")
    parser.add_argument("--ours", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ours:
        our_pass(*args.ours)
        return 0
    tcprewrite = shutil.which("tcprewrite")
    src = ensure(args.packets, pcapng=args.pcapng)
    ours_out = DATA_DIR / f"bench_capture_ours{src.suffix}"
    theirs_out = DATA_DIR / "bench_capture_tcprewrite.pcap"
    ours_cmd = [sys.executable, __file__, "--ours", str(src), str(ours_out)]
    # one run first, so every measured run finds the input in the page cache
    subprocess.run(ours_cmd, check=True, stdout=subprocess.DEVNULL)
    fresh_disk(ours_out)
    ours = timed(ours_cmd)
    ours_s, ours_rss = ours.wall_s, ours.peak_rss_kib
    print(f"diffserv    : {ours_s:7.2f} s  {args.packets / ours_s / 1e6:6.2f} Mpkt/s")
    print(f"peak RSS    : {ours_rss / 1024:7.1f} MiB (start-up included)")
    status = 0
    if tcprewrite is None:
        print("tcprewrite not installed: no ratio")
        status = 1
    else:
        fresh_disk(theirs_out)
        theirs_s = timed(
            [tcprewrite, f"--tos={TOS}", f"--tclass={TOS}", "-i", str(src), "-o", str(theirs_out)]
        ).wall_s
        print(f"tcprewrite  : {theirs_s:7.2f} s  {args.packets / theirs_s / 1e6:6.2f} Mpkt/s")
        print(f"ratio       : {theirs_s / ours_s:7.2f}x (tcprewrite time / diffserv time)")
    if not args.keep:
        for path in (ours_out, theirs_out):
            path.unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
