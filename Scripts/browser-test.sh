#!/usr/bin/env bash
# The admin page in a real headless browser (Debian's chromium and chromium-driver, selenium from
# PyPI): opens the page, starts a backfill and watches it reach 100 % through the events stream,
# searches and checks a hit; saves screenshots into Docs/ (admin-page.png, admin-backfill.png,
# admin-search.png). Installs what is missing. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ] || ! command -v curl >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver curl >/dev/null
fi
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q selenium

. Scripts/api-fixture.sh
trap fixture_stop EXIT
# Enough articles that a backfill takes a few seconds, so its progress can be watched.
fixture_start browser "${TIDEMARK_BROWSER_ARTICLES:-100000}"
python3 Tests/Browser/admin_page_test.py --url "$API_URL" --entity article --search-entity product \
    --query "waterproof lantern" --screenshots "${TIDEMARK_SCREENSHOTS:-Docs}"
