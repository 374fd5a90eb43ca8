#!/usr/bin/env bash
# `make serve`: a local Prefect server (SQLite under .prefect/, loopback only) and
# `distillery serve` attached to it. Ctrl-C stops both: first the serve process (it pauses the
# refresh schedule on the way out, which needs the server), then the server.
#
#   deployments/serve_local.sh [distillery serve options]   e.g. --cron "30 1 * * *"
#   PREFECT_PORT=4300 deployments/serve_local.sh            another port
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
HOST=127.0.0.1
PORT=${PREFECT_PORT:-4200}
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.prefect}
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# The UI calls the API at this address; without it a port other than 4200 shows
# "Can't connect to Server API".
export PREFECT_UI_API_URL=http://$HOST:$PORT/api

# Job control: each child gets its own process group, so Ctrl-C reaches this script only
# and the trap below decides the order of shutdown.
set -m
server=""
serve=""
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
# Signal a child's process group, escalating after 10 s per signal.
stop_group() {
    local pid=$1 sig
    shift
    for sig in "$@"; do
        alive "$pid" || return 0
        kill "-$sig" -- "-$pid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.2; done
    done
}
stop() {
    trap - INT TERM EXIT
    [ -n "$serve" ] && stop_group "$serve" INT TERM KILL
    [ -n "$server" ] && stop_group "$server" TERM KILL
    wait 2>/dev/null || true
    echo "stopped the Prefect server and the serve process"
}
trap stop INT TERM EXIT

PREFECT_API_URL="" "$BIN/prefect" server start --host "$HOST" --port "$PORT" &
server=$!
"$BIN/python" - "$PREFECT_UI_API_URL/health" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 120
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"no Prefect server at {sys.argv[1]} after 120 s")
        time.sleep(0.5)
PY
echo "Prefect UI: http://$HOST:$PORT  (Ctrl-C stops the server and the serve process)"

PREFECT_API_URL=$PREFECT_UI_API_URL "$BIN/distillery" serve "$@" &
serve=$!
# Return when either one ends (a crash of one stops the other through the trap).
wait -n "$server" "$serve" || true
