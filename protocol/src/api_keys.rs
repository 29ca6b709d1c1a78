//! API keys on the wire: the key as listed (never its secret), the one answer that carries the
//! whole key, and the bodies that create and change keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::scope::Scope;

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// The one organization it acts in.
    pub organization_id: Uuid,
    /// The user it acts as.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// The key's visible start, to recognize it by.
    pub prefix: String,
    /// What it may do, sorted.
    pub scopes: Vec<Scope>,
    /// Requests per minute it may make.
    pub rate_limit_per_minute: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /orgs/{org}/api-keys`: the new key, whole, answered this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's fields.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The whole key, for `Authorization: Bearer`; never shown again.
    pub key: String,
}

/// `GET /orgs/{org}/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// The caller's keys (an admin's: every key of the organization).
    pub api_keys: Vec<ApiKey>,
}

/// `POST /orgs/{org}/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateApiKey {
    /// Name.
    pub name: String,
    /// Scope names, at least one (texts, so an unknown one is refused as `validation_failed`
    /// with the list of known ones).
    pub scopes: Vec<String>,
    /// Requests per minute, 1 to the server's maximum; default the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// When it stops working; must be in the future. Default never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PATCH /orgs/{org}/api-keys/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateApiKey {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New scopes (replacing the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// New rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{assert_golden, at, id};

    fn key() -> ApiKey {
        ApiKey {
            id: id(12),
            organization_id: id(2),
            user_id: id(6),
            name: "CI".into(),
            prefix: "brk_abcdefgh".into(),
            scopes: vec![Scope::BoardsRead, Scope::ItemsWrite],
            rate_limit_per_minute: 600,
            created_at: at("2026-01-02T03:04:05.000006Z"),
            expires_at: Some(at("2027-01-01T00:00:00Z")),
            revoked_at: None,
        }
    }

    #[test]
    fn keys_are_pinned() {
        assert_golden(&key(), KEY_JSON, KEY_MSGPACK);
        let created = CreatedApiKey { api_key: key(), key: "brk_abcdefgh_secret".into() };
        assert_golden(&created, CREATED_JSON, CREATED_MSGPACK);
        assert_golden(&ApiKeyList { api_keys: vec![key()] }, LIST_JSON, LIST_MSGPACK);
    }

    #[test]
    fn bodies_are_pinned() {
        let create = CreateApiKey {
            name: "CI".into(),
            scopes: vec!["boards:read".into()],
            rate_limit_per_minute: Some(60),
            expires_at: None,
        };
        assert_golden(&create, CREATE_JSON, CREATE_MSGPACK);
        let update = UpdateApiKey { scopes: Some(vec![]), ..UpdateApiKey::default() };
        assert_golden(&update, UPDATE_JSON, UPDATE_MSGPACK);
    }

    const KEY_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000c","organization_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000006","name":"CI","prefix":"brk_abcdefgh","scopes":["boards:read","items:write"],"rate_limit_per_minute":600,"created_at":"2026-01-02T03:04:05.000006Z","expires_at":"2027-01-01T00:00:00Z","revoked_at":null}"#;
    const KEY_MSGPACK: &str = "8aa26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303063af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a46e616d65a24349a6707265666978ac62726b5f6162636465666768a673636f70657392ab626f617264733a72656164ab6974656d733a7772697465b5726174655f6c696d69745f7065725f6d696e757465cd0258aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa657870697265735f6174b4323032372d30312d30315430303a30303a30305aaa7265766f6b65645f6174c0";
    const CREATED_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000c","organization_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000006","name":"CI","prefix":"brk_abcdefgh","scopes":["boards:read","items:write"],"rate_limit_per_minute":600,"created_at":"2026-01-02T03:04:05.000006Z","expires_at":"2027-01-01T00:00:00Z","revoked_at":null,"key":"brk_abcdefgh_secret"}"#;
    const CREATED_MSGPACK: &str = "8ba26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303063af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a46e616d65a24349a6707265666978ac62726b5f6162636465666768a673636f70657392ab626f617264733a72656164ab6974656d733a7772697465b5726174655f6c696d69745f7065725f6d696e757465cd0258aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa657870697265735f6174b4323032372d30312d30315430303a30303a30305aaa7265766f6b65645f6174c0a36b6579b362726b5f61626364656667685f736563726574";
    const LIST_JSON: &str = r#"{"api_keys":[{"id":"00000000-0000-0000-0000-00000000000c","organization_id":"00000000-0000-0000-0000-000000000002","user_id":"00000000-0000-0000-0000-000000000006","name":"CI","prefix":"brk_abcdefgh","scopes":["boards:read","items:write"],"rate_limit_per_minute":600,"created_at":"2026-01-02T03:04:05.000006Z","expires_at":"2027-01-01T00:00:00Z","revoked_at":null}]}"#;
    const LIST_MSGPACK: &str = "81a86170695f6b657973918aa26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303063af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a46e616d65a24349a6707265666978ac62726b5f6162636465666768a673636f70657392ab626f617264733a72656164ab6974656d733a7772697465b5726174655f6c696d69745f7065725f6d696e757465cd0258aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa657870697265735f6174b4323032372d30312d30315430303a30303a30305aaa7265766f6b65645f6174c0";
    const CREATE_JSON: &str =
        r#"{"name":"CI","scopes":["boards:read"],"rate_limit_per_minute":60}"#;
    const CREATE_MSGPACK: &str = "83a46e616d65a24349a673636f70657391ab626f617264733a72656164b5726174655f6c696d69745f7065725f6d696e7574653c";
    const UPDATE_JSON: &str = r#"{"scopes":[]}"#;
    const UPDATE_MSGPACK: &str = "81a673636f70657390";
}
