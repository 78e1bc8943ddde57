"""What a newcomer sees first: a quiet package build and ./startDemo.sh naming the address it serves on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
from conftest import REPO
from support.server import free_port


def test_building_the_package_prints_no_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # pip's own notes about this machine's index configuration are not the package's business.
    lines = [line for line in output.splitlines() if not line.startswith("WARNING: Location ")]
    assert not [line for line in lines if "Warning" in line or "deprecated" in line.lower()], "\n".join(lines)
    [wheel] = tmp_path.glob("cc_backend-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data_file in ("cc_backend/archive/schemas/job-meta.schema.json", "cc_backend/server/openapi.json",
                      "cc_backend/server/graphql/schema.graphqls"):
        assert data_file in names
    assert not any(name.startswith(("server/", "tui/", "commands/")) for name in names)


def _demo_checkout(tmp_path: Path, port: int) -> Path:
    """The repository's tracked files, sharing this test run's virtualenv and npm packages."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    checkout = tmp_path / "checkout"
    for name in filter(None, listed.decode().split("\0")):
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
        target.chmod((REPO / name).stat().st_mode)
    (checkout / ".venv").symlink_to(Path(sys.executable).parent.parent)
    if (REPO / "web" / "node_modules").is_dir():
        (checkout / "web" / "node_modules").symlink_to(REPO / "web" / "node_modules")
    config_file = checkout / "configs" / "config-demo.json"
    config = json.loads(config_file.read_text())
    config["main"]["addr"] = f"127.0.0.1:{port}"
    config_file.write_text(json.dumps(config, indent=2))
    return checkout


def test_start_demo_announces_the_configured_address_and_serves_there(tmp_path):
    port = free_port()
    checkout = _demo_checkout(tmp_path, port)
    # the live feeder at test speed: 2 jobs of about 6 s, a sample every second
    env = {**os.environ, "DEMO_JOBS": "20", "CC_BCRYPT_ROUNDS": "4", "DEMO_FEED_JOBS": "2",
           "DEMO_FEED_INTERVAL": "1", "DEMO_FEED_MINUTES": "0.1"}
    demo = subprocess.Popen(["./startDemo.sh"], cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "HTTP server listening at" in line:
                break
        output = "".join(lines)
        assert f"==> starting the server on http://127.0.0.1:{port}/ " in output, output
        assert "8080" not in output
        assert "Warning" not in output, output
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert answer.status_code == 200
        token = subprocess.run([str(checkout / ".venv" / "bin" / "cc-backend"), "jwt", "demo"], cwd=checkout,
                               capture_output=True, text=True, check=True).stdout.strip()
        def jobs() -> list[dict]:
            return httpx.get(f"http://127.0.0.1:{port}/api/jobs/?items-per-page=200",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["jobs"]

        # the archive's finished jobs, and the feeder's (jobIds from 9,000,000) started, stopped and archived
        assert len([j for j in jobs() if j["jobId"] < 9_000_000]) == 20
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            fed = [j for j in jobs() if j["jobId"] >= 9_000_000]
            if any(j["jobState"] != "running" and j["monitoringStatus"] == 3 for j in fed):
                break
            time.sleep(1)
        assert any(j["jobState"] == "running" for j in fed) or len(fed) > 2, fed
        assert any(j["jobState"] != "running" and j["monitoringStatus"] == 3 for j in fed), fed
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
    # Ctrl-C stopped the feeder (its running jobs stopped) and then the server: nothing is left running
    assert demo.returncode is not None
    left = subprocess.run(["pgrep", "-f", f"demo feed --url http://127.0.0.1:{port}/"], capture_output=True)
    assert left.stdout == b""
    with sqlite3.connect(checkout / "var" / "job.db") as db:
        assert db.execute("SELECT count(*) FROM job WHERE job_state = 'running' AND job_id >= 9000000").fetchone() == (0,)
