#!/usr/bin/env bash
# Install what the tests need and run the whole suite (SQLite and the real MariaDB on 127.0.0.1:3306).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'

# The web UI's assets (Bootstrap, Bootstrap Icons, uPlot, Swagger UI): the npm packages pinned in
# web/package-lock.json, into web/node_modules (git-ignored). The browser tests need them.
npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

# Debian packages of the real peers: OpenLDAP's slapd for the LDAP tests (they start their own server
# on a free loopback port), Chromium for the browser tests (Playwright drives the system browser;
# it downloads none), tmux, the real terminal of the terminal UI's end-to-end test, and Prometheus (the
# metric backend tests start their own server on a loopback port).
missing=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || missing+=(slapd ldap-utils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# MariaDB: this machine kind starts it before the session; start it if it is not answering.
if ! mariadb-admin --host=127.0.0.1 --user=root ping >/dev/null 2>&1; then
    if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
        for _ in $(seq 1 30); do
            mariadb-admin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 && break
            sleep 1
        done
    fi
fi
# The test server keeps nothing worth an fsync per commit; this makes schema creation per test cheap.
mariadb --host=127.0.0.1 --user=root -e "SET GLOBAL innodb_flush_log_at_trx_commit=2" 2>/dev/null || true

# Lint, import order and types first: a failure here is quicker to read than one in the suite.
.venv/bin/ruff check --quiet .
# Types of the core (pyproject.toml [tool.mypy]); prints nothing when clean.
.venv/bin/mypy --no-error-summary

export CC_BCRYPT_ROUNDS=4
if [ $# -gt 0 ]; then  # a chosen selection runs as given (add -n 2 --dist loadfile for workers)
    exec .venv/bin/python -m pytest -q "$@"
fi
# One worker per core; a module's tests stay on one worker (module-scoped sites and servers are built once).
# schemathesis' generated items do not run under xdist (a worker reports one placeholder instead of one
# item per operation), so the fuzzer has a second pass in one process.
FUZZ=tests/test_openapi.py::test_no_request_makes_a_server_error
.venv/bin/python -m pytest -q -n "${CC_TEST_WORKERS:-auto}" --dist loadfile --deselect "$FUZZ"
exec .venv/bin/python -m pytest -q -p no:xdist "$FUZZ"
