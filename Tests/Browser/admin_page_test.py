"""The admin page in a real headless Chromium: open it, start a backfill, watch its progress reach
100 % through the events stream, search and see a hit with its score. Screenshots go to Docs/.

Run by Scripts/browser-test.sh (which starts the database and the agent):
    python3 Tests/Browser/admin_page_test.py --url http://127.0.0.1:PORT --entity article --search-entity product \
        --query "waterproof lantern" --screenshots Docs
"""
import argparse
import json
import sys
import time
import traceback
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait


def make_driver():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1500",
                 "--force-device-scale-factor=1", "--no-proxy-server", "--disable-extensions"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class AdminPageTest:
    def __init__(self, args):
        self.args = args
        self.driver = make_driver()
        self.wait = WebDriverWait(self.driver, 60, poll_frequency=0.05)
        self.results = []

    def check(self, name, body):
        started = time.time()
        try:
            body()
            self.results.append((name, True, ""))
            print(f"PASS {name} ({time.time() - started:.1f} s)", flush=True)
        except Exception as error:  # noqa: BLE001 - a failed step is reported, the rest still runs
            self.results.append((name, False, repr(error)))
            print(f"FAIL {name}: {error!r}", flush=True)
            traceback.print_exc()
            self.driver.save_screenshot(f"{self.args.screenshots}/admin-failure-{name}.png")

    def opens_with_entities(self):
        self.driver.get(self.args.url + "/")
        row = self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'#entities tr[data-entity="{self.args.entity}"]')))
        self.wait.until(lambda d: "loaded" in row.text or "backfilling" in row.text)
        self.wait.until(EC.text_to_be_present_in_element((By.ID, "live"), "live"))
        assert self.driver.find_element(By.ID, "lag-bytes").text != "–", "the lag gauge shows a value"
        self.driver.save_screenshot(f"{self.args.screenshots}/admin-page.png")

    def backfill_reaches_100_percent(self):
        button = self.driver.find_element(By.CSS_SELECTOR, f'button[data-action="backfill"][data-entity="{self.args.entity}"]')
        button.click()
        toast = self.wait.until(EC.text_to_be_present_in_element((By.ID, "toast"), "queued job-"))
        assert toast
        job_id = self.driver.find_element(By.ID, "toast").text.split()[1]
        selector = f'#jobs tr.job[data-job="{job_id}"]'
        self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, selector)))
        seen = []
        screenshot_taken = False
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                row = self.driver.find_element(By.CSS_SELECTOR, selector)
                status = row.get_attribute("data-status")
                percent = row.find_element(By.CSS_SELECTOR, ".percent").text.split("%")[0]
            except Exception:  # noqa: BLE001 - the row is re-rendered by every event
                time.sleep(0.02)
                continue
            if not seen or seen[-1] != (status, percent):
                seen.append((status, percent))
            if status == "running" and 20 <= int(percent) < 90 and not screenshot_taken:
                self.driver.save_screenshot(f"{self.args.screenshots}/admin-backfill.png")
                screenshot_taken = True
            if status == "completed":
                break
            time.sleep(0.05)
        print("progress seen:", seen, flush=True)
        assert seen and seen[-1] == ("completed", "100"), f"the job completed at 100 %: {seen[-3:]}"
        running = [int(p) for s, p in seen if s == "running"]
        assert any(0 < p < 100 for p in running), f"live progress between 0 and 100 % was shown: {seen}"
        assert screenshot_taken, "a screenshot mid-progress was taken"

    def search_shows_a_hit(self):
        Select(self.driver.find_element(By.ID, "search-entity")).select_by_visible_text(self.args.search_entity)
        box = self.driver.find_element(By.ID, "search-q")
        box.clear()
        box.send_keys(self.args.query)
        self.driver.find_element(By.ID, "search-go").click()
        hit = self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#hits .hit")))
        score = float(hit.find_element(By.CSS_SELECTOR, ".score").text)
        assert 0 < score <= 1, f"a hit with a score: {score}"
        words = [w.lower() for w in self.args.query.split()]
        assert any(w in hit.text.lower() for w in words), f"the best hit matches the query: {hit.text}"
        self.driver.save_screenshot(f"{self.args.screenshots}/admin-search.png")

    def api_agrees(self):
        with urllib.request.urlopen(self.args.url + "/api/status", timeout=10) as response:
            status = json.load(response)
        counts = {e["name"]: e["documents"] for e in status["entities"]}
        shown = self.driver.find_element(By.CSS_SELECTOR, f'#entities tr[data-entity="{self.args.entity}"] .documents').text
        assert shown.replace(",", "") == str(counts[self.args.entity]), f"page shows {shown}, API {counts}"

    def run(self):
        try:
            self.check("opens_with_entities", self.opens_with_entities)
            self.check("backfill_reaches_100_percent", self.backfill_reaches_100_percent)
            self.check("search_shows_a_hit", self.search_shows_a_hit)
            self.check("api_agrees", self.api_agrees)
        finally:
            self.driver.quit()
        passed = sum(1 for _, ok, _ in self.results if ok)
        failed = len(self.results) - passed
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--search-entity", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--screenshots", default="Docs")
    sys.exit(AdminPageTest(parser.parse_args()).run())


if __name__ == "__main__":
    main()
