# tests/web_items.rs, web_items::two_people_comment_live. Arguments: the server's base URL, the
# board's path, then Alice's email, password and name, then Bob's. Both are set up by the test
# (Alice owns the board, Bob edits it; the item "Launch plan" is on it). Two browsers open the
# board: presence names both; Alice's comment appears live in Bob's open panel, Bob's reply in
# Alice's; Bob sees no edit or delete buttons on Alice's comment; edits and deletions of one's
# own arrive on the other side; Escape closes the panel and gives the focus back; the consoles
# stay clean. Screenshots of the comments panel at desktop and phone width.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PHONE, run, say  # noqa: E402
from items import ItemBrowser  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402

base, path, alice_email, alice_password, alice_name, bob_email, bob_password, bob_name = \
    sys.argv[1:9]
alice = ItemBrowser(base)
bob = ItemBrowser(base)
ITEM = "Launch plan"


def main():
    for person, email, password in ((alice, alice_email, alice_password),
                                    (bob, bob_email, bob_password)):
        person.sign_in(email, password)
        person.form("New board")  # signed in: the boards page
        person.forget_log()
        person.open(path)
        person.text_appears(".banner", "Live")

    # Presence: each page names both people.
    for person in (alice, bob):
        for name in (alice_name, bob_name):
            person.presence_shows(name)

    # Both open the item's panel; the focus moves into it.
    for person in (alice, bob):
        person.open_item(ITEM)
    assert alice.js("return document.activeElement.closest('dialog') !== null"), \
        "the focus stayed outside the panel"

    # Alice comments; Bob's open panel shows it, with her name, without a reload.
    bob.js("window.stillTheSamePage = true")
    alice.post_comment("First from Alice")
    mine = alice.comment("First from Alice")
    theirs = bob.comment("First from Alice")
    assert alice_name in theirs.text, theirs.text
    assert theirs.find_elements(By.CSS_SELECTOR, "time[datetime]"), "no time on the comment"
    assert bob.js("return window.stillTheSamePage === true"), "Bob's page reloaded"

    # Only the author gets Edit and Delete; Bob may reply.
    assert bob.buttons_in(theirs) == ["Reply"], bob.buttons_in(theirs)
    assert alice.buttons_in(mine) == ["Reply", "Edit", "Delete"], alice.buttons_in(mine)

    # Bob replies; the reply arrives under Alice's comment in her panel.
    bob.button("Reply", theirs).click()
    reply = bob.form(f"Reply to {alice_name}")
    bob.fill(reply, "Reply", "Reply from Bob")
    bob.button("Post reply", reply).click()
    arrived = alice.comment("Reply from Bob")
    assert bob_name in arrived.text, arrived.text
    assert alice.js(
        "return arguments[0].closest('ol.replies') !== null", arrived), "not shown as a reply"
    assert alice.buttons_in(arrived) == [], alice.buttons_in(arrived)

    # Screenshots of the comments panel, at desktop and at phone width.
    alice.screenshot("comments-panel")
    bob.driver.set_window_size(*PHONE)
    bob.comment("Reply from Bob")
    bob.screenshot("comments-panel-phone")

    # Alice edits her comment; Bob sees the new text, marked edited.
    alice.button("Edit", alice.comment("First from Alice")).click()
    edit = alice.form("Edit comment")
    alice.fill(edit, "Text", "First from Alice, edited")
    alice.button("Save", edit).click()
    edited = bob.comment("First from Alice, edited")
    assert "(edited)" in edited.text, edited.text

    # Bob deletes his reply (asked first), then Alice her comment: gone on both sides.
    bob.delete_comment("Reply from Bob")
    alice.gone('//article[.//p[normalize-space()="Reply from Bob"]]')
    alice.delete_comment("First from Alice, edited")
    bob.gone('//article[.//p[normalize-space()="First from Alice, edited"]]')

    # Escape closes the panel; the focus goes back to the item's button.
    alice.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    alice.wait.until(seen.invisibility_of_element_located((By.CSS_SELECTOR, "dialog")))
    focused = alice.js("return document.activeElement.getAttribute('aria-label')")
    assert focused == f"Open {ITEM}", focused

    # Bob closes his panel with its button, and goes back to the boards list: Alice's page
    # stops naming him.
    bob.button("Close", bob.panel()).click()
    bob.wait.until(seen.invisibility_of_element_located((By.CSS_SELECTOR, "dialog")))
    bob.driver.find_element(By.LINK_TEXT, "All boards").click()
    bob.form("New board")
    alice.presence_lacks(bob_name)
    # Back to the board, then away by a full page load and back again: the page returns from
    # the browser's back/forward cache, its socket closed on the way out and reconnected.
    bob.driver.back()
    alice.presence_shows(bob_name)
    bob.js("window.stillTheSamePage = true")
    bob.open("/")
    bob.form("New board")
    alice.presence_lacks(bob_name)
    bob.driver.back()
    alice.presence_shows(bob_name)
    bob.text_appears(".banner", "Live")

    for person in (alice, bob):
        person.assert_clean_console()
    say(done=True)


run(main, alice, bob)
