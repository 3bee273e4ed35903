"""The console in a real browser (headless Chromium through Selenium), as an operator uses it:
sign in with the built-in login (nothing of it stored in the browser), create a product with
a field error then fixed (its name holding markup, which must stay text), find it in the list and in the live events, open its
history, then rebuild its view and watch the rebuild finish. A screenshot of each step goes to
SCREENSHOTS; the page must log no error and no Content-Security-Policy violation.

Usage: console.py HERALD_BASE ADMIN_TOKEN TENANT SCREENSHOTS SERVER_LOG
TENANT must be Herald's operator tenant (auth.operator_tenant), with identity.enabled. The
server's log must not hold the password or any token the console used.
"""

import json
import os
import secrets
import sys
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser import browser, eventually

# Within the product name's 50 characters.
MARKUP = "<script>alert(1)</script><b>"


def create_operator(herald, admin_token, username, password):
    body = json.dumps({"username": username, "password": password, "roles": ["admin"]}).encode()
    request = urllib.request.Request(
        f"{herald}/v1/auth/user", data=body, method="POST",
        headers={"authorization": f"Bearer {admin_token}", "content-type": "application/json",
                 "prefer": "wait=10"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status


class Console:
    def __init__(self, driver, herald, screenshots):
        self.driver = driver
        self.herald = herald
        self.screenshots = screenshots

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait_for(self, what, css, text=None):
        def found():
            for element in self.driver.find_elements(By.CSS_SELECTOR, css):
                if text is None or text in element.text:
                    return element
            return None
        return eventually(what, found)

    def type(self, css, value):
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def go(self, route):
        self.driver.execute_script("location.hash = arguments[0]", route)

    def shot(self, name):
        path = os.path.join(self.screenshots, f"{name}.png")
        self.driver.save_screenshot(path)
        print(f"screenshot: {path}")


def main():
    herald, admin_token, tenant, screenshots, server_log = sys.argv[1:6]
    os.makedirs(screenshots, exist_ok=True)
    username, password = f"ops-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    create_operator(herald, admin_token, username, password)
    driver = browser()
    failures = []
    try:
        console = Console(driver, herald, screenshots)
        driver.get(f"{herald}/console")
        console.wait_for("the sign-in form", "#password-login")
        console.type("#login-tenant", tenant)
        console.type("#login-username", username)
        console.type("#login-password", password)
        console.shot("1-sign-in")
        console.find("#password-login button").click()
        console.wait_for("the collections", "ul.cards a", "petstore.product")
        console.shot("2-collections")

        console.go("#/c/petstore/product/new")
        console.wait_for("the create form", "#create-form")
        console.type("#create-form-price", "-5")
        console.find("#create-form button[type=submit]").click()
        console.wait_for("the error at name", ".error[data-field=name]")
        price_error = console.wait_for("the error at price", ".error[data-field=price]")
        print(f"field errors shown: name, price ({price_error.text})")
        console.shot("3-field-error")

        name = f"Kite {secrets.token_hex(2)} {MARKUP}"
        console.type("#create-form-name", name)
        console.type("#create-form-price", "12")
        console.find("#create-form button[type=submit]").click()
        shown = console.wait_for("the created product", "dl.document dd", name)
        if shown.text != name:
            failures.append(f"the name is not shown as it was typed: {shown.text!r}")
        if driver.execute_script("return document.querySelectorAll('main script, main b').length"):
            failures.append("markup in a document's value became elements")
        console.wait_for("its history", "ol.timeline li", "petstore.product.created")
        console.shot("4-document-and-history")

        console.go("#/c/petstore/product")
        console.wait_for("the product in the list", "table.documents td", name)
        console.shot("5-list")

        console.go("#/events")
        Select(console.wait_for("the events form", "#events-scope")).select_by_value("petstore/product")
        Select(console.find("#events-from")).select_by_value("start")
        console.find("#events-toggle").click()
        console.wait_for("the product's event", "ol.events li", "petstore.product.created")
        console.wait_for("the product's data in the event", "ol.events code", "Kite")
        console.shot("6-live-events")
        console.find("#events-toggle").click()

        console.go("#/ops")
        console.wait_for("the views", "#projections tr[data-state=active] td", "petstore.product")
        console.find("button[data-rebuild='petstore.product']").click()
        # Read in one script: rows are re-rendered while the rebuild moves on.
        eventually("the rebuild to finish", lambda: driver.execute_script(
            "return [...document.querySelectorAll('#projections tr[data-state=active]')]"
            ".some(r => r.cells[0].textContent === 'petstore.product' && r.cells[1].textContent === '2')"))
        print("the rebuild of petstore.product finished: version 2 is active")
        console.shot("7-operations")

        errors = [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
        ]
        # The form's refused create is a 422 the browser logs as a failed request.
        errors = [e for e in errors if "422" not in e]
        if errors:
            failures.append(f"the console logged errors: {errors}")
        stored = driver.execute_script(
            "return localStorage.length + sessionStorage.length + document.cookie.length")
        if stored:
            failures.append("the console stored something in the browser")
    finally:
        driver.quit()
    with open(server_log, encoding="utf-8", errors="replace") as log:
        logged = log.read()
    for secret, what in ((password, "the password"), (admin_token, "the admin token")):
        if secret in logged:
            failures.append(f"the server log holds {what}")
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
