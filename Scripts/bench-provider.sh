#!/usr/bin/env bash
# Throughput of the OpenAI-compatible embedder at a request budget, against the local provider
# (see Docs/embedding-providers.md). Needs no database and no network beyond 127.0.0.1.
#   Scripts/bench-provider.sh [--texts N] [--call-size N] [--calls-in-flight N] [--rpm N]
#                             [--inputs N] [--concurrency N] [--latency-ms N] [--dimensions N]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product ProviderBenchmark
.build/release/ProviderBenchmark "$@"
