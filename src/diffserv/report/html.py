"""``diffserv report --html FILE``: every report in one page that needs nothing else.

plotly.min.js, the chart code and the reports' JSON are all inside the file, so it
opens offline, from a mail attachment or a ticket, and shows the numbers it was made
with. It is written to a temporary name and renamed: a run that fails leaves no page
that looks complete but is not.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any, Final

from diffserv import __version__
from diffserv.errors import HostSystemError
from diffserv.report.web import STATIC_DIR, plotly_js, templates

HTML_REPORTS: Final = (
    "top-dscp",
    "timeline",
    "apps",
    "conversations",
    "ecn",
    "remark",
    "tos",
    "silent-exporters",
)


def _script_safe(text: str) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _page(template: str, title: str, sources: Sequence[str], data: Any, **extra: str) -> str:
    return (
        templates()
        .get_template(template)
        .render(
            title=title,
            version=__version__,
            sources=", ".join(sources),
            css=(STATIC_DIR / "dashboard.css").read_text(encoding="utf-8"),
            plotly=plotly_js().read_text(encoding="utf-8"),
            charts=(STATIC_DIR / "dashboard.js").read_text(encoding="utf-8"),
            data=_script_safe(json.dumps(data)),
            **extra,
        )
    )


def render_html(reports: dict[str, dict[str, Any]], sources: Sequence[str]) -> str:
    """The page of ``reports`` (name → Report JSON)."""
    order = [name for name in HTML_REPORTS if name in reports]
    return _page("report.html", "diffserv DSCP report", sources, reports, order=json.dumps(order))


def render_audit_html(audit: dict[str, Any], *, compare: bool = False) -> str:
    """The page of a marking audit (``diffserv audit --html``), drawn by the same script."""
    meta = audit["meta"]
    title = f"diffserv marking audit: {'PASS' if meta['passed'] else 'FAIL'}"
    sources = [meta["before"], meta["after"]] if compare else meta["sources"]
    view = "renderCompare" if compare else "renderAudit"
    return _page("audit.html", title, sources, audit, view=view)


def write_atomically(path: str, text: str) -> None:
    """``text`` at ``path`` complete or not at all."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".diffserv-", suffix=".html", dir=directory)
    except OSError as exc:
        raise HostSystemError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise HostSystemError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.unlink(temporary)
        raise
