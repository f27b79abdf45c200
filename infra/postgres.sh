#!/usr/bin/env bash
# Local PostgreSQL for the mesh runner and the tests: one server on loopback,
# and per service a role and a database it owns (database-per-service).
#
#   infra/postgres.sh up             initialise (first time), start, create each service's role and database
#   infra/postgres.sh env            print the export lines the services read (STORE, <SERVICE>_DATABASE_URL)
#   infra/postgres.sh down [--purge] stop the server; --purge also deletes its folder
#   infra/postgres.sh start | stop   the server alone, data kept (tests use these to simulate an outage)
#   infra/postgres.sh admin-url      the superuser's URL (tests create throwaway databases with it)
#   infra/postgres.sh status         exit 0 when the server runs
#
# Every command is idempotent. Settings, from the environment:
#   INFRA_DIR   infra folder; this server lives in its postgres/ (data, log, port, passwords)
#               default ./.infra (relative paths are from the repository root, as for infra/nats.sh)
#   PG_PORT     TCP port on 127.0.0.1                       default 55432 (then the port used last)
#   PG_BIN      folder with initdb, pg_ctl, psql            default the newest /usr/lib/postgresql/*/bin, else PATH
#   PG_OPTIONS  extra server flags, e.g. "-c fsync=off -c max_connections=300"
#   SERVICES    the services to provision                   default users catalog inventory orders payments notifications storefront
#
# Passwords are generated once, kept in INFRA_DIR/postgres/passwords (mode 600) and
# printed only by `env` and `admin-url`, whose output is meant for eval.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVICES=${SERVICES:-"users catalog inventory orders payments notifications storefront"}
DIR=${INFRA_DIR:-./.infra}/postgres
ADMIN=postgres

die() { echo "infra/postgres.sh: $*" >&2; exit 1; }

if [ -z "${PG_BIN:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$PG_BIN" ]; then PG_BIN=$(dirname "$(command -v pg_ctl || die "PostgreSQL not found: apt-get install postgresql, or set PG_BIN")"); fi
fi

# PostgreSQL refuses to run as root: as root, its programs run as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

DIR=$(realpath -m "$DIR")
DATA=$DIR/data
PORT=${PG_PORT:-$(cat "$DIR/port" 2>/dev/null || echo 55432)}

running() { [ -f "$DATA/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

random_password() { od -An -tx1 -N18 /dev/urandom | tr -d ' \n'; }

# Superuser SQL over the Unix socket in the data folder (trust: only the server's OS user can enter that folder).
admin_sql() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DATA" -p "$PORT" -U "$ADMIN" -d postgres "$@"; }

init() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  mkdir -p "$DIR" "$DATA" "$DIR/passwords"
  chmod 700 "$DATA" "$DIR/passwords"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$DATA"
    chmod a+x "$DIR"
    runuser -u postgres -- test -w "$DATA" || die "the postgres user cannot reach $DATA: pick an INFRA_DIR whose parents it can enter"
  fi
  # C collation: text sorts by bytes, as in SQLite, so keyset pagination and
  # ISO timestamps order the same in both stores.
  as_pg "$PG_BIN/initdb" -D "$DATA" -U "$ADMIN" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-instructions --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
}

start() {
  init
  if ! running; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "127.0.0.1:$PORT is taken by another process; set PG_PORT"; fi
    # Loopback only; the socket sits in the data folder, away from the system server's.
    as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -w -t 60 -l "$DATA/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k '$DATA' ${PG_OPTIONS:-}" >/dev/null \
      || { tail -n 20 "$DATA/server.log" >&2 || true; die "the server did not start on 127.0.0.1:$PORT (port taken? set PG_PORT)"; }
  fi
  echo "$PORT" >"$DIR/port"
  if [ ! -s "$DIR/passwords/$ADMIN" ]; then
    local pw
    pw=$(random_password)
    admin_sql -c "ALTER ROLE $ADMIN PASSWORD '$pw'" >/dev/null
    (umask 077 && printf '%s' "$pw" >"$DIR/passwords/$ADMIN")
  fi
}

stop() {
  if running; then as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null; fi
}

provision() {
  local svc pw
  for svc in $SERVICES; do
    [[ $svc =~ ^[a-z][a-z0-9_]*$ ]] || die "service name '$svc' is not a plain lower-case identifier"
    if [ ! -s "$DIR/passwords/$svc" ]; then (umask 077 && random_password >"$DIR/passwords/$svc"); fi
    pw=$(cat "$DIR/passwords/$svc")
    # The role may only reach its own database: CONNECT is revoked from everyone else.
    admin_sql <<SQL >/dev/null
SELECT format('CREATE ROLE %I LOGIN', '$svc') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$svc') \gexec
ALTER ROLE "$svc" WITH LOGIN PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I', '$svc', '$svc') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$svc') \gexec
REVOKE ALL ON DATABASE "$svc" FROM PUBLIC;
SQL
  done
}

url_for() { echo "postgres://$1:$(cat "$DIR/passwords/$1")@127.0.0.1:$PORT/$2"; }

case "${1:-}" in
  up)
    start
    provision
    echo "postgres: 127.0.0.1:$PORT, data in $DATA; for the services: eval \"\$(infra/postgres.sh env)\"" >&2
    ;;
  env)
    echo "export STORE=postgres"
    for svc in $SERVICES; do
      [ -s "$DIR/passwords/$svc" ] || die "no role for $svc yet: run infra/postgres.sh up"
      echo "export $(echo "$svc" | tr '[:lower:]' '[:upper:]')_DATABASE_URL=$(url_for "$svc" "$svc")"
    done
    ;;
  admin-url)
    [ -s "$DIR/passwords/$ADMIN" ] || die "not started yet: run infra/postgres.sh start"
    url_for "$ADMIN" postgres
    ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  down)
    stop
    if [ "${2:-}" = "--purge" ]; then rm -rf "$DIR"; fi
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
