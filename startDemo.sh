#!/usr/bin/env bash
# Set up and start the cc-backend demo: virtualenv, install, demo archive, database, user demo/AdminDev.
# A second run reuses what exists (delete ./var to start over).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/cc-backend ]; then
    echo "==> creating .venv and installing cc-backend"
    "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e .
fi
CC=.venv/bin/cc-backend

# The API browser at /swagger/ (Swagger UI from npm, pinned in web/package-lock.json); optional.
if [ ! -f web/node_modules/swagger-ui-dist/swagger-ui-bundle.js ] && command -v npm >/dev/null 2>&1; then
    echo "==> installing Swagger UI into web/node_modules"
    npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null \
        || echo "    (failed: /swagger/ will say how to install it)"
fi

if [ ! -d var ]; then
    echo "==> creating config.json, .env (fresh keys), var/job.db, var/job-archive"
    $CC --init
    cp configs/config-demo.json config.json
    echo "==> generating the demo job archive"
    $CC demo generate var/job-archive --now "$(date +%s)"
    echo "==> loading the archive into the database"
    $CC init-db
    $CC --add-user demo:admin,api:AdminDev
else
    echo "==> ./var exists: reusing config.json, .env, var/job.db and var/job-archive"
fi

echo "==> starting the server on http://127.0.0.1:8080 (API token: $CC jwt demo; API browser: /swagger/; stop with Ctrl-C)"
exec $CC --loglevel info serve
