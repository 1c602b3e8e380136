#!/usr/bin/env bash
# Fetches the default static embedding model (embedder.kind static) from the PyPI wheel of
# wordllama (MIT licence): its token-embedding matrix and its tokenizer, nothing else. No Python
# package is installed; pip only downloads the wheel, which is a zip.
#
#   Scripts/fetch-model.sh [DIR]     # default DIR: models/wordllama
#
# Idempotent: does nothing when both files are already there. The wheel version and the files'
# SHA-256 are pinned: a different file is refused rather than silently embedding differently.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.4.0.post1
DIR=${1:-models/wordllama}
WEIGHTS=l2_supercat_256.safetensors
TOKENIZER=l2_supercat_tokenizer_config.json
WEIGHTS_SHA256=64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5
TOKENIZER_SHA256=93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68

if [ -s "$DIR/$WEIGHTS" ] && [ -s "$DIR/$TOKENIZER" ]; then
    exit 0
fi

PYTHON=$(command -v python3 || true)
[ -n "$PYTHON" ] && "$PYTHON" -m pip --version >/dev/null 2>&1 || {
    echo "fetch-model.sh: python3 with pip is needed to download the wheel (apt-get install python3-pip)" >&2
    exit 1
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# The data files are the same in every platform's wheel: ask for one fixed wheel so that the
# download does not depend on the local Python (and never falls back to building an sdist).
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform manylinux2014_x86_64 "wordllama==$VERSION" -d "$TMP"
WHEEL=$(ls "$TMP"/wordllama-*.whl)
# A wheel is a zip: take the two files out of it (Python's zipfile, so unzip need not be installed).
"$PYTHON" - "$WHEEL" "$TMP/files" "wordllama/weights/$WEIGHTS" "wordllama/tokenizers/$TOKENIZER" <<'PY'
import os, sys, zipfile
wheel, target, *members = sys.argv[1:]
os.makedirs(target, exist_ok=True)
with zipfile.ZipFile(wheel) as archive:
    for member in members:
        with archive.open(member) as source, open(os.path.join(target, os.path.basename(member)), "wb") as out:
            out.write(source.read())
PY

check() {
    local actual
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$actual" != "$2" ]; then
        echo "fetch-model.sh: $(basename "$1") has SHA-256 $actual, expected $2 (wordllama $VERSION)" >&2
        exit 1
    fi
}
check "$TMP/files/$WEIGHTS" "$WEIGHTS_SHA256"
check "$TMP/files/$TOKENIZER" "$TOKENIZER_SHA256"

mkdir -p "$DIR"
# Move into place last, so that an interrupted run never leaves a half-written model behind.
mv "$TMP/files/$TOKENIZER" "$DIR/$TOKENIZER"
mv "$TMP/files/$WEIGHTS" "$DIR/$WEIGHTS"
echo "fetch-model.sh: wordllama $VERSION model in $DIR"
