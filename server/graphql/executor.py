"""The bridge from WSGI threads to tartiflette's asyncio engine, with request limits and error shaping.

One engine per process (tartiflette registers resolvers per schema name at import time), cooked on
first use, running on a dedicated event-loop thread. A WSGI thread submits its request to that loop
and waits; resolvers hand their blocking database and archive work to a thread pool
(:func:`run_blocking`), so concurrent requests do not queue behind each other's SQL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_backend.errors import CCError, InvalidInput

if TYPE_CHECKING:
    from tartiflette import Engine

    from cc_backend.auth.security import Viewer
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.server.graphql")

SCHEMA_NAME = "cc_backend"
SCHEMA_FILE = Path(__file__).with_name("schema.graphqls")
#: Modules whose decorators register resolvers and scalars for SCHEMA_NAME.
MODULES = [
    "cc_backend.server.graphql.scalars",
    "cc_backend.server.graphql.resolvers_jobs",
    "cc_backend.server.graphql.resolvers_meta",
    "cc_backend.server.graphql.resolvers_stats",
    "cc_backend.server.graphql.resolvers_metrics",
    "cc_backend.server.graphql.resolvers_nodes",
    "cc_backend.server.graphql.resolvers_tags",
]
#: Deepest selection nesting a request may have; the web UI's deepest query (jobMetrics) needs 5.
MAX_DEPTH = 10
#: Most fields a request may select once fragments are expanded (guards against alias flooding).
MAX_FIELDS = 2000
#: Deepest nesting of brackets in a document's text, and of a request's variables. The C parser under
#: tartiflette segfaults at ~20,000 levels and tartiflette's own AST walk hits RecursionError at
#: ~5,000, so this is checked on the raw text before either sees it; a deep real query (MAX_DEPTH
#: selections, then an argument's list of objects of objects) needs about 16.
MAX_NESTING = 64
#: Most operations and fragments a document may define: tartiflette's cycle check walks each fragment's
#: spreads recursively (500 chained fragments took 6 s, 3,000 a RecursionError); the web UI uses a few.
MAX_DEFINITIONS = 100
#: Most colons a document may have: arguments, aliases, variable definitions and object fields. Some of
#: tartiflette's checks of these are quadratic (4,000 arguments of one field: ~1 s; 40,000: minutes).
MAX_COLONS = 2 * MAX_FIELDS
#: Seconds a request may take before the caller gets an error (the work is not interrupted).
TIMEOUT_S = 300.0
#: Threads for resolvers' blocking work: enough for the server's request threads to overlap.
BLOCKING_THREADS = 8
#: List fields of plain numbers or strings from the archive or the database, passed through as they are.
#: tartiflette coerces list items one coroutine at a time: a 64-node job's metric samples (~830,000)
#: took ~0.5 s per metric, a 50-job page's hwthread ids (~32,000) ~200 ms. It also rejects the nulls of
#: missing samples in ``[NullableFloat!]!`` before asking the scalar, although NullableFloat exists to
#: carry them; orjson writes NaN and infinities as null, which is what NullableFloat means.
PASS_THROUGH_LISTS = (
    "Series.data", "StatsSeries.mean", "StatsSeries.median", "StatsSeries.min", "StatsSeries.max",
    "ClusterMetricWithName.data", "MetricFootprints.data",
    "TimeWeights.nodeHours", "TimeWeights.accHours", "TimeWeights.coreHours",
    "Resource.hwthreads", "Resource.accelerators",
    "Topology.node", "Topology.socket", "Topology.memoryDomain", "Topology.die", "Topology.core",
)


class QueryTimeout(CCError):
    """A GraphQL request that ran longer than TIMEOUT_S: the caller stops waiting (the work is not interrupted)."""

    status = 503


async def _dict_first_resolver(parent: Any, args: Mapping[str, Any], ctx: Any, info: Any) -> Any:
    """Fields of dict results by key (tartiflette's default tries getattr first: ``items`` would be dict.items)."""
    if type(parent) is dict:
        return parent.get(info.field_name)
    return getattr(parent, info.field_name, None)


async def _shape_error(exception: Exception, error: dict[str, Any]) -> dict[str, Any]:
    """Our errors keep their message and gain a code; anything unexpected is logged, not leaked."""
    original = getattr(exception, "original_error", None) or exception
    if isinstance(original, CCError):
        extensions = {"code": type(original).__name__, "status": original.status}
        if getattr(original, "field", None):
            extensions["field"] = original.field
        error["extensions"] = {**(error.get("extensions") or {}), **extensions}
        error["message"] = str(original)
    elif original is not exception or not _is_graphql_error(exception):
        log.error("GraphQL resolver failed: %r", original, exc_info=original)
        error["message"] = f"internal error ({type(original).__name__}); the server log has the details"
        error["extensions"] = {"code": "InternalError"}
    return error


def _is_graphql_error(exception: Exception) -> bool:
    from tartiflette import TartifletteError

    return isinstance(exception, TartifletteError)


class _Executor:
    """The process-wide loop thread, engine and blocking pool."""

    def __init__(self) -> None:
        from tartiflette import Engine

        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(max_workers=BLOCKING_THREADS, thread_name_prefix="graphql-work")
        self.loop.set_default_executor(self.pool)
        self.thread = threading.Thread(target=self.loop.run_forever, name="graphql-loop", daemon=True)
        self.thread.start()
        self.engine = Engine(
            SCHEMA_FILE.read_text(encoding="utf-8"),
            schema_name=SCHEMA_NAME,
            modules=MODULES,
            custom_default_resolver=_dict_first_resolver,
            error_coercer=_shape_error,
            # Concurrent coercion of list items and fields costs ~2.5x on a 50-job page (bench/graphql.py):
            # our resolvers are already done when coercion runs, so there is nothing to overlap.
            coerce_list_concurrently=False,
            coerce_parent_concurrently=False,
        )
        asyncio.run_coroutine_threadsafe(self.engine.cook(), self.loop).result()
        _pass_lists_through(self.engine._schema, PASS_THROUGH_LISTS)
        _project_leaf_object_lists(self.engine._schema, PROJECTED_LISTS)

    def execute(self, query: str, variables: dict | None, operation: str | None, context: dict) -> dict:
        _check_nesting(query, variables)
        _check_limits(self.engine, query)
        future = asyncio.run_coroutine_threadsafe(
            self.engine.execute(query, operation_name=operation, context=context, variables=variables), self.loop)
        try:
            return future.result(TIMEOUT_S)
        except TimeoutError:
            raise QueryTimeout(f"the query did not finish within {TIMEOUT_S:.0f} s; narrow its filter or "
                               f"ask for fewer fields") from None


def _pass_lists_through(schema: Any, names: tuple[str, ...]) -> None:
    """Let lists of these fields through uncoerced (see PASS_THROUGH_LISTS); anything else is coerced as usual.

    tartiflette bakes each field's output coercer into ``field.resolver`` (a functools.partial) when the
    engine is cooked; this wraps that coercer. tests/test_graphql_*.py cover every listed field.
    """
    for name in names:
        field = schema.get_field_by_name(name)
        bound = field.resolver
        regular = bound.keywords["output_coercer"]

        async def coerce(result: Any, info: Any, execution_context: Any, field_nodes: Any, path: Any,
                         regular: Callable = regular) -> Any:
            if type(result) is list:
                return result
            return await regular(result, info, execution_context, field_nodes, path)

        field.resolver = functools.partial(bound.func, *bound.args, **{**bound.keywords, "output_coercer": coerce})


#: Lists of jobs and of the small objects inside every job: completed in one pass by projecting each
#: dict onto the selection, instead of field by field through the engine (~14 us a field here; a 50-job
#: page of fritz jobs has ~1,300 job fields, ~470 resources, ~200 footprint values and its tags). A
#: selection with a field that has its own resolver (userData, concurrentJobs) goes through the engine.
PROJECTED_LISTS = ("JobResultList.items", "Job.resources", "Job.tags", "Job.footprint", "Job.energyFootprint")
#: Selection plans kept per field (one per distinct query document in use).
_MAX_PLANS = 1024


def _unwrap(schema: Any, graphql_type: Any) -> tuple[Any, bool]:
    """The named type under NonNull/List wrappers, and whether a list was among them."""
    is_list = False
    while getattr(graphql_type, "is_non_null_type", False) or getattr(graphql_type, "is_list_type", False):
        is_list = is_list or getattr(graphql_type, "is_list_type", False)
        graphql_type = graphql_type.gql_type
    if isinstance(graphql_type, str):  # wrappers name the type they wrap
        graphql_type = schema.find_type(graphql_type)
    return graphql_type, is_list


def _projection(schema: Any, object_type: Any, node: Any) -> list[tuple[str, str, Callable[[Any], Any]]] | None:
    """(response key, dict key, value conversion) per selected field, or None when the selection needs the
    engine: fragments, directives, arguments, interfaces, or fields with their own resolver.

    Sub-selections of object fields get plans of their own, so a job with its tags, resources and
    footprint is completed in one pass.
    """
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return None
    plan = []
    for sel in selection_set.selections:
        if type(sel).__name__ != "FieldNode" or sel.directives or sel.arguments:
            return None
        name = sel.name.value
        key = sel.alias.value if sel.alias else name
        if name == "__typename":
            if sel.selection_set is not None:
                return None
            type_name = object_type.name
            plan.append((key, name, lambda _value, type_name=type_name: type_name))
            continue
        field = object_type.implemented_fields.get(name)
        if field is None or field.raw_resolver is not None:
            return None
        named, is_list = _unwrap(schema, field.graphql_type)
        if sel.selection_set is not None:
            if not hasattr(named, "implemented_fields"):  # interfaces and unions: left to the engine
                return None
            sub_plan = _projection(schema, named, sel)
            if sub_plan is None:
                return None
            plan.append((key, name, _object_list(sub_plan) if is_list else _object(sub_plan)))
            continue
        coerce_output = getattr(named, "coerce_output", None)
        if coerce_output is None:
            return None
        if is_list:  # lists of plain values from the archive or database (see PASS_THROUGH_LISTS)
            plan.append((key, name, lambda value: value))
        else:
            plan.append((key, name, lambda value, coerce=coerce_output: None if value is None else coerce(value)))
    return plan


def _project(plan: list, item: dict) -> dict:
    return {key: convert(item.get(source)) for key, source, convert in plan}


def _object(plan: list) -> Callable[[Any], Any]:
    return lambda value: _project(plan, value) if type(value) is dict else None


def _object_list(plan: list) -> Callable[[Any], Any]:
    return lambda value: [_project(plan, item) for item in value] if type(value) is list else None


def _project_leaf_object_lists(schema: Any, names: tuple[str, ...]) -> None:
    """Complete these list fields by projection where the selection allows it (see PROJECTED_LISTS)."""
    for name in names:
        field = schema.get_field_by_name(name)
        object_type, _ = _unwrap(schema, field.graphql_type)
        bound = field.resolver
        regular = bound.keywords["output_coercer"]
        plans: dict[int, tuple[Any, Any]] = {}

        async def coerce(result: Any, info: Any, execution_context: Any, field_nodes: Any, path: Any,
                         regular: Callable = regular, object_type: Any = object_type,
                         plans: dict = plans, schema: Any = schema) -> Any:
            if type(result) is list and len(field_nodes) == 1:
                node = field_nodes[0]
                entry = plans.get(id(node))
                if entry is None or entry[0] is not node:
                    if len(plans) >= _MAX_PLANS:
                        plans.clear()
                    entry = plans[id(node)] = (node, _projection(schema, object_type, node))
                plan = entry[1]
                if plan is not None and all(type(item) is dict for item in result):
                    return [_project(plan, item) for item in result]
            return await regular(result, info, execution_context, field_nodes, path)

        field.resolver = functools.partial(bound.func, *bound.args, **{**bound.keywords, "output_coercer": coerce})


_executor: _Executor | None = None
_executor_lock = threading.Lock()


def executor() -> _Executor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = _Executor()
    return _executor


async def run_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run database or archive work of a resolver on the blocking pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


def execute(runtime: Runtime, viewer: Viewer | None, body: Mapping[str, Any]) -> tuple[int, dict]:
    """One GraphQL HTTP request body -> (HTTP status, response document).

    422 for a request that does not parse or validate (as gqlgen answers), 200 otherwise, with
    field errors in ``errors`` next to the data that could be resolved.
    """
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the request needs a 'query' string", field="query")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("'variables' must be an object", field="variables")
    operation = body.get("operationName") or None
    if operation is not None and not isinstance(operation, str):
        raise InvalidInput("'operationName' must be a string", field="operationName")
    context = {"runtime": runtime, "viewer": viewer}
    try:
        result = executor().execute(query, variables, operation, context)
    except _LimitExceeded as exc:
        extensions = {"code": "QueryTooComplex", "field": exc.field}
        return 422, {"data": None, "errors": [{"message": str(exc), "extensions": extensions}]}
    errors = result.get("errors") or []
    if result.get("data") is None and errors and all(_is_request_error(e) for e in errors):
        return 422, result
    return 200, result


def _is_request_error(error: Mapping[str, Any]) -> bool:
    """A syntax error (no path) or a validation error (tartiflette cites the spec rule), not a resolver's."""
    return not error.get("path") or "rule" in (error.get("extensions") or {})


# --- limits -----------------------------------------------------------------------------------------

class _LimitExceeded(Exception):
    def __init__(self, message: str, field: str = "query") -> None:
        super().__init__(message)
        self.field = field


#: What the scan stops at: brackets, colons, and the starts of strings and comments (whose text it skips).
_SIGNIFICANT = re.compile(r'["#\[\]{}():]')
_STRING_END = re.compile(r'\\.|["\n\r]', re.DOTALL)  # an escape, the closing quote, or the line end
_BLOCK_STRING_END = re.compile(r'\\"""|"""')  # in a block string only \""" escapes anything
_LINE_END = re.compile(r"[\n\r]")


def document_problem(text: str) -> str | None:
    """What makes a GraphQL document too big for the parser and tartiflette's validation, or None.

    One scan of the raw text, in linear time and constant stack, so it can run before the parser:
    the nesting of ``[``, ``{`` and ``(``, the top-level definitions (each opens a ``{`` at depth 0) and
    the colons, all outside strings, block strings and comments. Text that is not valid GraphQL
    (unbalanced brackets, an unterminated string) is left for the parser to report.
    """
    depth, definitions, colons, pos, end = 0, 0, 0, 0, len(text)
    while pos < end:
        found = _SIGNIFICANT.search(text, pos)
        if found is None:
            break
        char, pos = found.group(), found.end()
        if char in "[{(":
            if depth == 0 and char == "{":
                definitions += 1
                if definitions > MAX_DEFINITIONS:
                    return f"the query has more than {MAX_DEFINITIONS} operations and fragments"
            depth += 1
            if depth > MAX_NESTING:
                return f"the query nests brackets deeper than {MAX_NESTING} levels"
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == ":":
            colons += 1
            if colons > MAX_COLONS:
                return f"the query has more than {MAX_COLONS} arguments, aliases and input fields"
        elif char == "#":
            line_end = _LINE_END.search(text, pos)
            pos = line_end.end() if line_end else end
        elif text.startswith('""', pos):
            pos = _skip(text, pos + 2, _BLOCK_STRING_END)
        else:
            pos = _skip(text, pos, _STRING_END)
    return None


def _skip(text: str, pos: int, closing: re.Pattern) -> int:
    """The position after the string whose text starts at ``pos`` (the end of text if it does not close)."""
    while True:
        found = closing.search(text, pos)
        if found is None:
            return len(text)
        pos = found.end()
        if not found.group().startswith("\\"):  # not an escape: the string ends here
            return pos


def json_nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and objects nest deeper than ``limit`` in a decoded JSON value (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


def _check_nesting(query: str, variables: Mapping[str, Any] | None) -> None:
    """Refuse deep nesting and too many definitions or colons before the parser (C, recursive),
    tartiflette's validation (recursive, partly quadratic) or its coercion of variables (recursive) see them."""
    problem = document_problem(query)
    if problem is not None:
        raise _LimitExceeded(problem)
    if variables is not None and json_nesting_exceeds(variables, MAX_NESTING):
        raise _LimitExceeded(f"'variables' nest deeper than {MAX_NESTING} levels", field="variables")


def _check_limits(engine: Engine, query: str) -> None:
    """Reject deep or huge selections before any resolver runs; unparsable queries are left to the engine."""
    problem = _limit_violation(engine, query)
    if problem is not None:
        raise _LimitExceeded(problem)


@functools.lru_cache(maxsize=512)  # clients send the same few documents with new variables; parsing costs ~6 ms
def _limit_violation(engine: Engine, query: str) -> str | None:
    from tartiflette.language.parsers.libgraphqlparser import parse_to_document

    try:
        document = parse_to_document(query, engine._schema)
    except Exception:  # the engine reports the syntax error in GraphQL's own format
        return None
    try:
        _walk_limits(document)
    except _LimitExceeded as exc:
        return str(exc)
    return None


def _walk_limits(document: Any) -> None:
    fragments = {d.name.value: d for d in document.definitions if type(d).__name__ == "FragmentDefinitionNode"}
    budget = [MAX_FIELDS]

    def depth_of(selection_set: Any, level: int, expanding: frozenset[str]) -> int:
        if selection_set is None:
            return level
        deepest = level
        for sel in selection_set.selections:
            kind = type(sel).__name__
            if kind == "FieldNode":
                budget[0] -= 1
                if budget[0] < 0:
                    raise _LimitExceeded(f"the query selects more than {MAX_FIELDS} fields")
                deepest = max(deepest, depth_of(sel.selection_set, level + 1, expanding))
            elif kind == "InlineFragmentNode":
                deepest = max(deepest, depth_of(sel.selection_set, level, expanding))
            elif kind == "FragmentSpreadNode":
                name = sel.name.value
                if name in expanding or name not in fragments:
                    continue  # cycles and unknown fragments: validation reports them
                deepest = max(deepest, depth_of(fragments[name].selection_set, level, expanding | {name}))
            if deepest > MAX_DEPTH:
                raise _LimitExceeded(f"the query is nested deeper than {MAX_DEPTH} levels")
        return deepest

    for definition in document.definitions:
        if type(definition).__name__ == "OperationDefinitionNode":
            depth_of(definition.selection_set, 0, frozenset())
