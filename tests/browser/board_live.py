# tests/web_board.rs, web_board::two_people_edit_one_board_live. Arguments: the server's base
# URL, the board's path, then Alice's (an owner) and Bob's (an editor) email and password. The
# test made the groups "Todo" and "Doing" and the columns "Stage" (status: Working, Done) and
# "Notes" (text); Dave is a member of the organization, not of the board.
#
# Alice adds a date column, creates an item and edits its status and date; after each write is
# settled on Alice's page (acknowledged and its event applied), Bob's page must show it within
# 1 s, without a reload. Then the keyboard: arrows between cells, Enter to edit, Escape to
# cancel, Alt+ArrowDown to move the item into the next group. Then the board settings: reorder
# and retype columns, add a member, change their role, remove them.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from board_page import (add_item, cell, choose, open_board, row_appears, row_xpath, set_date,  # noqa: E402
                        settled, shows)
from common import Browser, run, say, wait_until  # noqa: E402

base, path, alice_email, alice_password, bob_email, bob_password = sys.argv[1:7]
alice = Browser(base)
bob = Browser(base)
LIVE = 1.0  # seconds Bob may wait for each change


def header_titles(browser, group):
    # Read in the page in one go: the table is redrawn on every event (no stale elements).
    return browser.js(
        "return [...document.querySelectorAll(`table[aria-label='${arguments[0]}'] thead th`)]"
        ".map(th => th.textContent.trim())", group)


def main():
    for browser, email, password in ((alice, alice_email, alice_password),
                                     (bob, bob_email, bob_password)):
        open_board(browser, email, password, path)
        browser.js("window.stillTheSamePage = true")

    # A column, through the settings (owners).
    alice.press("Board settings")
    add = alice.form("Add column")
    alice.fill(add, "Column title", "Due")
    Select(alice.xpath('//form[@aria-label="Add column"]//label[span="Type"]/select')) \
        .select_by_visible_text("Date")
    alice.button("Add column", add).click()
    alice.xpath('//table[@aria-label="Todo"]//th[normalize-space()="Due"]')
    bob.wait.until(lambda d: "Due" in header_titles(bob, "Todo"))

    # An item, its status and its date: each live on Bob's page within a second of settling.
    add_item(alice, "Todo", "Launch plan")
    row_appears(alice, "Launch plan", 10)
    took = row_appears(bob, "Launch plan", LIVE)
    print(f"item seen by Bob {took:.3f} s after Alice's page had it", file=sys.stderr)

    choose(alice, "Launch plan", "Stage", "Working")
    settled(alice, "Launch plan", "Stage", "Working")
    took = shows(bob, "Launch plan", "Stage", "Working", LIVE)
    print(f"status seen by Bob after {took:.3f} s", file=sys.stderr)

    set_date(alice, "Launch plan", "Due", "2026-12-24")
    settled(alice, "Launch plan", "Due", "2026-12-24")
    took = shows(bob, "Launch plan", "Due", "2026-12-24", LIVE)
    print(f"date seen by Bob after {took:.3f} s", file=sys.stderr)

    # Bob edits too, and Alice sees it.
    bob_notes = cell(bob, "Launch plan", "Notes")
    bob_notes.click()
    field = bob.labelled("Notes of Launch plan")
    field.send_keys("Ship on Thursday", Keys.ENTER)
    settled(bob, "Launch plan", "Notes", "Ship on Thursday")
    shows(alice, "Launch plan", "Notes", "Ship on Thursday", LIVE)

    # The keyboard: from the name, right to the status, Enter edits, Escape cancels.
    name = alice.xpath(f'{row_xpath("Launch plan")}/th')
    alice.js("arguments[0].focus()", name)
    active = alice.driver.switch_to.active_element
    active.send_keys(Keys.ARROW_RIGHT)
    assert alice.js("return document.activeElement.dataset.title") == "Stage"
    alice.driver.switch_to.active_element.send_keys(Keys.ENTER)
    editor = alice.labelled("Stage of Launch plan")
    assert alice.js("return document.activeElement") == editor, "the editor has the focus"
    editor.send_keys(Keys.ESCAPE)
    wait_until(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, '[aria-label="Stage of Launch plan"]'),
               what="the editor to close")
    assert alice.js("return document.activeElement.dataset.title") == "Stage", "focus back on the cell"
    settled(alice, "Launch plan", "Stage", "Working")
    # Down to nothing (one row), then Alt+ArrowDown moves the item into the next group.
    alice.driver.switch_to.active_element.send_keys(Keys.ALT, Keys.ARROW_DOWN)
    alice.xpath(f'//table[@aria-label="Doing"]{row_xpath("Launch plan")}')
    bob.wait.until(lambda d: d.find_elements(
        By.XPATH, f'//table[@aria-label="Doing"]{row_xpath("Launch plan")}'))
    assert alice.js("return document.activeElement.closest('tr').dataset.item") is not None
    # And back up, by the keyboard again.
    focused = alice.xpath(f'//table[@aria-label="Doing"]{row_xpath("Launch plan")}/td[@data-title="Stage"]')
    alice.js("arguments[0].focus()", focused)
    alice.driver.switch_to.active_element.send_keys(Keys.ALT, Keys.ARROW_UP)
    alice.xpath(f'//table[@aria-label="Todo"]{row_xpath("Launch plan")}')

    # Dragging: a second item dropped on the upper half of the first goes before it.
    add_item(alice, "Todo", "Follow-up")
    row_appears(alice, "Follow-up", 10)
    alice.js("""
        const [from, to] = arguments;
        const data = new DataTransfer();
        const at = to.getBoundingClientRect().top + 2;
        const fire = (target, type) => target.dispatchEvent(new DragEvent(type,
          {bubbles: true, cancelable: true, dataTransfer: data, clientY: at}));
        fire(from, "dragstart"); fire(to, "dragover"); fire(to, "drop"); fire(from, "dragend");""",
        alice.xpath(row_xpath("Follow-up")), alice.xpath(f'{row_xpath("Launch plan")}/td[@data-title="Stage"]'))
    order = ('return [...document.querySelectorAll(\'table[aria-label="Todo"] tbody th\')]'
             '.map(th => th.textContent.trim())')
    wait_until(alice, lambda d: alice.js(order) == ["Follow-up", "Launch plan"], what="the dragged row")
    wait_until(bob, lambda d: bob.js(order) == ["Follow-up", "Launch plan"], timeout=LIVE,
               what="the dragged row on Bob's page")

    # Columns: move "Due" left of "Notes", retype "Notes" as long text; Bob sees both.
    alice.press("Move column Due left")
    bob.wait.until(lambda d: header_titles(bob, "Todo")[1:4] == ["Stage", "Due", "Notes"])
    Select(alice.labelled("Type of column Notes")).select_by_visible_text("Long text")
    alice.button("Save", alice.form("Column Notes")).click()
    alice.driver.switch_to.alert.accept()
    bob.xpath('//table[@aria-label="Todo"]//th[normalize-space()="Notes" and @data-type="long_text"]')
    shows(bob, "Launch plan", "Notes", "Ship on Thursday", 5)  # a text value fits long text

    # Members: add Dave as a viewer, make him an editor, remove him.
    members = alice.form("Add member")
    Select(members.find_element(By.XPATH, './/label[span="Person"]/select')).select_by_visible_text("Dave")
    Select(members.find_element(By.XPATH, './/label[span="Role"]/select')).select_by_visible_text("viewer")
    alice.button("Add member", members).click()
    # The list is drawn again on every member event: read it afresh each time (no stale element).
    dave_role = 'return document.querySelector(\'[aria-label="Role of Dave"]\')?.value ?? null'
    wait_until(alice, lambda d: alice.js(dave_role) == "viewer", what="Dave as a viewer")
    Select(alice.labelled("Role of Dave")).select_by_visible_text("editor")
    wait_until(alice, lambda d: alice.js(dave_role) == "editor", what="Dave's new role")
    alice.press("Remove Dave")
    wait_until(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, '[aria-label="Role of Dave"]'),
               what="Dave to leave the list")
    alice.screenshot("board-settings")
    alice.press("Close settings")

    alice.screenshot("board-desktop")
    bob.screenshot("board-desktop-bob")
    for browser in (alice, bob):
        assert browser.js("return window.stillTheSamePage === true"), "a page reloaded"
        browser.assert_clean_console()
    say(done=True)


run(main, alice, bob)
