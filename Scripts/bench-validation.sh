#!/usr/bin/env bash
# Validation of an in-sync entity beside COPY of its rows, and finding drifted rows (see Docs/validation.md).
#   Scripts/bench-validation.sh [--rows N] [--drifted N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product ValidationBenchmark
.build/release/ValidationBenchmark --source "$TIDEMARK_TEST_PG15_URL" "$@"
