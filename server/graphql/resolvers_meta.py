"""GraphQL resolvers of clusters, global metrics, users, allocated nodes and the updateConfiguration mutation."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from cc_backend.auth.security import may_look_up_user
from cc_backend.clusters import allocated_nodes, cluster_info, global_metrics, partitions
from cc_backend.errors import Forbidden, InvalidInput
from cc_backend.server.graphql.common import SCHEMA_NAME, run_blocking, runtime_of, viewer_of


@Resolver("Query.clusters", schema_name=SCHEMA_NAME)
async def resolve_clusters(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    registry = await run_blocking(runtime_of(ctx).archive.registry)
    return [cluster_info(cluster) for cluster in registry]


@Resolver("Cluster.partitions", schema_name=SCHEMA_NAME)
async def resolve_partitions(parent: dict, args: dict, ctx: dict, info: Any) -> list[str]:
    # A query per cluster, and only when asked for: the web UI loads clusters on every page.
    return await run_blocking(partitions, runtime_of(ctx).engine, parent["name"])


@Resolver("Query.globalMetrics", schema_name=SCHEMA_NAME)
async def resolve_global_metrics(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    registry = await run_blocking(runtime_of(ctx).archive.registry)
    return global_metrics(registry, viewer_of(ctx))


@Resolver("Query.user", schema_name=SCHEMA_NAME)
async def resolve_user(parent: Any, args: dict, ctx: dict, info: Any) -> dict | None:
    from cc_backend.auth.users import find_user

    viewer, username = viewer_of(ctx), args["username"]
    if not may_look_up_user(viewer, username):
        raise Forbidden("only admin, support and manager users may look up other users")
    user = await run_blocking(find_user, runtime_of(ctx).engine, username)
    if user is None:
        return None
    return {"username": user.username, "name": user.name or "", "email": user.email or ""}


@Resolver("Query.allocatedNodes", schema_name=SCHEMA_NAME)
async def resolve_allocated_nodes(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    registry = await run_blocking(runtime.archive.registry)
    return await run_blocking(allocated_nodes, runtime.engine, registry, args["cluster"])


@Resolver("Mutation.updateConfiguration", schema_name=SCHEMA_NAME)
async def resolve_update_configuration(parent: Any, args: dict, ctx: dict, info: Any) -> None:
    from cc_backend.ui_config import set_user_ui_config

    try:
        await run_blocking(set_user_ui_config, runtime_of(ctx).engine, viewer_of(ctx).username,
                           args["name"], args["value"])
    except InvalidInput as exc:
        # the core calls the setting's name "key" (as /frontend/configuration/ does); here it is "name"
        if exc.field == "key":
            raise InvalidInput(exc.message.replace("key", "name", 1), field="name") from None
        raise
    return None
