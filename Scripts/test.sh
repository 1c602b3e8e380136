#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL 15 and 18 servers.
#
#   Scripts/test.sh                 # install what is missing, start the servers, build, test
#   Scripts/test.sh --filter Live   # extra arguments go to `swift test`
#
# The servers keep running afterwards (fast re-runs); `Scripts/pg-servers.sh stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
export TIDEMARK_REQUIRE_LIVE=1
# The static embedder's parity tests need the default model; CI must not skip them.
Scripts/fetch-model.sh
export TIDEMARK_REQUIRE_MODEL=1

swift build
swift test "$@"
