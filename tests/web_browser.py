# The browser half of tests/web.rs: Debian's Chromium, headless, driven by Selenium through
# Debian's chromedriver (nothing is downloaded). Arguments: the server's base URL, then the
# email, password and name to register with. It registers, creates an organization and a
# board through the page, prints the board's path, then waits for the item the test creates
# through REST as another user to appear live, without a reload. Exit 0 when it does.
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

base, email, password, name = sys.argv[1:5]

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1280,800"):
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
wait = WebDriverWait(driver, 10)


def form(label):
    return wait.until(seen.presence_of_element_located(
        (By.CSS_SELECTOR, f'form[aria-label="{label}"]')))


def fill(form_element, label, value):
    field = form_element.find_element(
        By.XPATH, f'.//label[span[normalize-space()="{label}"]]/input')
    field.clear()
    field.send_keys(value)


def button(form_element, text):
    return form_element.find_element(By.XPATH, f'.//button[normalize-space()="{text}"]')


try:
    driver.get(base + "/")
    register = form("Create an account")
    fill(register, "Name", name)
    fill(register, "Email", email)
    fill(register, "Password", password)
    button(register, "Register").click()

    org = form("New organization")
    # Signed out, the first page load asks /me and /auth/refresh and is refused (401): the
    # browser logs those. From here on the log must stay clean.
    driver.get_log("browser")
    fill(org, "Organization name", "Acme")
    button(org, "Create organization").click()

    board = form("New board")
    fill(board, "Board name", "Launch")
    button(board, "Create board").click()
    wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".banner"), "Live"))
    wait.until(seen.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Launch"))
    # Set in this page's window: a reload would lose it.
    driver.execute_script("window.stillTheSamePage = true")
    print(json.dumps({"path": driver.execute_script("return location.pathname")}), flush=True)

    row = wait.until(seen.presence_of_element_located(
        (By.XPATH, '//tr[th[normalize-space()="Shipped by Bob"]]')))
    assert "Done" in row.text, row.text
    assert driver.execute_script("return window.stillTheSamePage === true"), "the page reloaded"
    assert driver.find_element(By.XPATH, '//h2[normalize-space()="From Bob"]')
    # The session is in HttpOnly cookies the page cannot read; only the CSRF token is visible.
    visible = driver.execute_script("return document.cookie")
    assert "br_csrf=" in visible and "br_access" not in visible, visible
    stored = driver.execute_script(
        "return Object.keys(localStorage).length + Object.keys(sessionStorage).length")
    assert stored == 0, "the page stored something in web storage"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
except Exception:
    print("page at failure:", driver.current_url, driver.find_element(By.TAG_NAME, "body").text,
          driver.get_log("browser"), file=sys.stderr)
    raise
finally:
    driver.quit()
