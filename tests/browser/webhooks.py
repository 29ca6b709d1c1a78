# tests/web_admin.rs, web_admin::an_owner_manages_a_boards_webhooks. Arguments: the server's base
# URL; the email, password and name Alice registers with; the URL of the test's receiver. Alice
# creates an organization and a board, opens its webhooks from the board, creates one (the secret
# shown once), sees the deliveries of the changes the test makes, redelivers one, rotates the
# secret and deletes the webhook.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Browser, accept_confirm, hear, link, run, say  # noqa: E402

base, email, password, name, receiver = sys.argv[1:6]
alice = Browser(base)


def delivery_statuses(url):
    return alice.js(
        "return Array.from(document.querySelectorAll("
        f"'table[aria-label=\"Deliveries of {url}\"] tbody tr')).map(r => "
        "r.cells[0].textContent + ' ' + r.cells[1].textContent)")


def main():
    alice.register(name, email, password)
    alice.form("New organization")
    alice.forget_log()
    alice.create_org("Acme")
    alice.create_board("Launch")
    board_path = alice.js("return location.pathname")

    link(alice, "Webhooks").click()
    alice.text_appears("h1", "Webhooks of Launch")
    alice.xpath('//p[normalize-space()="No webhooks yet."]')
    url = receiver + "/hook"
    create = alice.form("New webhook")
    alice.fill(create, "URL", url)
    alice.button("Create webhook", create).click()
    secret = alice.labelled(f"The signing secret of {url}").get_attribute("value")
    assert secret, "the secret is shown"
    alice.text_appears(".status-line", "was created")
    say(path=board_path, secret=secret)
    hear()  # the test changed the board, and the receiver got the deliveries

    # The deliveries, once both have succeeded (a second look may be needed).
    def both_succeeded(_):
        alice.press(f"Deliveries of {url}")
        rows = delivery_statuses(url)
        return len(rows) == 2 and all(r.endswith("succeeded") for r in rows)
    alice.wait.until(both_succeeded)
    rows = delivery_statuses(url)
    assert any(r.startswith("item.created") for r in rows), rows
    alice.screenshot("admin-webhooks")
    alice.xpath('//button[starts-with(@aria-label, "Redeliver item.created")]').click()
    alice.text_appears(".status-line", "is queued again")
    say(redelivered=True)
    hear()  # the receiver got it again

    alice.press(f"Rotate the secret of {url}")
    rotated = alice.labelled(f"The new secret of {url}").get_attribute("value")
    assert rotated and rotated != secret, "a new secret is shown"
    alice.text_appears(".once + .hint", "The previous secret keeps signing")
    say(rotated=rotated)
    hear()

    alice.press(f"Delete {url}")
    accept_confirm(alice)
    alice.text_appears(".status-line", "was deleted")
    alice.xpath('//p[normalize-space()="No webhooks yet."]')
    link(alice, "Back to Launch").click()
    alice.text_appears(".banner", "Live")
    alice.assert_clean_console()


run(main, alice)
