#!/usr/bin/env bash
# Computes the relevant product ids of the labelled retrieval set
# (Benchmarks/RetrievalSet/shop-queries.source.json → shop-queries.json) by loading the demo shop
# (Deploy/demo-schema.sql) into a scratch database on the PostgreSQL 15 test server and running each
# query's rule. Also checks that 'paraphrase' queries share no content word with any product.
#
#   Scripts/make-retrieval-set.sh
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/pg-servers.sh start >/dev/null
eval "$(Scripts/pg-servers.sh env)"
DB=${TIDEMARK_TEST_PG15_URL%/*}/tidemark_retrieval_set
psql -q "$TIDEMARK_TEST_PG15_URL" -c "DROP DATABASE IF EXISTS tidemark_retrieval_set WITH (FORCE)" -c "CREATE DATABASE tidemark_retrieval_set"
psql -q "$DB" -f Deploy/demo-schema.sql
DB="$DB" python3 - <<'PY'
import json, os, re, subprocess
db = os.environ["DB"]
def sql(query):
    return subprocess.run(["psql", "-At", db, "-c", query], check=True, capture_output=True, text=True).stdout.split("\n")
source = json.load(open("Benchmarks/RetrievalSet/shop-queries.source.json"))
stop = set("a an the to of in on for and or at by my is it that you if when without with do not need can be from this".split())
product_words = set()
for line in sql("SELECT name || ' ' || description FROM products"):
    product_words.update(re.findall(r"[a-z0-9]+", line.lower()))
queries = []
for entry in source["queries"]:
    ids = [int(x) for x in sql(f"SELECT id FROM products WHERE {entry['rule']} ORDER BY id") if x]
    assert ids, f"no product matches {entry['query']}"
    if entry["kind"] == "paraphrase":
        shared = set(re.findall(r"[a-z0-9]+", entry["query"].lower())) - stop & product_words
        assert not shared, f"paraphrase '{entry['query']}' shares {shared} with the products"
    queries.append(dict(entry, relevant=ids))
    print(f"{len(ids):5d}  {entry['kind']:10s} {entry['query']}")
out = {"about": source["about"], "queries": queries}
with open("Benchmarks/RetrievalSet/shop-queries.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
PY
psql -q "$TIDEMARK_TEST_PG15_URL" -c "DROP DATABASE IF EXISTS tidemark_retrieval_set WITH (FORCE)"
