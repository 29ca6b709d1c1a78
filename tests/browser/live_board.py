# tests/web.rs, web::a_browser_sees_another_users_item_live. Arguments: the server's base URL,
# then the email, password and name to register with. It registers, creates an organization and
# a board through the page, says the board's path, then waits for the item the test creates
# through REST as another user to appear live, without a reload.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Browser, run, say  # noqa: E402

base, email, password, name = sys.argv[1:5]
alice = Browser(base)


def main():
    alice.register(name, email, password)
    alice.form("New organization")
    # Signed out, the first page load asks /me and /auth/refresh and is refused (401): the
    # browser logs those. From here on the log must stay clean.
    alice.forget_log()
    alice.create_org("Acme")
    alice.create_board("Launch")
    alice.text_appears("h1", "Launch")
    # Set in this page's window: a reload would lose it.
    alice.js("window.stillTheSamePage = true")
    say(path=alice.js("return location.pathname"))

    row = alice.xpath('//tr[th[normalize-space()="Shipped by Bob"]]')
    assert "Done" in row.text, row.text
    assert alice.js("return window.stillTheSamePage === true"), "the page reloaded"
    assert alice.xpath('//h2[normalize-space()="From Bob"]')
    # The session is in HttpOnly cookies the page cannot read; only the CSRF token is visible.
    visible = alice.js("return document.cookie")
    assert "br_csrf=" in visible and "br_access" not in visible, visible
    stored = alice.js(
        "return Object.keys(localStorage).length + Object.keys(sessionStorage).length")
    assert stored == 0, "the page stored something in web storage"
    alice.assert_clean_console()


run(main, alice)
