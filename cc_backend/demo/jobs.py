"""Users, projects and the jobs of a demo archive: identity, meta.json and the per-job load profile."""

from __future__ import annotations

import bisect
import math
import random
from typing import TYPE_CHECKING, Any

from cc_backend.demo.applications import (
    ADMIN_TAGS,
    APPS,
    BODIES,
    DATASETS,
    DOMAINS,
    ENVS,
    HEADER,
    JOBNAME_SUFFIX,
    MULTINODE,
    MULTINODE_CUM,
    MULTINODE_CUM_BIG,
    PRIVATE_TAGS,
    STATE_CUM,
    SYSTEMS,
    WALLTIME_CUM,
    WALLTIMES_H,
    App,
    cumulative,
    pick,
)
from cc_backend.demo.base import FINISHED_STATES, FORCE_PERIOD, WINDOW_DAYS, mix
from cc_backend.demo.clusters import SubCluster, make_clusters, metric_names

if TYPE_CHECKING:
    import orjson


class _User:
    __slots__ = ("name", "projects", "apps", "app_cum", "gpu", "big", "tags", "habit")

    def __init__(self, name: str, projects: list[str], apps: tuple[str, ...], app_w: list[float],
                 gpu: bool, big: bool, tags: tuple[tuple[str, str], ...], habit: float) -> None:
        self.name, self.projects, self.apps, self.app_cum = name, projects, apps, cumulative(app_w)
        self.gpu, self.big, self.tags = gpu, big, tags
        self.habit = habit  # users mostly submit the same kind of job: the partition choice sticks


class _World:
    """Everything shared by all jobs of one archive: clusters, users, array structure, time warp."""

    def __init__(self, seed: int, n_jobs: int, now: int) -> None:
        self.seed, self.n, self.now = seed, n_jobs, now
        self.clusters = make_clusters()
        self.sc = {(c, sc.name): sc for c, scs in self.clusters.items() for sc in scs}
        self.metrics = {
            (c, sc.name): tuple(m for m in metric_names(c) if m not in sc.removes)
            for c, scs in self.clusters.items() for sc in scs
        }
        rng = random.Random(mix(seed, 0, 0))
        self._make_people(rng)
        self._make_arrays(random.Random(mix(seed, 0, 1)))
        self._make_warp()
        self.tagger_since = now - 12 * 86400
        self.jobid_base = 1_000_000 + (seed % 7) * 250_000

    # people
    def _make_people(self, rng: random.Random) -> None:
        domains = tuple(DOMAINS)
        dom_cum = cumulative(DOMAINS[d][0] for d in domains)
        n_proj = rng.randint(45, 70)
        seen: set[str] = set()
        projects: list[tuple[str, str]] = []
        while len(projects) < n_proj:
            name = f"{rng.choice('bkv')}{rng.randint(100, 299)}{rng.choice('abcdefghprstuw')}{rng.choice('abcdefgh')}"
            if name not in seen:
                seen.add(name)
                projects.append((name, pick(rng, domains, dom_cum)))
        proj_cum = cumulative(1.0 / (k + 1) ** 0.8 for k in range(n_proj))
        n_users = rng.randint(150, 260)
        users: list[_User] = []
        taken: set[str] = set()
        for _ in range(n_users):
            pname, dom = pick(rng, projects, proj_cum)
            while True:
                uname = f"{pname}{rng.randint(10, 99)}"
                if uname not in taken:
                    taken.add(uname)
                    break
            plist = [pname]
            if rng.random() < 0.25:
                other = pick(rng, projects, proj_cum)[0]
                if other != pname:
                    plist.append(other)
            app_w = DOMAINS[dom][1]
            names = tuple(app_w)
            napps = 1 if rng.random() < 0.55 else 2
            apps: list[str] = []
            while len(apps) < napps:
                a = pick(rng, names, cumulative(app_w[x] for x in names))
                if a not in apps:
                    apps.append(a)
            weights = [1.0] + [rng.uniform(0.1, 0.6) for _ in apps[1:]]
            tags = tuple(rng.sample(PRIVATE_TAGS, 2))
            users.append(_User(uname, plist, tuple(apps), weights, rng.random() < 0.5, rng.random() < 0.12, tags,
                               rng.random()))
        rng.shuffle(users)
        self.users = users
        self.user_cum = cumulative(1.0 / (k + 1) ** 1.05 for k in range(len(users)))

    def _make_arrays(self, rng: random.Random) -> None:
        leader = [0] * self.n
        i = 0
        while i < self.n:
            size = 1
            if rng.random() < 0.03:
                size = min(60, 2 + int(rng.expovariate(1 / 8)))
            for j in range(i, min(self.n, i + size)):
                leader[j] = i
            i += size
        self.leader = leader

    def array_size(self, lead: int) -> int:
        j = lead + 1
        while j < self.n and self.leader[j] == lead:
            j += 1
        return j - lead

    def _make_warp(self) -> None:
        """Inverse CDF of submissions over the window: more during working hours, less at weekends."""
        start = self.now - WINDOW_DAYS * 86400
        self.window_start = start - start % 3600
        hours = WINDOW_DAYS * 24
        diurnal = (0.35, 0.3, 0.28, 0.27, 0.27, 0.3, 0.4, 0.6, 0.85, 1.0, 1.0, 1.0,
                   0.95, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4)
        weights = []
        for h in range(hours):
            t = self.window_start + h * 3600
            local = (t // 3600 + 1) % 24  # CET
            weekday = (t // 86400 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
            weights.append(diurnal[local] * (0.45 if weekday >= 5 else 1.0))
        self.warp_cum = cumulative(weights)

    def submit_time(self, u: float) -> int:
        x = u * self.warp_cum[-1]
        h = bisect.bisect_right(self.warp_cum, x)
        h = min(h, len(self.warp_cum) - 1)
        lo = self.warp_cum[h - 1] if h else 0.0
        frac = (x - lo) / (self.warp_cum[h] - lo)
        return int(self.window_start + (h + frac) * 3600)


_WORLD_CACHE: dict[tuple[int, int, int], _World] = {}


def world(seed: int, n_jobs: int, now: int) -> _World:
    key = (seed, n_jobs, now)
    w = _WORLD_CACHE.get(key)
    if w is None:
        _WORLD_CACHE.clear()
        w = _WORLD_CACHE[key] = _World(seed, n_jobs, now)
    return w




class Identity:
    """What all tasks of an array job share (and a plain job has alone)."""

    __slots__ = ("user", "project", "app", "cluster", "sc", "partition", "shared", "nodes", "alloc",
                 "gpus_per_node", "walltime", "name", "script", "jitter", "mem_req", "gpu_app", "submit_u")

    user: _User
    project: str
    app: str
    cluster: str
    sc: SubCluster
    partition: str
    shared: str
    nodes: int
    alloc: int
    gpus_per_node: int
    walltime: int
    name: str
    script: str
    jitter: int
    mem_req: int
    gpu_app: bool
    submit_u: float


# One generator per stream and process, re-seeded per job: seed() gives the same sequence as a new Random.
_RNG_IDENTITY = random.Random()
_RNG_JOB = random.Random()
RNG_STATS = random.Random()


def _identity(w: _World, lead: int) -> Identity:
    rng = _RNG_IDENTITY
    rng.seed(mix(w.seed, 1, lead))
    ident = Identity()
    user: _User = pick(rng, w.users, w.user_cum)
    ident.user = user
    ident.submit_u = rng.random()
    ident.project = user.projects[0] if len(user.projects) == 1 or rng.random() < 0.8 else user.projects[1]
    app_name = pick(rng, user.apps, user.app_cum)
    app = APPS[app_name]
    ident.app = app_name
    if len(app.clusters) == 1:
        cluster = app.clusters[0][0]
    else:
        w_alex = dict(app.clusters)["alex"]
        p_alex = min(0.9, 2.1 * w_alex) if user.gpu else 0.2 * w_alex
        cluster = "alex" if rng.random() < p_alex else "fritz"
    ident.cluster = cluster
    ident.gpu_app = cluster == "alex"
    array = w.array_size(lead) > 1
    nodes, alloc, gpn = 1, 0, 0
    if cluster == "alex":
        sc_name = "a100" if rng.random() < (0.45 if app_name == "pytorch" else 0.25) else "a40"
        sc = w.sc[("alex", sc_name)]
        partition = sc_name
        if app_name == "pytorch":
            g = pick(rng, (1, 2, 4, 8), cumulative((35, 10, 20, 35)))
        elif app_name == "python":
            g = pick(rng, (1, 2), cumulative((85, 15)))
        else:
            g = pick(rng, (1, 2, 4, 8), cumulative((60, 15, 15, 10)))
        if g == 8:
            shared = "none"
            tail = (1, 2, 4, 8, 16)
            nodes = pick(rng, tail, cumulative((70, 15, 10, 4, 1 + 4 * user.big)))
            gpn = 8
        else:
            shared = "single_user" if array and rng.random() < 0.5 else "multi_user"
            gpn = g
        alloc = gpn * sc.cores_per_gpu
    else:
        r = rng.random()
        if rng.random() < 0.8:
            r = (user.habit + 0.1 * r) % 1.0
        kind = app.kind
        if kind == "mpi":
            if r < 0.45 or (user.big and r < 0.75):
                sc_name, partition = "main", "multinode"
                nodes = pick(rng, MULTINODE, MULTINODE_CUM_BIG if user.big else MULTINODE_CUM)
            elif r < 0.87:
                sc_name, partition = "main", "singlenode"
            elif r < 0.97:
                sc_name = partition = "spr1tb"
                nodes = pick(rng, (1, 2, 4), cumulative((70, 20, 10)))
            else:
                sc_name = partition = "spr2tb"
                nodes = pick(rng, (1, 2), cumulative((80, 20)))
            shared = "none"
        else:
            threads = kind == "threads"
            if r < (0.35 if threads else 0.6):
                sc_name, partition = "main", "shared"
                shared = "single_user" if array and rng.random() < 0.5 else "multi_user"
                opts = (4, 8, 12, 16, 18, 24, 36) if threads else (1, 1, 2, 4, 4, 8, 16)
                alloc = rng.choice(opts)
            elif r < (0.8 if threads else 0.85):
                sc_name, partition, shared = "main", "singlenode", "none"
            else:
                sc_name = partition = "spr1tb" if rng.random() < 0.75 else "spr2tb"
                shared = "none"
        sc = w.sc[("fritz", sc_name)]
        nodes = min(nodes, len(sc.hosts))
        if not alloc:
            alloc = sc.cores
    ident.sc, ident.partition, ident.shared = sc, partition, shared
    ident.nodes, ident.alloc, ident.gpus_per_node = nodes, alloc, gpn
    wt_h = pick(rng, WALLTIMES_H, WALLTIME_CUM)
    ident.walltime = int(wt_h * 3600)
    if shared == "none":
        ident.mem_req = sc.mem_gb * 1000
    else:
        ident.mem_req = int(sc.mem_gb * 1000 * alloc / sc.cores)
    ident.jitter = rng.randrange(3)
    ident.name, ident.script = _script(rng, ident, app_name, sc)
    return ident


def _fmt_time(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:00"


def _script(rng: random.Random, ident: Identity, app_name: str, sc: SubCluster) -> tuple[str, str]:
    sys_name = rng.choice(SYSTEMS[app_name])
    suffix = rng.choice(JOBNAME_SUFFIX.get(app_name, ("",)))
    num = rng.randint(1, 400)
    if app_name in ("gromacs", "vasp"):
        job_name = f"{sys_name}_{suffix}"
    elif app_name in ("python", "matlab", "julia", "custom", "pytorch"):
        job_name = f"{sys_name}_{num}" if rng.random() < 0.5 else sys_name
    else:
        job_name = sys_name
    key = app_name
    if ident.gpu_app and app_name in ("gromacs", "lammps", "python"):
        key = f"{app_name}-gpu"
    body = rng.choice(BODIES[key])
    if ident.gpus_per_node:
        res = f"#SBATCH --nodes={ident.nodes}\n#SBATCH --gres=gpu:{sc.name}:{ident.gpus_per_node}\n"
        if ident.shared == "none":
            res += "#SBATCH --exclusive\n"
    elif ident.shared != "none":
        res = f"#SBATCH --ntasks=1\n#SBATCH --cpus-per-task={ident.alloc}\n"
    elif APPS[app_name].kind == "mpi":
        res = f"#SBATCH --nodes={ident.nodes}\n#SBATCH --ntasks-per-node={sc.cores}\n"
    else:
        res = f"#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task={sc.cores}\n"
    header = HEADER.format(name=job_name, res=res, time=_fmt_time(ident.walltime), partition=ident.partition,
                            project=ident.project)
    # only the fields a template uses are drawn (fewer random draws, less formatting)
    fields: dict[str, Any] = {"sys": sys_name, "num": num, "project": ident.project}
    if "{mdp}" in body or "{step}" in body:
        fields["mdp"] = fields["step"] = suffix
    if "{maxh}" in body:
        fields["maxh"] = round(ident.walltime / 3600 * 0.95, 2)
    if "{gmxver}" in body:
        fields["gmxver"] = rng.choice(("2023.3-gcc11.2.0", "2024.1-gcc12.2.0"))
    if "{vbin}" in body:
        fields["vbin"] = rng.choice(("std", "std", "std", "gam", "ncl"))
    if "{foamver}" in body:
        fields["foamver"] = rng.choice(("2306", "v2212", "11"))
        fields["solver"] = rng.choice(("simpleFoam", "pimpleFoam", "interFoam", "rhoPimpleFoam", "buoyantSimpleFoam"))
    if "{env}" in body:
        fields["env"] = rng.choice(ENVS)
    if "{bs}" in body:
        fields["bs"] = rng.choice((32, 64, 128, 256, 512))
        fields["ds"] = rng.choice(DATASETS)
    fields["gpn"] = max(1, ident.gpus_per_node)
    text = body.format(**fields)
    return job_name, header + text


class DemoJob:
    """One generated job: its meta.json document plus the load model used for statistics and series."""

    __slots__ = ("index", "meta", "sc", "hosts", "hwthreads", "gpu_idx", "state", "duration", "app", "prof",
                 "metrics", "cluster")

    index: int
    meta: dict[str, Any]
    sc: SubCluster
    hosts: list[str]
    hwthreads: list[int] | orjson.Fragment
    gpu_idx: list[int]
    state: str
    duration: int
    app: str
    prof: Prof
    metrics: tuple[str, ...]
    cluster: str


class LiveStart:
    """How a live job (see ``demo.live``) starts: now, for a planned time, on hosts no other live job uses."""

    __slots__ = ("start", "duration", "busy", "max_nodes")

    def __init__(self, start: int, duration: int, busy: set[str], max_nodes: int) -> None:
        self.start, self.duration, self.busy, self.max_nodes = start, duration, busy, max_nodes


def _finished(rng: random.Random, i: int, walltime: int) -> tuple[str, int]:
    """State and run time of archived job ``i``."""
    k = i % FORCE_PERIOD
    state = FINISHED_STATES[k] if k < len(FINISHED_STATES) else pick(rng, FINISHED_STATES, STATE_CUM)
    frac = min(0.98, max(0.002, math.exp(rng.gauss(math.log(0.35), 0.9))))
    if state == "completed":
        duration = max(30, int(walltime * frac))
    elif state == "timeout":
        duration = walltime
    elif state == "failed":
        duration = rng.randint(5, 300) if rng.random() < 0.5 else max(30, int(walltime * frac))
    elif state == "boot_fail":
        duration = rng.randint(5, 300)
    elif state == "out_of_memory":
        duration = max(120, int(walltime * rng.uniform(0.05, 0.8)))
    else:  # cancelled, deadline, node_fail, preempted
        duration = max(30, int(walltime * rng.uniform(0.01, 0.95)))
    return state, duration


def _live_hosts(rng: random.Random, sc: SubCluster, n_nodes: int, busy: set[str]) -> list[str] | None:
    """``n_nodes`` hosts of ``sc`` that are not busy, a contiguous stretch of the free ones; None if too few."""
    free = [h for h in sc.hosts if h not in busy]
    if len(free) < n_nodes:
        return None
    j = rng.randrange(len(free) - n_nodes + 1)
    return free[j:j + n_nodes]


def make_job(w: _World, i: int, ident_cache: dict[int, Identity], live: LiveStart | None = None) -> DemoJob | None:
    """Job ``i`` of the archive; with ``live`` a running job of the same models instead.

    A live job starts at ``live.start``, is planned to run ``live.duration`` seconds (at most its walltime)
    and gets hosts outside ``live.busy``; None when its identity needs more than ``live.max_nodes`` nodes or
    more free hosts than there are (the caller tries another ``i``).
    """
    lead = w.leader[i]
    ident = ident_cache.get(lead)
    if ident is None:
        if len(ident_cache) > 64:
            ident_cache.clear()
        ident = ident_cache[lead] = _identity(w, lead)
    if live is not None and ident.nodes > live.max_nodes:
        return None
    rng = _RNG_JOB
    rng.seed(mix(w.seed, 2, i))
    sc: SubCluster = ident.sc
    app = APPS[ident.app]
    now = w.now

    walltime = ident.walltime
    if live is None:
        state, duration = _finished(rng, i, walltime)
    else:
        state, duration = "running", max(1, min(live.duration, walltime))

    # times
    submit = w.submit_time((lead + ident.submit_u) / max(1, w.n))
    pos = i - lead
    wait = int(math.exp(rng.gauss(math.log(300), 1.3)) * (1 + math.log2(ident.nodes)))
    wait = min(wait, 3 * 86400) + pos * rng.randint(0, 120)
    start = submit + wait
    if live is not None:
        start = live.start
        submit = start - wait
    elif start + duration > now - 30:
        # finished jobs that would end after `now` move back in time; they keep a normal queue wait
        start = now - 30 - duration - rng.randint(0, 3600)
        submit = start - wait
    submit = max(1, submit)

    # resources
    hosts_all = sc.hosts
    n_nodes = ident.nodes
    n_all = len(hosts_all)
    if live is not None:
        live_hosts = _live_hosts(rng, sc, n_nodes, live.busy)
        if live_hosts is None:
            return None
        picked = [hosts_all.index(h) for h in live_hosts]
    elif n_nodes >= n_all:
        picked = list(range(n_all))
    else:
        # a contiguous stretch with a few holes, as Slurm allocates
        j = rng.randrange(n_all)
        slack = n_all - n_nodes
        picked = []
        while len(picked) < n_nodes:
            if slack and rng.random() < 0.12:
                slack -= 1
            else:
                picked.append(j % n_all)
            j += 1
        picked.sort()
    hosts = [hosts_all[x] for x in picked]
    gpu_idx: list[int] = []
    if ident.gpus_per_node:
        g = ident.gpus_per_node
        if g == len(sc.gpus):
            gpu_idx = list(range(g))
        else:
            off = rng.randrange(len(sc.gpus) // g) * g if len(sc.gpus) % g == 0 else rng.randrange(len(sc.gpus) - g + 1)
            gpu_idx = list(range(off, off + g))
        cpg = sc.cores_per_gpu
        hwt: Any = [c for gi in gpu_idx for c in range(gi * cpg, (gi + 1) * cpg)]
        if len(hwt) == sc.cores:
            hwt = sc.full_hwthreads
    elif ident.alloc < sc.cores:
        a = ident.alloc
        off = rng.randrange(sc.cores // a) * a if sc.cores % a == 0 else rng.randrange(sc.cores - a + 1)
        hwt = list(range(off, off + a))
    else:
        hwt = sc.full_hwthreads
    if gpu_idx:
        accs = [sc.gpus[x] for x in gpu_idx]
        resources = [{"hostname": h, "hwthreads": hwt, "accelerators": accs} for h in hosts]
    else:
        resources = [{"hostname": h, "hwthreads": hwt} for h in hosts]

    # load model
    prof = _profile(rng, ident, app, sc, state, duration, n_nodes)

    # tags
    tags: list[dict[str, str]] = []
    if start >= w.tagger_since and app.tag:
        tags.append({"type": "app", "name": app.tag, "scope": "global"})
    if start >= w.tagger_since and ident.shared == "none" and duration > 600 and prof.pathology_tag:
        tags.append({"type": "jobClass", "name": prof.pathology_tag, "scope": "global"})
    r = rng.random()
    if r < 0.035:
        t = ident.user.tags[0] if r < 0.025 else ident.user.tags[1]
        tags.append({"type": t[0], "name": t[1], "scope": ident.user.name})
    elif r < 0.05:
        t = rng.choice(ADMIN_TAGS)
        tags.append({"type": t[0], "name": t[1], "scope": "admin"})

    job_id = w.jobid_base + 3 * i + (ident.jitter if lead == i else rng.randrange(3))
    meta: dict[str, Any] = {
        "jobId": job_id,
        "user": ident.user.name,
        "project": ident.project,
        "cluster": ident.cluster,
        "subCluster": sc.name,
        "partition": ident.partition,
    }
    if lead != i or w.array_size(lead) > 1:
        meta["arrayJobId"] = w.jobid_base + 3 * lead + ident.jitter
    meta["numNodes"] = n_nodes
    meta["numHwthreads"] = n_nodes * ident.alloc
    if gpu_idx:
        meta["numAcc"] = n_nodes * len(gpu_idx)
    meta.update({
        "shared": ident.shared,
        "monitoringStatus": 3,
        "smt": 1,
        "jobState": state,
        "submitTime": submit,
        "startTime": start,
        "duration": duration,
        "walltime": walltime,
        "requestedMemory": ident.mem_req * n_nodes,
        "resources": resources,
        "metaData": {"jobName": ident.name, "jobScript": ident.script},
        "tags": tags,
        "statistics": None,
        "energy": 0,
    })
    job = DemoJob()
    job.index, job.meta, job.sc, job.hosts, job.hwthreads = i, meta, sc, hosts, hwt
    job.gpu_idx, job.state, job.duration, job.app, job.prof = gpu_idx, state, duration, ident.app, prof
    job.cluster = ident.cluster
    job.metrics = w.metrics[(ident.cluster, sc.name)]
    return job


class Prof:
    """Load model of one job (see ``_profile``)."""

    __slots__ = ("busy", "alloc", "imbalance_nodes", "eff", "dp", "bw", "mem", "ipc", "clk", "intensity",
                 "load_util", "background", "comm", "ib_single", "rd", "wr", "rd_window", "ckpt_period", "pattern",
                 "ramp", "period", "toggles", "mem_shape", "tau", "gpu_util", "gpu_mem", "gpu_pw",
                 "idle_gpus",
                 "pathology", "pathology_tag", "duration", "nodes", "sc", "ngpu")

    busy: int
    alloc: int
    imbalance_nodes: int
    eff: float
    dp: float
    bw: float
    mem: float
    ipc: float
    clk: float
    intensity: float
    load_util: float
    background: float
    comm: float
    ib_single: float
    rd: float
    wr: float
    rd_window: float
    ckpt_period: float
    pattern: str
    ramp: float
    period: float
    toggles: list[float]
    mem_shape: str
    tau: float
    gpu_util: float
    gpu_mem: float
    gpu_pw: float
    idle_gpus: int
    pathology: str | None
    pathology_tag: str | None
    duration: int
    nodes: int
    sc: SubCluster
    ngpu: int


def _u(rng: random.Random, r: tuple[float, float]) -> float:
    return rng.uniform(r[0], r[1])


def _profile(rng: random.Random, ident: Identity, app: App, sc: SubCluster, state: str, duration: int,
             n_nodes: int) -> Prof:
    p = Prof()
    p.sc, p.nodes, p.duration = sc, n_nodes, duration
    a = ident.alloc
    p.alloc = a
    p.ngpu = ident.gpus_per_node
    # busy cores per node
    if app.kind == "gpu" or ident.gpus_per_node:
        busy = min(a, max(1, int(ident.gpus_per_node * rng.uniform(1.5, 8))))
    elif app.kind == "serial":
        busy = min(a, rng.choice((1, 1, 1, 2, 4)))
    elif app.kind == "threads":
        busy = max(1, int(a * rng.uniform(0.7, 1.0)))
    else:
        busy = a
    p.eff = _u(rng, app.eff)
    p.dp = _u(rng, app.dp)
    p.bw = _u(rng, app.bw)
    p.mem = _u(rng, app.mem)
    p.ipc = _u(rng, app.ipc)
    p.comm = _u(rng, app.comm) if n_nodes > 1 else 0.0
    p.ib_single = rng.uniform(0.05, 2.0)
    p.intensity = rng.uniform(0.75, 1.0)
    p.background = rng.uniform(0.2, 0.8)  # load of the other jobs on a shared node
    p.load_util = rng.uniform(0.97, 1.0)
    p.rd = rng.uniform(30, 600)
    p.wr = rng.uniform(20, 400)
    p.rd_window = rng.uniform(60, 600)
    p.ckpt_period = rng.uniform(1800, 4 * 3600)
    p.pattern = app.pattern
    p.ramp = rng.uniform(60, 400)
    p.period = rng.uniform(600, 2400) if app.pattern != "epochs" else rng.uniform(900, 3600)
    p.toggles = []
    if app.pattern == "bursty":
        t = 0.0
        while t < duration:
            t += rng.expovariate(1 / 1200)
            p.toggles.append(t)
    p.mem_shape = "oom" if state == "out_of_memory" else "plateau"
    p.tau = rng.uniform(60, 900)
    turbo = sc.clk_turbo - (sc.clk_turbo - sc.clk_base) * app.vec * rng.uniform(0.6, 1.0)
    p.clk = turbo
    if app.gpu and ident.gpus_per_node:
        gu = app.gpu
        p.gpu_util = rng.uniform(gu[0], gu[1])
        p.gpu_mem = rng.uniform(gu[2], gu[3])
        p.gpu_pw = rng.uniform(gu[4], gu[5])
    else:
        p.gpu_util, p.gpu_mem, p.gpu_pw = 0.0, 0.02, 0.0
    p.idle_gpus = 0
    p.imbalance_nodes = 0
    # pathologies
    p.pathology, p.pathology_tag = None, None
    r = rng.random()
    if state == "boot_fail":
        busy = 0
        p.pathology = "idle"
    elif r < 0.04:
        busy = 0
        p.pathology, p.pathology_tag = "idle", "lowutilization"
        p.gpu_util, p.gpu_pw, p.gpu_mem = 0.0, 0.0, 0.01
    elif r < 0.07 and not ident.gpus_per_node:
        p.pathology, p.pathology_tag = "membound", "memorybound"
        p.eff, p.bw, p.ipc = rng.uniform(0.004, 0.02), rng.uniform(0.82, 0.9), rng.uniform(0.35, 0.7)
        busy = a
    elif r < 0.11:
        p.pathology, p.pathology_tag = "imbalance", "lowload"
        if n_nodes > 1:
            p.imbalance_nodes = n_nodes - max(1, n_nodes // 8)  # these nodes idle
        elif ident.gpus_per_node > 1:
            p.idle_gpus = ident.gpus_per_node - 1
            busy = max(1, busy // ident.gpus_per_node)
        else:
            busy = max(1, int(a * rng.uniform(0.05, 0.35)))
    elif r < 0.13 and state != "out_of_memory":
        p.pathology, p.pathology_tag = "leak", "highmemory"
        p.mem_shape = "leak"
    p.busy = busy
    return p
