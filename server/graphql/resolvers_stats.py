"""Query.jobsStatistics: totals per user/project/cluster/subcluster and histograms, only the fields asked for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tartiflette import Resolver

from cc_backend.jobs.filter import parse_filters, parse_page
from cc_backend.jobs.statistics import DEFAULT_DURATION_BINS, DEFAULT_METRIC_BINS, StatsOptions, job_statistics
from cc_backend.server.graphql.common import SCHEMA_NAME, run_blocking, runtime_of, viewer_of


def requested_fields(info: Any) -> frozenset[str]:
    """Names of the fields selected under this field, through fragments (aliases do not matter)."""
    names: set[str] = set()

    def collect(selection_set: Any, expanding: frozenset[str]) -> None:
        for selection in selection_set.selections if selection_set is not None else ():
            kind = type(selection).__name__
            if kind == "FieldNode":
                names.add(selection.name.value)
            elif kind == "InlineFragmentNode":
                collect(selection.selection_set, expanding)
            elif kind == "FragmentSpreadNode":
                fragment = info.fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in expanding:
                    collect(fragment.selection_set, expanding | {selection.name.value})

    for node in info.field_nodes:
        collect(node.selection_set, frozenset())
    return frozenset(names)


@Resolver("Query.jobsStatistics", schema_name=SCHEMA_NAME)
async def resolve_jobs_statistics(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    filters = parse_filters(args.get("filter"))
    metrics = tuple(args.get("metrics") or ())
    options = StatsOptions(
        fields=requested_fields(info),
        group_by=args.get("groupBy"),
        sort_by=args.get("sortBy"),
        page=parse_page(args.get("page")),
        duration_bins=_default(args.get("numDurationBins"), DEFAULT_DURATION_BINS),
        metric_bins=_default(args.get("numMetricBins"), DEFAULT_METRIC_BINS),
        metrics=metrics,
        short_duration=runtime.config.main.short_running_jobs_duration,
    )
    if metrics:
        # Metric peaks, units and names come from the archive's cluster.json files (read once, cached).
        clusters = await run_blocking(runtime.archive.registry)
        options = replace(options, clusters=clusters)
    return await run_blocking(job_statistics, runtime.engine, filters, viewer_of(ctx), options)


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value
