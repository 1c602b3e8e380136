#!/usr/bin/env bash
# Backfill throughput beside COPY of the same rows, and peak RSS (see Docs/backfill.md).
#   Scripts/bench-backfill.sh [--rows N] [--embedder builtin|static|provider] [--searches N]
#   Scripts/bench-backfill.sh --index pgvector [--hnsw after|before]   # on the PostgreSQL 18 server (pgvector)
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product BackfillBenchmark
SOURCE=$TIDEMARK_TEST_PG15_URL
case " $* " in *" pgvector "*) SOURCE=$TIDEMARK_TEST_PG18_URL ;; esac
.build/release/BackfillBenchmark --source "$SOURCE" "$@"
