#!/usr/bin/env bash
# End-to-end streaming throughput, commit→searchable latency and peak RSS (see Docs/pipeline.md).
#   Scripts/bench-pipeline.sh [--inserts N] [--updates N] [--rate N] [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product PipelineBenchmark
.build/release/PipelineBenchmark --source "$TIDEMARK_TEST_PG15_URL" --bin "$TIDEMARK_TEST_PG15_BIN" "$@"
