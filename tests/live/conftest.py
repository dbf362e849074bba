"""Fixtures of the end-to-end ipqosconf tests: sender — router — receiver namespaces and
ipqosconf run in the router against a control socket of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import netns
from support.ipqosconf_router import Router


@pytest.fixture
def net() -> Iterator[Any]:
    topo = netns.topology(["snd", "rtr", "rcv"])
    yield topo
    topo.close()


@pytest.fixture
def router(net: Any, tmp_path: Path) -> Iterator[Router]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    router = Router(net, run_dir)
    yield router
    router.ipqosconf("-f")  # the daemon is ipqosconf's child, not the topology's
