//! The audit log on the wire: `GET /orgs/{org}/audit-log`, newest first, for admins.
//!
//! (`audit verify` answers on the command line only; it has no wire shape.)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the log (the whole server's, so an organization's rows have gaps).
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// What happened, such as `member.added` (the server's list of actions, append-only).
    pub action: String,
    /// Who did it.
    #[schema(required = true)]
    pub actor_id: Option<Uuid>,
    /// What it was done to (an id, as text).
    #[schema(required = true)]
    pub target: Option<String>,
    /// The client address.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Whether a superadmin acted outside their own organizations.
    pub bypass: bool,
    /// Details of the action (an object; its fields depend on the action).
    pub metadata: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// `GET /orgs/{org}/audit-log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    /// The rows, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for older rows; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<i64>,
}

/// The query of `GET /orgs/{org}/audit-log`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows older than this `seq` (the previous page's `next_cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    /// Only this action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Page size, 1 to 200; default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::golden::{assert_golden, at, id};

    #[test]
    fn audit_log_is_pinned() {
        let log = AuditLog {
            entries: vec![AuditEntry {
                seq: 42,
                id: id(15),
                action: "member.added".into(),
                actor_id: Some(id(6)),
                target: Some(id(8).to_string()),
                ip: Some("127.0.0.1".into()),
                user_agent: None,
                bypass: false,
                metadata: json!({"role": "member"}),
                created_at: at("2026-01-02T03:04:05.000006Z"),
            }],
            next_cursor: None,
        };
        assert_golden(&log, LOG_JSON, LOG_MSGPACK);
        let query =
            AuditQuery { cursor: Some(42), action: Some("login.failed".into()), limit: None };
        assert_golden(&query, QUERY_JSON, QUERY_MSGPACK);
    }

    const LOG_JSON: &str = r#"{"entries":[{"seq":42,"id":"00000000-0000-0000-0000-00000000000f","action":"member.added","actor_id":"00000000-0000-0000-0000-000000000006","target":"00000000-0000-0000-0000-000000000008","ip":"127.0.0.1","user_agent":null,"bypass":false,"metadata":{"role":"member"},"created_at":"2026-01-02T03:04:05.000006Z"}],"next_cursor":null}"#;
    const LOG_MSGPACK: &str = "82a7656e7472696573918aa37365712aa26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303066a6616374696f6eac6d656d6265722e6164646564a86163746f725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a6746172676574d92430303030303030302d303030302d303030302d303030302d303030303030303030303038a26970a93132372e302e302e31aa757365725f6167656e74c0a6627970617373c2a86d6574616461746181a4726f6c65a66d656d626572aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aab6e6578745f637572736f72c0";
    const QUERY_JSON: &str = r#"{"cursor":42,"action":"login.failed"}"#;
    const QUERY_MSGPACK: &str = "82a6637572736f722aa6616374696f6eac6c6f67696e2e6661696c6564";
}
