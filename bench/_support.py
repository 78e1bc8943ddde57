"""Start-up shared by the benchmarks that measure a real ``cc-backend serve`` process from another process.

A site in a work folder (a job archive with one cluster, config.json, keys in .env, a migrated database
and an api user ``bench`` with its token), the server started on it with its log in ``server.log``, and
a wait until it answers. Imported by its siblings as ``_support`` (they run as scripts from bench/).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent / "cc-backend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_json(name: str, metrics: list[dict[str, Any]], *, cores: int, threads_per_core: int) -> dict[str, Any]:
    """A cluster.json of one subcluster "sc" of one socket over hosts host0000..host9999."""
    hwthreads = cores * threads_per_core
    return {
        "name": name,
        "metricConfig": metrics,
        "subClusters": [{"name": "sc", "nodes": "host[0000-9999]", "processorType": "x", "socketsPerNode": 1,
                         "coresPerSocket": cores, "threadsPerCore": threads_per_core,
                         "flopRateScalar": {"unit": {"base": "F/s"}, "value": 1},
                         "flopRateSimd": {"unit": {"base": "F/s"}, "value": 1},
                         "memoryBandwidth": {"unit": {"base": "B/s"}, "value": 1},
                         "topology": {"node": list(range(hwthreads)), "core": [[i] for i in range(hwthreads)]}}],
    }


def make_site(work: Path, cluster: dict[str, Any], main: dict[str, Any],
              sections: dict[str, Any] | None = None) -> tuple[list[str], str]:
    """Write the site into ``work`` (``main.db`` defaults to work/job.db); the command line and the api token."""
    (work / "archive" / cluster["name"]).mkdir(parents=True)
    (work / "archive" / "version.txt").write_text("3\n")
    (work / "archive" / cluster["name"] / "cluster.json").write_text(json.dumps(cluster))
    config = {"main": {"db": str(work / "job.db"), **main}, "archive": {"kind": "file", "path": str(work / "archive")},
              "auth": {"jwts": {"max-age": "2h"}}, **(sections or {})}
    (work / "config.json").write_text(json.dumps(config))
    out = subprocess.run([str(BIN), "gen-keypair", "--format", "json"], capture_output=True, text=True, check=True)
    keys = json.loads(out.stdout)
    (work / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in keys.items()) + 'SESSION_KEY="bench"\n')
    cli = [str(BIN), "--config", str(work / "config.json")]
    subprocess.run([*cli, "-migrate-db"], cwd=work, check=True, capture_output=True)
    subprocess.run([*cli, "-add-user", "bench:api:benchpw"], cwd=work, check=True, capture_output=True,
                   env={**os.environ, "CC_BCRYPT_ROUNDS": "4"})
    token = subprocess.run([*cli, "-jwt", "bench"], cwd=work, check=True, capture_output=True, text=True).stdout.strip()
    return cli, token


def wait_ready(port: int, alive: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until GET /healthz answers 200 on ``port``; SystemExit when ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit(f"the process behind port {port} has exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port} after {timeout} s")


class Server:
    """``cc-backend serve`` on a site (its output in work/server.log), ready when constructed."""

    def __init__(self, work: Path, cli: Sequence[str], port: int, prefix: Sequence[str] = ()) -> None:
        self.log_path = work / "server.log"
        # A file, not a pipe: a pipe nobody reads fills up after a few thousand access lines and blocks the server.
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the process writes it until stop()
        self.proc = subprocess.Popen([*prefix, *cli, "serve"], cwd=work, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, lambda: self.proc.poll() is None)
        except SystemExit as exc:
            self.stop()
            raise SystemExit(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(60)
        self._log.close()
