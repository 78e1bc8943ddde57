"""The terminal UI's data from a cc-backend server over its GraphQL API, with an API token (no local database)."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from cc_backend.errors import CCError, Conflict, Forbidden, InvalidInput, NotFound
from cc_backend.tui.source import GroupBy, Identity, JobPage, SourceError

if TYPE_CHECKING:
    from cc_backend.archive.cluster import Cluster
    from cc_backend.jobs.filter import JobFilter, OrderBy

#: Job fields the job list shows, no hwthread lists. metaData carries the job name (the Job type has no
#: other field for it) and also the script: about 60 KB instead of 35 KB for 50 demo jobs, ~5 ms on loopback.
LIST_FIELDS = """id jobId user project cluster subCluster partition arrayJobId numNodes numHWThreads numAcc shared
monitoringStatus SMT state startTime duration walltime energy resources { hostname }
footprint { name stat value } tags { id type name scope } metaData"""
#: Everything the job detail screen shows.
JOB_FIELDS = """id jobId user project cluster subCluster partition arrayJobId numNodes numHWThreads numAcc shared
monitoringStatus SMT state startTime duration walltime energy
resources { hostname hwthreads accelerators configuration }
footprint { name stat value } energyFootprint { hardware metric value } tags { id type name scope } metaData"""
TAG_FIELDS = "id type name scope"
STATISTICS_FIELDS = """id name totalJobs runningJobs shortJobs totalUsers totalWalltime totalNodes totalNodeHours totalCores
totalCoreHours totalAccs totalAccHours"""
NODE_FIELDS = """id hostname cluster subCluster jobsRunning cpusAllocated memoryAllocated gpusAllocated schedulerState
healthState metaData healthData"""
METRIC_FIELDS = """name scope metric { unit { base prefix } timestep
series { hostname id statistics { min avg max } data } statisticsSeries { min median mean max } }"""
CLUSTER_FIELDS = """name subClusters { name nodes numberOfNodes processorType socketsPerNode coresPerSocket
threadsPerCore flopRateScalar { unit { base prefix } value } flopRateSimd { unit { base prefix } value }
memoryBandwidth { unit { base prefix } value }
topology { node socket memoryDomain die core accelerators { id type model } }
metricConfig { name unit { base prefix } scope aggregation timestep peak normal caution alert lowerIsBetter }
footprint }"""
#: Tags counted per request (one aliased jobsStatistics each); the server allows 2000 fields a request.
TAG_COUNT_BATCH = 200
#: Server error codes (``extensions.code``) that mean the same as one of the core's errors.
CORE_ERRORS: dict[str, type[CCError]] = {"NotFound": NotFound, "Forbidden": Forbidden, "InvalidInput": InvalidInput,
                                         "Conflict": Conflict}


class RemoteSource:
    """Reads and changes jobs through a server's ``/query`` endpoint as the token's user: the server decides
    what that user may see, exactly as for the web UI. One HTTP client keeps its connections open."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token.strip()
        self.timeout = timeout
        self.claims = _unverified_claims(self.token)
        username = self.claims.get("sub") if isinstance(self.claims.get("sub"), str) else ""
        roles = self.claims.get("roles")
        self.identity = Identity(username=username or "", where=f"{self.url} as {username or '?'}",
                                 roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
                                 extra={"expires": self.claims.get("exp")})
        try:
            self._client = httpx.Client(base_url=self.url, timeout=timeout,
                                        headers={"Authorization": f"Bearer {self.token}"})
            self._client_problem = ""
        except (httpx.InvalidURL, ValueError) as exc:  # told by connect(), as every other problem
            self._client = httpx.Client()
            self._client_problem = str(exc)
        self._lock = threading.Lock()
        self._clusters: list[Cluster] | None = None

    # --- connection ---------------------------------------------------------------------------------

    def connect(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise SourceError(f"The server URL {self.url!r} must start with http:// or https://.")
        if self._client_problem:
            raise SourceError(f"The server URL {self.url!r} or the token cannot be used: {self._client_problem}.")
        if not self.claims:
            raise SourceError("The token is not a JSON Web Token (three base64 parts separated by dots); "
                              "check that it was copied whole.")
        expires = self.claims.get("exp")
        if isinstance(expires, (int, float)) and expires <= time.time():
            raise SourceError(f"The token expired at {_utc(expires)}; ask for a new one (an administrator "
                              f"prints one with 'cc-backend jwt {self.identity.username or 'USER'}').")
        # The probe is the cluster query the job screen needs anyway: fetched now, it is not paid when a job opens.
        self.clusters()

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request to the server; transport problems and redirects as SourceError."""
        try:
            response = self._client.request(method, path, **options)
        except httpx.TimeoutException:
            raise SourceError(f"The server at {self.url} did not answer within {self.timeout:g} s.") from None
        except httpx.ConnectError as exc:
            raise SourceError(f"Cannot reach the server at {self.url}: {_reason(exc)}.") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"The request to the server at {self.url} failed: {_reason(exc)}.") from None
        if response.is_redirect:
            # e.g. http:// to https://: following it would resend the token to wherever it points
            raise SourceError(f"The server at {self.url} redirects to {response.headers.get('location')}; "
                              f"use that address.")
        return response

    def _query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of one GraphQL request; errors as SourceError (transport, token) or the core's classes."""
        body: dict[str, Any] = {"query": document}
        if variables:
            body["variables"] = variables
        response = self._send("POST", "/query", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code in (401, 403):
            message = answer.get("error") if isinstance(answer, dict) else None
            raise SourceError(f"The server at {self.url} rejected the token: "
                              f"{_sentence(message) or f'HTTP {response.status_code}'}.")
        if not isinstance(answer, dict) or ("data" not in answer and "errors" not in answer):
            if response.status_code >= 500 and isinstance(answer, dict) and answer.get("error"):
                raise SourceError(f"The server at {self.url} failed: {answer['error']} "
                                  f"(HTTP {response.status_code}).")
            raise SourceError(f"{self.url} is not a cc-backend server, or the URL is wrong: {self.url}/query "
                              f"answered HTTP {response.status_code} without a GraphQL result.")
        errors = answer.get("errors")
        if errors:
            raise _error_of(errors[0], self.url)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise SourceError(f"The server at {self.url} answered without data (HTTP {response.status_code}).")
        return data

    def _rest(self, path: str) -> Any:
        """The JSON answer of ``GET path`` of the REST API (the few things GraphQL does not offer); errors
        as SourceError (transport, token, server) or the core's classes (the server's 400 and 404)."""
        response = self._send("GET", path)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        message = _sentence(answer.get("error")) if isinstance(answer, dict) else ""
        status = response.status_code
        if status in (401, 403):
            raise SourceError(f"The server at {self.url} rejected the token for {path}: "
                              f"{message or f'HTTP {status}'}.")
        if status == 404 and message and "endpoint does not exist" not in message:
            raise NotFound(message)
        if status == 404:
            raise SourceError(f"The server at {self.url} has no {path} (a cc-backend older than this program?).")
        if status == 400:
            raise InvalidInput(message or f"the server refused {path}")
        if status != 200 or answer is None:
            raise SourceError(f"The server at {self.url} failed on {path}: {message or 'no JSON answer'} "
                              f"(HTTP {status}).")
        return answer

    def _userapi(self) -> str:
        """``/userapi``, where the server shows the token's user what that user may see, if the token's roles
        are admitted there: it admits every token ``/api`` admits, so ``/api`` would never do better."""
        from cc_backend.auth.security import Viewer, admits_userapi

        roles = self.identity.roles
        if not admits_userapi(Viewer(username=self.identity.username, roles=roles)):
            raise Forbidden(f"this comes from the server's REST API (/userapi/), which needs a token with the api "
                            f"role; this token has the roles: {', '.join(roles) or 'none'}")
        return "/userapi"

    # --- reading ------------------------------------------------------------------------------------

    def clusters(self) -> list[Cluster]:
        from cc_backend.clusters import cluster_from_graphql

        with self._lock:
            if self._clusters is None:
                data = self._query(f"{{ clusters {{ {CLUSTER_FIELDS} }} globalMetrics {{ name footprint }} }}")
                stats = {m["name"]: m["footprint"] for m in data["globalMetrics"] if m.get("footprint")}
                try:
                    self._clusters = [cluster_from_graphql(info, stats) for info in data["clusters"]]
                except CCError as exc:
                    raise SourceError(f"The server at {self.url} described a cluster this program cannot "
                                      f"read: {exc.message}") from None
            return self._clusters

    def resolve_tags(self, specs: list[str]) -> list[int]:
        from cc_backend.jobs.tags import parse_tag_spec

        ids: list[int] = []
        known: list[dict[str, Any]] | None = None
        for spec in specs:
            parsed = parse_tag_spec(spec)
            if isinstance(parsed, int):
                ids.append(parsed)
                continue
            tag_type, tag_name = parsed
            if known is None:
                known = self._tags()
            found = [t["id"] for t in known if t["type"] == tag_type and t["name"] == tag_name]
            if not found:
                raise NotFound(f"no tag {spec!r}", field="tag")
            ids += found
        return ids

    def jobs(self, flt: JobFilter | None, order: OrderBy | None, page: int, per_page: int) -> JobPage:
        data = self._query(
            "query($filter: [JobFilter!], $order: OrderByInput, $page: PageRequest) "
            f"{{ jobs(filter: $filter, order: $order, page: $page) {{ items {{ {LIST_FIELDS} }} hasNextPage }} }}",
            {"filter": _filters(flt), "order": order.model_dump(by_alias=True) if order else None,
             "page": {"page": page, "itemsPerPage": per_page}})
        result = data["jobs"]
        return JobPage([core_job(item) for item in result["items"]], bool(result.get("hasNextPage")))

    def count_jobs(self, flt: JobFilter | None) -> int:
        # The smallest page: the count is computed apart from it, only because it is asked for.
        data = self._query("query($filter: [JobFilter!]) "
                           "{ jobs(filter: $filter, page: {page: 1, itemsPerPage: 1}) { count } }",
                           {"filter": _filters(flt)})
        return int(data["jobs"]["count"])

    def job(self, db_id: int) -> dict[str, Any]:
        data = self._query(f"query($id: ID!) {{ job(id: $id) {{ {JOB_FIELDS} }} }}", {"id": str(db_id)})
        if data.get("job") is None:
            raise NotFound(f"no job with id {db_id}", field="id")
        return core_job(data["job"])

    def job_report(self, db_id: int) -> dict[str, Any]:
        """The server's report (``/userapi/jobs/report``) when the token has the api role; otherwise the same
        core function run here on what GraphQL gives every token (see :meth:`_report_from_graphql`)."""
        try:
            path = self._userapi()
        except Forbidden:
            return self._report_from_graphql(db_id)
        report = self._rest(f"{path}/jobs/report/{int(db_id)}")
        if not isinstance(report, dict):
            raise SourceError(f"The server at {self.url} answered the efficiency report with a "
                              f"{type(report).__name__}, not an object.")
        return report

    def _report_from_graphql(self, db_id: int) -> dict[str, Any]:
        """The report computed in this process from the job, its statistics and per-node load and the cluster's
        description as GraphQL answers them for the token's user. What the server does not tell GraphQL clients
        is left out: the site's own job-class rules (the shipped ones are used) and the emission constant (no
        CO2). The server answers no statistics the user may not see: those metrics are left out of the report."""
        from cc_backend.jobs.report import report_from_data
        from cc_backend.taggers.jobclasses import JobClassifier

        job = self.job(db_id)
        cluster = next((c for c in self.clusters() if c.name == job["cluster"]), None)
        subcluster = cluster.find_sub_cluster(job.get("subCluster") or "") if cluster is not None else None
        stats: dict[str, dict[str, float]] = {}
        loads: dict[str, float] = {}
        reason = None
        if subcluster is not None:
            stats = {entry["name"]: entry["data"] for entry in self.job_stats(job, None) if entry.get("data")}
            if not stats:
                reason = ("the job is still running and the server has no live data for it"
                          if job.get("jobState") == "running" else "no statistics were recorded for this job")
            elif int(job.get("numNodes") or 0) > 1:
                for entry in self.scoped_job_stats(job, ["cpu_load"], ["node"]):
                    for stat in entry.get("stats") or ():
                        if entry.get("scope") == "node" and stat.get("data"):
                            loads[str(stat.get("hostname") or "")] = float(stat["data"]["avg"])
        hidden = frozenset(m.name for m in subcluster.metric_config if m.name not in stats) \
            if subcluster is not None and stats else frozenset()
        report = report_from_data(job, subcluster, stats, node_loads=loads, reason=reason, hidden=hidden,
                                  classifier=JobClassifier())
        report["origin"] = ("computed in this terminal from the server's GraphQL data, with the shipped job-class "
                            "rules and no CO2 estimate: a token with the api role shows the server's own report")
        return report

    def job_metrics(self, job: dict[str, Any], metrics: list[str] | None, scopes: list[str] | None,
                    resolution: int | None) -> list[dict[str, Any]]:
        data = self._query(
            "query($id: ID!, $metrics: [String!], $scopes: [MetricScope!], $resolution: Int) "
            f"{{ jobMetrics(id: $id, metrics: $metrics, scopes: $scopes, resolution: $resolution) {{ {METRIC_FIELDS} }} }}",
            {"id": str(job["id"]), "metrics": metrics, "scopes": scopes, "resolution": resolution})
        return [core_job_metric(item) for item in data["jobMetrics"]]

    def job_stats(self, job: dict[str, Any], metrics: list[str] | None) -> list[dict[str, Any]]:
        data = self._query("query($id: ID!, $metrics: [String!]) "
                           "{ jobStats(id: $id, metrics: $metrics) { name data { min avg max } } }",
                           {"id": str(job["id"]), "metrics": metrics})
        return data["jobStats"]

    def scoped_job_stats(self, job: dict[str, Any], metrics: list[str] | None,
                         scopes: list[str] | None) -> list[dict[str, Any]]:
        data = self._query(
            "query($id: ID!, $metrics: [String!], $scopes: [MetricScope!]) "
            "{ scopedJobStats(id: $id, metrics: $metrics, scopes: $scopes) "
            "{ name scope stats { hostname id data { min avg max } } } }",
            {"id": str(job["id"]), "metrics": metrics, "scopes": scopes})
        return data["scopedJobStats"]

    def group_statistics(self, group_by: GroupBy, flt: JobFilter | None) -> list[dict[str, Any]]:
        data = self._query("query($filter: [JobFilter!], $groupBy: Aggregate) "
                           f"{{ jobsStatistics(filter: $filter, groupBy: $groupBy) {{ {STATISTICS_FIELDS} }} }}",
                           {"filter": _filters(flt), "groupBy": group_by})
        return data["jobsStatistics"]

    def _tags(self) -> list[dict[str, Any]]:
        return [core_tag(t) for t in self._query(f"{{ tags {{ {TAG_FIELDS} }} }}")["tags"]]

    def tags(self) -> list[dict[str, Any]]:
        tags = self._tags()
        counts: dict[int, int] = {}
        # GraphQL's Tag has no count: one aliased jobsStatistics per tag, a batch of them per request.
        for start in range(0, len(tags), TAG_COUNT_BATCH):
            batch = tags[start:start + TAG_COUNT_BATCH]
            fields = " ".join(f"t{t['id']}: jobsStatistics(filter: [{{tags: [{t['id']}]}}]) {{ totalJobs }}"
                              for t in batch)
            data = self._query(f"{{ {fields} }}")
            counts.update({t["id"]: int(data[f"t{t['id']}"][0]["totalJobs"]) if data[f"t{t['id']}"] else 0
                           for t in batch})
        return [{**t, "count": counts.get(t["id"], 0)} for t in tags]

    def nodes(self, cluster: str) -> list[dict[str, Any]]:
        data = self._query("query($filter: [NodeFilter!]) "
                           f"{{ nodes(filter: $filter) {{ items {{ {NODE_FIELDS} }} }} }}",
                           {"filter": [{"cluster": {"eq": cluster}}]})
        return [{**node, "id": int(node["id"])} for node in data["nodes"]["items"]]

    # --- changing -----------------------------------------------------------------------------------

    def add_tag(self, db_id: int, tag_type: str, tag_name: str, scope: str) -> list[dict[str, Any]]:
        created = self._query(f"mutation($type: String!, $name: String!, $scope: String!) "
                              f"{{ createTag(type: $type, name: $name, scope: $scope) {{ {TAG_FIELDS} }} }}",
                              {"type": tag_type, "name": tag_name, "scope": scope})["createTag"]
        data = self._query(f"mutation($job: ID!, $tags: [ID!]!) {{ addTagsToJob(job: $job, tagIds: $tags) "
                           f"{{ {TAG_FIELDS} }} }}", {"job": str(db_id), "tags": [str(created["id"])]})
        return [core_tag(t) for t in data["addTagsToJob"]]

    def remove_tag(self, db_id: int, tag_id: int) -> list[dict[str, Any]]:
        data = self._query(f"mutation($job: ID!, $tags: [ID!]!) {{ removeTagsFromJob(job: $job, tagIds: $tags) "
                           f"{{ {TAG_FIELDS} }} }}", {"job": str(db_id), "tags": [str(tag_id)]})
        return [core_tag(t) for t in data["removeTagsFromJob"]]


# --- GraphQL shapes -> the core's ---------------------------------------------------------------------

#: GraphQL Job field -> core job key, where they differ.
_JOB_KEYS = {"numHWThreads": "numHwthreads", "SMT": "smt", "state": "jobState"}


def core_tag(tag: dict[str, Any]) -> dict[str, Any]:
    return {"id": int(tag["id"]), "type": tag["type"], "name": tag["name"], "scope": tag["scope"]}


def core_job(item: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``Job`` in the core's job shape (the inverse of ``server.graphql.common.graphql_job``)
    with the keys of the fields asked for; ``submitTime`` is not in the GraphQL type."""
    job: dict[str, Any] = {}
    for key, value in item.items():
        core_key = _JOB_KEYS.get(key, key)
        if key == "id":
            value = int(value)
        elif key == "startTime":
            value = _epoch(value)
        elif key == "footprint":
            value = None if value is None else {
                f"{v['name']}_{v['stat']}" if v["stat"] else v["name"]: v["value"] for v in value}
        elif key == "energyFootprint":
            value = None if value is None else {v["metric"]: v["value"] for v in value}
        elif key == "tags":
            value = [core_tag(t) for t in value]
        elif key == "resources":
            # null fields stand for keys the job's resources do not have
            value = [{k: v for k, v in resource.items() if v is not None} for resource in value]
        elif key == "metaData":
            value = value or {}
        job[core_key] = value
    return job


def core_job_metric(item: dict[str, Any]) -> dict[str, Any]:
    """A ``JobMetricWithName`` as the core's :func:`cc_backend.metrics.jobdata.as_metric_list` gives it: the
    keys GraphQL fills with null (a series' id at node scope, absent statistics series, a unit's prefix) left out."""
    metric = {key: value for key, value in item["metric"].items() if value is not None or key == "unit"}
    if metric.get("unit") is not None:
        metric["unit"] = {key: value for key, value in metric["unit"].items() if value is not None}
    metric["series"] = [{key: value for key, value in series.items() if value is not None or key == "data"}
                        for series in metric.get("series") or ()]
    return {**item, "metric": metric}


def _filters(flt: JobFilter | None) -> list[dict[str, Any]] | None:
    return [flt.model_dump(by_alias=True, exclude_none=True)] if flt is not None else None


def _epoch(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    return int(datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text).timestamp())


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _unverified_claims(token: str) -> dict[str, Any]:
    """The token's claims, read without checking the signature (the server checks it): for the header and
    to tell an expired token apart before asking the server. Empty when the text is not a JWT."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _reason(exc: httpx.HTTPError) -> str:
    """The innermost cause of a transport error, e.g. "Connection refused"."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    # "[Errno 111] Connection refused": the number says nothing to the user
    return re.sub(r"^\[Errno -?\d+\] ", "", str(cause)) or str(exc) or type(exc).__name__


def _sentence(message: Any) -> str:
    """A server's message to end one of our sentences: without its own final full stop."""
    return str(message or "").strip().rstrip(".")


def _error_of(error: dict[str, Any], url: str) -> CCError:
    """The core's error for a GraphQL error, keeping the server's message and field."""
    message = str(error.get("message") or "the server reported an error without a message")
    extensions = error.get("extensions") or {}
    code = extensions.get("code")
    field = extensions.get("field")
    if code in CORE_ERRORS:
        return CORE_ERRORS[code](message, field=field)
    if code == "Unauthorized":
        return SourceError(f"The server at {url} rejected the token: {_sentence(message)}.")
    if code is not None and code not in ("QueryTooComplex",):
        # Internal errors, timeouts, an unavailable database: the server's trouble, not the input's.
        return SourceError(f"The server at {url} failed: {message}")
    if "not found" in message.lower():
        return NotFound(message, field=field)
    return InvalidInput(message, field=field)
