"""A kill -9 of a real server loses no acknowledged job and no acknowledged metric sample (write-ahead log)."""

from __future__ import annotations

import json
import signal
import time

from support.cli import cli
from support.jobs import HOST, start_payload
from support.server import Server
from support.site import auth, token

METRICS = ("cpu_load", "mem_used")


def test_kill_9_loses_no_acknowledged_job_or_sample(site):
    config = json.loads((site / "config.json").read_text())
    # A checkpoint interval far beyond the test: whatever comes back after the kill came from the log.
    config["metric-store"] = {"retention-in-memory": "48h", "memory-cap": 1, "checkpoint-interval": "12h",
                              "checkpoints": {"file-format": "wal", "directory": str(site / "checkpoints")}}
    (site / "config.json").write_text(json.dumps(config, indent=2))
    assert cli(site, "init-db").returncode == 0
    headers = auth(token(site, ["api"]))
    start = (int(time.time()) // 60 - 30) * 60

    server = Server(site)
    server.wait_ready()
    acknowledged = {}
    try:
        r = server.post("/api/jobs/start_job/", json=start_payload(4242, start), headers=headers)
        assert r.status_code == 201, r.text
        for minute in range(20):
            ts = start + 60 * minute
            body = "\n".join(f"{m},cluster=fritz,hostname={HOST},type=node value={minute + k / 4} {ts}"
                             for k, m in enumerate(METRICS))
            r = server.post("/api/write?cluster=fritz", content=body.encode(), headers=headers)
            assert r.status_code == 200, r.text
            acknowledged.update({(m, ts): minute + k / 4 for k, m in enumerate(METRICS)})
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.log.close()
    assert server.proc.returncode == -signal.SIGKILL
    assert not list((site / "checkpoints").rglob("*.bin")), "no snapshot was due: the data must come from the log"

    again = Server(site)
    try:
        again.wait_ready()
        jobs = again.get("/api/jobs/?state=running", headers=headers).json()["jobs"]
        assert [(j["jobId"], j["cluster"], j["startTime"]) for j in jobs] == [(4242, "fritz", start)]
        request = {"cluster": "fritz", "from": start, "to": start + 60 * 19, "with-stats": False, "with-data": True,
                   "queries": [{"metric": m, "host": HOST, "resolution": 0} for m in METRICS]}
        answer = again.post("/api/query", json=request, headers=headers)
        assert answer.status_code == 200, answer.text
        for metric, [entry] in zip(METRICS, answer.json()["results"], strict=True):
            assert entry["from"] == start
            assert entry["data"] == [acknowledged[(metric, start + 60 * i)] for i in range(20)], metric
    finally:
        again.stop()
