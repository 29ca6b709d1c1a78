//! The health probes' answers: `GET /healthz` and `GET /readyz` (outside `/api/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`'s status: always `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// The process is up.
    Ok,
}

/// `GET /healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: Liveness,
}

/// Whether the server can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// The database answers and its migrations are current (HTTP 200).
    Ready,
    /// Not (HTTP 503).
    NotReady,
}

/// The database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// Postgres.
    Postgres,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: ReadyStatus,
    /// The database backend.
    pub backend: Backend,
    /// Whether the database answered.
    pub database: bool,
    /// Whether every migration the server knows is applied.
    pub migrations_current: bool,
    /// The versions of the migrations not yet applied.
    pub pending_migrations: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn probes_are_pinned() {
        assert_golden(&Health { status: Liveness::Ok }, HEALTH_JSON, HEALTH_MSGPACK);
        let ready = Readiness {
            status: ReadyStatus::NotReady,
            backend: Backend::Postgres,
            database: true,
            migrations_current: false,
            pending_migrations: vec![7],
        };
        assert_golden(&ready, READY_JSON, READY_MSGPACK);
    }

    const HEALTH_JSON: &str = r#"{"status":"ok"}"#;
    const HEALTH_MSGPACK: &str = "81a6737461747573a26f6b";
    const READY_JSON: &str = r#"{"status":"not_ready","backend":"postgres","database":true,"migrations_current":false,"pending_migrations":[7]}"#;
    const READY_MSGPACK: &str = "85a6737461747573a96e6f745f7265616479a76261636b656e64a8706f737467726573a86461746162617365c3b26d6967726174696f6e735f63757272656e74c2b270656e64696e675f6d6967726174696f6e739107";
}
