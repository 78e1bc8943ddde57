"""Query.tags and the tag mutations (createTag, deleteTag, addTagsToJob, removeTagsFromJob, removeTagFromList)."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from cc_backend.jobs.tags import add_tags_to_job, create_tag, delete_tags_by_id, list_tags, remove_tags_from_job
from cc_backend.server.graphql.common import SCHEMA_NAME, int_id, run_blocking, runtime_of, viewer_of


def _tag_ids(values: list[Any]) -> list[int]:
    return [int_id(value, "tagIds") for value in values]


@Resolver("Query.tags", schema_name=SCHEMA_NAME)
async def resolve_tags(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    return await run_blocking(list_tags, runtime_of(ctx).engine, viewer=viewer_of(ctx), with_counts=False)


@Resolver("Mutation.createTag", schema_name=SCHEMA_NAME)
async def resolve_create_tag(parent: Any, args: dict, ctx: dict, info: Any) -> dict:
    return await run_blocking(create_tag, runtime_of(ctx).engine, args["type"], args["name"], args["scope"],
                              viewer=viewer_of(ctx))


@Resolver("Mutation.deleteTag", schema_name=SCHEMA_NAME)
async def resolve_delete_tag(parent: Any, args: dict, ctx: dict, info: Any) -> int:
    runtime = runtime_of(ctx)
    deleted = await run_blocking(delete_tags_by_id, runtime.engine, runtime.archive, [int_id(args["id"])],
                                 viewer=viewer_of(ctx), field="id")
    return deleted[0]


@Resolver("Mutation.addTagsToJob", schema_name=SCHEMA_NAME)
async def resolve_add_tags_to_job(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    return await run_blocking(add_tags_to_job, runtime.engine, runtime.archive, int_id(args["job"], "job"),
                              _tag_ids(args["tagIds"]), viewer=viewer_of(ctx))


@Resolver("Mutation.removeTagsFromJob", schema_name=SCHEMA_NAME)
async def resolve_remove_tags_from_job(parent: Any, args: dict, ctx: dict, info: Any) -> list[dict]:
    runtime = runtime_of(ctx)
    return await run_blocking(remove_tags_from_job, runtime.engine, runtime.archive, int_id(args["job"], "job"),
                              _tag_ids(args["tagIds"]), viewer=viewer_of(ctx))


@Resolver("Mutation.removeTagFromList", schema_name=SCHEMA_NAME)
async def resolve_remove_tag_from_list(parent: Any, args: dict, ctx: dict, info: Any) -> list[int]:
    runtime = runtime_of(ctx)
    return await run_blocking(delete_tags_by_id, runtime.engine, runtime.archive, _tag_ids(args["tagIds"]),
                              viewer=viewer_of(ctx))
