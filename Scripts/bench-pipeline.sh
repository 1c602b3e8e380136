#!/usr/bin/env bash
# End-to-end streaming throughput, commit→searchable latency and peak RSS (see Docs/pipeline.md).
#   Scripts/bench-pipeline.sh [--inserts N] [--updates N] [--rate N] [--seconds N] [--api on|off]
#   Scripts/bench-pipeline.sh --index pgvector ...   # on the PostgreSQL 18 server (pgvector)
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product PipelineBenchmark
SOURCE=$TIDEMARK_TEST_PG15_URL BIN=$TIDEMARK_TEST_PG15_BIN
case " $* " in *" pgvector "*) SOURCE=$TIDEMARK_TEST_PG18_URL BIN=$TIDEMARK_TEST_PG18_BIN ;; esac
.build/release/PipelineBenchmark --source "$SOURCE" --bin "$BIN" "$@"
