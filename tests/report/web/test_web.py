"""The dashboard's API, the HTML report and both pages in a real Chromium."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from diffserv.flows.store_write import StoreWriter
from support.browser import browser, keep, wait_for
from support.flow_batches import T0, simple_batch

ROOT = Path(__file__).resolve().parents[3]
# 10 flows: 4 EF, 6 DF, bytes known
DSCP = np.array([46, 0, 0, 46, 0, 0, 46, 0, 0, 46])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int]]:
    root = tmp_path_factory.mktemp("store")
    batch = simple_batch(10, start_ns=T0, dscp=DSCP, seed=7)
    writer = StoreWriter(str(root))
    writer.add(batch)
    writer.close()
    sizes = batch.columns["bytes"].astype(int)
    return root, {d: int(sizes[d == DSCP].sum()) for d in (0, 46)}


def diffserv(*args: str) -> list[str]:
    return [sys.executable, "-m", "diffserv", *args]


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture(scope="module")
def server(store: tuple[Path, dict[int, int]]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        diffserv("serve", str(store[0]), "--listen", f"127.0.0.1:{port}", "--refresh", "0"),
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/api/reports", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_api_answers_the_report_json_with_the_stores_numbers(
    server: str, store: tuple[Path, dict[int, int]]
) -> None:
    body = httpx.get(server + "/api/report/top-dscp").json()
    got = {row["dscp"]: row["bytes"] for row in body["rows"]}
    assert got == store[1]
    assert body["meta"]["totals"]["flows"] == 10
    apps = httpx.get(server + "/api/report/apps", params={"filter": "dscp=EF"}).json()
    assert {row["dscp"] for row in apps["rows"]} == {46}
    assert sum(row["flows"] for row in apps["rows"]) == 4
    assert "top-dscp" in httpx.get(server + "/api/reports").json()["reports"]


def test_api_a_bad_filter_is_a_400_with_one_line(server: str) -> None:
    answer = httpx.get(server + "/api/report/apps", params={"filter": "dscp=nope"})
    assert answer.status_code == 400
    assert "nope" in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert httpx.get(server + "/api/report/top-dscp", params={"by": "x"}).status_code == 400


def test_serve_a_port_in_use_is_one_line_and_exit_2(store: tuple[Path, dict[int, int]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            diffserv("serve", str(store[0]), "--listen", f"127.0.0.1:{port}"),
            check=False,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "in use" in done.stderr


@pytest.fixture(scope="module")
def html_file(store: tuple[Path, dict[int, int]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    subprocess.run(diffserv("report", str(store[0]), "--html", str(out)), env=ENV, check=True)
    return out


def test_html_report_is_self_contained_and_carries_the_numbers(
    html_file: Path, store: tuple[Path, dict[int, int]]
) -> None:
    text = html_file.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?://", text)
    assert f'"bytes": {store[1][46]}' in text
    assert not list(html_file.parent.glob(".diffserv-*"))


DONUT = (
    "const d = document.getElementById('chart-dscp');"
    "return d && d.data ? [d.data[0].labels, d.data[0].values] : null;"
)


def test_html_report_renders_its_charts_in_chromium(
    html_file: Path, store: tuple[Path, dict[int, int]], tmp_path: Path
) -> None:
    driver = browser()
    try:
        driver.get(html_file.as_uri())
        labels, values = wait_for(driver, DONUT)
        assert dict(zip(labels, values, strict=True)) == {"EF": store[1][46], "DF": store[1][0]}
        plots = driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
        assert plots >= 3
        keep(driver, tmp_path / "html-report.png")
    finally:
        driver.quit()


def test_dashboard_renders_and_drills_down_from_a_dscp(
    server: str, store: tuple[Path, dict[int, int]], tmp_path: Path
) -> None:
    driver = browser()
    try:
        driver.get(server + "/")
        labels, values = wait_for(driver, DONUT)
        assert dict(zip(labels, values, strict=True)) == {"EF": store[1][46], "DF": store[1][0]}
        keep(driver, tmp_path / "dashboard.png")
        row = next(
            r
            for r in driver.find_elements("css selector", "#table-dscp tr.clickable")
            if "EF" in r.text
        )
        row.click()
        wait_for(driver, "return document.body.dataset.view === 'apps'")
        cells = wait_for(
            driver,
            "return [...document.querySelectorAll('#table-apps tr.clickable')]"
            ".map(r => r.cells[0].textContent)",
        )
        assert set(cells) == {"46"}
        keep(driver, tmp_path / "dashboard-apps.png")
    finally:
        driver.quit()
