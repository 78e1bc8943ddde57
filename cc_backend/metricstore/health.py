"""Node health from the built-in store: metrics without data are missing, stale ones (older than 5 timesteps) degraded."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cc_backend.metricstore.store import MetricStore

__all__ = ["STALE_TIMESTEPS", "node_health"]

#: A metric whose newest sample is older than this many timesteps is degraded.
STALE_TIMESTEPS = 5


def node_health(store: MetricStore, cluster: str, hosts: Iterable[str], metrics: Iterable[str],
                now: int | None = None) -> dict[str, dict[str, Any]]:
    """``{host: {"state": "full"|"partial"|"failed", "metrics": {"missing": [...], "degraded": [...]}}}``.

    A metric counts as present on a host when any level of that host (node, socket, core, ...) holds
    samples of it; its freshness is that of its newest sample at any level. A host with every metric
    missing, or unknown to the store, is failed.
    """
    now = int(time.time()) if now is None else now
    wanted = list(dict.fromkeys(metrics))
    cl = store.cluster_state(cluster)
    out: dict[str, dict[str, Any]] = {}
    for host in hosts:
        newest: dict[str, int] = {}
        steps: dict[str, int] = {}
        if cl is not None:
            with cl.lock:
                for series_of in (cl.hosts.get(host) or {}).values():
                    for metric, series in series_of.items():
                        if series.chunks and series.last >= 0:
                            ts = series.last * series.step
                            if ts > newest.get(metric, -1):
                                newest[metric] = ts
                                steps[metric] = series.step
        missing = [m for m in wanted if m not in newest]
        degraded = [m for m in wanted if m in newest and now - newest[m] > STALE_TIMESTEPS * steps[m]]
        if not wanted:
            state = "full" if newest else "failed"
        elif len(missing) == len(wanted):
            state = "failed"
        elif missing or degraded:
            state = "partial"
        else:
            state = "full"
        out[host] = {"state": state, "metrics": {"missing": missing, "degraded": degraded}}
    return out
