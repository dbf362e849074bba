"""The web dashboard of ``diffserv serve``: a Starlette app over one report engine.

The API takes the same options as ``diffserv report`` as query parameters and answers
the same JSON (``Report.to_json``); a wrong parameter is a 400 with a one-line
``{"error": ...}``, never a traceback. The engine looks at its sources again at most
once a second, so files a running collector closes show up on the next refresh.
Queries are only ever built from parsed values (the engine's bound parameters).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from diffserv.errors import DiffservError, UsageError
from diffserv.report.choices import KEYS, METRICS, REPORTS, SIDES
from diffserv.report.queries import Engine, ReportRequest, run_report
from diffserv.report.web import STATIC_DIR, plotly_js, templates

REFRESH_EVERY_NS: Final = 1_000_000_000
MAX_TOP: Final = 1000

# builds the request from an argparse-like namespace (report_cmd.request_of)
RequestOf = Callable[[argparse.Namespace, str], ReportRequest]


class _Refresher:
    """Calls ``engine.refresh()`` at most once per second, whatever the request rate."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._last = time.monotonic_ns()

    def __call__(self) -> None:
        with self._lock:
            now = time.monotonic_ns()
            if now - self._last < REFRESH_EVERY_NS:
                return
            self._last = now
        refresh = getattr(self._engine, "refresh", None)
        if refresh is not None:
            refresh()


def _choice(value: str | None, choices: tuple[str, ...], name: str, default: str) -> str:
    if value is None or value == "":
        return default
    if value not in choices:
        raise UsageError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _top(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_TOP:
        raise UsageError(f"top={value!r}: expected a number 1-{MAX_TOP}")
    return int(value)


def namespace_of(request: Request, defaults: argparse.Namespace) -> argparse.Namespace:
    """The query string as the options of ``diffserv report`` (defaults: the server's)."""
    query = request.query_params
    return argparse.Namespace(
        groups=defaults.groups,
        filter=[*defaults.filter, *query.getlist("filter")],
        start=query.get("from") or defaults.start,
        end=query.get("to") or defaults.end,
        top=_top(query.get("top"), defaults.top),
        by=_choice(query.get("by"), METRICS, "by", defaults.by),
        key=_choice(query.get("key"), KEYS, "key", defaults.key),
        side=_choice(query.get("side"), SIDES, "side", defaults.side),
        interval=query.get("interval") or defaults.interval,
    )


def build_app(
    engine: Engine, defaults: argparse.Namespace, request_of: RequestOf, *, refresh_s: int = 10
) -> Starlette:
    """The dashboard app over ``engine``; ``defaults`` are the command line's options."""
    refresh = _Refresher(engine)
    page = templates().get_template("dashboard.html").render(refresh=refresh_s)
    plotly = plotly_js().read_bytes()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def dashboard(request: Request) -> Response:
        return HTMLResponse(page)

    def plotly_file(request: Request) -> Response:
        return Response(plotly, media_type="text/javascript")

    def report_list(request: Request) -> Response:
        return JSONResponse({"reports": list(REPORTS)})

    def report(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in REPORTS:
            return error(404, f"no report {name!r} (reports: {', '.join(REPORTS)})")
        try:
            wanted = request_of(namespace_of(request, defaults), name)
            refresh()
            return JSONResponse(run_report(engine, wanted).to_json())
        except UsageError as exc:
            return error(400, str(exc))
        except DiffservError as exc:
            return error(500, str(exc))

    return Starlette(
        routes=[
            Route("/", dashboard),
            Route("/api/reports", report_list),
            Route("/api/report/{name}", report),
            Route("/static/plotly.min.js", plotly_file),
            Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ]
    )
