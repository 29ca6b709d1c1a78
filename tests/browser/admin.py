# tests/web_admin.rs, web_admin::an_admin_manages_members_keys_and_reads_the_audit_log.
# Arguments: the server's base URL; the email, password and name Alice registers with; the email
# of Bob (a verified account the test made) and of Dana (no account). Alice creates an
# organization, is held back from leaving it without an admin (409 last_admin), adds Bob and makes
# him an admin, invites Dana and revokes that; creates an API key, copies it (the test uses it
# against the API), re-scopes and revokes it; then reads the audit log, filtered and paged.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    PHONE, Browser, accept_confirm, choose, grant_clipboard, hear, labelled_select, link,
    run, say, wider_than_the_window)

base, email, password, name, bob_email, dana_email = sys.argv[1:7]
alice = Browser(base)


def audit_actions():
    return alice.js(
        "return Array.from(document.querySelectorAll("
        "'table[aria-label=\"Audit log\"] tr[data-action]')).map(r => r.dataset.action)")


def audit_shows(predicate):
    alice.wait.until(lambda _: predicate(audit_actions()))
    return audit_actions()


def main():
    alice.register(name, email, password)
    alice.form("New organization")
    alice.forget_log()
    alice.create_org("Acme")
    alice.form("New board")
    # Not verified yet: the notice offers a new link.
    assert alice.labelled("Email verification")
    alice.button("Resend verification email")
    say(path=alice.js("return location.pathname"))

    # --- members ---
    link(alice, "Members").click()
    alice.text_appears("h1", "Members of Acme")
    choose(alice, alice.labelled(f"Role of {name}"), "member")
    alice.text_appears(".admin-page > .error", "An organization must keep at least one admin")
    alice.forget_log()  # the refused 409, which the browser logs
    assert alice.labelled(f"Role of {name}").get_attribute("value") == "admin"

    add = alice.form("Add a member")
    alice.fill(add, "Email", bob_email)
    alice.button("Add member", add).click()
    alice.text_appears(".status-line", "bob joined as member")
    choose(alice, alice.labelled("Role of bob"), "admin")
    alice.text_appears(".status-line", "bob is now an admin")
    assert alice.labelled("Role of bob").get_attribute("value") == "admin"

    add = alice.form("Add a member")
    alice.fill(add, "Email", dana_email)
    alice.button("Add member", add).click()
    alice.text_appears(".status-line", "an invitation was mailed")
    pending = alice.labelled("Pending invitations")
    assert dana_email in pending.text, pending.text
    alice.press(f"Revoke the invitation to {dana_email}")
    alice.text_appears(".status-line", "was revoked")
    alice.xpath('//p[normalize-space()="No pending invitations."]')
    alice.screenshot("admin-members")
    alice.assert_clean_console()

    # --- API keys ---
    grant_clipboard(alice)
    link(alice, "API keys").click()
    create = alice.form("New API key")
    alice.fill(create, "Key name", "Deploy")
    alice.button("Create key", create).click()
    key = alice.labelled("The key Deploy").get_attribute("value")
    assert key, "the key is shown"
    alice.press("Copy")
    alice.text_appears(".once", "Copied.")
    assert alice.js("return navigator.clipboard.readText()") == key, "the clipboard holds the key"
    say(key=key)
    hear()  # the test used the key

    scopes = alice.form("Scopes of Deploy")
    scopes.find_element("xpath", './/label[span[normalize-space()="items:read"]]/input').click()
    scopes.find_element("xpath", './/label[span[normalize-space()="items:write"]]/input').click()
    alice.button("Save scopes", scopes).click()
    alice.text_appears(".status-line", "Deploy now has boards:read, items:write")
    alice.screenshot("admin-api-keys")
    alice.press("Revoke Deploy")
    accept_confirm(alice)
    alice.text_appears(".status-line", "Deploy was revoked")
    alice.xpath('//p[normalize-space()="No API keys yet."]')
    assert not alice.driver.find_elements("css selector", ".once"), "the key is not shown again"
    alice.assert_clean_console()
    say(revoked=True)
    hear()  # the test checked the key is refused, and changed roles enough to page the log

    # --- the audit log ---
    link(alice, "Audit log").click()
    alice.text_appears("h1", "Audit log of Acme")
    first = audit_shows(lambda rows: len(rows) == 25)
    assert first[0] == "member.role_changed", first
    for action in ("api_key.created", "api_key.updated", "api_key.revoked", "member.added",
                   "invitation.created", "invitation.revoked"):
        choose(alice, labelled_select(alice, "Action"), action)
        rows = audit_shows(lambda rows, action=action: rows == [action])
        assert rows == [action], (action, rows)
    # 30 changes by the test and one through the page: a full page, then the rest.
    choose(alice, labelled_select(alice, "Action"), "member.role_changed")
    audit_shows(lambda rows: len(rows) == 25 and set(rows) == {"member.role_changed"})
    alice.text_appears(".pager", "Page 1")
    alice.press("Older")
    alice.text_appears(".pager", "Page 2")
    audit_shows(lambda rows: len(rows) == 6 and set(rows) == {"member.role_changed"})
    assert not alice.button("Newer").get_attribute("disabled")
    assert alice.driver.find_element(
        "xpath", '//button[normalize-space()="Older"]').get_attribute("disabled") is not None
    alice.press("Newer")
    alice.text_appears(".pager", "Page 1")
    audit_shows(lambda rows: len(rows) == 25)
    alice.screenshot("admin-audit-log")
    alice.assert_clean_console()

    # --- the plan ---
    link(alice, "Plan").click()
    alice.text_appears("h1", "Plan of Acme")
    alice.text_appears('[data-plan]', "free")
    members = alice.xpath('//tr[@data-limit="members"]/td')
    assert members.text.startswith("2"), members.text
    assert not alice.driver.find_elements(
        "xpath", '//button[normalize-space()="Manage billing"]'), "billing is off"
    alice.assert_clean_console()

    # --- phone width ---
    alice.driver.set_window_size(*PHONE)
    assert not wider_than_the_window(alice), wider_than_the_window(alice)
    link(alice, "Audit log").click()
    audit_shows(lambda rows: len(rows) == 25)
    assert not wider_than_the_window(alice), wider_than_the_window(alice)
    alice.screenshot("admin-audit-log-phone")
    link(alice, "Members").click()
    alice.text_appears("h1", "Members of Acme")
    assert not wider_than_the_window(alice), wider_than_the_window(alice)
    link(alice, "API keys").click()
    alice.text_appears("h1", "API keys of Acme")
    assert not wider_than_the_window(alice), wider_than_the_window(alice)
    alice.assert_clean_console()

run(main, alice)
