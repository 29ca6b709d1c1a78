# The board view as the board scripts (board_*.py) reach it: rows by their item's name, cells by
# their column's title, editors by their labels ("Stage of Launch plan"), the connection banner.
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait


def row_xpath(item):
    return f'//tr[th[normalize-space()="{item}"]]'


def cell_xpath(item, column):
    return f'{row_xpath(item)}/td[@data-title="{column}"]'


def wait_live(browser, timeout=10):
    WebDriverWait(browser.driver, timeout).until(
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".banner"), "Live"))


def open_board(browser, email, password, path):
    """Signs in, opens the board at `path`, waits until it is live and forgets the console so
    far (signed out, the first page load asked /me and was refused: 401)."""
    browser.sign_in(email, password)
    browser.xpath('//header')
    browser.open(path)
    wait_live(browser)
    browser.forget_log()


def cell(browser, item, column):
    return browser.xpath(cell_xpath(item, column))


def settled(browser, item, column, text, timeout=10):
    """Waits until the cell shows `text` with no write of this page pending on it."""
    xpath = (f'{cell_xpath(item, column)}[not(@aria-busy)][not(contains(@class, "editing"))]'
             f'[contains(normalize-space(), "{text}")]')
    WebDriverWait(browser.driver, timeout).until(
        seen.presence_of_element_located((By.XPATH, xpath)))


def shows(browser, item, column, text, timeout):
    """Waits (at most `timeout` seconds) until the cell shows `text`; returns the seconds taken."""
    started = time.monotonic()
    xpath = (f'{cell_xpath(item, column)}[not(contains(@class, "editing"))]'
             f'[contains(normalize-space(), "{text}")]')
    WebDriverWait(browser.driver, timeout, poll_frequency=0.02).until(
        seen.presence_of_element_located((By.XPATH, xpath)))
    return time.monotonic() - started


def row_appears(browser, item, timeout):
    started = time.monotonic()
    WebDriverWait(browser.driver, timeout, poll_frequency=0.02).until(
        seen.presence_of_element_located((By.XPATH, row_xpath(item))))
    return time.monotonic() - started


def open_editor(browser, item, column):
    """Clicks the cell and returns its editor's input (labelled "<column> of <item>")."""
    cell(browser, item, column).click()
    return browser.labelled(f"{column} of {item}")


def type_into(browser, item, column, text):
    """Edits a text-like cell: click, type, Enter."""
    field = open_editor(browser, item, column)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text, Keys.ENTER)


def choose(browser, item, column, label):
    """Sets a status cell by choosing its label."""
    Select(open_editor(browser, item, column)).select_by_visible_text(label)


def set_date(browser, item, column, date):
    """Sets a date cell (`YYYY-MM-DD`): the picker's value, then Enter, as a person would."""
    field = open_editor(browser, item, column)
    browser.js("arguments[0].value = arguments[1]", field, date)
    field.send_keys(Keys.ENTER)


def add_item(browser, group, name):
    form = browser.form(f"Add item to {group}")
    field = form.find_element(By.CSS_SELECTOR, f'input[aria-label="New item in {group}"]')
    field.send_keys(name)
    browser.button("Add item", form).click()


def no_edit_controls(browser):
    """Asserts the board shows nothing to edit with."""
    driver = browser.driver
    for xpath in ('//button[normalize-space()="Add item"]', '//button[normalize-space()="Add group"]',
                  '//button[normalize-space()="Board settings"]', '//button[normalize-space()="Archive"]',
                  '//button[normalize-space()="Delete"]', '//tr[@draggable="true"]',
                  '//*[@role="gridcell" and not(@aria-readonly="true")]'):
        found = driver.find_elements(By.XPATH, xpath)
        assert not found, f"an edit control on a read-only board: {xpath}"
