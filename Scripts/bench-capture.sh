#!/usr/bin/env bash
# Capture throughput against pg_recvlogical on PostgreSQL 15 and 18 (same workload, same run).
#   Scripts/bench-capture.sh [--rows N] [--updates N]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product CaptureBenchmark
for version in 15 18; do
    url_var=TIDEMARK_TEST_PG${version}_URL
    bin_var=TIDEMARK_TEST_PG${version}_BIN
    .build/release/CaptureBenchmark --source "${!url_var}" --bin "${!bin_var}" "$@"
    echo
done
