#!/usr/bin/env bash
# Set up and start the cc-backend demo: virtualenv, install, demo archive, database, user demo/AdminDev.
# A second run reuses what exists (delete ./var to start over). DEMO_JOBS sets the number of jobs (2000).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/cc-backend ]; then
    echo "==> creating .venv and installing cc-backend"
    "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    # A regular install, not an editable one: setuptools announces every editable install of a
    # package with mapped folders (package-dir) with a warning, and the demo does not need one.
    .venv/bin/pip install --quiet .
fi
CC=.venv/bin/cc-backend

# The web UI's styles, icons and plots and the API browser (Bootstrap, Bootstrap Icons, uPlot,
# Swagger UI from npm, pinned in web/package-lock.json). Without them the pages say how to install them.
if [ ! -f web/node_modules/uplot/package.json ] && command -v npm >/dev/null 2>&1; then
    echo "==> installing the web UI's assets into web/node_modules"
    npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null \
        || echo "    (failed: the pages will say how to install them)"
fi

if [ ! -d var ]; then
    echo "==> creating config.json, .env (fresh keys), var/job.db, var/job-archive"
    $CC --init
    cp configs/config-demo.json config.json
    echo "==> generating the demo job archive"
    $CC demo generate var/job-archive --now "$(date +%s)" --jobs "${DEMO_JOBS:-2000}"
    echo "==> loading the archive into the database"
    $CC init-db
    $CC --add-user demo:admin,api:AdminDev
else
    echo "==> ./var exists: reusing config.json, .env, var/job.db and var/job-archive"
fi

URL=$(.venv/bin/python - <<'EOF'
from cc_backend.config import load_config
from cc_backend.server.serving import parse_addr

main = load_config("config.json").main
host, port = parse_addr(main.addr)
host = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
print(f"{'https' if main.https_cert_file and main.https_key_file else 'http'}://{host}:{port}/")
EOF
)
echo "==> starting the server on $URL (user demo, password AdminDev; API token: $CC jwt demo; API browser: ${URL}swagger/; stop with Ctrl-C)"
exec $CC serve
