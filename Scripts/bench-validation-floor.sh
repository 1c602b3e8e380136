#!/usr/bin/env bash
# PostgreSQL's side of an in-sync validation alone, beside a COPY of the same rows: what no agent
# work can go below (see "Why half a COPY is out of reach" in Docs/validation.md).
#   Scripts/bench-validation-floor.sh [ROWS] [RUNS]
# For each run: COPY (SELECT …) TO STDOUT of the rows; the range digests of all rows on one
# connection and as two halves on two connections at once, with the row hash of Docs/validation.md
# (every value hashed as text) and with the integer columns hashed as integers (hashint8extended /
# hashint4extended; a variant the agent does not use). Times are wall clock, psql start included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RUNS=${2:-3}
Scripts/pg-servers.sh start >/dev/null
eval "$(Scripts/pg-servers.sh env)"
BASE=${TIDEMARK_TEST_PG15_URL%/*}
URL="$BASE/tidemark_validation_floor"
psql -X -q "$TIDEMARK_TEST_PG15_URL" -c "DROP DATABASE IF EXISTS tidemark_validation_floor" -c "CREATE DATABASE tidemark_validation_floor"
trap 'psql -X -q "$TIDEMARK_TEST_PG15_URL" -c "DROP DATABASE IF EXISTS tidemark_validation_floor"' EXIT
psql -X -q "$URL" <<SQL
CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, body text, category int);
INSERT INTO items SELECT g, 'item ' || g || ' ' || md5(g::text),
       'A short description of item ' || g || ' with words like lamp, desk, oak and ' || md5((g * 7)::text), g % 50
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE items;
SQL

text_hash='hashtextextended(concat(category) COLLATE "C", hashtextextended(coalesce(body, '"''"') COLLATE "C", hashtextextended(coalesce(title, '"''"') COLLATE "C", hashtextextended(concat(id) COLLATE "C", 0) # (title IS NULL)::int::bigint) # (body IS NULL)::int::bigint) # (category IS NULL)::int::bigint)'
typed_hash='hashint4extended(coalesce(category, 0), hashtextextended(coalesce(body, '"''"') COLLATE "C", hashtextextended(coalesce(title, '"''"') COLLATE "C", hashint8extended(id, 0) # (title IS NULL)::int::bigint) # (body IS NULL)::int::bigint) # (category IS NULL)::int::bigint)'

digest() { # hash, lower, upper
    psql -X -q -At "$URL" -c "SELECT count(*), coalesce(sum(h >> 32), 0), coalesce(sum(h & 4294967295), 0)
        FROM (SELECT $1 AS h FROM items WHERE id >= $2 AND id < $3 OFFSET 0) AS r" >/dev/null
}
now() { date +%s.%N; }
half=$((ROWS / 2 + 1))
echo "PostgreSQL's side of validation alone, $ROWS rows (seconds; ratio to the COPY of the same run)"
for run in $(seq 1 "$RUNS"); do
    start=$(now)
    psql -X -q "$URL" -c "COPY (SELECT id, title, body, category FROM items ORDER BY id) TO STDOUT" >/dev/null
    copy=$(now)
    line=$(python3 -c "print('COPY %.3f' % ($copy - $start))")
    for kind in text typed; do
        hash=$text_hash; [ "$kind" = typed ] && hash=$typed_hash
        a=$(now); digest "$hash" 0 $((ROWS + 1)); b=$(now)
        digest "$hash" 0 "$half" & digest "$hash" "$half" $((ROWS + 1)) & wait; c=$(now)
        line+=$(python3 -c "c = $copy - $start; print(' | %s: one connection %.3f (%.2f×), two %.3f (%.2f×)' % ('$kind', $b - $a, ($b - $a) / c, $c - $b, ($c - $b) / c))")
    done
    echo "$line"
done
