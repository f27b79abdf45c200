#!/usr/bin/env bash
# A local nats-server with JetStream for the mesh and for tests:
#   infra/nats.sh up     start it (no-op when it already runs)
#   infra/nats.sh down   stop it (no-op when it does not run)
#   infra/nats.sh env    print the variables that point the shop at it
# Listens on 127.0.0.1:${NATS_PORT:-54222}; keeps its store, log and pid file
# in ${INFRA_DIR:-./.infra}/nats (relative paths are from the repository root).
# The binary is ${NATS_SERVER_BIN:-nats-server} (Debian: apt-get install nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."

port="${NATS_PORT:-54222}"
dir="${INFRA_DIR:-./.infra}/nats"
bin="${NATS_SERVER_BIN:-nats-server}"
pidfile="$dir/nats-server.pid"

running() {
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

case "${1:-}" in
  up)
    if running; then
      echo "nats-server already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
      exit 0
    fi
    command -v "$bin" >/dev/null || { echo "nats-server not found: apt-get install nats-server, or set NATS_SERVER_BIN" >&2; exit 1; }
    if accepts; then
      echo "127.0.0.1:$port is taken by another process; set NATS_PORT" >&2
      exit 1
    fi
    mkdir -p "$dir/store"
    nohup "$bin" -js -a 127.0.0.1 -p "$port" -sd "$dir/store" -P "$pidfile" >"$dir/nats-server.log" 2>&1 &
    for _ in $(seq 1 100); do
      if running && accepts && grep -q "Server is ready" "$dir/nats-server.log"; then
        echo "nats-server running (pid $(cat "$pidfile")) on 127.0.0.1:$port, store $dir/store"
        exit 0
      fi
      sleep 0.1
    done
    echo "nats-server did not start; see $dir/nats-server.log" >&2
    exit 1
    ;;
  down)
    if ! running; then
      rm -f "$pidfile"
      echo "nats-server not running"
      exit 0
    fi
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "nats-server stopped"; exit 0; }
      sleep 0.1
    done
    echo "nats-server (pid $pid) did not stop within 10 s" >&2
    exit 1
    ;;
  env)
    echo "export BUS=nats"
    echo "export NATS_URL=nats://127.0.0.1:$port"
    ;;
  *)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac
