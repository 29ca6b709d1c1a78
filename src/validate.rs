//! Identity fields, checked and normalized at the edge before any limit, lookup, write or audit
//! row sees them.
//!
//! One function per kind of field, used by every place that takes one: [`email`] (registration,
//! login, adding a member by email, the admin commands, Google's email claim), [`name`] (people,
//! organizations, API keys), [`new_password`] and [`presented_password`]. A refusal is
//! `422 validation_failed` whose message starts with the field. The characters allowed follow
//! [`boardroom_actors::text`]; board content is checked by the same rule inside the board actor,
//! where REST and WebSocket writes meet.
//!
//! ## Passwords
//! A password is a secret: it is never stored, shown or logged, only hashed with bcrypt, so its
//! characters cannot harm storage or display, and every character is allowed but NUL. NUL is
//! refused because C implementations of bcrypt (OpenBSD's, PHP's `password_hash`, glibc's
//! `crypt`) end the key at the first NUL: `"abc\0x"` would be `"abc"` there, and our hashes
//! would not carry over to them. A password presented to be checked that no account can have
//! (one with NUL, or over 72 bytes) is refused the same way before the login limit is asked: it
//! is no guess at anyone's password, so it costs no attempt and writes no audit row.

use boardroom_actors::text::{self, Form};

use crate::auth::password;
use crate::error::ApiError;

/// Longest email address accepted, in bytes (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Most characters in the name of a person, an organization or an API key.
pub const MAX_NAME_CHARS: usize = 100;

/// An email address, trimmed and lower-cased: at most 254 bytes, exactly one `@` with a name
/// before it and a dotted domain after it, and no whitespace, control or invisible formatting
/// character anywhere.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let refuse = |why: &str| ApiError::validation(format!("email is not a valid address: {why}"));
    if email.len() > MAX_EMAIL_BYTES {
        return Err(refuse("it must be at most 254 bytes"));
    }
    text::check(Form::Identifier, &email).map_err(|why| refuse(&format!("it {why}")))?;
    let (local, domain) = email.split_once('@').ok_or_else(|| refuse("it needs an @"))?;
    if domain.contains('@') {
        return Err(refuse("it must hold exactly one @"));
    }
    if local.is_empty() {
        return Err(refuse("it needs a name before the @"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(refuse("it needs a domain after the @, such as example.com"));
    }
    Ok(email)
}

/// The name of a person, an organization or an API key, trimmed: 1 to 100 characters on one
/// line, without control or bidirectional control characters.
pub fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(format!(
            "{field} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    text::check(Form::Name, name).map_err(|why| ApiError::validation(format!("{field} {why}")))?;
    Ok(name.to_owned())
}

/// A password about to be set: the policy of [`password::check_policy`].
pub fn new_password(field: &str, password: &str) -> Result<(), ApiError> {
    password::check_policy(password).map_err(|why| ApiError::validation(format!("{field} {why}")))
}

/// A password presented to be checked against a hash: refused only when no account can have it.
pub fn presented_password(field: &str, password: &str) -> Result<(), ApiError> {
    password::check_presented(password)
        .map_err(|why| ApiError::validation(format!("{field} {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized() {
        assert_eq!(email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        assert_eq!(email("ada+tag@mail.example.co.uk").unwrap(), "ada+tag@mail.example.co.uk");
        assert_eq!(email("édith@exemple.fr").unwrap(), "édith@exemple.fr");
        let local = "a".repeat(MAX_EMAIL_BYTES - "@example.com".len());
        assert!(email(&format!("{local}@example.com")).is_ok());
    }

    #[test]
    fn malformed_emails_are_refused_naming_the_field() {
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_BYTES));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@@example.com",
            "ada@b@example.com",
            "ada@example",
            "ada@.example.com",
            "ada@example.com.",
            "a da@example.com",
            "ada\0@example.com",
            "ada\u{1}@example.com",
            "ada\n@example.com",
            "ada\u{7f}@example.com",
            "ada\u{85}x@example.com",
            "ada\u{202e}@example.com",
            "ada\u{200b}@example.com",
            long.as_str(),
        ] {
            let err = email(bad).unwrap_err();
            assert_eq!(err.code(), boardroom_protocol::ErrorCode::ValidationFailed, "{bad:?}");
            assert!(err.message().starts_with("email "), "{bad:?}: {}", err.message());
        }
    }

    #[test]
    fn names_are_one_line_without_bidi_controls() {
        assert_eq!(name("name", "  Ada Lovelace ").unwrap(), "Ada Lovelace");
        assert_eq!(name("name", "👩\u{200d}💻 Ada").unwrap(), "👩\u{200d}💻 Ada");
        for bad in ["", "  ", "a\0b", "a\nb", "a\tb", "a\u{1b}b", "Admin\u{202e}nimda"] {
            let err = name("name", bad).unwrap_err();
            assert!(err.message().starts_with("name "), "{bad:?}: {}", err.message());
        }
        assert!(name("name", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn passwords_refuse_only_nul_and_what_bcrypt_cannot_use_whole() {
        assert!(new_password("password", "tab\tand\u{1}controls").is_ok());
        assert!(new_password("password", "right\u{202e}to-left").is_ok());
        let err = new_password("new_password", "long-enough\0").unwrap_err();
        assert!(err.message().starts_with("new_password "), "{}", err.message());
        assert!(presented_password("password", "short").is_ok());
        assert!(presented_password("password", "a\0").is_err());
        assert!(presented_password("password", &"a".repeat(73)).is_err());
    }
}
