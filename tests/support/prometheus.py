"""A real Prometheus server on a loopback port scraping a fake node exporter that runs in the test process."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from support.server import free_port

#: Exporter ports as they appear in the ``instance`` label (the real exporter's, so configs strip ":9100").
INSTANCE_PORT = 9100


def prometheus_binary() -> str | None:
    """The ``prometheus`` executable (Debian package ``prometheus``), or None."""
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None


@dataclass
class FakeExporter:
    """Serves ``/metrics/<host>`` in Prometheus' text format; values are functions of the scrape time.

    * ``test_load``: ``1000 * i + (t - t0)`` for the i-th host (so a value tells when it was scraped),
    * ``test_mem``: ``40 + i``,
    * ``test_cpu``: two series per host (``cpu="0"``: 1, ``cpu="1"``: 2), to be combined per host.

    ``disabled`` holds (host, metric) pairs that are left out of the answers; ``first_served`` the
    time each host was first scraped.
    """

    hosts: Sequence[str]
    t0: float = field(default_factory=time.time)
    disabled: set[tuple[str, str]] = field(default_factory=set)
    first_served: dict[str, float] = field(default_factory=dict)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def load(self, host: str, t: float) -> float:
        return 1000 * self.hosts.index(host) + (t - self.t0)

    def mem(self, host: str) -> float:
        return 40.0 + self.hosts.index(host)

    def body(self, host: str) -> str:
        now = time.time()
        self.first_served.setdefault(host, now)
        lines = []
        if (host, "test_load") not in self.disabled:
            lines += ["# TYPE test_load gauge", f"test_load {self.load(host, now)!r}"]
        if (host, "test_mem") not in self.disabled:
            lines += ["# TYPE test_mem gauge", f"test_mem {self.mem(host)!r}"]
        if (host, "test_cpu") not in self.disabled:
            lines += ["# TYPE test_cpu gauge", 'test_cpu{cpu="0"} 1', 'test_cpu{cpu="1"} 2']
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                host = self.path.removeprefix("/metrics/")
                if not self.path.startswith("/metrics/") or host not in exporter.hosts:
                    self.send_error(404, "no such host")
                    return
                payload = exporter.body(host).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # Prometheus gave up on the scrape (timeout, shutdown)

            do_POST = do_GET  # noqa: N815 - so that a repository pointed here gets a 404, not a 501

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="fake-exporter", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class PrometheusServer:
    url: str
    exporter: FakeExporter
    process: subprocess.Popen[bytes]
    log_path: Path
    auth: tuple[str, str] | None = None

    def query(self, promql: str) -> list[dict]:
        """An instant query's result vector, for checks of what Prometheus holds."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5, auth=self.auth).json()
        return answer["data"]["result"]


def _wait(condition: Callable[[], bool], timeout: float, what: str, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
    raise TimeoutError(f"{what} within {timeout} s" + (f"; prometheus log:\n{tail}" if tail else ""))


@contextmanager
def running_prometheus(workdir: Path, hosts: Sequence[str], *, basic_auth: tuple[str, str] | None = None) -> Iterator[PrometheusServer]:
    """Start the exporter and ``prometheus`` (scrape interval 1 s, storage in ``workdir``); wait for the first scrapes.

    Each host is its own scrape job whose ``instance`` label is ``<host>:9100``. ``basic_auth``
    (user, password) protects the server's HTTP API through Prometheus' --web.config.file.
    """
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed")
    exporter = FakeExporter(list(hosts))
    exporter.start()
    port = free_port()
    scrape_configs = [
        {
            "job_name": f"node-{host}",
            "scrape_interval": "1s",
            "scrape_timeout": "900ms",
            "metrics_path": f"/metrics/{host}",
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"],
                                "labels": {"instance": f"{host}:{INSTANCE_PORT}"}}],
        }
        for host in hosts
    ]
    config = workdir / "prometheus.yml"  # JSON is YAML
    config.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "scrape_configs": scrape_configs}), encoding="utf-8")
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    if basic_auth is not None:
        import bcrypt

        hashed = bcrypt.hashpw(basic_auth[1].encode(), bcrypt.gensalt(rounds=4)).decode()
        (workdir / "web.yml").write_text(json.dumps({"basic_auth_users": {basic_auth[0]: hashed}}), encoding="utf-8")
        args.append(f"--web.config.file={workdir / 'web.yml'}")
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = PrometheusServer(f"http://127.0.0.1:{port}", exporter, process, log_path, basic_auth)
    try:
        _wait(lambda: httpx.get(f"{server.url}/-/ready", timeout=2, auth=basic_auth).status_code == 200, 30,
              "prometheus did not become ready", log_path)

        def scraped() -> bool:
            result = server.query("count(test_mem)")
            return bool(result) and int(float(result[0]["value"][1])) == len(hosts)

        _wait(scraped, 30, "the first scrape of every host did not land", log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        exporter.stop()
