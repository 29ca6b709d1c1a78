//! What one board may hold: how many columns, groups and items, and how large an item's values
//! and an update's body may grow.
//!
//! A self-registered user can create boards; without these bounds one board (and the memory of
//! the actor that holds it, the log every subscriber replays, the snapshot every client loads)
//! could grow without end. The board actor checks them against its own state for every command
//! it applies. It applies one command at a time, and a command that waits in the batch is
//! already part of that state, so concurrent creates cannot pass a bound together.
//!
//! A count bound reached is `limit_reached` (422); a size bound is `content_too_large` (413).
//! Neither changes anything.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::domain::BoardError;

/// Default for [`BoardLimits::columns`].
pub const DEFAULT_MAX_COLUMNS: usize = 200;
/// Default for [`BoardLimits::groups`].
pub const DEFAULT_MAX_GROUPS: usize = 1_000;
/// Default for [`BoardLimits::items`].
pub const DEFAULT_MAX_ITEMS: usize = 100_000;
/// Default for [`BoardLimits::item_values_bytes`]: 256 KiB.
pub const DEFAULT_MAX_ITEM_VALUES_BYTES: usize = 256 * 1024;
/// Default for [`BoardLimits::update_body_bytes`]: 64 KiB.
pub const DEFAULT_MAX_UPDATE_BODY_BYTES: usize = 64 * 1024;

/// Default for [`BoardLimits::attachments_per_item`].
pub const DEFAULT_MAX_ATTACHMENTS_PER_ITEM: usize = 100;

/// The bounds of every board, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardLimits {
    /// Most columns on a board.
    pub columns: usize,
    /// Most groups on a board.
    pub groups: usize,
    /// Most items on a board, archived ones included (they are held and replayed alike).
    pub items: usize,
    /// Most bytes of an item's values, serialized as JSON (`{"<column id>": value, …}`).
    pub item_values_bytes: usize,
    /// Most bytes (UTF-8) of an update's body.
    pub update_body_bytes: usize,
    /// Most files attached to one item (its comments' included).
    pub attachments_per_item: usize,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            columns: DEFAULT_MAX_COLUMNS,
            groups: DEFAULT_MAX_GROUPS,
            items: DEFAULT_MAX_ITEMS,
            item_values_bytes: DEFAULT_MAX_ITEM_VALUES_BYTES,
            update_body_bytes: DEFAULT_MAX_UPDATE_BODY_BYTES,
            attachments_per_item: DEFAULT_MAX_ATTACHMENTS_PER_ITEM,
        }
    }
}

impl BoardLimits {
    /// Refuses one more column when the board holds `held`.
    pub fn room_for_column(&self, held: usize) -> Result<(), BoardError> {
        room_for("columns", held, self.columns)
    }

    /// Refuses one more group when the board holds `held`.
    pub fn room_for_group(&self, held: usize) -> Result<(), BoardError> {
        room_for("groups", held, self.groups)
    }

    /// Refuses one more item when the board holds `held`.
    pub fn room_for_item(&self, held: usize) -> Result<(), BoardError> {
        room_for("items", held, self.items)
    }

    /// Refuses one more attachment on an item that holds `held`.
    pub fn room_for_attachment(&self, held: usize) -> Result<(), BoardError> {
        if held >= self.attachments_per_item {
            return Err(BoardError::LimitReached(format!(
                "an item holds at most {} attachments; delete some first",
                self.attachments_per_item
            )));
        }
        Ok(())
    }

    /// Refuses item values larger, serialized, than the bound.
    pub fn check_item_values(&self, values: &BTreeMap<Uuid, Value>) -> Result<(), BoardError> {
        let size = serialized_len(values);
        if size > self.item_values_bytes {
            return Err(BoardError::TooLarge(format!(
                "an item's values may take at most {} bytes as JSON; these would take {size}",
                self.item_values_bytes
            )));
        }
        Ok(())
    }

    /// Refuses an update body of more bytes than the bound.
    pub fn check_update_body(&self, body: &str) -> Result<(), BoardError> {
        if body.len() > self.update_body_bytes {
            return Err(BoardError::TooLarge(format!(
                "an update's body may take at most {} bytes; this one takes {}",
                self.update_body_bytes,
                body.len()
            )));
        }
        Ok(())
    }
}

fn room_for(what: &str, held: usize, max: usize) -> Result<(), BoardError> {
    if held >= max {
        return Err(BoardError::LimitReached(format!(
            "a board holds at most {max} {what}; delete some first"
        )));
    }
    Ok(())
}

/// Bytes of `value` serialized as compact JSON, counted without building the text.
pub fn serialized_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Values and maps of them always serialize; were one not to, it counts as unbounded.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_stop_at_the_bound() {
        let limits = BoardLimits { columns: 3, groups: 2, items: 1, ..BoardLimits::default() };
        assert!(limits.room_for_column(2).is_ok());
        assert!(matches!(limits.room_for_column(3), Err(BoardError::LimitReached(_))));
        assert!(matches!(limits.room_for_group(2), Err(BoardError::LimitReached(_))));
        assert!(limits.room_for_item(0).is_ok());
        assert!(matches!(limits.room_for_item(1), Err(BoardError::LimitReached(_))));
    }

    #[test]
    fn sizes_are_the_serialized_bytes() {
        let column = Uuid::nil();
        let values = BTreeMap::from([(column, json!("é\"x"))]);
        let exact = serde_json::to_vec(&values).unwrap().len();
        assert_eq!(serialized_len(&values), exact);
        let limits = BoardLimits { item_values_bytes: exact, ..BoardLimits::default() };
        assert!(limits.check_item_values(&values).is_ok());
        let limits = BoardLimits { item_values_bytes: exact - 1, ..BoardLimits::default() };
        assert!(matches!(limits.check_item_values(&values), Err(BoardError::TooLarge(_))));
        // Bytes, not characters: four two-byte characters.
        let limits = BoardLimits { update_body_bytes: 7, ..BoardLimits::default() };
        assert!(matches!(limits.check_update_body("éééé"), Err(BoardError::TooLarge(_))));
        assert!(limits.check_update_body("ééé").is_ok());
    }
}
