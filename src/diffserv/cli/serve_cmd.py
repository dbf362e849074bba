"""`diffserv serve SOURCE...`: the reports as a live dashboard in a browser.

It listens on loopback unless told otherwise: the dashboard has no login, and flow
records say who talks to whom.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from diffserv.cli.arguments import whole_number
from diffserv.cli.report_cmd import add_selection_options, engine_of, request_of, warn
from diffserv.errors import HostSystemError, UsageError


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as host and port."""
    host, colon, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT such as 127.0.0.1:8080")
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HostSystemError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a live DSCP dashboard in the browser over a flow store (loopback by default)",
        description=(
            "Serve the reports of `diffserv report` as a web dashboard with charts, "
            "drill-down (DSCP → applications → conversations → flows) and auto-refresh, "
            "and as a JSON API (/api/report/NAME). Listens on 127.0.0.1:8080 unless "
            "--listen says otherwise."
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="where the records are")
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="(127.0.0.1:8080)"
    )
    parser.add_argument(
        "--refresh",
        type=whole_number(0),
        default=10,
        metavar="S",
        help="the page reloads its reports every S seconds, 0: never (10)",
    )
    add_selection_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 (only serve needs the web stack)

    from diffserv.report.server import build_app  # noqa: PLC0415

    if args.engine != "duckdb":
        raise UsageError("serve runs on --engine duckdb (it refreshes its sources)")
    host, port = parse_listen(args.listen)
    first = request_of(args, "top-dscp")  # checks every option before anything starts
    engine = engine_of(args, first)
    warn(engine)
    app = build_app(engine, args, request_of, refresh_s=args.refresh)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"diffserv dashboard on http://{shown}:{sock.getsockname()[1]}/", file=sys.stderr)

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after shutting down: a stop is a clean exit 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {s: signal.signal(s, self.handle_exit) for s in stops}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    server = Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0
