//! The account messages: each a plain-text and an HTML part, built from the product name and
//! `BOARDROOM_PUBLIC_URL`, with no images and no tracking of any kind. Anything a person typed
//! (an organization's name, a display name) is escaped in the HTML part.

use crate::storage::NewMail;

/// The product name messages sign with.
pub const PRODUCT: &str = "Boardroom";

/// Escapes text for an HTML body.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One message: `lines` are paragraphs of plain text; `action` is the link's label, when the
/// message has a link.
fn message(to: &str, subject: String, lines: &[String], action: Option<(&str, &str)>) -> NewMail {
    let mut text = String::new();
    let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
    for line in lines {
        text.push_str(line);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(line)));
    }
    let link = match action {
        Some((label, link)) => {
            text.push_str(&format!("{label}: {link}\n\n"));
            let link_html = escape(link);
            html.push_str(&format!(
                "<p><a href=\"{link_html}\">{}</a></p><p>{link_html}</p>",
                escape(label)
            ));
            link.to_owned()
        }
        None => String::new(),
    };
    text.push_str(&format!("-- {PRODUCT}\n"));
    html.push_str(&format!("<p>&mdash; {PRODUCT}</p></body></html>"));
    NewMail { to: to.to_owned(), subject, text, html, link }
}

/// "Confirm your address", sent at registration and on request.
pub fn verify_email(to: &str, link: &str) -> NewMail {
    message(
        to,
        format!("Confirm your email address for {PRODUCT}"),
        &[
            format!("Someone, hopefully you, created a {PRODUCT} account with this address."),
            "Confirm that it is yours with the link below; it works once, within 24 hours. \
             If it was not you, ignore this message."
                .to_owned(),
        ],
        Some(("Confirm your address", link)),
    )
}

/// "Confirm your new address", sent to the address an account asks to move to.
pub fn confirm_new_email(to: &str, link: &str) -> NewMail {
    message(
        to,
        format!("Confirm your new email address for {PRODUCT}"),
        &[
            format!("A {PRODUCT} account asked to use this address from now on."),
            "Confirm it with the link below; it works once, within 24 hours. Until then the \
             account keeps its old address. If it was not you, ignore this message."
                .to_owned(),
        ],
        Some(("Confirm your new address", link)),
    )
}

/// "Your address is being changed", sent to the old address.
pub fn email_change_notice(to: &str, new_email: &str) -> NewMail {
    message(
        to,
        format!("Your {PRODUCT} email address is being changed"),
        &[
            format!(
                "Your {PRODUCT} account asked to change its email address from this one to \
                 {new_email}. The change happens when the new address is confirmed."
            ),
            "If it was not you, reset your password now and sign out your other sessions."
                .to_owned(),
        ],
        None,
    )
}

/// "Reset your password".
pub fn password_reset(to: &str, link: &str) -> NewMail {
    message(
        to,
        format!("Reset your {PRODUCT} password"),
        &[
            format!(
                "Someone asked to reset the password of the {PRODUCT} account with this address."
            ),
            "Choose a new one with the link below; it works once, within an hour, and signs out \
             every session. If it was not you, ignore this message: your password stays as it is."
                .to_owned(),
        ],
        Some(("Choose a new password", link)),
    )
}

/// Sent instead of a reset link when no account has the address: the same work and the same
/// answer for the requester, and a useful word for the address's owner.
pub fn password_reset_no_account(to: &str) -> NewMail {
    message(
        to,
        format!("{PRODUCT} password reset"),
        &[
            format!(
                "Someone asked to reset the password of a {PRODUCT} account with this address, \
                 but there is no account with it."
            ),
            "If it was not you, ignore this message.".to_owned(),
        ],
        None,
    )
}

/// "You are invited to join an organization".
pub fn invitation(
    to: &str,
    organization: &str,
    inviter: &str,
    role: &str,
    expires: &str,
    link: &str,
) -> NewMail {
    message(
        to,
        format!("You are invited to {organization} on {PRODUCT}"),
        &[
            format!("{inviter} invited you to join {organization} on {PRODUCT} as {role}."),
            format!(
                "Sign in or create an account with this address, confirm the address, then \
                 accept the invitation. It expires on {expires}."
            ),
        ],
        Some(("Open the invitation", link)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_people_typed_and_has_no_images() {
        let mail = invitation(
            "a@example.com",
            "<script>x</script> & co",
            "Eve \"the\" admin",
            "member",
            "2026-01-01",
            "https://b.example/invitations/1",
        );
        assert!(mail.html.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"));
        assert!(!mail.html.contains("<script>"));
        assert!(!mail.html.to_lowercase().contains("<img"));
        assert!(mail.text.contains("https://b.example/invitations/1"));
        assert_eq!(mail.link, "https://b.example/invitations/1");
        assert!(mail.text.contains(PRODUCT));
    }
}
