#!/usr/bin/env bash
# Set up and start the cc-backend demo: virtualenv, install, demo archive, database, user demo/AdminDev,
# then the server and next to it the live feeder (`cc-backend demo feed`): it keeps jobs running on the demo
# clusters through the REST API, writes their metrics into the built-in metric store (/api/write) and stops
# them after a while, so that they are archived. Ctrl-C stops both.
# A second run reuses what exists (delete ./var to start over). DEMO_JOBS sets the number of archived jobs
# (2000); DEMO_FEED=0 starts no feeder; DEMO_FEED_JOBS (8), DEMO_FEED_INTERVAL (60 s) and DEMO_FEED_MINUTES
# (10-30) set the running jobs, the seconds between samples and their run time in minutes.
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
# Server and feeder get process groups of their own (job control): Ctrl-C reaches this script only, which
# stops the feeder first (it stops its running jobs, the server archives them) and then the server.
set -m
$CC serve &
SERVER_PID=$!
FEEDER_PID=
stop_all() {
    trap - EXIT INT TERM
    if [ -n "$FEEDER_PID" ] && kill -0 "$FEEDER_PID" 2>/dev/null; then
        kill -TERM "$FEEDER_PID" 2>/dev/null || true
        wait "$FEEDER_PID" 2>/dev/null || true
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${DEMO_FEED:-1}" != 0 ]; then
    if TOKEN=$($CC jwt demo); then
        echo "==> starting the live feeder: ${DEMO_FEED_JOBS:-8} running jobs of ${DEMO_FEED_MINUTES:-10-30} minutes, a sample every ${DEMO_FEED_INTERVAL:-60} s"
        # The token goes through the environment, not the command line (visible in ps).
        CC_FEED_TOKEN=$TOKEN $CC demo feed --url "$URL" --jobs "${DEMO_FEED_JOBS:-8}" \
            --interval "${DEMO_FEED_INTERVAL:-60}" --job-minutes "${DEMO_FEED_MINUTES:-10-30}" --give-up 120 &
        FEEDER_PID=$!
    else
        echo "    (no API token for user demo: the demo runs without the live feeder)"
    fi
fi
# Returns when the server exits (or a signal arrives); the EXIT trap then stops the feeder.
wait "$SERVER_PID"
