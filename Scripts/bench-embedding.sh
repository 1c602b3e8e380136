#!/usr/bin/env bash
# Static embedding model: load time and memory, throughput (short and long texts, one core and all
# cores), tokenizer cost, and recall@5/MRR against the built-in embedder (see Docs/embedding.md).
#   Scripts/bench-embedding.sh [--seconds N] [--model-dir DIR] [--queries FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/fetch-model.sh
Scripts/pg-servers.sh start >/dev/null
eval "$(Scripts/pg-servers.sh env)"
swift build -c release --product EmbeddingBenchmark
.build/release/EmbeddingBenchmark --source "$TIDEMARK_TEST_PG15_URL" "$@"
