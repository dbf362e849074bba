"""`diffserv live --metrics ADDR`: the daemon's counters as a Prometheus endpoint.

Every scrape takes one snapshot of the daemon's statistics and turns its kstat rows
(``live.kstat``) into metric families, so the figures are the ones `diffserv stat` prints,
consistent with each other within a scrape. Names are derived from the kstat names:
``diffserv_<module>_<statistic>`` labelled by ``action`` (ipgpc's per-class sets become
``diffserv_ipgpc_class_<statistic>`` with a ``class`` label, dscpmk's per-DSCP sets
``diffserv_dscpmk_dscp_npackets`` with a ``dscp`` label), and the session totals
``diffserv_session_<statistic>``. Counts that only grow are counters (``_total``); sizes,
configuration values and times are gauges. The endpoint binds the loopback address unless
the user names another one: the counters describe the site's traffic.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from diffserv.engine.stats import SessionStats
from diffserv.errors import HostSystemError, UsageError
from diffserv.live.kstat import SESSION_MODULE, SET_NAMES, Row, rows

NAMESPACE: Final = "diffserv"
DEFAULT_HOST: Final = "127.0.0.1"
# statistics that go up and down, or are settings or times rather than counts
GAUGES: Final = frozenset(
    {
        ("ipgpc", "nfilters"),
        ("ipgpc", "nclasses"),
        ("ipgpc", "last_match"),
        ("dlcosmk", "usr_pri"),
        ("dlcosmk", "b_band"),
        ("dlcosmk", "dl_max"),
        ("flowacct", "bytes_in_tbl"),
        ("flowacct", "usedmem"),
        ("flowacct", "flows_in_tbl"),
    }
)
HELP: Final[Mapping[str, str]] = {
    SESSION_MODULE: "session total",
    "ipgpc": "ipgpc classifier",
    "tokenmt": "tokenmt meter",
    "tswtclmt": "tswtclmt meter",
    "dscpmk": "dscpmk marker",
    "dlcosmk": "dlcosmk marker",
    "flowacct": "flowacct accounting",
}


class Snapshotting(Protocol):
    """Whatever can be asked for the current statistics (the live daemon)."""

    def snapshot(self) -> SessionStats: ...


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``PORT`` (on the loopback), ``HOST:PORT`` or ``[V6]:PORT``; UsageError otherwise."""
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        host, port = DEFAULT_HOST, text.strip()
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"--metrics {text!r}: expected PORT, ADDRESS:PORT or [ADDRESS]:PORT "
            "(an IP address, such as 127.0.0.1:9464)"
        ) from None
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--metrics {text!r}: the port must be 0 (any free one) to 65535")
    return host, int(port)


def _family_of(row: Row) -> tuple[str, dict[str, str]] | None:
    """(metric name without namespace, labels) of a row; None for a row that is a label."""
    if row.module == SESSION_MODULE:
        return f"session_{row.statistic}", {}
    labels = {"action": row.action}
    if row.name == SET_NAMES.get(row.module):
        return f"{row.module}_{row.statistic}", labels
    if row.module == "ipgpc":
        return f"ipgpc_class_{row.statistic}", {**labels, "class": row.name}
    if row.module == "dscpmk":
        if row.statistic == "dscp":
            return None
        return f"dscpmk_dscp_{row.statistic}", {**labels, "dscp": row.name.rsplit("dscp", 1)[1]}
    return f"{row.module}_{row.statistic}", {**labels, "set": row.name}


class _Collector:
    """A prometheus_client collector reading one snapshot per scrape."""

    def __init__(self, target: Snapshotting) -> None:
        self.target = target

    def collect(self) -> Iterator[Any]:
        families: dict[str, Any] = {}
        for row in rows(self.target.snapshot().to_json()):
            found = _family_of(row)
            if found is None:
                continue
            name, labels = found
            family = families.get(name)
            if family is None:
                kind = GaugeMetricFamily if (row.module, row.statistic) in GAUGES else None
                description = f"{HELP.get(row.module, row.module)} {row.statistic} (kstat)"
                full = f"{NAMESPACE}_{name}"
                if kind is None:
                    family = CounterMetricFamily(full, description, labels=list(labels))
                else:
                    family = kind(full, description, labels=list(labels))
                families[name] = family
            family.add_metric(list(labels.values()), row.value)
        yield from families.values()

    def describe(self) -> list[Any]:
        return []  # no snapshot at registration: the daemon may still be starting


class MetricsServer:
    """The HTTP endpoint's server and thread; ``close`` stops it and frees the port."""

    def __init__(self, target: Snapshotting, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(target))
        try:
            self._httpd, self._thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise HostSystemError(
                f"--metrics {host}:{port}: cannot listen ({exc.strerror or exc})"
            ) from None
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(target: Snapshotting, address: str) -> MetricsServer:
    """Serve ``target``'s counters on ``address`` (``PORT`` alone: the loopback address)."""
    host, port = parse_metrics_address(address)
    return MetricsServer(target, host, port)
