# Shared by the browser scripts of tests/browser (run by tests/harness/browser.rs): Debian's
# Chromium, headless, driven by Selenium through Debian's chromedriver (nothing is downloaded),
# and the few ways the scripts find things on the page: by the names people and screen readers
# use (form labels, label text, button text), never by CSS classes alone.
#
# A script talks to its Rust test in JSON lines: `say(...)` prints one object on stdout, `hear()`
# reads one from stdin. Anything else goes to stderr. A script exits 0 when all it checked held.
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import (ElementClickInterceptedException,
                                        ElementNotInteractableException,
                                        StaleElementReferenceException)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

# Where screenshots go: BOARDROOM_SCREENSHOTS, else target/web-screenshots (set by the test).
SCREENSHOTS = os.environ.get("BOARDROOM_SCREENSHOTS", "target/web-screenshots")

DESKTOP = (1280, 800)
PHONE = (390, 844)


def say(**fields):
    print(json.dumps(fields), flush=True)


def hear():
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the test closed the conversation")
    return json.loads(line)


class Browser:
    """One browser (its own profile, so its own cookies: another person) on the server."""

    def __init__(self, base, size=DESKTOP, timeout=10):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={size[0]},{size[1]}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.base = base
        self.driver = webdriver.Chrome(options=options,
                                       service=Service("/usr/bin/chromedriver"))
        self.timeout = timeout
        self.wait = WebDriverWait(self.driver, timeout)

    def open(self, path="/"):
        self.driver.get(self.base + path)

    def quit(self):
        self.driver.quit()

    # --- finding things by their names ---

    def form(self, label):
        return self.wait.until(seen.presence_of_element_located(
            (By.CSS_SELECTOR, f'form[aria-label="{label}"]')))

    def fill(self, within, label, value):
        """Types into the input, select or textarea labelled `label` inside `within`."""
        field = within.find_element(
            By.XPATH, f'.//label[span[normalize-space()="{label}"]]/*[self::input or '
                      f'self::select or self::textarea]')
        field.clear()
        field.send_keys(value)
        return field

    def button(self, text, within=None):
        """The button whose text (or aria-label) is `text`, once it can be clicked."""
        scope = "." if within is not None else ""
        xpath = (f'{scope}//button[normalize-space()="{text}" or @aria-label="{text}"]')
        if within is not None:
            return within.find_element(By.XPATH, xpath)
        return self.wait.until(seen.element_to_be_clickable((By.XPATH, xpath)))

    def press(self, text):
        """Clicks the button named `text` (its text or aria-label), finding it again if the
        page redrew it between finding and clicking."""
        self.click(f'//button[normalize-space()="{text}" or @aria-label="{text}"]')

    def labelled(self, name):
        """The element whose aria-label is `name`."""
        return self.wait.until(seen.presence_of_element_located(
            (By.CSS_SELECTOR, f'[aria-label="{name}"]')))

    def click(self, xpath):
        """Clicks what `xpath` finds once it can be clicked, finding it again if the page redrew
        it meanwhile (a route's second render, a live event)."""
        WebDriverWait(self.driver, self.timeout,
                      ignored_exceptions=[StaleElementReferenceException,
                                          ElementNotInteractableException,
                                          ElementClickInterceptedException]).until(
            lambda driver: driver.find_element(By.XPATH, xpath).click() or True)

    def text_appears(self, css, text):
        self.wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))

    def xpath(self, xpath):
        return self.wait.until(seen.presence_of_element_located((By.XPATH, xpath)))

    # --- what the page did ---

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def forget_log(self):
        self.driver.get_log("browser")

    def console_errors(self):
        """SEVERE console entries since the last call, CSP violations among them."""
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def assert_clean_console(self):
        errors = self.console_errors()
        assert not errors, errors

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, name + ".png")
        self.driver.save_screenshot(path)
        return path

    def dump(self):
        """What the page showed, for a failure's report."""
        try:
            body = self.driver.find_element(By.TAG_NAME, "body").text
            print("page at failure:", self.driver.current_url, body,
                  self.driver.get_log("browser"), file=sys.stderr)
        except Exception as error:  # the browser may be gone
            print("page at failure: unavailable:", error, file=sys.stderr)

    # --- signing in ---

    def register(self, name, email, password):
        self.open("/")
        register = self.form("Create an account")
        self.fill(register, "Name", name)
        self.fill(register, "Email", email)
        self.fill(register, "Password", password)
        self.button("Register", register).click()

    def create_org(self, name):
        """Creates an organization from the page that offers one (after registering)."""
        form = self.form("New organization")
        self.fill(form, "Organization name", name)
        self.button("Create organization", form).click()

    def create_board(self, name):
        """Creates a board from the organization's page and waits for it to be live."""
        form = self.form("New board")
        self.fill(form, "Board name", name)
        self.button("Create board", form).click()
        self.text_appears(".banner", "Live")

    def sign_in(self, email, password):
        self.open("/")
        login = self.form("Sign in")
        self.fill(login, "Email", email)
        self.fill(login, "Password", password)
        self.button("Sign in", login).click()


def run(main, *browsers):
    """Runs `main`, reporting what each browser showed when it fails, and closes them all."""
    try:
        main()
    except BaseException:
        for browser in browsers:
            browser.dump()
        raise
    finally:
        for browser in browsers:
            browser.quit()


# --- added for the admin pages (tests/browser/admin.py, webhooks.py, account.py) ---

def link(browser, text):
    """The link whose text is `text`, once it can be clicked."""
    return browser.wait.until(seen.element_to_be_clickable(
        (By.XPATH, f'//a[normalize-space()="{text}"]')))


def choose(browser, element, value):
    """Selects the option of `element` (a <select>) with this value, as a person would."""
    from selenium.webdriver.support.ui import Select
    Select(element).select_by_value(value)


def labelled_select(browser, label):
    """The <select> inside the label whose text is `label`."""
    return browser.xpath(f'//label[span[normalize-space()="{label}"]]/select')


def accept_confirm(browser):
    """Accepts the page's confirm() dialog, once it is shown."""
    browser.wait.until(seen.alert_is_present())
    browser.driver.switch_to.alert.accept()


def grant_clipboard(browser):
    """Lets the page write to (and the test read) the clipboard, which headless Chromium
    otherwise refuses."""
    browser.driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": browser.base,
        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
    })


def wider_than_the_window(browser):
    """What sticks out of the window's width (tag, class, right edge), making the page scroll
    sideways; empty when the page fits."""
    return browser.js("""
        if (document.documentElement.scrollWidth <= window.innerWidth) return [];
        return Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .slice(0, 8)
            .map(e => [e.tagName, e.className, Math.round(e.getBoundingClientRect().right)]);
    """)


# --- added for the board scripts (tests/browser/board_*.py) ---

def wait_until(browser, condition, timeout=10, what="a condition"):
    """Waits for `condition(driver)` to be truthy, naming `what` when it is not in time."""
    return WebDriverWait(browser.driver, timeout).until(condition, message=f"waiting for {what}")


def without_network_errors(entries):
    """Console entries other than failed requests (expected while a test has the server down)."""
    return [e for e in entries if "net::ERR_" not in e.get("message", "")
            and "WebSocket connection to" not in e.get("message", "")]
