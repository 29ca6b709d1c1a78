//! Exports on the wire: the board export's query (`GET /boards/{board}/export`) and a personal
//! data export's state (`/me/exports`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

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

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Being built.
    Pending,
    /// Built: `GET …/download` serves it until `expires_at`.
    Ready,
    /// The build failed; ask for a new one.
    Failed,
}

/// A personal data export (`POST /me/exports` answers it 202, `GET /me/exports/{id}` after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Export {
    /// Id.
    pub id: Uuid,
    /// Where it stands.
    pub status: ExportStatus,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it stops being served and is deleted (then `404`).
    pub expires_at: DateTime<Utc>,
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

    #[test]
    fn an_export_is_pinned() {
        use crate::golden::{at, id};
        assert_golden(
            &Export {
                id: id(1),
                status: ExportStatus::Ready,
                created_at: at("2026-11-30T06:00:00Z"),
                expires_at: at("2026-12-07T06:00:00Z"),
            },
            r#"{"id":"00000000-0000-0000-0000-000000000001","status":"ready","created_at":"2026-11-30T06:00:00Z","expires_at":"2026-12-07T06:00:00Z"}"#,
            "84a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031\
             a6737461747573a57265616479aa637265617465645f6174b4323032362d31312d33305430363a30303a\
             30305aaa657870697265735f6174b4323032362d31322d30375430363a30303a30305a",
        );
    }
}
