"""The live demo's feeder: keeps jobs running on the demo clusters through the REST API and writes their metrics.

Every ``interval`` seconds it stops the jobs whose planned run time is over (``POST /api/jobs/stop_job/``: the
server archives them), starts new ones until ``jobs`` run (``POST /api/jobs/start_job/``, on free hosts), and
writes one sample per metric of every running job's hosts -- and a little background load for idle hosts -- as
InfluxDB line protocol to ``POST /api/write?cluster=<cluster>`` (see ``live``). Every ``node_states`` seconds it
reports the state of every node (allocated, mixed or idle) to ``POST /api/nodestate/``, as a batch-system
adapter does; the server adds each node's health from the metric data. A failed request is logged and
tried again at the next tick; samples that could not be written are kept (up to ``MAX_PENDING_LINES``). The
feeder gives up when the server has not answered for ``give_up`` seconds, and on SIGTERM/SIGINT stops its jobs
(unless told to keep them) and returns.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cc_backend.demo.jobs import DemoJob
from cc_backend.demo.live import LIVE_JOBID_BASE, IdleSampler, JobSampler, LivePlanner, start_payload

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("cc_backend.demo.feeder")

#: Lines kept for a later write when the server does not take them; the oldest go first beyond this.
MAX_PENDING_LINES = 200_000
#: Lines per ``/api/write`` request.
BATCH_LINES = 20_000
#: Refusals kept in FeedStats.errors (the newest; a feeder may run for weeks).
MAX_ERRORS = 100


@dataclass
class FeedOptions:
    """What ``cc-backend demo feed`` was asked to do."""

    url: str
    token: str
    jobs: int = 8
    interval: float = 60.0
    job_seconds: tuple[float, float] = (600.0, 1800.0)
    seed: int | None = None
    max_nodes: int = 16
    idle_load: bool = True
    fine_scopes: bool = True
    stop_jobs_on_exit: bool = True
    give_up: float = 300.0
    clusters: list[str] | None = None
    #: Seconds between node-state reports (``POST /api/nodestate/``, as a batch-system adapter sends); 0: none.
    node_states: float = 300.0


@dataclass
class _Running:
    job: DemoJob
    job_id: int
    sampler: JobSampler
    end: int
    lines_written: int = 0


@dataclass
class FeedStats:
    """What a feeder did (for its log and for tests)."""

    started: int = 0
    stopped: int = 0
    lines: int = 0
    failed_requests: int = 0
    node_state_reports: int = 0
    ticks: int = 0
    #: The newest refusals (at most MAX_ERRORS, each cut to 300 characters).
    errors: list[str] = field(default_factory=list)

    def refused(self, text: str) -> None:
        self.errors.append(text[:300])
        del self.errors[:-MAX_ERRORS]


class Feeder:
    """One feeder against one server; ``run`` until ``stop`` is called or the server is gone for good."""

    def __init__(self, options: FeedOptions, client: httpx.Client | None = None) -> None:
        import httpx  # here, not at the top: importing httpx imports click (its command line), a front-end library

        self.opt = options
        self._transport_error: type[Exception] = httpx.HTTPError
        self.client = client or httpx.Client(base_url=options.url.rstrip("/"), timeout=30,
                                             headers={"Authorization": f"Bearer {options.token}"})
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1 << 30)
        self.rng = random.Random(seed)
        self.seed = seed
        self.planner: LivePlanner | None = None
        self.idle = IdleSampler(random.Random(seed + 1), options.clusters) if options.idle_load else None
        self.running: dict[int, _Running] = {}
        self.pending: dict[str, list[str]] = {}
        self.stats = FeedStats()
        self.next_job_id = LIVE_JOBID_BASE + int(time.time()) // 10 % 900_000
        self.last_ok = time.monotonic()
        self.next_node_states = 0.0
        self._stop = threading.Event()

    # -- control ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Make ``run`` return after the current step (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Feed until stopped (0) or until the server has not answered for ``give_up`` seconds (1)."""
        opt = self.opt
        log.info("feeding %s: %d jobs of %.0f-%.0f s, a sample every %g s (seed %d)", opt.url, opt.jobs,
                 *opt.job_seconds, opt.interval, self.seed)
        code = 0
        try:
            if not self._wait_for_server():
                return 0 if self._stop.is_set() else 1
            self._adopt_leftovers()
            next_tick = time.monotonic()
            while not self._stop.is_set():
                try:
                    self.tick(int(time.time()))
                except Exception:  # a bug in one tick must not end the demo
                    log.exception("feeder tick failed")
                if time.monotonic() - self.last_ok > opt.give_up:
                    log.error("the server at %s has not answered for %.0f s: giving up", opt.url, opt.give_up)
                    code = 1
                    break
                # a tick slower than the interval delays the next one instead of starting a burst of them
                next_tick = max(next_tick + opt.interval, time.monotonic())
                self._stop.wait(next_tick - time.monotonic())
        finally:
            if opt.stop_jobs_on_exit and code == 0:
                self._stop_all()
            self.client.close()
        log.info("feeder done: %d jobs started, %d stopped, %d lines written, %d failed requests",
                 self.stats.started, self.stats.stopped, self.stats.lines, self.stats.failed_requests)
        return code

    # -- one step --------------------------------------------------------------------------------------

    def tick(self, now: int) -> None:
        """Stop the jobs that are due, start new ones, write one sample per metric of every host."""
        self.stats.ticks += 1
        for rj in [r for r in self.running.values() if r.end <= now]:
            self._stop_job(rj, now, self.planner.end_state(rj.job) if self.planner else "completed")
        self._start_jobs(now)
        self._write(now)
        if self.opt.node_states > 0 and time.monotonic() >= self.next_node_states:
            self.next_node_states = time.monotonic() + self.opt.node_states
            self._report_node_states()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request; None (logged) when it did not reach the server or the server failed (5xx)."""
        try:
            resp = self.client.request(method, path, **kwargs)
        except self._transport_error as exc:
            self.stats.failed_requests += 1
            log.warning("%s %s failed: %s", method, path, exc)
            return None
        if resp.status_code >= 500:
            self.stats.failed_requests += 1
            log.warning("%s %s: %d %s", method, path, resp.status_code, resp.text[:300])
            return None
        self.last_ok = time.monotonic()
        return resp

    def _wait_for_server(self) -> bool:
        """Wait until /healthz answers and read the clusters the server knows; False when stopped or given up."""
        while not self._stop.is_set():
            resp = self._request("GET", "/api/clusters/")
            if resp is not None and resp.status_code == 200:
                known = {c["name"] for c in resp.json().get("clusters", [])}
                wanted = set(self.opt.clusters) if self.opt.clusters else {"fritz", "alex"}
                usable = sorted(known & wanted)
                if not usable:
                    log.error("the server knows none of the demo clusters %s (it has %s)", sorted(wanted),
                              sorted(known))
                    return False
                self.planner = LivePlanner(self.seed, int(time.time()), max_nodes=self.opt.max_nodes,
                                           clusters=usable)
                return True
            if resp is not None:
                log.error("GET /api/clusters/: %d %s", resp.status_code, resp.text[:300])
                if resp.status_code in (401, 403):
                    return False
            if time.monotonic() - self.last_ok > self.opt.give_up:
                log.error("no answer from %s for %.0f s", self.opt.url, self.opt.give_up)
                return False
            self._stop.wait(min(2.0, self.opt.interval))
        return False

    def _adopt_leftovers(self) -> None:
        """Stop running jobs an earlier feeder left behind (jobIds from LIVE_JOBID_BASE): they get no data any more."""
        resp = self._request("GET", "/api/jobs/", params={"state": "running", "items-per-page": 1000})
        if resp is None or resp.status_code != 200:
            return
        now = int(time.time())
        for job in resp.json().get("jobs", []):
            if LIVE_JOBID_BASE <= job["jobId"] < LIVE_JOBID_BASE + 1_000_000:
                body = {"jobId": job["jobId"], "cluster": job["cluster"], "startTime": job["startTime"],
                        "stopTime": max(now, job["startTime"]), "jobState": "cancelled"}
                stopped = self._request("POST", "/api/jobs/stop_job/", json=body)
                if stopped is not None:
                    log.info("stopped job %d left running by an earlier feeder: %d", job["jobId"],
                             stopped.status_code)

    def _start_jobs(self, now: int) -> None:
        assert self.planner is not None
        busy = {h for r in self.running.values() for h in r.job.hosts}
        lo, hi = self.opt.job_seconds
        while len(self.running) < self.opt.jobs and not self._stop.is_set():
            duration = max(1, round(self.rng.uniform(lo, hi)))
            job = self.planner.plan(now, duration, busy)
            if job is None:
                log.warning("no free hosts for another job")
                return
            for _attempt in range(20):
                job_id = self.next_job_id
                self.next_job_id += 1
                resp = self._request("POST", "/api/jobs/start_job/", json=start_payload(job, job_id))
                if resp is None:
                    return  # the server is away: try again at the next tick
                if resp.status_code == 201:
                    break
                if resp.status_code == 422 and "already exists" in resp.text:
                    continue  # that jobId was used within the last day: take the next
                log.error("start_job of job %d refused: %d %s", job_id, resp.status_code, resp.text[:300])
                self.stats.refused(resp.text)
                return
            else:
                return
            busy.update(job.hosts)
            sampler = JobSampler(job, random.Random(self.rng.random()), fine_scopes=self.opt.fine_scopes)
            self.running[job_id] = _Running(job, job_id, sampler, now + job.duration)
            self.stats.started += 1
            log.info("started job %d on %s/%s (%s, %s, %d node%s) for %d s", job_id, job.cluster, job.sc.name,
                     job.meta["user"], job.app, len(job.hosts), "" if len(job.hosts) == 1 else "s", job.duration)

    def _stop_job(self, rj: _Running, now: int, state: str) -> bool:
        job = rj.job
        stop_time = min(now, int(job.meta["startTime"]) + job.duration)
        body = {"jobId": rj.job_id, "cluster": job.cluster, "startTime": job.meta["startTime"],
                "stopTime": stop_time, "jobState": state}
        resp = self._request("POST", "/api/jobs/stop_job/", json=body)
        if resp is None:
            return False  # again at the next tick
        if resp.status_code == 200:
            self.stats.stopped += 1
            log.info("stopped job %d (%s) after %d s", rj.job_id, state, stop_time - job.meta["startTime"])
        else:  # stopped by someone else (e.g. the walltime worker) or deleted: not ours any more
            log.warning("stop_job of job %d: %d %s", rj.job_id, resp.status_code, resp.text[:300])
        del self.running[rj.job_id]
        return True

    def _stop_all(self) -> None:
        now = int(time.time())
        for rj in list(self.running.values()):
            if not self._stop_job(rj, now, "cancelled"):
                log.warning("job %d stays running: the server did not answer", rj.job_id)
                break

    def _report_node_states(self) -> None:
        """Every node of the clusters in use: allocated (or mixed, for a part of it) by a feeder job, else idle."""
        assert self.planner is not None
        use: dict[str, list[int]] = {}  # host -> [cpus, memory MB, gpus, jobs]
        for rj in self.running.values():
            meta = rj.job.meta
            for host in rj.job.hosts:
                u = use.setdefault(host, [0, 0, 0, 0])
                u[0] += meta["numHwthreads"] // meta["numNodes"]
                u[1] += meta.get("requestedMemory", 0) // meta["numNodes"]
                u[2] += len(rj.job.gpu_idx)
                u[3] += 1
        for cluster in sorted(self.planner.clusters):
            nodes = []
            for sc in self.planner.world.clusters[cluster]:
                for host in sc.hosts:
                    cpus, memory, gpus, jobs = use.get(host, (0, 0, 0, 0))
                    state = "idle" if not jobs else ("allocated" if cpus >= sc.cores else "mixed")
                    nodes.append({"hostname": host, "states": [state], "cpusAllocated": cpus,
                                  "memoryAllocated": memory, "gpusAllocated": gpus, "jobsRunning": jobs})
            resp = self._request("POST", "/api/nodestate/", json={"cluster": cluster, "nodes": nodes})
            if resp is not None and resp.status_code >= 300:
                log.error("POST /api/nodestate/ of %s: %d %s", cluster, resp.status_code, resp.text[:300])
            elif resp is not None:
                self.stats.node_state_reports += 1

    def _write(self, now: int) -> None:
        interval = max(1, round(self.opt.interval))
        busy: dict[str, set[str]] = {}
        for rj in self.running.values():
            lines = rj.sampler.lines(now, interval)
            rj.lines_written += len(lines)
            self.pending.setdefault(rj.job.cluster, []).extend(lines)
            busy.setdefault(rj.job.cluster, set()).update(rj.job.hosts)
        if self.idle is not None:
            for cluster in self.idle.hosts:
                self.pending.setdefault(cluster, []).extend(self.idle.lines(cluster, busy.get(cluster, set()), now))
        for cluster, lines in self.pending.items():
            if len(lines) > MAX_PENDING_LINES:
                log.warning("dropping %d samples of %s the server did not take", len(lines) - MAX_PENDING_LINES,
                            cluster)
                del lines[:len(lines) - MAX_PENDING_LINES]
            while lines:
                batch = lines[:BATCH_LINES]
                resp = self._request("POST", "/api/write", params={"cluster": cluster},
                                     content="\n".join(batch).encode())
                if resp is None:
                    break  # kept for the next tick
                if resp.status_code >= 300:
                    # a 4xx will not get better by sending it again
                    log.error("POST /api/write?cluster=%s: %d %s", cluster, resp.status_code, resp.text[:300])
                    self.stats.refused(resp.text)
                else:
                    self.stats.lines += len(batch)
                del lines[:len(batch)]
