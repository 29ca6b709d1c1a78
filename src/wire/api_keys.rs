//! API keys on the wire: a key as listed (never its secret or its hash), and the one answer that
//! carries the whole key.

use boardroom_protocol::api_keys as wire;
use boardroom_protocol::Scope;

use crate::storage::ApiKeyRow;

/// A key, without its secret. Stored scopes are the names the server wrote (parsed at creation),
/// so every one parses; one that did not would grant nothing and is not shown.
pub fn api_key(key: &ApiKeyRow) -> wire::ApiKey {
    wire::ApiKey {
        id: key.id,
        organization_id: key.organization_id,
        user_id: key.user_id,
        name: key.name.clone(),
        prefix: key.prefix.clone(),
        scopes: key.scopes.0.iter().filter_map(|s| Scope::parse(s)).collect(),
        rate_limit_per_minute: key.rate_limit_per_minute,
        created_at: key.created_at,
        expires_at: key.expires_at,
        revoked_at: key.revoked_at,
    }
}

/// The answer to creating a key: its fields and the whole key, shown this once.
pub fn created(row: &ApiKeyRow, key: String) -> wire::CreatedApiKey {
    wire::CreatedApiKey { api_key: api_key(row), key }
}

/// Keys as listed.
pub fn list<'a>(keys: impl IntoIterator<Item = &'a ApiKeyRow>) -> wire::ApiKeyList {
    wire::ApiKeyList { api_keys: keys.into_iter().map(api_key).collect() }
}
