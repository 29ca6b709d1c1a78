//! Column settings and values: what each column type accepts.
//!
//! Every value written to an item is checked against its column: a number is a JSON number; a
//! date is `YYYY-MM-DD`; a status is one of the column's labels; a dropdown some of them; a
//! person is a list of organization members (checked by the board actor, which can ask the
//! store); a link is http(s). `null` clears a value of any type. Text has a size limit, and its
//! characters follow [`crate::text`]: one line for titles, names, labels, text values and links,
//! several for descriptions, long_text values and update bodies.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{invalid, BoardError, Column, ColumnKind};
use crate::text::{self, Form};

/// Most characters in a `text` value, an item name or a title.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Most characters in a `long_text` value, an update or a description.
pub const MAX_LONG_TEXT_CHARS: usize = 20_000;
/// Most characters in a board, group or column title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most characters in an item name.
pub const MAX_NAME_CHARS: usize = 500;
/// Most labels of a status or dropdown column.
pub const MAX_LABELS: usize = 50;
/// Most people in a person value.
pub const MAX_PEOPLE: usize = 50;
/// Most characters of a link URL.
pub const MAX_URL_CHARS: usize = 2_000;

/// Checks a required, trimmed line of text of at most `max` characters.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<String, BoardError> {
    check_required(field, text, max, Form::Line)
}

/// Checks a required, trimmed text of several lines of at most `max` characters.
pub fn check_long_text(field: &str, text: &str, max: usize) -> Result<String, BoardError> {
    check_required(field, text, max, Form::Lines)
}

/// Checks a board's description: several lines, possibly none.
pub fn check_description(description: &str) -> Result<String, BoardError> {
    if description.chars().count() > MAX_LONG_TEXT_CHARS {
        return Err(invalid(format!(
            "description must be at most {MAX_LONG_TEXT_CHARS} characters"
        )));
    }
    check_chars("description", description, Form::Lines)?;
    Ok(description.to_owned())
}

fn check_required(field: &str, text: &str, max: usize, form: Form) -> Result<String, BoardError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(invalid(format!("{field} must be at most {max} characters")));
    }
    check_chars(field, trimmed, form)?;
    Ok(trimmed.to_owned())
}

fn check_chars(field: &str, text: &str, form: Form) -> Result<(), BoardError> {
    text::check(form, text).map_err(|why| invalid(format!("{field} {why}")))
}

/// Checks and normalizes a column's settings for its type.
pub fn check_settings(kind: ColumnKind, settings: Option<&Value>) -> Result<Value, BoardError> {
    match kind {
        ColumnKind::Status | ColumnKind::Dropdown => {
            let labels = settings
                .and_then(|s| s.get("labels"))
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    invalid(format!(
                        "a {} column needs settings.labels, a list of strings",
                        kind.as_str()
                    ))
                })?;
            if labels.is_empty() || labels.len() > MAX_LABELS {
                return Err(invalid(format!("settings.labels must hold 1 to {MAX_LABELS} labels")));
            }
            let mut seen = Vec::with_capacity(labels.len());
            for label in labels {
                let label = label
                    .as_str()
                    .ok_or_else(|| invalid("settings.labels must be strings"))
                    .and_then(|l| check_text("a label", l, MAX_TITLE_CHARS))?;
                // "Done" and "done" side by side would only confuse whoever picks one.
                if seen.iter().any(|s: &String| s.to_lowercase() == label.to_lowercase()) {
                    return Err(invalid(format!("label {label:?} appears twice")));
                }
                seen.push(label);
            }
            Ok(json!({ "labels": seen }))
        }
        _ => match settings {
            None | Some(Value::Null) => Ok(json!({})),
            Some(Value::Object(map)) if map.is_empty() => Ok(json!({})),
            Some(_) => Err(invalid(format!("a {} column takes no settings", kind.as_str()))),
        },
    }
}

fn labels(column: &Column) -> Vec<&str> {
    column
        .settings
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A checked value, and the people it names (whose membership the caller must confirm).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedValue {
    /// The normalized value (`Null` clears).
    pub value: Value,
    /// Users a person value names.
    pub people: Vec<Uuid>,
}

/// Checks `value` for `column`.
pub fn check_value(column: &Column, value: &Value) -> Result<CheckedValue, BoardError> {
    // Built only when a value is refused: this runs for every value of every item write.
    let field = || format!("column {:?} ({})", column.title, column.kind.as_str());
    let wrong = |what: &str| invalid(format!("{} needs {what}", field()));
    let chars = |part: &str, raw: &str, form: Form| {
        text::check(form, raw).map_err(|why| invalid(format!("{}{part} {why}", field())))
    };
    let plain = |value: Value| Ok(CheckedValue { value, people: Vec::new() });
    if value.is_null() {
        return plain(Value::Null);
    }
    match column.kind {
        ColumnKind::Text | ColumnKind::LongText => {
            let max =
                if column.kind == ColumnKind::Text { MAX_TEXT_CHARS } else { MAX_LONG_TEXT_CHARS };
            let text = value.as_str().ok_or_else(|| wrong("a string"))?;
            if text.chars().count() > max {
                return Err(wrong(&format!("at most {max} characters")));
            }
            let form = if column.kind == ColumnKind::Text { Form::Line } else { Form::Lines };
            chars("", text, form)?;
            plain(Value::String(text.to_owned()))
        }
        ColumnKind::Number => match value {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => plain(value.clone()),
            _ => Err(wrong("a JSON number")),
        },
        ColumnKind::Checkbox => match value {
            Value::Bool(_) => plain(value.clone()),
            _ => Err(wrong("true or false")),
        },
        ColumnKind::Date => {
            let text = value.as_str().ok_or_else(|| wrong("a YYYY-MM-DD date"))?;
            let valid =
                text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
            if !valid {
                return Err(wrong("a YYYY-MM-DD date"));
            }
            plain(Value::String(text.to_owned()))
        }
        ColumnKind::Status => {
            let label = value.as_str().ok_or_else(|| wrong("one of its labels"))?;
            if !labels(column).contains(&label) {
                return Err(wrong(&format!("one of its labels, not {label:?}")));
            }
            plain(Value::String(label.to_owned()))
        }
        ColumnKind::Dropdown => {
            let chosen = value.as_array().ok_or_else(|| wrong("a list of its labels"))?;
            let allowed = labels(column);
            let mut out: Vec<String> = Vec::with_capacity(chosen.len());
            for label in chosen {
                let label = label.as_str().ok_or_else(|| wrong("a list of its labels"))?;
                if !allowed.contains(&label) {
                    return Err(wrong(&format!("labels it defines, not {label:?}")));
                }
                if !out.iter().any(|l| l == label) {
                    out.push(label.to_owned());
                }
            }
            plain(json!(out))
        }
        ColumnKind::Person => {
            let ids = value.as_array().ok_or_else(|| wrong("a list of user ids"))?;
            if ids.len() > MAX_PEOPLE {
                return Err(wrong(&format!("at most {MAX_PEOPLE} people")));
            }
            let mut people: Vec<Uuid> = Vec::with_capacity(ids.len());
            for id in ids {
                let id = id
                    .as_str()
                    .and_then(|s| Uuid::try_parse(s).ok())
                    .ok_or_else(|| wrong("a list of user ids"))?;
                if !people.contains(&id) {
                    people.push(id);
                }
            }
            Ok(CheckedValue { value: json!(people), people })
        }
        ColumnKind::Link => {
            let (raw, text) = match value {
                Value::String(s) => (s.as_str(), None),
                Value::Object(map) => (
                    map.get("url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| wrong("{\"url\", \"text\"?}"))?,
                    map.get("text").and_then(Value::as_str),
                ),
                _ => return Err(wrong("an http(s) URL")),
            };
            if raw.chars().count() > MAX_URL_CHARS {
                return Err(wrong(&format!("a URL of at most {MAX_URL_CHARS} characters")));
            }
            chars("'s URL", raw, Form::Identifier)?;
            let parsed = url::Url::parse(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if parsed.is_none() {
                return Err(wrong("an http(s) URL"));
            }
            let text = match text {
                Some(t) if t.chars().count() > MAX_TITLE_CHARS => {
                    return Err(wrong("a text of at most 200 characters"))
                }
                Some(t) => {
                    chars("'s text", t, Form::Line)?;
                    Value::String(t.to_owned())
                }
                None => Value::Null,
            };
            plain(json!({ "url": raw, "text": text }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnKind, settings: Value) -> Column {
        Column { id: Uuid::now_v7(), title: "c".into(), kind, settings, position: "V".into() }
    }

    #[test]
    fn labels_are_distinct_ignoring_case() {
        let labels = |l: Value| check_settings(ColumnKind::Status, Some(&json!({ "labels": l })));
        assert!(labels(json!(["Done", "Stuck"])).is_ok());
        assert!(labels(json!(["Done", "done"])).is_err());
        assert!(labels(json!(["Done", "Done"])).is_err());
    }

    #[test]
    fn values_by_type() {
        let status = column(ColumnKind::Status, json!({"labels": ["Done", "Stuck"]}));
        assert!(check_value(&status, &json!("Done")).is_ok());
        assert!(check_value(&status, &json!("Maybe")).is_err());
        assert!(check_value(&status, &json!(1)).is_err());
        let number = column(ColumnKind::Number, json!({}));
        assert!(check_value(&number, &json!(3.5)).is_ok());
        assert!(check_value(&number, &json!("3.5")).is_err());
        let date = column(ColumnKind::Date, json!({}));
        assert!(check_value(&date, &json!("2026-02-28")).is_ok());
        assert!(check_value(&date, &json!("2026-02-30")).is_err());
        assert!(check_value(&date, &json!("2026-2-3")).is_err());
        let link = column(ColumnKind::Link, json!({}));
        assert!(check_value(&link, &json!("https://example.com/x")).is_ok());
        assert!(check_value(&link, &json!("javascript:alert(1)")).is_err());
        assert!(check_value(&link, &json!({"url": "ftp://x"})).is_err());
        let text = column(ColumnKind::Text, json!({}));
        assert!(check_value(&text, &json!("a".repeat(MAX_TEXT_CHARS))).is_ok());
        assert!(check_value(&text, &json!("a".repeat(MAX_TEXT_CHARS + 1))).is_err());
        let check = column(ColumnKind::Checkbox, json!({}));
        assert!(check_value(&check, &json!(true)).is_ok());
        assert!(check_value(&check, &json!("true")).is_err());
        let dropdown = column(ColumnKind::Dropdown, json!({"labels": ["a", "b"]}));
        assert_eq!(
            check_value(&dropdown, &json!(["a", "a", "b"])).unwrap().value,
            json!(["a", "b"])
        );
        assert!(check_value(&dropdown, &json!(["c"])).is_err());
        let person = column(ColumnKind::Person, json!({}));
        let id = Uuid::now_v7();
        assert_eq!(check_value(&person, &json!([id.to_string()])).unwrap().people, vec![id]);
        assert!(check_value(&person, &json!(["nope"])).is_err());
        assert_eq!(check_value(&person, &Value::Null).unwrap().value, Value::Null);
    }

    #[test]
    fn text_follows_the_character_rule() {
        let text = column(ColumnKind::Text, json!({}));
        let long = column(ColumnKind::LongText, json!({}));
        let link = column(ColumnKind::Link, json!({}));
        for bad in ["a\0b", "a\u{1b}[1mb", "a\rb", "a\u{7f}b", "a\u{85}b"] {
            for c in [&text, &long] {
                let err = check_value(c, &json!(bad)).unwrap_err().to_string();
                assert!(err.contains("control characters"), "{bad:?}: {err}");
            }
            assert!(check_value(&link, &json!({"url": "https://x.example", "text": bad})).is_err());
            assert!(check_text("title", bad, MAX_TITLE_CHARS).is_err());
            assert!(check_long_text("body", bad, MAX_LONG_TEXT_CHARS).is_err());
            assert!(check_description(bad).is_err());
        }
        // Several lines only where several lines belong.
        assert!(check_value(&text, &json!("a\nb")).is_err());
        assert!(check_value(&long, &json!("a\n\tb")).is_ok());
        assert!(check_text("title", "a\nb", MAX_TITLE_CHARS).is_err());
        assert_eq!(check_long_text("body", " a\nb ", MAX_LONG_TEXT_CHARS).unwrap(), "a\nb");
        assert_eq!(check_description("").unwrap(), "");
        // Right-to-left text is content; in a URL it is a disguise.
        assert!(check_value(&text, &json!("\u{202e}abc")).is_ok());
        assert!(check_value(&link, &json!("https://example.com/\u{202e}gpj.exe")).is_err());
        assert!(check_value(&link, &json!("https://example.com/a\0")).is_err());
    }

    #[test]
    fn settings_by_type() {
        assert!(check_settings(ColumnKind::Status, None).is_err());
        assert!(check_settings(ColumnKind::Status, Some(&json!({"labels": []}))).is_err());
        assert!(check_settings(ColumnKind::Status, Some(&json!({"labels": ["a", "a"]}))).is_err());
        assert_eq!(
            check_settings(ColumnKind::Dropdown, Some(&json!({"labels": [" a ", "b"]}))).unwrap(),
            json!({"labels": ["a", "b"]})
        );
        assert_eq!(check_settings(ColumnKind::Text, None).unwrap(), json!({}));
        assert!(check_settings(ColumnKind::Text, Some(&json!({"x": 1}))).is_err());
    }
}
