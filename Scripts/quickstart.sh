#!/usr/bin/env bash
# Quickstart: a local PostgreSQL with demo data, then Tidemark on it.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product tidemark
URL=$TIDEMARK_TEST_PG15_URL
psql -q "$URL" -c "DROP DATABASE IF EXISTS tidemark_demo WITH (FORCE)" -c "CREATE DATABASE tidemark_demo"
DEMO=${URL%/*}/tidemark_demo
psql -q "$DEMO" -f Deploy/demo-schema.sql
.build/release/tidemark discover --source "$DEMO"
