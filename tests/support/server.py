"""Servers for tests: the app in process over WSGI, and real ``cc-backend serve`` processes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cli import EXE
from support.site import configure


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Requests:
    """``get``/``post``/... by path on top of one ``request(method, path, **kwargs)``."""

    url: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", path, **kwargs)


class InProcess(Requests):
    """A site's app (``make_app``) called in this process through ``httpx.WSGITransport``.

    ``get``/``post``/... take paths; the client address is 127.0.0.1 as for a local client of a real
    server. The runtime reads the site's .env without copying it into ``os.environ``, so that apps of
    different sites in one test process keep their own keys.
    """

    url = "http://127.0.0.1"

    def __init__(self, site: Path, *, dev: bool = False) -> None:
        from cc_backend.config import load_env
        from cc_backend.runtime import Runtime
        from cc_backend.server.app import make_app

        self.site = site
        self.runtime = Runtime(str(site / "config.json"), str(site / ".env"))
        self.runtime.__dict__["secrets"] = load_env(site / ".env", environ={})  # the cached property, filled
        self.app = make_app(self.runtime, dev=dev)
        self.transport = httpx.WSGITransport(app=self.app)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new client of the app (``headers=``, ``cookies=``, ... as for ``httpx.Client``)."""
        return httpx.Client(transport=self.transport, base_url=self.url, timeout=60, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request from a fresh client, like ``httpx.request``: no cookies kept from earlier ones."""
        with self.client() as client:
            return client.request(method, path, **kwargs)

    def stop(self) -> None:
        self.runtime.close()


class Server(Requests):
    """One ``cc-backend serve`` process on a free port; ``url`` is its base URL."""

    def __init__(self, site: Path, *, https: bool = False, dev: bool = False, env: dict | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.site = site
        self.port = free_port()
        configure(site, addr=f"127.0.0.1:{self.port}")
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.log = open(site / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        args = [str(EXE), *options, "--config", str(site / "config.json"), "serve"] + (["--dev"] if dev else [])
        self.proc = subprocess.Popen(args, cwd=site, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request over the network, like ``httpx.request``."""
        return httpx.request(method, self.url + path, **kwargs)

    def wait_ready(self, verify: object = True, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", verify=verify, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"server did not answer /healthz within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.site / "server.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def self_signed(folder: Path) -> tuple[Path, Path]:
    """cert.pem and key.pem for 127.0.0.1 in ``folder`` (a self-signed CA certificate, valid for a day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def wsgi_call(app, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request through the WSGI app in process."""
    from io import BytesIO
    from wsgiref.util import setup_testing_defaults

    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": BytesIO()}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()})
    setup_testing_defaults(environ)
    seen: dict = {}
    body = b"".join(app(environ, lambda status, hdrs, exc_info=None: seen.update(status=status, headers=dict(hdrs))))
    return int(seen["status"].split()[0]), seen["headers"], body
