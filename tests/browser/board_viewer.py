# tests/web_board.rs, web_board::a_viewer_cannot_edit_and_sees_refusals. Arguments: the server's
# base URL, the board's path, the board's name, then Carol's (a viewer) and Alice's (the owner)
# email and password. The board has the group "Todo", the columns "Stage" (status) and "Notes"
# (text) and the item "Brief".
#
# Carol sees no edit controls; a cell does not open an editor for her; a write she forces
# through the page's socket (as from the console) is refused and the refusal is shown. Alice, on
# a phone-sized window, sees the board and edits a cell. Then the test removes Carol from the
# board, and her page closes the board with a clear message.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from board_page import cell, no_edit_controls, settled, shows, type_into, wait_live  # noqa: E402
from common import PHONE, Browser, hear, run, say, wait_until  # noqa: E402

base, path, board_name, carol_email, carol_password, alice_email, alice_password = sys.argv[1:8]
carol = Browser(base)
alice = Browser(base, size=PHONE)


def main():
    carol.sign_in(carol_email, carol_password)
    carol.xpath('//header')
    carol.open(path)
    wait_live(carol)
    carol.forget_log()
    carol.xpath('//tr[th[normalize-space()="Brief"]]')
    no_edit_controls(carol)
    # Neither a click nor Enter opens an editor.
    cell(carol, "Brief", "Notes").click()
    carol.driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert not carol.driver.find_elements(By.CSS_SELECTOR, '[aria-label="Notes of Brief"]'), \
        "an editor opened for a viewer"
    carol.screenshot("board-viewer")

    # A write forced through the page's own socket. The page exposes its socket only when the
    # document is marked for tests; the board is opened again (in the page) to pick that up.
    carol.js("document.documentElement.dataset.test = ''")
    carol.click('//a[normalize-space()="All boards"]')
    carol.click(f'//div[@class="boards"]//li/a[normalize-space()="{board_name}"]')
    wait_live(carol)
    item = carol.xpath('//tr[th[normalize-space()="Brief"]]').get_attribute("data-item")
    board_id = path.rsplit("/", 1)[1]
    say(need="notes_column")
    column_id = hear()["notes_column"]
    carol.js("window.__boardroomLive.send(arguments[0])", {
        "type": "update_item", "board_id": board_id, "item_id": item,
        "values": {column_id: "forced"}})
    carol.text_appears(".notice", "The server refused a change")
    assert "forced" not in cell(carol, "Brief", "Notes").text
    carol.screenshot("board-viewer-refused")

    # Alice, on a phone: the board renders, the page does not scroll sideways, an edit works.
    alice.sign_in(alice_email, alice_password)
    alice.xpath('//header')
    alice.open(path)
    wait_live(alice)
    alice.forget_log()
    alice.xpath('//tr[th[normalize-space()="Brief"]]')
    wide = alice.js("return document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 1, f"the page is {wide} px wider than the phone"
    type_into(alice, "Brief", "Notes", "From my phone")
    settled(alice, "Brief", "Notes", "From my phone")
    shows(carol, "Brief", "Notes", "From my phone", 1.0)
    alice.screenshot("board-phone")
    alice.assert_clean_console()
    carol.assert_clean_console()

    # Carol loses the board: the page says so and shows it no more.
    say(remove="carol")
    hear()
    wait_until(carol, lambda d: d.find_elements(
        By.XPATH, '//*[@role="alert" and contains(., "no longer have access")]'),
        what="the board to close for Carol")
    assert not carol.driver.find_elements(By.XPATH, '//tr[th[normalize-space()="Brief"]]')
    carol.screenshot("board-access-ended")
    carol.assert_clean_console()
    say(done=True)


run(main, carol, alice)
