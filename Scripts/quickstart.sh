#!/usr/bin/env bash
# Quickstart: a local PostgreSQL with a demo shop, Tidemark indexing it into SQLite with the static
# embedding model (semantic, offline, in process), live changes, and searches that reflect them.
# Everything lives under .quickstart/; the model under models/wordllama (fetched once from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting PostgreSQL (installs postgresql-15 and libpq-dev if missing)"
Scripts/pg-servers.sh start
eval "$(Scripts/pg-servers.sh env)"
SERVER=$TIDEMARK_TEST_PG15_URL
DEMO=${SERVER%/*}/tidemark_demo

step "Fetching the static embedding model (wordllama from PyPI, once; no Python package is installed)"
Scripts/fetch-model.sh

step "Building tidemark"
swift build --product tidemark 2>&1 | tail -n 1
TIDEMARK=$(swift build --show-bin-path)/tidemark

step "Loading the demo shop: 3000 products, 2000 users"
psql -q "$SERVER" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'tidemark_demo'" >/dev/null
psql -q "$SERVER" -c "DROP DATABASE IF EXISTS tidemark_demo WITH (FORCE)" -c "CREATE DATABASE tidemark_demo"
psql -q "$DEMO" -f Deploy/demo-schema.sql

mkdir -p .quickstart
rm -f .quickstart/tidemark.db*
cat >.quickstart/tidemark.yml <<YAML
source:
  url: $DEMO
  slot: tidemark_demo
index:
  kind: sqlite
  path: .quickstart/tidemark.db
embedder:
  kind: static   # models/wordllama/l2_supercat_256.safetensors + its tokenizer (Scripts/fetch-model.sh)
entities:
  product:
    table: public.products
    content: "{{name}}\n{{description}}"
    metadata: [price, category_id]
  user:
    table: public.users
    content: "{{name}}, {{city}}. {{bio}}"
    metadata: [city]
YAML
echo "configuration: .quickstart/tidemark.yml"
"$TIDEMARK" discover --source "$DEMO"

step "Running the agent (initial load, then streaming)"
"$TIDEMARK" run --config .quickstart/tidemark.yml --log-level notice >.quickstart/agent.log 2>&1 &
AGENT=$!
trap 'kill -TERM $AGENT 2>/dev/null || true' EXIT
# Streaming starts at once; the existing rows arrive through one backfill job per entity.
for _ in $(seq 1 240); do
    if [ "$("$TIDEMARK" status --config .quickstart/tidemark.yml --log-level error 2>/dev/null | grep -c '(loaded)')" = 2 ]; then break; fi
    if ! kill -0 $AGENT 2>/dev/null; then cat .quickstart/agent.log; exit 1; fi
    sleep 0.5
done
"$TIDEMARK" status --config .quickstart/tidemark.yml --log-level error

step "Search: 'something to keep my coffee hot on the go' (no product says coffee or hot: insulated travel mugs do)"
"$TIDEMARK" search "something to keep my coffee hot on the go" --entity product -k 5 --config .quickstart/tidemark.yml --log-level error
step "Search: products for 'waterproof lantern for campers'"
"$TIDEMARK" search "waterproof lantern for campers" --entity product -k 5 --config .quickstart/tidemark.yml --log-level error
step "Search: users who 'bake sourdough in Oslo'"
"$TIDEMARK" search "bakes sourdough Oslo" --entity user -k 3 --config .quickstart/tidemark.yml --log-level error

step "Live changes in the application database (no Tidemark call anywhere)"
psql -q "$DEMO" <<'SQL'
INSERT INTO products (id, name, description, price, category_id, stock)
VALUES (5001, 'Waterproof Titanium Camping Lantern', 'A waterproof lantern in titanium for campers that survives storms and charges over USB-C.', 89.00, 2, 40);
UPDATE products SET name = 'Floating Walnut Lantern', description = 'A waterproof lantern in walnut that floats. Made for campers and kayakers.' WHERE id = 42;
UPDATE products SET price = price * 0.8 WHERE category_id = 4;
DELETE FROM products WHERE id = 1406;
SQL
echo "inserted product 5001, rewrote product 42, discounted Lighting, deleted product 1406"
sleep 1.5

step "Search again: 5001 and 42 are found, 1406 is gone"
"$TIDEMARK" search "waterproof lantern for campers" --entity product -k 5 --config .quickstart/tidemark.yml --log-level error

step "Stopping the agent (SIGTERM drains and checkpoints)"
kill -TERM $AGENT
wait $AGENT || true
trap - EXIT
"$TIDEMARK" status --config .quickstart/tidemark.yml --log-level error
echo
echo "Try: $TIDEMARK search \"quiet desk lamp\" --entity product --config .quickstart/tidemark.yml"
echo "     $TIDEMARK run --config .quickstart/tidemark.yml   # keep it running, then change rows with psql \"$DEMO\""
