"""What every resolver module shares: the caller and runtime from the context, ids, and the Job type's shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cc_backend.server.graphql.executor import SCHEMA_NAME, run_blocking
from cc_backend.server.requests import int64

__all__ = ["SCHEMA_NAME", "run_blocking", "runtime_of", "viewer_of", "int_id", "graphql_job", "footprint_list",
           "energy_footprint_list"]


def runtime_of(ctx: Mapping[str, Any]) -> Any:
    return ctx["runtime"]


def viewer_of(ctx: Mapping[str, Any]) -> Any:
    return ctx["viewer"]


def int_id(value: Any, field: str = "id") -> int:
    """A GraphQL ID argument as a database id; InvalidInput naming ``field`` otherwise."""
    return int64(value, field, kind="a numeric id")


def footprint_list(footprint: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """``{"flops_any_avg": 1.5}`` as upstream's ``[{name: "flops_any", stat: "avg", value: 1.5}]``.

    None (a footprint row_to_job could not read) stays None: that job's field is null.
    """
    if footprint is None:
        return None
    out = []
    for key, value in footprint.items():
        name, _, stat = key.rpartition("_")
        out.append({"name": name or key, "stat": stat if name else "", "value": value})
    return out


_HARDWARE = ((re.compile(r"cpu", re.I), "CPU"), (re.compile(r"acc|gpu", re.I), "Accelerator"),
             (re.compile(r"mem", re.I), "Memory"), (re.compile(r"core", re.I), "Core"))


def energy_footprint_list(energy: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """``{"cpu_power": 1.2}`` as ``[{hardware: "CPU", metric: "cpu_power", value: 1.2}]`` (hardware by metric name)."""
    if energy is None:
        return None
    out = []
    for metric, value in energy.items():
        hardware = next((label for pattern, label in _HARDWARE if pattern.search(metric)), "Other")
        out.append({"hardware": hardware, "metric": metric, "value": value})
    return out


def graphql_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """A REST-shaped job dict (cc_backend.jobs.model.row_to_job) with the GraphQL ``Job`` type's field names.

    The REST dict stays reachable as ``_job`` for field resolvers (userData, concurrentJobs).
    """
    return {
        "id": job["id"],
        "jobId": job["jobId"],
        "user": job["user"],
        "project": job["project"],
        "cluster": job["cluster"],
        "subCluster": job["subCluster"],
        "startTime": job["startTime"],
        "duration": job["duration"],
        "walltime": job["walltime"],
        "numNodes": job["numNodes"],
        "numHWThreads": job["numHwthreads"],
        "numAcc": job["numAcc"],
        "energy": job["energy"],
        "SMT": job["smt"] if job.get("smt") is not None else 1,
        "shared": job["shared"],
        "partition": job["partition"] or "",
        "arrayJobId": job["arrayJobId"],
        "monitoringStatus": job["monitoringStatus"],
        "state": job["jobState"],
        "tags": job["tags"],
        "resources": job["resources"],
        "footprint": footprint_list(job.get("footprint")),
        "energyFootprint": energy_footprint_list(job.get("energyFootprint")),
        "metaData": job.get("metaData"),
        "_job": job,
    }
