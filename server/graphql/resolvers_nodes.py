"""GraphQL resolvers of node states (node, nodes, nodesWithMeta, nodeStates, nodeStatesTimed), for admin and support."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from cc_backend.nodes import (
    check_node_access,
    count_node_states,
    count_node_states_timed,
    get_node,
    parse_node_filters,
    query_nodes,
)
from cc_backend.server.graphql.common import SCHEMA_NAME, int_id, run_blocking, runtime_of, viewer_of


@Resolver("Query.node", schema_name=SCHEMA_NAME)
async def resolve_node(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    check_node_access(viewer_of(ctx))
    return await run_blocking(get_node, runtime_of(ctx).engine, int_id(args["id"]))


@Resolver("Query.nodes", schema_name=SCHEMA_NAME)
@Resolver("Query.nodesWithMeta", schema_name=SCHEMA_NAME)
async def resolve_nodes(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    # nodesWithMeta exists upstream because gqlgen cannot see nested selections; both return metaData here.
    check_node_access(viewer_of(ctx))
    filters = parse_node_filters(args.get("filter"))
    nodes = await run_blocking(query_nodes, runtime_of(ctx).engine, filters, args.get("order"))
    return {"items": nodes, "count": len(nodes)}


@Resolver("Query.nodeStates", schema_name=SCHEMA_NAME)
async def resolve_node_states(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    check_node_access(viewer_of(ctx))
    filters = parse_node_filters(args.get("filter"))
    return await run_blocking(count_node_states, runtime_of(ctx).engine, filters)


@Resolver("Query.nodeStatesTimed", schema_name=SCHEMA_NAME)
async def resolve_node_states_timed(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    check_node_access(viewer_of(ctx))
    filters = parse_node_filters(args.get("filter"))
    return await run_blocking(count_node_states_timed, runtime_of(ctx).engine, filters, args["type"])
