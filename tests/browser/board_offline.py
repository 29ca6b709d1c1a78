# tests/web_board.rs, web_board::offline_and_back. Arguments: the server's base URL, the board's
# path, then Alice's and Bob's email and password. The board has the group "Todo", the columns
# "Stage" (status: Working, Done) and "Notes" (text), and the items "Alpha" and "Beta".
#
# The test stops the server under both pages. Alice's banner says the connection is lost, and
# she edits two cells meanwhile. Bob, on a second server over the same database (another port:
# Alice's page cannot reach it), changes Beta and adds Gamma. When the first server is back,
# Alice's page catches up without a reload (Bob's changes appear), her edit of Alpha is saved,
# and her edit of Beta (which Bob changed meanwhile: 409) shows Bob's newer version and is saved
# when she chooses hers.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selenium.webdriver.common.by import By  # noqa: E402

from board_page import (add_item, choose, open_board, row_appears, settled, shows, type_into,  # noqa: E402
                        wait_live)
from common import Browser, hear, run, say, wait_until, without_network_errors  # noqa: E402

base, path, alice_email, alice_password, bob_email, bob_password = sys.argv[1:7]
alice = Browser(base)
bob = Browser(base)


def main():
    for browser, email, password in ((alice, alice_email, alice_password),
                                     (bob, bob_email, bob_password)):
        open_board(browser, email, password, path)
    alice.js("window.stillTheSamePage = true")

    say(stop=True)
    hear()
    alice.text_appears(".banner", "Connection lost")
    # Typed while away: both wait for the connection, and say so.
    type_into(alice, "Alpha", "Notes", "Written offline")
    type_into(alice, "Beta", "Notes", "Mine")
    alice.text_appears(".banner", "2 changes will be sent")
    assert "Written offline" in alice.xpath('//tr[th[normalize-space()="Alpha"]]/td[@data-title="Notes"]').text
    alice.screenshot("board-offline")

    say(other_server=True)
    other = hear()["base"]
    bob.driver.get(other + path)
    wait_live(bob)
    choose(bob, "Beta", "Stage", "Done")
    settled(bob, "Beta", "Stage", "Done")
    add_item(bob, "Todo", "Gamma")
    row_appears(bob, "Gamma", 10)
    bob.forget_log()
    say(bob_done=True)
    hear()

    # Back: caught up from the log, without a reload.
    wait_live(alice, timeout=30)
    row_appears(alice, "Gamma", 10)
    shows(alice, "Beta", "Stage", "Done", 10)
    settled(alice, "Alpha", "Notes", "Written offline")
    assert alice.js("return window.stillTheSamePage === true"), "the page reloaded"
    # Beta changed meanwhile: the 409 shows the newer version and keeps Alice's value to retry.
    conflict = alice.xpath('//div[contains(@class, "conflict")][contains(., "Beta")]')
    assert "Mine" in conflict.text, conflict.text
    alice.screenshot("board-conflict")
    alice.button("Use mine", conflict).click()
    settled(alice, "Beta", "Notes", "Mine")
    shows(alice, "Beta", "Stage", "Done", 1)

    # Bob, back on the first server, sees Alice's edits.
    bob.open(path)
    wait_live(bob)
    shows(bob, "Alpha", "Notes", "Written offline", 5)
    shows(bob, "Beta", "Notes", "Mine", 5)
    wait_until(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, "[aria-busy]"), what="no pending cell")
    # Requests to the stopped server failed while it was down; nothing else may be logged.
    for browser in (alice, bob):
        errors = without_network_errors(browser.console_errors())
        assert not errors, errors
    say(done=True)


run(main, alice, bob)
