"""GraphQL resolvers of metric data: jobMetrics, jobStats, scopedJobStats, the job analyses and node/cluster metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tartiflette import Resolver

from cc_backend.jobs import analysis
from cc_backend.jobs.filter import parse_filters, parse_page
from cc_backend.jobs.query import get_job
from cc_backend.metrics import jobdata, nodedata
from cc_backend.server.graphql.common import SCHEMA_NAME, int_id, run_blocking, runtime_of, viewer_of

if TYPE_CHECKING:
    from cc_backend.auth.security import Viewer
    from cc_backend.runtime import Runtime

# --- one job --------------------------------------------------------------------------------------

def _job(ctx: dict, raw_id: Any) -> dict:
    return get_job(runtime_of(ctx).engine, int_id(raw_id), viewer=viewer_of(ctx))


def _hidden(runtime: Runtime, job: dict, viewer: Viewer | None) -> frozenset[str]:
    return jobdata.hidden_metrics(runtime.archive.registry(), job["cluster"], job.get("subCluster"), viewer)


@Resolver("Query.jobMetrics", schema_name=SCHEMA_NAME)
async def resolve_job_metrics(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime, viewer = runtime_of(ctx), viewer_of(ctx)

    def load() -> list[dict]:
        job = _job(ctx, args["id"])
        return jobdata.as_metric_list(jobdata.visible_job_data(
            runtime.archive, job, viewer=viewer, resampling=runtime.config.main.resampling,
            metrics=args.get("metrics"), scopes=args.get("scopes"), resolution=args.get("resolution"),
            live=runtime.metric_data))

    return await run_blocking(load)


@Resolver("Query.jobStats", schema_name=SCHEMA_NAME)
async def resolve_job_stats(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime, viewer = runtime_of(ctx), viewer_of(ctx)

    def load() -> list[dict]:
        job = _job(ctx, args["id"])
        return jobdata.job_stats(runtime.archive, job, args.get("metrics"), hidden=_hidden(runtime, job, viewer),
                                 live=runtime.metric_data)

    return await run_blocking(load)


@Resolver("Query.scopedJobStats", schema_name=SCHEMA_NAME)
async def resolve_scoped_job_stats(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime, viewer = runtime_of(ctx), viewer_of(ctx)

    def load() -> list[dict]:
        job = _job(ctx, args["id"])
        return jobdata.scoped_job_stats(runtime.archive, job, args.get("metrics"), args.get("scopes"),
                                           registry=runtime.archive.registry(), hidden=_hidden(runtime, job, viewer),
                                           live=runtime.metric_data)

    return await run_blocking(load)


# --- many jobs ------------------------------------------------------------------------------------

@Resolver("Query.jobsMetricStats", schema_name=SCHEMA_NAME)
async def resolve_jobs_metric_stats(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    return await run_blocking(analysis.jobs_metric_stats, runtime.engine, runtime.archive,
                              parse_filters(args.get("filter")), args.get("metrics"), viewer=viewer_of(ctx),
                              live=runtime.metric_data)


@Resolver("Query.jobsFootprints", schema_name=SCHEMA_NAME)
async def resolve_jobs_footprints(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    runtime = runtime_of(ctx)
    return await run_blocking(analysis.jobs_footprints, runtime.engine, runtime.archive,
                              parse_filters(args.get("filter")), args["metrics"], viewer=viewer_of(ctx))


@Resolver("Query.rooflineHeatmap", schema_name=SCHEMA_NAME)
async def resolve_roofline_heatmap(parent: Any, args: dict, ctx: dict, info: Any) -> list[list[float]]:
    runtime = runtime_of(ctx)
    return await run_blocking(
        analysis.roofline_heatmap, runtime.engine, runtime.archive, parse_filters(args["filter"]),
        rows=args["rows"], cols=args["cols"], min_x=args["minX"], min_y=args["minY"], max_x=args["maxX"],
        max_y=args["maxY"], viewer=viewer_of(ctx), live=runtime.metric_data)


# --- nodes and clusters (metric store) ------------------------------------------------------------

def _time_range(args: dict) -> dict[str, int]:
    return {"start": args["from"], "end": args["to"]}


@Resolver("Query.nodeMetrics", schema_name=SCHEMA_NAME)
async def resolve_node_metrics(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    registry = await run_blocking(runtime.archive.registry)
    return await run_blocking(
        nodedata.node_metrics, registry, args["cluster"], viewer=viewer_of(ctx), scopes=args.get("scopes"),
        nodes=args.get("nodes"), metrics=args.get("metrics"), live=runtime.metric_data, **_time_range(args))


@Resolver("Query.nodeMetricsList", schema_name=SCHEMA_NAME)
async def resolve_node_metrics_list(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    runtime = runtime_of(ctx)
    registry = await run_blocking(runtime.archive.registry)
    return await run_blocking(
        nodedata.node_metrics_list, runtime.engine, registry, args["cluster"], args["subCluster"],
        viewer=viewer_of(ctx), state_filter=args["stateFilter"], node_filter=args["nodeFilter"],
        scopes=args.get("scopes"), page=parse_page(args.get("page")), resolution=args.get("resolution"),
        metrics=args.get("metrics"), live=runtime.metric_data, **_time_range(args))


@Resolver("Query.clusterMetrics", schema_name=SCHEMA_NAME)
async def resolve_cluster_metrics(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    runtime = runtime_of(ctx)
    registry = await run_blocking(runtime.archive.registry)
    return await run_blocking(nodedata.cluster_metrics, registry, args["cluster"], viewer=viewer_of(ctx),
                              metrics=args.get("metrics"), live=runtime.metric_data, **_time_range(args))
