//! A board as CSV: one row per item (archived ones too), the item's name and group, then one
//! column per board column in the board's order, each value rendered as a person reads it
//! (a status's label, people's names, `YYYY-MM-DD`, `yes`/`no`, a link's text and URL).
//!
//! Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` (and some read a leading tab
//! or carriage return the same way) as a formula, so any such cell that came from someone's
//! text is written with a leading `'` (CSV injection). Quoting is the `csv` crate's.

use std::collections::HashMap;

use boardroom_actors::board::Snapshot;
use boardroom_actors::domain::{Column, ColumnKind};
use serde_json::Value;
use uuid::Uuid;

/// The CSV of `snapshot`'s items; `names` gives people's names by user id (someone not in it,
/// who left the organization say, is shown by id).
pub fn csv(snapshot: &Snapshot, names: &HashMap<Uuid, String>) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut header = vec![safe("Item"), safe("Group")];
    header.extend(snapshot.columns.iter().map(|c| safe(&c.title)));
    header.push(safe("Archived"));
    writer.write_record(&header)?;
    let groups: HashMap<Uuid, &str> =
        snapshot.groups.iter().map(|g| (g.id, g.title.as_str())).collect();
    for item in &snapshot.items {
        let mut row = Vec::with_capacity(snapshot.columns.len() + 3);
        row.push(safe(&item.name));
        row.push(safe(groups.get(&item.group_id).copied().unwrap_or_default()));
        for column in &snapshot.columns {
            let value = item.values.get(&column.id).unwrap_or(&Value::Null);
            row.push(render(column, value, names));
        }
        row.push(yes_no(item.archived_at.is_some()).to_owned());
        writer.write_record(&row)?;
    }
    writer.into_inner().map_err(|err| anyhow::anyhow!("writing the CSV: {}", err.error()))
}

/// One value of `column`, as a person reads it.
fn render(column: &Column, value: &Value, names: &HashMap<Uuid, String>) -> String {
    match (column.kind, value) {
        (_, Value::Null) => String::new(),
        // A JSON number cannot carry a formula; a negative number stays a number.
        (ColumnKind::Number, Value::Number(n)) => n.to_string(),
        (ColumnKind::Checkbox, Value::Bool(b)) => yes_no(*b).to_owned(),
        (ColumnKind::Person, Value::Array(ids)) => safe(
            &ids.iter()
                .filter_map(Value::as_str)
                .map(|id| {
                    Uuid::try_parse(id)
                        .ok()
                        .and_then(|id| names.get(&id).cloned())
                        .unwrap_or_else(|| id.to_owned())
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (ColumnKind::Dropdown, Value::Array(labels)) => {
            safe(&labels.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        }
        (ColumnKind::Link, Value::Object(link)) => {
            let url = link.get("url").and_then(Value::as_str).unwrap_or_default();
            match link.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => safe(&format!("{text} ({url})")),
                _ => safe(url),
            }
        }
        // Text, long text, status (its label), dates (already `YYYY-MM-DD`), a link as a string.
        (_, Value::String(text)) => safe(text),
        // A value the column's type no longer describes (its type is checked on write): its JSON.
        (_, other) => safe(&other.to_string()),
    }
}

const fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// `text` as a cell no spreadsheet runs as a formula.
fn safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(safe(cell), format!("'{cell}"));
        }
        assert_eq!(safe("a=1"), "a=1");
        assert_eq!(safe(""), "");
    }
}
