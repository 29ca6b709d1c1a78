# tests/web_admin.rs, web_admin::mailed_links_verify_reset_and_invite. Arguments: the server's
# base URL; Carol's email, her password and the new password she chooses. The test made her
# account (so a verification mail went out) and reads the mail the server sends to a real SMTP
# server. Carol asks for a new verification link and uses it; signs out, asks for a password
# reset, uses the mailed link (once: a second use is refused), signs in with the new password;
# then opens the invitation link and accepts it.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Browser, hear, link, run, say  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402

base, email, password, new_password = sys.argv[1:5]
carol = Browser(base)


def main():
    carol.sign_in(email, password)
    carol.text_appears("h1", "Create your first organization")
    carol.forget_log()  # the signed-out first load's 401s

    # --- verification ---
    carol.labelled("Email verification")
    carol.press("Resend verification email")
    carol.text_appears(".notice", "A new link is on its way")
    say(resent=True)
    verify = hear()["path"]
    carol.open(verify)
    carol.text_appears("[role=status]", "Your address is confirmed.")
    link(carol, "Continue to Boardroom").click()
    carol.text_appears("h1", "Create your first organization")
    carol.wait.until(seen.invisibility_of_element_located(
        (By.CSS_SELECTOR, '[aria-label="Email verification"]')))
    link(carol, "Account").click()
    carol.text_appears("h1", "Your account")
    carol.text_appears(".facts", "confirmed")
    carol.assert_clean_console()

    # --- password reset ---
    carol.press("Sign out")
    carol.form("Sign in")
    carol.forget_log()  # signed out: the page's /me is refused
    link(carol, "Forgot your password?").click()
    ask = carol.form("Reset your password")
    carol.fill(ask, "Email", email)
    carol.button("Send reset link", ask).click()
    carol.text_appears("[role=status]", "If an account has the address")
    say(requested=True)
    reset = hear()["path"]
    for attempt in (1, 2):
        carol.open(reset)
        choose = carol.form("Choose a new password")
        carol.fill(choose, "New password", new_password)
        carol.fill(choose, "New password again", new_password)
        carol.button("Set password", choose).click()
        if attempt == 1:
            carol.text_appears("[role=status]", "Your password is set.")
            assert carol.js("return location.search") == "", "the spent token left the address bar"
        else:
            carol.text_appears("form .error", "This link is not valid any more")
            carol.forget_log()  # the refused second use
    carol.sign_in(email, new_password)
    carol.text_appears("h1", "Create your first organization")
    carol.forget_log()
    say(signed_in=True)

    # --- invitation ---
    invitation = hear()
    carol.open(invitation["path"])
    carol.text_appears("h1", "Your invitations")
    carol.press(f"Accept the invitation to {invitation['org']}")
    carol.text_appears("h1", f"Boards of {invitation['org']}")
    say(joined=carol.js("return location.pathname"))
    carol.assert_clean_console()


run(main, carol)
