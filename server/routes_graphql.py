"""``/query``: the GraphQL endpoint (upstream's gqlgen handler), for a JWT or a logged-in session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from cc_backend.errors import InvalidInput
from cc_backend.server.auth import TOKEN_OR_SESSION
from cc_backend.server.requests import json_object

if TYPE_CHECKING:
    from cc_backend.auth.security import Viewer
    from cc_backend.runtime import Runtime


def mount(app: bottle.Bottle, runtime: Runtime) -> None:
    def post_query(viewer: Viewer | None) -> dict:
        return _answer(runtime, viewer, json_object())

    def get_query(viewer: Viewer | None) -> dict:
        # GET is for reading only (as gqlgen): a mutation by GET could be triggered by a link.
        params = bottle.request.query
        body: dict[str, Any] = {"query": params.getunicode("query"), "operationName": params.getunicode("operationName")}
        if params.get("variables"):
            import orjson

            try:
                body["variables"] = orjson.loads(params.getunicode("variables") or "")
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"'variables' is not valid JSON: {exc}", field="variables") from None
        if isinstance(body["query"], str) and body["query"].lstrip().startswith("mutation"):
            raise InvalidInput("mutations need POST", field="query")
        return _answer(runtime, viewer, body)

    app.route("/query", "POST", post_query, auth=TOKEN_OR_SESSION, same_origin=True)
    app.route("/query", "GET", get_query, auth=TOKEN_OR_SESSION)


def _answer(runtime: Runtime, viewer: Viewer | None, body: dict[str, Any]) -> dict:
    from cc_backend.server.graphql.executor import execute

    status, result = execute(runtime, viewer, body)
    bottle.response.status = status
    return result
