//! Postgres's own account of a phase, from `pg_stat_statements`: how many statements the
//! server's database ran and how long they spent executing, between two snapshots.
//!
//! The CPU record ([`crate::machine`]) says how much the database's backends cost; this says
//! where: statements per acknowledged update, execution time per update, and the statements
//! that took most of it. It needs the extension's library loaded at server start
//! (`shared_preload_libraries = 'pg_stat_statements'`, then a restart); without it, the meter
//! is absent and the scenario says so. Execution time is wall-clock inside the executor (lock
//! waits included, parse, bind and network not), so it is a share of the backend's work, not
//! its CPU.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

/// One statement's counters.
#[derive(Debug, Clone)]
struct Counters {
    text: String,
    calls: i64,
    exec_ms: f64,
}

/// The counters of every statement of the database at one moment, by query id.
#[derive(Debug, Clone, Default)]
pub struct StatementSnapshot(HashMap<i64, Counters>);

/// What ran between two snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct StatementUse {
    /// Statements executed.
    pub calls: i64,
    /// Milliseconds they spent executing.
    pub exec_ms: f64,
    /// The statements that took most of that time, most first (at most five).
    pub top: Vec<TopStatement>,
}

/// One statement's share of a phase.
#[derive(Debug, Clone, Serialize)]
pub struct TopStatement {
    /// The statement's normalized text, cut to 100 characters.
    pub query: String,
    /// Times it ran.
    pub calls: i64,
    /// Milliseconds it spent executing.
    pub exec_ms: f64,
}

impl StatementUse {
    /// Per unit of work: (statements, execution µs), or `None` for no work.
    pub fn per(&self, units: u64) -> Option<(f64, f64)> {
        (units > 0).then(|| {
            let units = units as f64;
            (self.calls as f64 / units, self.exec_ms * 1000.0 / units)
        })
    }
}

/// A connection reading `pg_stat_statements` for one database.
pub struct StatementMeter {
    conn: PgConnection,
}

/// The snapshot's own query is left out of it (it reads the view, so mentions it).
const SNAPSHOT: &str = "SELECT queryid, calls, total_exec_time, left(query, 100) AS text \
    FROM pg_stat_statements \
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
      AND toplevel AND queryid IS NOT NULL AND query NOT LIKE '%pg_stat_statements%'";

impl StatementMeter {
    /// Connects to the database at `url` and makes sure the extension's view exists there;
    /// `Err` says why there is no meter (most often: the library is not preloaded).
    pub async fn connect(url: &url::Url) -> Result<StatementMeter, String> {
        let mut conn = PgConnection::connect(url.as_str()).await.map_err(|e| e.to_string())?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut meter = StatementMeter { conn };
        meter.snapshot().await?;
        Ok(meter)
    }

    /// The counters now.
    pub async fn snapshot(&mut self) -> Result<StatementSnapshot, String> {
        let rows = sqlx::query(SNAPSHOT).fetch_all(&mut self.conn).await.map_err(|e| {
            // The usual reason, in the words an operator searches for.
            format!("{e} (is pg_stat_statements in shared_preload_libraries?)")
        })?;
        let mut counters = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("queryid").map_err(|e| e.to_string())?;
            let entry = Counters {
                text: row.try_get("text").map_err(|e| e.to_string())?,
                calls: row.try_get("calls").map_err(|e| e.to_string())?,
                exec_ms: row.try_get("total_exec_time").map_err(|e| e.to_string())?,
            };
            counters.insert(id, entry);
        }
        Ok(StatementSnapshot(counters))
    }
}

impl StatementSnapshot {
    /// What ran between `earlier` and this snapshot. A statement evicted from the view in
    /// between is left out; one new since is counted whole.
    pub fn since(&self, earlier: &StatementSnapshot) -> StatementUse {
        let mut moved: Vec<TopStatement> = self
            .0
            .iter()
            .map(|(id, now)| {
                let (calls, exec_ms) =
                    earlier.0.get(id).map_or((0, 0.0), |then| (then.calls, then.exec_ms));
                TopStatement {
                    query: now.text.split_whitespace().collect::<Vec<_>>().join(" "),
                    calls: (now.calls - calls).max(0),
                    exec_ms: (now.exec_ms - exec_ms).max(0.0),
                }
            })
            .filter(|s| s.calls > 0)
            .collect();
        moved.sort_by(|a, b| b.exec_ms.total_cmp(&a.exec_ms));
        let calls = moved.iter().map(|s| s.calls).sum();
        let exec_ms = moved.iter().map(|s| s.exec_ms).sum();
        moved.truncate(5);
        StatementUse { calls, exec_ms, top: moved }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(entries: &[(i64, i64, f64)]) -> StatementSnapshot {
        StatementSnapshot(
            entries
                .iter()
                .map(|&(id, calls, exec_ms)| {
                    (id, Counters { text: format!("SELECT  {id}"), calls, exec_ms })
                })
                .collect(),
        )
    }

    #[test]
    fn a_phase_counts_what_moved_between_its_snapshots() {
        let before = snapshot(&[(1, 10, 5.0), (2, 3, 1.0), (3, 7, 2.0)]);
        let after = snapshot(&[(1, 30, 25.0), (2, 3, 1.0), (4, 5, 4.0)]);
        let used = after.since(&before);
        // Statement 1 moved by 20 calls / 20 ms, 4 is new, 2 did not run, 3 was evicted.
        assert_eq!(used.calls, 25);
        assert!((used.exec_ms - 24.0).abs() < 1e-9);
        let order: Vec<&str> = used.top.iter().map(|s| s.query.as_str()).collect();
        assert_eq!(order, ["SELECT 1", "SELECT 4"]);
        let (statements, micros) = used.per(10).unwrap();
        assert!((statements - 2.5).abs() < 1e-9 && (micros - 2400.0).abs() < 1e-9);
        assert!(used.per(0).is_none());
    }
}
