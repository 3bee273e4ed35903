"""Herald in a real browser (headless Chromium through Selenium), as pages use it.

- CORS: a page served from an allowed origin calls Herald with fetch and reads the answer and
  its exposed headers; the same page from another origin is blocked by the browser.
- /docs renders the description with the renderer Herald serves itself, with nothing loaded
  from elsewhere and no Content-Security-Policy violation.

Usage: browser.py HERALD_BASE TOKEN ALLOWED_PORT OTHER_PORT
The page servers bind 127.0.0.1 on the two ports; Herald must allow exactly
http://127.0.0.1:ALLOWED_PORT.
"""

import functools
import http.server
import json
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DEADLINE = 30  # seconds to wait for a condition before failing

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cross-origin page</title></head>
<body><pre id="result">pending</pre>
<script>
const params = new URLSearchParams(location.search);
fetch(params.get("herald") + "/v1/petstore/product?limit=1", {
  headers: {"Authorization": "Bearer " + params.get("token"), "Prefer": "count=exact"}
})
  .then(async (response) => {
    const body = await response.json();
    document.getElementById("result").textContent = JSON.stringify({
      status: response.status,
      position: response.headers.get("herald-position"),
      request_id: response.headers.get("x-request-id"),
      has_data: Array.isArray(body.data),
    });
  })
  .catch((error) => {
    document.getElementById("result").textContent = JSON.stringify({blocked: String(error)});
  });
</script></body></html>
"""


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_page(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def eventually(what, check):
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def page_result(driver, url):
    driver.get(url)

    def settled():
        text = driver.find_element(By.ID, "result").text
        return None if text == "pending" else json.loads(text)

    return eventually(f"the page at {url} to finish its request", settled)


def main():
    herald, token, allowed_port, other_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    servers = [serve_page(allowed_port), serve_page(other_port)]
    driver = browser()
    failures = []
    try:
        query = f"?herald={herald}&token={token}"
        allowed = page_result(driver, f"http://127.0.0.1:{allowed_port}/{query}")
        print(f"allowed origin: {allowed}")
        if allowed.get("status") != 200 or not allowed.get("has_data"):
            failures.append(f"the allowed origin did not get the list: {allowed}")
        if not allowed.get("position") or not allowed.get("request_id"):
            failures.append(f"Herald-Position and X-Request-Id are not exposed: {allowed}")

        other = page_result(driver, f"http://127.0.0.1:{other_port}/{query}")
        print(f"other origin: {other}")
        if "blocked" not in other:
            failures.append(f"another origin was not blocked: {other}")

        driver.get_log("browser")  # forget what the pages logged
        driver.get(f"{herald}/docs")
        rendered = "Commands over HTTP and queries over projected views"
        eventually(
            "/docs to render the description",
            lambda: rendered in driver.find_element(By.TAG_NAME, "body").text,
        )
        print(f"/docs rendered the description: {rendered!r}")
        requests = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        foreign = [r for r in requests if not r.startswith(herald)]
        if foreign:
            failures.append(f"/docs loaded from elsewhere: {foreign}")
        violations = [
            entry["message"]
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
        ]
        if violations:
            failures.append(f"/docs logged errors: {violations}")
        print(f"/docs loaded {len(requests)} resources, all from Herald")
    finally:
        driver.quit()
        for server in servers:
            server.shutdown()
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
