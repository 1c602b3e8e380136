#!/usr/bin/env bash
# Backfill throughput beside COPY of the same rows, and peak RSS (see Docs/backfill.md).
#   Scripts/bench-backfill.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product BackfillBenchmark
.build/release/BackfillBenchmark --source "$TIDEMARK_TEST_PG15_URL" "$@"
