//! Which characters a client's text may hold: the one rule every edge shares.
//!
//! Board content is checked with it inside the board actor (through [`crate::values`]), so a
//! REST body and a WebSocket frame get the same answer; the server's identity fields (emails,
//! names of people, organizations and API keys) and the SSRF guard's URLs use it too, and the
//! audit log's sanitizer strips what [`is_invisible`] names. A refusal names what is wrong; the
//! caller names the field.
//!
//! ## What is refused, and why
//! - **Control characters** (Unicode `Cc`: C0, DEL and C1), NUL included, everywhere: they have
//!   no printed form, terminals and log viewers act on some of them (ESC, CSI), and Postgres
//!   refuses NUL in `text` and `jsonb`, so a NUL that got through would fail a whole batch of
//!   writes in the database instead of one request at the edge. Only text of several lines
//!   ([`Form::Lines`]: descriptions, long_text values, update bodies) takes tab and newline;
//!   carriage returns are refused there too (clients send `\n`).
//! - **Line breaks in one-line text** ([`Form::Line`], [`Form::Name`], [`Form::Identifier`]):
//!   titles, names, labels, colors, text values, link texts, emails and URLs take no newline,
//!   tab, or Unicode line or paragraph separator.
//! - **Bidirectional controls** (embeddings, overrides and isolates, U+202A–U+202E and
//!   U+2066–U+2069) are allowed in board content, where writers of right-to-left languages
//!   need them, and refused in the names of people, organizations and API keys
//!   ([`Form::Name`]), which are shown to others beside text of their own and which an override
//!   could make read as something else (`"Admin\u{202E}nimda"`). Marks (LRM, RLM, ALM) and
//!   joiners (ZWJ, ZWNJ, which emoji and Persian need) stay allowed in names.
//! - **Identifiers** ([`Form::Identifier`]: emails, URLs) also refuse whitespace and every
//!   invisible formatting character ([`is_invisible`]), so two that look alike are alike.
//! - Text the server keeps from outside and cannot refuse, such as a webhook receiver's answer,
//!   is [`scrub`]bed instead.
//!
//! Lone surrogates and invalid UTF-8 never get this far: they are not text, and the decoders
//! refuse them (`400 malformed_body`).

use std::borrow::Cow;

/// What a piece of text is, which decides the characters it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One line of content: titles, item names, labels, colors, text values, link texts.
    Line,
    /// Content of several lines: tab and newline allowed.
    Lines,
    /// The name of a person, organization or API key: one line, no bidirectional controls.
    Name,
    /// An email address or URL: one line, no whitespace or invisible formatting characters.
    Identifier,
}

/// Why a text is refused. Displayed as the rest of a sentence that starts with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A control character (NUL, another C0, DEL, C1).
    #[error("must not contain control characters")]
    Control,
    /// A line break or tab in one-line text.
    #[error("must be a single line (no line breaks or tabs)")]
    LineBreak,
    /// A bidirectional embedding, override or isolate in a name.
    #[error("must not contain bidirectional control characters")]
    Bidi,
    /// Whitespace or an invisible formatting character in an identifier.
    #[error("must not contain whitespace or invisible formatting characters")]
    Invisible,
}

/// Checks that `text` holds only characters its `form` allows.
pub fn check(form: Form, text: &str) -> Result<(), Refusal> {
    for c in text.chars() {
        let line_break = matches!(c, '\n' | '\t' | '\u{2028}' | '\u{2029}');
        if form == Form::Lines && line_break {
            continue;
        }
        if line_break {
            return Err(Refusal::LineBreak);
        }
        if c.is_control() {
            return Err(Refusal::Control);
        }
        match form {
            Form::Name if is_bidi_control(c) => return Err(Refusal::Bidi),
            Form::Identifier if c.is_whitespace() || is_invisible(c) => {
                return Err(Refusal::Invisible)
            }
            _ => {}
        }
    }
    Ok(())
}

/// The explicit bidirectional formatting characters: embeddings, overrides, their terminator,
/// and the isolates.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Invisible formatting characters that disguise identifiers: soft hyphen, Arabic letter mark,
/// Mongolian vowel separator, zero-width characters and directional marks, bidirectional
/// controls, invisible operators, deprecated format controls, BOM, interlinear annotations.
pub fn is_invisible(c: char) -> bool {
    is_bidi_control(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` with every control character except tab, newline and carriage return replaced by
/// U+FFFD: for text from outside that is kept, not refused (a webhook receiver's answer).
pub fn scrub(text: &str) -> Cow<'_, str> {
    let kept = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    if text.chars().all(kept) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars().map(|c| if kept(c) { c } else { char::REPLACEMENT_CHARACTER }).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_refused_in_every_form() {
        for form in [Form::Line, Form::Lines, Form::Name, Form::Identifier] {
            for c in ['\0', '\u{1}', '\u{1b}', '\r', '\u{7f}', '\u{85}', '\u{9b}'] {
                let text = format!("a{c}b");
                let refusal = check(form, &text).unwrap_err();
                assert!(
                    matches!(refusal, Refusal::Control | Refusal::LineBreak),
                    "{form:?} {c:?}: {refusal:?}"
                );
            }
        }
    }

    #[test]
    fn line_breaks_only_in_text_of_several_lines() {
        for text in ["a\nb", "a\tb", "a\u{2028}b"] {
            assert_eq!(check(Form::Lines, text), Ok(()));
            assert_eq!(check(Form::Line, text), Err(Refusal::LineBreak));
            assert_eq!(check(Form::Name, text), Err(Refusal::LineBreak));
            assert_eq!(check(Form::Identifier, text), Err(Refusal::LineBreak));
        }
    }

    #[test]
    fn bidi_controls_are_content_but_not_names() {
        let spoof = "Admin\u{202E}nimda";
        assert_eq!(check(Form::Line, spoof), Ok(()));
        assert_eq!(check(Form::Lines, spoof), Ok(()));
        assert_eq!(check(Form::Name, spoof), Err(Refusal::Bidi));
        assert_eq!(check(Form::Identifier, spoof), Err(Refusal::Invisible));
        // Marks and joiners are part of ordinary writing, names included.
        for name in
            ["\u{5e9}\u{5e8}\u{200f} 2", "\u{645}\u{6cc}\u{200c}\u{62e}", "👩\u{200d}💻", "é日本🎉"]
        {
            assert_eq!(check(Form::Name, name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn identifiers_refuse_whitespace_and_invisible_characters() {
        for text in ["a b", "a\u{a0}b", "a\u{200b}b", "a\u{ad}b", "a\u{feff}b", "a\u{2066}b"] {
            assert_eq!(check(Form::Identifier, text), Err(Refusal::Invisible), "{text:?}");
        }
        assert_eq!(check(Form::Identifier, "ada@example.com"), Ok(()));
        assert_eq!(check(Form::Identifier, "https://example.com/é?q=1"), Ok(()));
    }

    #[test]
    fn scrub_replaces_only_what_cannot_be_kept() {
        assert!(matches!(scrub("fine\r\n\ttext"), Cow::Borrowed(_)));
        assert_eq!(scrub("a\0b\u{1b}[1mc\u{85}"), "a\u{fffd}b\u{fffd}[1mc\u{fffd}");
    }
}
