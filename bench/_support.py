"""Start-up shared by the benchmarks that measure a real ``cc-backend serve`` process from another process.

A site in a work folder (a job archive with one cluster, config.json, keys in .env, a migrated database
and an api user ``bench`` with its token), the server started on it with its log in ``server.log``, and
a wait until it answers; also what graphql.py and web.py share: the big archived fritz job they import and
the job fields of the job list's GraphQL query. Imported by its siblings as ``_support`` (they run as
scripts from bench/).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent / "cc-backend"
#: The fields of each job the web UI's job list asks for in its ``jobs`` query.
JOB_FIELDS = """id jobId user project cluster subCluster startTime duration walltime numNodes numHWThreads numAcc
  energy SMT shared partition arrayJobId monitoringStatus state
  tags { id type name scope } resources { hostname hwthreads accelerators }
  footprint { name stat value } metaData"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def scratch_folder(keep: Path | None, prefix: str) -> Iterator[Path]:
    """``keep`` (created if missing, left in place), else a new temporary folder removed afterwards."""
    work = keep or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def fresh_folder(work: Path, keep: bool) -> Path:
    """``work`` emptied first unless ``keep``: a site is only reused when asked for."""
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    return work


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


def write_config(work: Path, main: dict[str, Any], archive: Path, sections: dict[str, Any] | None = None,
                 session_key: str = "bench") -> list[str]:
    """config.json (``main.db`` defaults to work/job.db) and, unless it exists, .env; the command line."""
    config = {"main": {"db": str(work / "job.db"), **main}, "archive": {"kind": "file", "path": str(archive)},
              "auth": {"jwts": {"max-age": "2h"}}, **(sections or {})}
    (work / "config.json").write_text(json.dumps(config))
    if not (work / ".env").exists():  # a kept site keeps its keys, so its users' tokens stay valid
        out = subprocess.run([str(BIN), "gen-keypair", "--format", "json"], capture_output=True, text=True, check=True)
        keys = json.loads(out.stdout)
        (work / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in keys.items()) + f'SESSION_KEY="{session_key}"\n')
    return [str(BIN), "--config", str(work / "config.json")]


def user_token(cli: Sequence[str], work: Path, user: str, roles: str, password: str) -> str:
    """``user`` (re-)created with ``roles`` (e.g. "admin,api") and ``password``; its JWT."""
    subprocess.run([*cli, "--del-user", user], cwd=work, capture_output=True)  # fails harmlessly on a new site
    # Cheap hashing: no benchmark times a password check, only set-up waits for it.
    subprocess.run([*cli, "--add-user", f"{user}:{roles}:{password}"], cwd=work, check=True, capture_output=True,
                   env={**os.environ, "CC_BCRYPT_ROUNDS": "4"})
    return subprocess.run([*cli, "--jwt", user], cwd=work, check=True, capture_output=True, text=True).stdout.strip()


def make_site(work: Path, cluster: dict[str, Any], main: dict[str, Any],
              sections: dict[str, Any] | None = None) -> tuple[list[str], str]:
    """Write the site into ``work`` (``main.db`` defaults to work/job.db); the command line and the api token."""
    (work / "archive" / cluster["name"]).mkdir(parents=True)
    (work / "archive" / "version.txt").write_text("3\n")
    (work / "archive" / cluster["name"] / "cluster.json").write_text(json.dumps(cluster))
    cli = write_config(work, main, work / "archive", sections)
    subprocess.run([*cli, "-migrate-db"], cwd=work, check=True, capture_output=True)
    return cli, user_token(cli, work, "bench", "api", "benchpw")


def write_big_job(work: Path, cluster: dict[str, Any], *, job_id: int, nodes: int, user: str, start: int,
                  host_phase: int, metrics: int | None = None, samples: int = 720) -> tuple[Path, Path]:
    """work/big-meta.json and work/big-data.json of a completed ``nodes``-node job on ``cluster`` (fritz) with
    node-scope series at 60 s of its first ``metrics`` metrics (all by default), for ``--import-job``.

    Host k's sine is shifted by ``host_phase * k`` samples, so the hosts' curves differ.
    """
    sub = cluster["subClusters"][0]
    hosts = [f"f{n:04d}" for n in range(1, nodes + 1)]
    meta = {"jobId": job_id, "user": user, "project": "benchproject", "cluster": cluster["name"],
            "subCluster": sub["name"], "numNodes": nodes, "numHwthreads": nodes * 72,
            "shared": "none", "startTime": start, "duration": samples * 60, "walltime": 86400,
            "jobState": "completed", "monitoringStatus": 3,
            "resources": [{"hostname": h} for h in hosts], "statistics": {}}
    data: dict = {}
    for mc in cluster["metricConfig"][:metrics]:
        name, peak = mc["name"], float(mc.get("peak") or 100)
        series = []
        for k, host in enumerate(hosts):
            values = [round(peak * (0.5 + 0.4 * math.sin((i + host_phase * k) / 37.0)), 3) for i in range(samples)]
            series.append({"hostname": host, "statistics": {"avg": sum(values) / len(values), "min": min(values),
                                                            "max": max(values)}, "data": values})
        data[name] = {"node": {"unit": mc.get("unit", {"base": ""}), "timestep": 60, "series": series}}
        meta["statistics"][name] = {"unit": mc.get("unit", {"base": ""}), "avg": peak * 0.5, "min": 0.1 * peak,
                                    "max": 0.9 * peak}
    meta_path, data_path = work / "big-meta.json", work / "big-data.json"
    meta_path.write_text(json.dumps(meta))
    data_path.write_text(json.dumps(data))
    return meta_path, data_path


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
    """``cc-backend serve`` on a site (its output in work/server.log), ready when constructed; a context
    manager that stops it with ``stop_signal`` on leaving."""

    def __init__(self, work: Path, cli: Sequence[str], port: int, prefix: Sequence[str] = (),
                 stop_signal: int = signal.SIGTERM) -> None:
        self.log_path = work / "server.log"
        self.stop_signal = stop_signal
        # A file, not a pipe: a pipe nobody reads fills up after a few thousand access lines and blocks the server.
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the process writes it until stop()
        self.proc = subprocess.Popen([*prefix, *cli, "serve"], cwd=work, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, lambda: self.proc.poll() is None)
        except SystemExit as exc:
            self.stop()
            raise SystemExit(f"{exc}\n{self.log_tail()}") from None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
