# The item panel and presence, as the browser scripts of tests/web_items.rs find them: by the
# names the page gives them (the "Open <item>" button, the panel's forms and buttons, the
# "People viewing this board" list), like a person with a screen reader would.
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen

from common import Browser

PRESENCE = '//section[@aria-label="People viewing this board"]'


def quoted(text):
    """`text` as an XPath string literal (it may hold either quote, not both)."""
    return f'"{text}"' if '"' not in text else f"'{text}'"


class ItemBrowser(Browser):
    """A Browser that also knows the item panel and the presence list."""

    def presence_shows(self, name):
        self.xpath(f'{PRESENCE}//li[span[normalize-space()={quoted(name)}]]')

    def presence_lacks(self, name):
        self.gone(f'{PRESENCE}//li[span[normalize-space()={quoted(name)}]]')

    def open_item(self, item):
        self.press(f"Open {item}")
        return self.panel()

    def panel(self):
        return self.wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, "dialog[open]")))

    def post_comment(self, text):
        composer = self.form("New comment")
        self.fill(composer, "Comment", text)
        self.button("Post comment", composer).click()

    def comment(self, body):
        """The comment (or reply) whose text is `body`, once it is shown."""
        return self.wait.until(seen.visibility_of_element_located(
            (By.XPATH, f'//dialog//article[p[normalize-space()={quoted(body)}]]')))

    def buttons_in(self, element):
        return [b.text for b in element.find_elements(By.TAG_NAME, "button")]

    def delete_comment(self, body):
        comment = self.comment(body)
        self.button("Delete", comment).click()
        self.button("Yes, delete", comment).click()
        self.gone(f'//dialog//article[p[normalize-space()={quoted(body)}]]')

    def file_row(self, name):
        """The panel's entry for the file `name`, once it is listed."""
        return self.wait.until(seen.visibility_of_element_located(
            (By.XPATH, f'//dialog//li[a[normalize-space()={quoted(name)}]]')))

    def gone(self, xpath):
        """Waits until nothing on the page matches `xpath`."""
        self.wait.until(lambda driver: not driver.find_elements(By.XPATH, xpath))
