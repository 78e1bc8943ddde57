"""NATS against the real server on 127.0.0.1:4222: metric subscriptions and the job/node-state API.

Each test uses its own subjects, so tests (and parallel runs) never see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.cli import cli
from support.db import SQLITE_ONLY
from support.jobs import start_payload
from support.server import InProcess, Server
from support.site import auth, token

NATS_ADDRESS = "nats://127.0.0.1:4222"


def _nats_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def need_nats():
    if not _nats_running():
        import os

        if os.environ.get("CI"):
            pytest.fail("a NATS server on 127.0.0.1:4222 is required in CI")
        pytest.skip("no NATS server on 127.0.0.1:4222")


def publish(subject: str, *messages: bytes) -> None:
    """Publish ``messages`` in order and wait until the server has them."""
    import nats

    async def run() -> None:
        nc = await nats.connect(NATS_ADDRESS)
        for message in messages:
            await nc.publish(subject, message)
        await nc.flush()
        await nc.close()

    asyncio.run(run())


def wait_for(predicate, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s")


def _configure(site: Path, prefix: str, *, api: bool = True, metrics: bool = True) -> None:
    config = json.loads((site / "config.json").read_text())
    config["nats"] = {"address": NATS_ADDRESS}
    if metrics:
        config["metric-store"] = {"retention-in-memory": "48h", "memory-cap": 1,
                                  "checkpoints": {"directory": str(site / "checkpoints")},
                                  "nats-subscriptions": [{"subscribe-to": f"{prefix}.metrics", "cluster-tag": "fritz"}]}
    if api:
        config["main"]["api-subjects"] = {"subject-job-event": f"{prefix}.jobs",
                                          "subject-node-state": f"{prefix}.nodes"}
    (site / "config.json").write_text(json.dumps(config, indent=2))


def _db(site: Path):
    config = json.loads((site / "config.json").read_text())
    return create_engine(f"sqlite:///{config['main']['db']}")


def _jobs(site: Path) -> list[tuple]:
    engine = _db(site)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT job_id, cluster, job_state, duration, start_time FROM job "
                                 "WHERE hpc_user = 'testuser' ORDER BY id")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _node_states(site: Path) -> dict[str, tuple]:
    engine = _db(site)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT n.hostname, s.node_state, s.health_state, s.cpus_allocated FROM node_state s "
                                 "JOIN node n ON n.id = s.node_id ORDER BY s.id")).all()
    engine.dispose()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.fixture
def live(site, need_nats):
    """(site, runtime, subject prefix) with a running NatsService on the site's runtime."""
    from cc_backend.nats import NatsService

    prefix = f"cctest.{uuid.uuid4().hex}"
    r = cli(site, "-init-db")
    assert r.returncode == 0, r.stderr
    _configure(site, prefix)
    app = InProcess(site)
    service = NatsService(app.runtime)
    service.start()
    assert service.wait_connected(10), "the service did not connect to NATS"
    yield site, app.runtime, prefix
    service.stop()
    app.stop()


def _event(function: str, payload: dict, ts: int = 1_700_000_000) -> bytes:
    from cc_backend.nats import event_line

    return event_line("job", {"function": function}, payload, ts)


def test_event_line_round_trip():
    from cc_backend.nats import parse_event_lines

    payload = {"jobId": 7, "metaData": {"jobScript": "#!/bin/bash\necho \"hi\" \\ done"}, "user": "a b,c=d"}
    message = _event("start_job", payload) + b"\n\n" + b'nodestate,cluster=fritz event="{}",n=1i,ok=t 1700000001'
    first, second = parse_event_lines(message)
    assert (first.measurement, first.tags, first.timestamp) == ("job", {"function": "start_job"}, 1_700_000_000)
    assert json.loads(first.fields["event"]) == payload
    assert second.fields == {"event": "{}", "n": 1, "ok": True} and second.tags == {"cluster": "fritz"}


@pytest.mark.parametrize("message,line", [
    (b'job,function=start_job event="{unclosed 1', "line 1"),
    (b'job,function=start_job\nnext event="x" 1', "line 1"),
    (b'\njob event="x" notanumber', "line 2"),
])
def test_bad_event_lines_name_the_line(message, line):
    from cc_backend.errors import InvalidInput
    from cc_backend.nats import parse_event_lines

    with pytest.raises(InvalidInput) as err:
        parse_event_lines(message)
    assert err.value.field == line


@SQLITE_ONLY
def test_metrics_arrive_in_the_store(live):
    _site, runtime, prefix = live
    start = int(time.time()) // 60 * 60 - 300
    lines = "".join(f"cpu_load,hostname=f0501 value={v} {start + 60 * i}\n" for i, v in enumerate([1.25, 2.5, 3.75]))
    # a bad message is logged and skipped; the next one still arrives
    publish(f"{prefix}.metrics", b"cpu_load,hostname=f0501 value=oops 1\n", lines.encode())

    def loaded():
        answer = runtime.metric_store.query({
            "cluster": "fritz", "from": start, "to": start + 179, "with-stats": True, "with-data": True,
            "queries": [{"metric": "cpu_load", "host": "f0501", "resolution": 60}]})
        data = answer["results"][0][0].get("data")
        return data if data and None not in data else None

    assert wait_for(loaded, what="the metrics to arrive") == [1.25, 2.5, 3.75]


@SQLITE_ONLY
def test_start_and_stop_job_events(live):
    site, runtime, prefix = live
    start_time = int(time.time()) - 3600
    publish(f"{prefix}.jobs", _event("start_job", start_payload(4242, start_time)))
    assert wait_for(lambda: _jobs(site), what="the job start") == [(4242, "fritz", "running", 0, start_time)]
    publish(f"{prefix}.jobs", _event("stop_job", {"jobId": 4242, "cluster": "fritz", "startTime": start_time,
                                                   "stopTime": start_time + 600, "jobState": "failed"}))
    assert wait_for(lambda: [j for j in _jobs(site) if j[2] != "running"], what="the job stop") == [
        (4242, "fritz", "failed", 600, start_time)]


@SQLITE_ONLY
def test_bad_job_events_change_nothing(live):
    site, runtime, prefix = live
    start_time = int(time.time()) - 3600
    bad = [
        _event("start_job", {**start_payload(4343, start_time), "colour": "red"}),  # unknown field
        _event("start_job", start_payload(4343, start_time, cluster="nosuch")),
        _event("start_job", start_payload(4343, start_time, numNodes=2)),
        _event("start_job", start_payload(4343, start_time, user="")),
        _event("launch_job", start_payload(4343, start_time)),
        b'job,function=start_job event="{not json" 1',
        b"job,function=start_job value=1 1",
        b"not line protocol at all",
        _event("stop_job", {"jobId": 999999, "stopTime": start_time + 10}),
    ]
    publish(f"{prefix}.jobs", *bad)
    # A good event after the bad ones: once it is in, the bad ones were handled before it or alongside it.
    publish(f"{prefix}.jobs", _event("start_job", start_payload(4344, start_time)))
    wait_for(lambda: _jobs(site), what="the good job")
    time.sleep(0.5)
    assert _jobs(site) == [(4344, "fritz", "running", 0, start_time)]
    # a duplicate start and a stop before the start are refused as over REST
    publish(f"{prefix}.jobs", _event("start_job", start_payload(4344, start_time + 10)),
            _event("stop_job", {"jobId": 4344, "cluster": "fritz", "stopTime": start_time - 10}))
    time.sleep(1.0)
    assert _jobs(site) == [(4344, "fritz", "running", 0, start_time)]


@SQLITE_ONLY
def test_a_flood_of_job_events_waits_for_the_workers(site, need_nats, monkeypatch):
    """At most MAX_QUEUED_EVENTS events queue for the pool; the rest wait in NATS, and none is lost."""
    import cc_backend.nats as nats_module

    monkeypatch.setattr(nats_module, "MAX_QUEUED_EVENTS", 3)
    prefix = f"cctest.{uuid.uuid4().hex}"
    assert cli(site, "-init-db").returncode == 0
    _configure(site, prefix, metrics=False)
    app = InProcess(site)
    service = nats_module.NatsService(app.runtime)
    service.start()
    try:
        assert service.wait_connected(10)
        start_time = int(time.time()) - 3600
        publish(f"{prefix}.jobs", *[_event("start_job", start_payload(5000 + i, start_time)) for i in range(60)])
        wait_for(lambda: len(_jobs(site)) == 60, timeout=30, what="60 job starts")
        assert sorted(job[0] for job in _jobs(site)) == list(range(5000, 5060))
        assert service.job_pool.most_queued == 3 and service.job_pool.queued == 0
    finally:
        service.stop()
        app.stop()


@SQLITE_ONLY
def test_node_state_events(live):
    site, runtime, prefix = live
    from cc_backend.nats import event_line

    payload = {"cluster": "fritz", "nodes": [{"hostname": "f0601", "states": ["allocated"], "cpusAllocated": 36},
                                             {"hostname": "f0602", "states": ["down"]}]}
    publish(f"{prefix}.nodes", event_line("nodestate", {}, {"cluster": "fritz", "nodes": [{"hostname": "f0601",
                                                                                            "bad": 1}]}, 1),
            event_line("nodestate", {}, payload, 1_700_000_000))
    states = wait_for(lambda: _node_states(site), what="the node states")
    assert states == {"f0601": ("allocated", "failed", 36), "f0602": ("down", "full", 0)}


@SQLITE_ONLY
def test_real_server_takes_jobs_over_nats_only(site, need_nats):
    """A real ``serve`` with main.api-subjects: REST start_job is not mounted, NATS start/stop work, SIGTERM is clean."""
    prefix = f"cctest.{uuid.uuid4().hex}"
    r = cli(site, "-init-db")
    assert r.returncode == 0, r.stderr
    _configure(site, prefix)
    server = Server(site)
    try:
        server.wait_ready()
        headers = auth(token(site, ["api"]))
        start_time = int(time.time()) - 7200
        r = server.post("/api/jobs/start_job/", json=start_payload(4545, start_time), headers=headers)
        assert r.status_code == 404
        # the subscriptions are made right after the server listens; retry until the job is there
        deadline = time.monotonic() + 15
        while not _jobs(site) and time.monotonic() < deadline:
            publish(f"{prefix}.jobs", _event("start_job", start_payload(4545, start_time)))
            time.sleep(0.3)
        assert _jobs(site) == [(4545, "fritz", "running", 0, start_time)]
        publish(f"{prefix}.jobs", _event("stop_job", {"jobId": 4545, "cluster": "fritz", "stopTime": start_time + 60}))
        assert wait_for(lambda: [j for j in _jobs(site) if j[2] == "completed"], what="the stop") == [
            (4545, "fritz", "completed", 60, start_time)]
        start = int(time.time()) // 60 * 60 - 120
        publish(f"{prefix}.metrics", f"cpu_load,hostname=f0701 value=9.5 {start}\n".encode())
        query = {"cluster": "fritz", "from": start, "to": start + 59,
                 "queries": [{"metric": "cpu_load", "host": "f0701", "resolution": 60}]}

        def stored():
            answer = server.post("/api/query", json=query, headers=headers).json()
            return answer["results"][0][0].get("data")

        assert wait_for(stored, what="the metric") == [9.5]
    finally:
        code = server.stop()
    output = (site / "server.log").read_text(errors="replace")
    assert code == 0, output
    assert "Traceback" not in output
    # the final checkpoint was written on SIGTERM
    assert any((site / "checkpoints").rglob("*")), "no checkpoint files"
