"""Herald in a real browser (headless Chromium through Selenium), as pages use it.

- CORS: a page served from an allowed origin calls Herald with fetch and reads the answer and
  its exposed headers; the same page from another origin is blocked by the browser.
- The built-in login: a page on the allowed origin signs a user in with a password, creates a
  product with the access token, refreshes, signs out, and finds the refresh token revoked.
- An identity provider: tokens signed by a local JWKS server (RS256) are accepted from the
  page, before and after the server rotates to a new key, without restarting Herald.
- /docs renders the description with the renderer Herald serves itself, with nothing loaded
  from elsewhere and no Content-Security-Policy violation.

Usage: browser.py HERALD_BASE TOKEN TENANT ALLOWED_PORT OTHER_PORT JWKS_PORT
The page servers bind 127.0.0.1 on the first two ports and the key set server on the third;
Herald must allow exactly http://127.0.0.1:ALLOWED_PORT, have `identity.enabled`, and take
`auth.jwks_url` http://127.0.0.1:JWKS_PORT/jwks.json with RS256 allowed.
"""

import base64
import http.server
import json
import secrets
import sys
import threading
import time
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
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


LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sign-in page</title></head>
<body><pre id="result">pending</pre>
<script>
const params = new URLSearchParams(location.search);
const herald = params.get("herald");
const json = {"content-type": "application/json"};
async function call(path, headers, body) {
  const response = await fetch(herald + path, {method: "POST", headers, body: JSON.stringify(body)});
  const text = await response.text();
  return [response.status, text ? JSON.parse(text) : null];
}
const grant = (body) => call("/v1/auth/token", json, body);
(async () => {
  const [signedIn, tokens] = await grant({grant_type: "password", tenant: params.get("tenant"),
    username: params.get("username"), password: params.get("password")});
  const bearer = {...json, "authorization": "Bearer " + tokens.access_token};
  const [created, product] = await call("/v1/petstore/product", bearer, {name: params.get("product"), price: 5});
  const [refreshed, renewed] = await grant({grant_type: "refresh_token", refresh_token: tokens.refresh_token});
  const [signedOut] = await call("/v1/auth/revoke", json, {refresh_token: renewed.refresh_token});
  const [afterSignOut, refused] = await grant({grant_type: "refresh_token", refresh_token: renewed.refresh_token});
  document.getElementById("result").textContent = JSON.stringify({
    signed_in: signedIn, token_type: tokens.token_type, created, created_by: product.created_by,
    refreshed, signed_out: signedOut, after_sign_out: afterSignOut, refusal: refused && refused.code,
  });
})().catch((error) => {
  document.getElementById("result").textContent = JSON.stringify({blocked: String(error)});
});
</script></body></html>
"""


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        body = (LOGIN_PAGE if self.path.startswith("/login") else PAGE).encode()
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


def b64url_uint(number):
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Provider:
    """A local identity provider: an RSA key set at /jwks.json that can rotate."""

    def __init__(self, port):
        self.keys = {}
        self.rotate()
        provider = self

        class KeySet(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps({"keys": [provider.public(kid) for kid in provider.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), KeySet)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self):
        """Publishes only a new key from now on."""
        self.kid = f"key-{secrets.token_hex(4)}"
        self.keys = {self.kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)}

    def public(self, kid):
        numbers = self.keys[kid].public_key().public_numbers()
        return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}

    def token(self, sub, tenant, roles):
        now = int(time.time())
        claims = {"sub": sub, "tid": tenant, "roles": roles, "iss": "herald", "aud": "herald",
                  "iat": now, "nbf": now, "exp": now + 600}
        return jwt.encode(claims, self.keys[self.kid], algorithm="RS256", headers={"kid": self.kid})


def create_user(herald, admin_token, username, password):
    body = json.dumps({"username": username, "password": password, "roles": ["staff"]}).encode()
    request = urllib.request.Request(
        f"{herald}/v1/auth/user", data=body, method="POST",
        headers={"authorization": f"Bearer {admin_token}", "content-type": "application/json",
                 "prefer": "wait=10"})
    with urllib.request.urlopen(request) as response:
        if response.status != 201:
            raise AssertionError(f"cannot create the user: {response.status}")


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


def check_login(driver, herald, admin_token, tenant, allowed_port, other_port, failures):
    username, password = f"ada-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    create_user(herald, admin_token, username, password)
    query = (f"?herald={herald}&tenant={tenant}&username={username}&password={password}"
             f"&product=Kite-{secrets.token_hex(3)}")
    signed = page_result(driver, f"http://127.0.0.1:{allowed_port}/login{query}")
    print(f"built-in login from the allowed origin: {signed}")
    expected = {"signed_in": 200, "token_type": "Bearer", "created": 201, "refreshed": 200,
                "signed_out": 204, "after_sign_out": 400, "refusal": "invalid_grant"}
    wrong = {k: signed.get(k) for k, v in expected.items() if signed.get(k) != v}
    if wrong or not signed.get("created_by"):
        failures.append(f"the built-in login did not work from the page: {signed}")
    other = page_result(driver, f"http://127.0.0.1:{other_port}/login{query}")
    print(f"built-in login from another origin: {other}")
    if "blocked" not in other:
        failures.append(f"another origin could sign in: {other}")


def check_provider(driver, herald, tenant, allowed_port, provider, failures):
    """A token naming a key Herald has not fetched makes it fetch the set again, at most once
    per auth.jwks_min_refetch_secs: until then such a token is refused, so the page retries."""
    for moment in ("before", "after"):
        token = provider.token("idp-user", tenant, ["user"])
        url = f"http://127.0.0.1:{allowed_port}/?herald={herald}&token={token}"
        try:
            result = eventually(
                f"the provider's token {moment} rotating",
                lambda: (lambda r: r if r.get("status") == 200 else None)(page_result(driver, url)),
            )
            print(f"a provider's token ({provider.kid}, {moment} rotating): {result}")
        except AssertionError as error:
            failures.append(str(error))
        provider.rotate()


def main():
    herald, token, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
    allowed_port, other_port, jwks_port = (int(port) for port in sys.argv[4:7])
    provider = Provider(jwks_port)
    servers = [serve_page(allowed_port), serve_page(other_port), provider.server]
    driver = browser()
    failures = []
    try:
        check_login(driver, herald, token, tenant, allowed_port, other_port, failures)
        check_provider(driver, herald, tenant, allowed_port, provider, failures)
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
