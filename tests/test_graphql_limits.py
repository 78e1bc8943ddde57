"""Hostile GraphQL requests against a real server: documents and variables nested to crash it are refused, and it lives on."""

from __future__ import annotations

import httpx
import pytest
from support.db import SHARED_SQLITE_ONLY
from support.server import Server
from support.site import token

MAX_NESTING = 64  # server/graphql/executor.py; docs/graphql.md says so
MAX_DEFINITIONS = 100
MAX_COLONS = 4000
ARCHIVED_JOBS = 2  # the peer archive's two emmy jobs, loaded by init-db
COUNT = "query($f: [JobFilter!]) { jobs(filter: $f) { count } }"

#: Documents that crashed the server (segfault in the C parser) or ended in RecursionError before the pre-check.
HOSTILE = {
    "list literal 20,000 deep": "{ jobs(filter:" + "[" * 20000 + "]" * 20000 + "){ count } }",
    "list literal 5,000 deep": "{ jobs(filter:" + "[" * 5000 + "]" * 5000 + "){ count } }",
    "selections 100,000 deep": "{ jobs " + "{ items " * 100000 + "{ id }" + " }" * 100000 + " }",
    "object literal 10,000 deep": "{ jobs(filter: [" + "{a: " * 10000 + "1" + "}" * 10000 + "]) { count } }",
    "unbalanced, 30,000 open": "{ jobs(filter:" + "[" * 30000,
    "just past the limit": "{ jobs(filter: " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + ") { count } }",
}


def _nested_list(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def server(shared_site):
    """A real server process for the module: a document that crashed the parser would end it."""
    srv = Server(shared_site)
    try:
        srv.wait_ready()
        srv.headers = {"Authorization": f"Bearer {token(shared_site, ['admin'], sub='boss')}"}
        yield srv
    finally:
        srv.stop()


def _post_raw(server, body: str) -> httpx.Response:
    """A JSON body written as text (the json module cannot encode what is nested this deep)."""
    return httpx.post(server.url + "/query", content=body, timeout=10,
                      headers={**server.headers, "Content-Type": "application/json"})


def _alive(server) -> None:
    assert server.proc.poll() is None, server.output()[-2000:]
    r = httpx.get(server.url + "/healthz", timeout=1)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


#: The answers to a document, and to variables, nested too deep.
TOO_DEEP = {"query": f"the query nests brackets deeper than {MAX_NESTING} levels",
            "variables": f"'variables' nest deeper than {MAX_NESTING} levels"}


def _too_complex(r: httpx.Response, message: str, field: str = "query") -> None:
    assert r.status_code == 422 and r.json() == {"data": None, "errors": [{
        "message": message, "extensions": {"code": "QueryTooComplex", "field": field}}]}, r.text[:500]


def _refused(r: httpx.Response, field: str) -> None:
    _too_complex(r, TOO_DEEP[field], field)


@SHARED_SQLITE_ONLY
def test_deeply_nested_documents_are_refused_before_parsing(server):
    for document in HOSTILE.values():
        r = httpx.post(server.url + "/query", json={"query": document}, headers=server.headers, timeout=10)
        _refused(r, "query")
        _alive(server)
    r = httpx.get(server.url + "/query", params={"query": HOSTILE["list literal 5,000 deep"]}, headers=server.headers,
                  timeout=10)
    _refused(r, "query")
    _alive(server)


def _fragment_chain(length: int) -> str:
    """``{ ...F0 }`` where F0 spreads F1, F1 spreads F2, ..., and the last selects the job count."""
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(length - 1))
    return f"{{ ...F0 }} {chain} fragment F{length - 1} on Query {{ jobs {{ count }} }}"


@SHARED_SQLITE_ONLY
def test_many_definitions_and_colons_are_refused_before_validation(server):
    """3,000 chained fragments were a RecursionError in tartiflette's cycle check (500 took 6 s); some of its
    checks of arguments, variable definitions and input fields are quadratic (40,000: minutes)."""
    for length in (3000, MAX_DEFINITIONS):  # the operation is one definition more
        r = httpx.post(server.url + "/query", json={"query": _fragment_chain(length)}, headers=server.headers,
                       timeout=10)
        _too_complex(r, f"the query has more than {MAX_DEFINITIONS} operations and fragments")
    operations = " ".join(f"query Q{i} {{ jobs {{ count }} }}" for i in range(MAX_DEFINITIONS + 1))
    r = httpx.post(server.url + "/query", json={"query": operations, "operationName": "Q0"},
                   headers=server.headers, timeout=10)
    _too_complex(r, f"the query has more than {MAX_DEFINITIONS} operations and fragments")
    colons = {
        "arguments": "{ jobs(" + " ".join(f"a{i}: 1" for i in range(40000)) + ") { count } }",
        "variable definitions": "query(" + " ".join(f"$v{i}: Int" for i in range(40000)) + ") { jobs { count } }",
        "input fields": "{ jobs(filter: [{" + " ".join(f"f{i}: 1" for i in range(MAX_COLONS)) + "}]) { count } }",
    }
    for document in colons.values():
        r = httpx.post(server.url + "/query", json={"query": document}, headers=server.headers, timeout=10)
        _too_complex(r, f"the query has more than {MAX_COLONS} arguments, aliases and input fields")
    _alive(server)
    r = httpx.post(server.url + "/query", json={"query": _fragment_chain(MAX_DEFINITIONS - 1)},
                   headers=server.headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"data": {"jobs": {"count": ARCHIVED_JOBS}}}, r.text[:500]
    colons_in_strings = '{ jobs(filter: [{user: {eq: "' + ":" * 50000 + '"}}]) { count } }'
    r = httpx.post(server.url + "/query", json={"query": colons_in_strings}, headers=server.headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"data": {"jobs": {"count": 0}}}, r.text[:500]


@SHARED_SQLITE_ONLY
def test_nesting_inside_strings_and_comments_does_not_count(server):
    """Brackets in strings, block strings (with escaped quotes) and comments are text, not nesting."""
    deep = "[" * 20000
    for literal in (f'"{deep}"', f'"\\"{deep}"', f'"""{deep} \\""" {deep}"""'):
        document = f"{{ jobs(filter: [{{user: {{eq: {literal}}}}}]) {{ count }} }}"
        r = httpx.post(server.url + "/query", json={"query": document}, headers=server.headers, timeout=10)
        assert r.status_code == 200 and r.json() == {"data": {"jobs": {"count": 0}}}, r.text[:500]
    commented = f"{{ jobs # {deep}\n {{ count }} }}"
    r = httpx.post(server.url + "/query", json={"query": commented}, headers=server.headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"data": {"jobs": {"count": ARCHIVED_JOBS}}}, r.text[:500]
    # an escaped backslash ends the string: the brackets after it count again
    escaped = f'{{ jobs(filter: [{{user: {{eq: "\\\\"}}}}]) {{ count }} }} # " \n {deep}'
    _refused(httpx.post(server.url + "/query", json={"query": escaped}, headers=server.headers, timeout=10), "query")
    _alive(server)


@SHARED_SQLITE_ONLY
def test_nesting_up_to_the_limit_reaches_the_parser(server):
    """At the limit the document is parsed and validated as usual: here a list where a JobFilter belongs."""
    document = "{ jobs(filter: " + "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2) + ") { count } }"
    r = httpx.post(server.url + "/query", json={"query": document}, headers=server.headers, timeout=10)
    assert r.status_code == 422, r.text[:500]
    error = r.json()["errors"][0]
    assert "QueryTooComplex" not in str(error) and "JobFilter" in error["message"], error


@SHARED_SQLITE_ONLY
def test_deeply_nested_variables_are_a_clean_client_error(server):
    post = {"query": COUNT, "variables": {"f": _nested_list(MAX_NESTING)}}
    _refused(httpx.post(server.url + "/query", json=post, headers=server.headers, timeout=10), "variables")
    # deeper than orjson decodes (1024): the body is not JSON to us
    r = _post_raw(server, '{"query": "%s", "variables": {"f": %s%s}}' % (COUNT, "[" * 5000, "]" * 5000))
    assert r.status_code == 400 and "depth limit exceeded" in r.json()["error"], r.text[:500]
    # within orjson's limit, deeper than Python's recursion limit, a number beyond 64 bits at the bottom
    r = _post_raw(server, '{"query": "%s", "variables": {"f": %s1e300%s}}' % (COUNT, "[" * 1000, "]" * 1000))
    assert r.status_code == 400
    assert r.json()["error"] == "variables.f" + "[0]" * 1000 + ": the number 1e+300 is out of range (64-bit)"
    for depth in (MAX_NESTING, 5000):  # GET: variables in the query string
        r = httpx.get(server.url + "/query", headers=server.headers, timeout=10,
                      params={"query": COUNT, "variables": "{\"f\": " + "[" * depth + "]" * depth + "}"})
        if depth == MAX_NESTING:
            _refused(r, "variables")
        else:
            assert r.status_code == 400 and "'variables' is not valid JSON: depth limit exceeded" in r.json()["error"]
    _alive(server)
    within = {"query": COUNT, "variables": {"f": [{"numNodes": {"from": 1, "to": 0}}]}}
    r = httpx.post(server.url + "/query", json=within, headers=server.headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"data": {"jobs": {"count": ARCHIVED_JOBS}}}, r.text
