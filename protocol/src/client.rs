//! What a client needs to know about the server before anyone signs in: `GET /config`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /config`: which optional features this server offers, so a client shows only the
/// controls that work (a Google sign-in button, billing pages). Public, and the same for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientConfig {
    /// Whether Google sign-in is configured (`GET /auth/google/start` leads to Google).
    pub google_sign_in: bool,
    /// Whether billing is configured (checkout and portal answer instead of 404).
    pub billing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn config_is_pinned() {
        let config = ClientConfig { google_sign_in: true, billing: false };
        assert_golden(&config, CONFIG_JSON, CONFIG_MSGPACK);
    }

    const CONFIG_JSON: &str = r#"{"google_sign_in":true,"billing":false}"#;
    const CONFIG_MSGPACK: &str = "82ae676f6f676c655f7369676e5f696ec3a762696c6c696e67c2";
}
