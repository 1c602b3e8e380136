# Sourced by Scripts/browser-test.sh and Scripts/api-check.sh: a throwaway database with the demo
# shop (Deploy/demo-schema.sql) and ARTICLES generated articles, and `tidemark run` serving its API
# on a free loopback port. Sets TIDEMARK, API_URL, FIXTURE_DIR; fixture_stop ends and removes it all.
set -euo pipefail

fixture_start() {
    local name=$1 articles=${2:-0}
    Scripts/pg-servers.sh start >/dev/null
    eval "$(Scripts/pg-servers.sh env)"
    swift build --product tidemark 2>&1 | tail -n 1
    TIDEMARK=$(swift build --show-bin-path)/tidemark
    local server=$TIDEMARK_TEST_PG15_URL
    FIXTURE_DB=tm_${name}_$$
    FIXTURE_URL=${server%/*}/$FIXTURE_DB
    FIXTURE_SERVER=$server
    FIXTURE_DIR=$(mktemp -d /tmp/tidemark-$name.XXXXXX)
    psql -q "$server" -c "CREATE DATABASE $FIXTURE_DB"
    psql -q "$FIXTURE_URL" -f Deploy/demo-schema.sql
    psql -q "$FIXTURE_URL" <<SQL
CREATE TABLE articles (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, topic int NOT NULL);
INSERT INTO articles
SELECT g, 'Article ' || g, 'Notes on topic ' || (g % 97) || ': ' || repeat(md5(g::text) || ' ', 4), g % 97
  FROM generate_series(1, $articles) g;
ANALYZE articles;
SQL
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    API_URL=http://127.0.0.1:$port
    cat >"$FIXTURE_DIR/tidemark.yml" <<YAML
source: { url: "$FIXTURE_URL", slot: $FIXTURE_DB, heartbeat_interval: 1s }
index: { kind: sqlite, path: "$FIXTURE_DIR/index.db" }
embedder: { kind: builtin }
api: { listen: "127.0.0.1:$port" }
backfill: { chunk_duration: 100ms }
entities:
  product: { table: public.products, content: "{{name}}\n{{description}}", metadata: [price, category_id] }
  user: { table: public.users, content: "{{name}}, {{city}}. {{bio}}", metadata: [city] }
  article: { table: public.articles, content: "{{title}}\n{{body}}", metadata: [topic] }
YAML
    TIDEMARK_API_LISTEN=127.0.0.1:$port "$TIDEMARK" run --config "$FIXTURE_DIR/tidemark.yml" --log-level notice >"$FIXTURE_DIR/agent.log" 2>&1 &
    FIXTURE_AGENT=$!
    for _ in $(seq 1 600); do
        if curl -fs "$API_URL/readyz" >/dev/null 2>&1; then
            # Ready means streaming; wait for the initial loads as well.
            if curl -fs "$API_URL/api/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if all(e["state"]=="loaded" for e in s["entities"]) else 1)'; then
                return 0
            fi
        fi
        if ! kill -0 "$FIXTURE_AGENT" 2>/dev/null; then cat "$FIXTURE_DIR/agent.log"; return 1; fi
        sleep 0.2
    done
    echo "the agent did not get ready; its log:" >&2
    cat "$FIXTURE_DIR/agent.log" >&2
    return 1
}

fixture_stop() {
    if [ -n "${FIXTURE_AGENT:-}" ] && kill -0 "$FIXTURE_AGENT" 2>/dev/null; then
        kill -TERM "$FIXTURE_AGENT"
        wait "$FIXTURE_AGENT" || true
    fi
    if [ -n "${FIXTURE_DB:-}" ]; then
        psql -q "$FIXTURE_SERVER" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$FIXTURE_DB' AND NOT active" >/dev/null 2>&1 || true
        psql -q "$FIXTURE_SERVER" -c "DROP DATABASE IF EXISTS $FIXTURE_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    [ -n "${FIXTURE_DIR:-}" ] && rm -rf "$FIXTURE_DIR"
}
