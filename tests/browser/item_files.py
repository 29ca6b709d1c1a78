# tests/web_items.rs, web_items::a_file_is_attached_downloaded_and_deleted. Arguments: the
# server's base URL, the board's path, Alice's email and password (she edits the board), Carol's
# email and password (she views it), and the server's file size limit in bytes. The item
# "Launch plan" is on the board. Alice attaches a small file through the labelled file input,
# sees it listed, downloads it from the page (the same bytes, answered 200), and deletes it;
# the server's refusals (too large, a type the bytes contradict) are shown with their message.
# Carol, a viewer, sees the file live but no upload form, no delete button and no comment
# composer. The consoles stay clean.
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run, say  # noqa: E402
from items import ItemBrowser  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

base, path, alice_email, alice_password, carol_email, carol_password, max_bytes = sys.argv[1:8]
max_bytes = int(max_bytes)
alice = ItemBrowser(base)
carol = ItemBrowser(base)
ITEM = "Launch plan"
files = tempfile.mkdtemp(prefix="boardroom-files-")


def write(name, data):
    path = os.path.join(files, name)
    with open(path, "wb") as out:
        out.write(data)
    return path


def upload(person, path):
    form = person.form("Attach a file")
    field = form.find_element(By.XPATH, './/label[span[normalize-space()="File"]]/input')
    field.send_keys(path)
    person.button("Upload", form).click()
    return form


def refusal(person, form, says):
    """Waits for the upload form's alert to say `says`; answers its text."""
    alert = form.find_element(By.CSS_SELECTOR, '[role="alert"]')
    person.wait.until(lambda _: says in alert.text)
    return alert.text


def main():
    for person, email, password in ((alice, alice_email, alice_password),
                                    (carol, carol_email, carol_password)):
        person.sign_in(email, password)
        person.form("New board")
        person.forget_log()
        person.open(path)
        person.text_appears(".banner", "Live")
        person.open_item(ITEM)

    # The viewer reads; nothing to write with.
    carol.xpath('//dialog//h3[normalize-space()="Files"]')
    for form in ("Attach a file", "New comment"):
        assert not carol.driver.find_elements(By.CSS_SELECTOR, f'form[aria-label="{form}"]'), form
    assert "editors write them" in carol.panel().text

    content = "Quarterly notes, ünïcödé included.\n".encode() * 3
    upload(alice, write("notes.txt", content))
    row = alice.file_row("notes.txt")
    assert alice.buttons_in(row) == ["Delete"], alice.buttons_in(row)
    # Carol sees it arrive, without a delete button.
    seen_by_carol = carol.file_row("notes.txt")
    assert carol.buttons_in(seen_by_carol) == [], carol.buttons_in(seen_by_carol)

    # The download link answers 200 with the same bytes, fetched by the page with its cookie.
    href = row.find_element(By.TAG_NAME, "a").get_attribute("href")
    answer = alice.driver.execute_async_script(
        """const [href, done] = arguments;
        fetch(href, {credentials: "same-origin"})
          .then(async (r) => done({status: r.status,
                                   bytes: Array.from(new Uint8Array(await r.arrayBuffer())),
                                   disposition: r.headers.get("content-disposition")}))
          .catch((e) => done({error: String(e)}));""", href)
    assert answer.get("status") == 200, answer
    assert bytes(answer["bytes"]) == content, answer
    assert "notes.txt" in answer["disposition"], answer

    # A comment with a file of its own: listed under the comment, for both.
    composer = alice.form("New comment")
    alice.fill(composer, "Comment", "See the attached sketch")
    composer.find_element(
        By.XPATH, './/label[span[normalize-space()="Attach a file (optional)"]]/input',
    ).send_keys(write("sketch.txt", b"a sketch\n"))
    alice.button("Post comment", composer).click()
    for person in (alice, carol):
        person.xpath('//dialog//li[article/p[normalize-space()="See the attached sketch"]]'
                     '/ul//a[normalize-space()="sketch.txt"]')

    # The server's refusals, with its message. Chrome logs each refused request as a SEVERE
    # "Failed to load resource" line: those two, and nothing else, are expected here.
    alice.assert_clean_console()
    form = upload(alice, write("too-big.txt", b"x" * (max_bytes + 1)))
    said = refusal(alice, form, f"{max_bytes} bytes")
    form = upload(alice, write("fake.png", b"not a picture at all"))
    said = refusal(alice, form, "image/png")
    assert "declared" in said, said
    assert not alice.driver.find_elements(By.XPATH, '//dialog//li[a[normalize-space()="fake.png"]]')
    logged = alice.console_errors()
    unexpected = [e for e in logged
                  if not any(f"status of {code}" in e["message"] for code in (413, 415))]
    assert len(logged) == 2 and not unexpected, logged

    alice.screenshot("item-files")

    # Delete (asked first): gone for both.
    row = alice.file_row("notes.txt")
    alice.button("Delete", row).click()
    alice.button("Yes, delete", row).click()
    for person in (alice, carol):
        person.gone('//dialog//li[a[normalize-space()="notes.txt"]]')

    for person in (alice, carol):
        person.assert_clean_console()
    say(done=True)


run(main, alice, carol)
