"""The browser side of reports: one chart script shared by the HTML report and the dashboard.

Both pages draw the same Report JSON with the same code (static/dashboard.js), so a
number never looks different in the file a user mails and in the live dashboard.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

import jinja2

STATIC_DIR: Final = Path(str(resources.files(__package__) / "static"))
TEMPLATES_DIR: Final = Path(str(resources.files(__package__) / "templates"))


def plotly_js() -> Path:
    """plotly.min.js as the plotly package ships it (no CDN: pages work offline)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html"]),
    )
