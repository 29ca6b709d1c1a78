//! Exports on the wire: the board export's query (`GET /boards/{board}/export`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What a board export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoardExportFormat {
    /// One row per item and one column per board column, values rendered for people.
    Csv,
    /// The board's snapshot (`boardroom_protocol::boards::Snapshot`).
    Json,
}

/// The query of `GET /boards/{board}/export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardExportQuery {
    /// `csv` or `json`.
    #[param(inline)]
    pub format: BoardExportFormat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn export_bodies_are_pinned() {
        assert_golden(
            &BoardExportQuery { format: BoardExportFormat::Csv },
            r#"{"format":"csv"}"#,
            "81a6666f726d6174a3637376",
        );
        assert_golden(
            &BoardExportQuery { format: BoardExportFormat::Json },
            r#"{"format":"json"}"#,
            "81a6666f726d6174a46a736f6e",
        );
    }
}
