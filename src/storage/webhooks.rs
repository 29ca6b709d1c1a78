//! Webhooks and their outbox: the subscriptions owners manage, and the durable deliveries the
//! webhook actor fills from `board_events` and works through.
//!
//! Every statement on a tenant table binds `organization_id`. Three statements span
//! organizations, because the delivery worker serves all of them: [`Store::webhook_boards_behind`]
//! and [`Store::due_webhook_deliveries`] (each row carries its organization id, and all follow-up
//! reads and writes go through [`TenantStore`] with it), and the retention purge
//! [`Store::prune_webhook_deliveries`].

use boardroom_actors::webhook::{Affected, DueDelivery, WebhookGrant};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{new_id, now, StorageError, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction, write_on_pool};

/// A webhook as owners see it (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// Dotted event kinds, or `*`.
    pub events: Json<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// Until when the previous secret also signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Whose access its deliveries ride on: who created it, or last set its URL or kinds or
    /// enabled it.
    pub created_by: Option<Uuid>,
    /// The API key they did it with; `None` for a session.
    pub created_by_key: Option<Uuid>,
    /// Why it is disabled: `consecutive_failures`, `owner`, `creator_unknown` (made before
    /// creators were recorded) or a lost-access reason such as `key_revoked_or_expired`.
    pub disabled_reason: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str = "id, organization_id, board_id, url, events, enabled, \
    consecutive_failures, previous_secret_expires_at, created_by, created_by_key, \
    disabled_reason, created_at, updated_at";

/// A new webhook. No `Debug`: it holds the signing secret, which must never reach a log.
#[derive(Clone)]
pub struct NewWebhook<'a> {
    /// Board.
    pub board_id: Uuid,
    /// Checked URL.
    pub url: &'a str,
    /// Validated kinds.
    pub events: &'a [String],
    /// Signing secret, as shown to the owner.
    pub secret: &'a str,
    /// Creator.
    pub created_by: Uuid,
    /// The API key the creator used; `None` for a session.
    pub created_by_key: Option<Uuid>,
    /// Most webhooks the board may have; one more is refused with [`WEBHOOK_LIMIT_REACHED`].
    pub max_per_board: i64,
}

/// The refusal of a webhook past the board's limit.
pub const WEBHOOK_LIMIT_REACHED: &str = "the board has as many webhooks as it may have";

/// Changes to a webhook; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    /// New URL (already checked).
    pub url: Option<String>,
    /// New kinds (already validated).
    pub events: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// The new creator (user, key) whose access the webhook now rides on: whoever sets its URL
    /// or kinds or enables it. `None` leaves it (a pure disable).
    pub creator: Option<(Uuid, Option<Uuid>)>,
}

/// A changed webhook, and what it was before.
#[derive(Debug, Clone)]
pub struct WebhookUpdate {
    /// The URL before the change.
    pub previous_url: String,
    /// Kinds before the change.
    pub previous_events: Vec<String>,
    /// Whether it was enabled before.
    pub was_enabled: bool,
    /// Whose access it rode on before (user, key).
    pub previous_creator: (Option<Uuid>, Option<Uuid>),
    /// The webhook now (`None` only if it was deleted right after the change).
    pub row: Option<WebhookRow>,
}

/// One delivery, as owners see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Id (also the `Boardroom-Delivery` header).
    pub id: Uuid,
    /// Webhook.
    pub webhook_id: Uuid,
    /// Event seq.
    pub seq: i64,
    /// Event kind.
    pub kind: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// When retrying stops.
    pub give_up_at: DateTime<Utc>,
    /// HTTP status of the last answer.
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The start of the last answer's body.
    pub response_excerpt: Option<String>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, seq, kind, status, attempts, next_attempt_at, \
    give_up_at, last_status_code, last_error, response_excerpt, created_at, updated_at";

/// Everything one attempt needs: the delivery, its webhook's URL and secrets, and the event.
/// No `Debug`: it holds the signing secrets, which must never reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct DeliveryJob {
    /// Delivery id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Webhook.
    pub webhook_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Event seq.
    pub seq: i64,
    /// Event kind.
    pub kind: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When retrying stops.
    pub give_up_at: DateTime<Utc>,
    /// Status (`pending` unless changed meanwhile).
    pub status: String,
    /// Where to send.
    pub url: String,
    /// Current secret.
    pub secret: String,
    /// Previous secret, during a rotation.
    pub previous_secret: Option<String>,
    /// Until when the previous secret signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Whether the webhook is enabled.
    pub enabled: bool,
    /// The event's data.
    pub payload: Json<Value>,
    /// The event's commit time.
    pub event_created_at: DateTime<Utc>,
}

/// How an attempt ended, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// `pending` (retry at `next_attempt_at`), `succeeded` or `failed`.
    pub status: &'static str,
    /// When to retry.
    pub next_attempt_at: DateTime<Utc>,
    /// HTTP status, if one came back.
    pub status_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Start of the answer's body.
    pub excerpt: Option<String>,
}

/// What recording an attempt did to its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookAfterAttempt {
    /// Failures since the last success.
    pub consecutive_failures: i64,
    /// Whether this attempt disabled the webhook.
    pub disabled_now: bool,
}

/// Events read per catch-up batch.
const CATCH_UP_BATCH: i64 = 500;

/// Whether a webhook subscribed to `kinds` wants an event of `kind`.
pub fn wants(kinds: &[String], kind: &str) -> bool {
    kinds.iter().any(|k| k == "*" || k == kind)
}

impl Store {
    /// Boards with an enabled webhook that has not enqueued up to the board's last event, as
    /// (organization, board). Spans organizations: the delivery worker serves all of them.
    pub async fn webhook_boards_behind(&self) -> StorageResult<Vec<(Uuid, Uuid)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid, Uuid)>(
                "SELECT DISTINCT w.organization_id, w.board_id FROM webhooks w \
                 JOIN boards b ON b.id = w.board_id AND b.organization_id = w.organization_id \
                 WHERE w.enabled AND w.last_enqueued_seq < b.seq",
            )
            .fetch_all(pool).await
        })?)
    }

    /// Deliveries still pending, of every organization (the metrics' outbox depth); counted on
    /// the `(status, next_attempt_at)` index.
    pub async fn webhook_outbox_pending(&self) -> StorageResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'",
            )
            .fetch_one(pool).await
        })?)
    }

    /// Removes finished (succeeded or failed) deliveries last changed before `before`; pending
    /// ones stay whatever their age. Spans organizations: it is retention maintenance.
    pub async fn prune_webhook_deliveries(&self, before: DateTime<Utc>) -> StorageResult<u64> {
        Ok(write_on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1",
            )
            .bind(before)
            .execute(pool).await.map(|d| d.rows_affected())
        })?)
    }

    /// The due head (lowest pending seq) of each enabled webhook's queue, oldest due first,
    /// with the webhook's creator and kinds (judged before the attempt). Spans organizations;
    /// each row names its organization.
    pub async fn due_webhook_deliveries(&self, limit: i64) -> StorageResult<Vec<DueDelivery>> {
        let rows: Vec<DueRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, DueRow>(
                "SELECT d.id, d.organization_id, d.webhook_id, w.board_id, w.created_by, \
                 w.created_by_key, w.events FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id AND w.organization_id = d.organization_id \
                 WHERE d.status = 'pending' AND w.enabled AND d.next_attempt_at <= $1 \
                 AND d.seq = (SELECT MIN(p.seq) FROM webhook_deliveries p \
                              WHERE p.organization_id = d.organization_id \
                              AND p.webhook_id = d.webhook_id AND p.status = 'pending') \
                 ORDER BY d.next_attempt_at LIMIT $2",
            )
            .bind(now()).bind(limit)
            .fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, organization_id, webhook_id, board_id, creator, creator_key, events)| {
                let grant = (webhook_id, organization_id, board_id, creator, creator_key, events);
                DueDelivery { id, webhook: grant_of(grant) }
            })
            .collect())
    }
}

/// A due head: delivery, organization, webhook, board, creator, creator's key, kinds.
type DueRow = (Uuid, Uuid, Uuid, Uuid, Option<Uuid>, Option<Uuid>, Json<Vec<String>>);

/// A webhook's id, organization, board, creator, creator's key and kinds, as selected.
type GrantRow = (Uuid, Uuid, Uuid, Option<Uuid>, Option<Uuid>, Json<Vec<String>>);

fn grant_of(
    (id, organization_id, board_id, creator, creator_key, events): GrantRow,
) -> WebhookGrant {
    WebhookGrant { id, organization_id, board_id, creator, creator_key, events: events.0 }
}

impl TenantStore<'_> {
    /// Creates a webhook that delivers the board's events from its current last seq on.
    pub async fn create_webhook(&self, new: &NewWebhook<'_>) -> StorageResult<WebhookRow> {
        let org = self.org_id();
        let id = new_id();
        let at = now();
        let backend = self.store.backend();
        transaction!(self.store, conn => {
            // Concurrent creations on one board take turns, so the count below cannot be
            // overtaken (SQLite's `BEGIN IMMEDIATE` serializes them already).
            if backend == super::Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
                    .bind(new.board_id)
                    .execute(&mut *conn).await?;
            }
            let seq: i64 = sqlx::query_scalar(
                "SELECT seq FROM boards WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(org).bind(new.board_id)
            .fetch_one(&mut *conn).await?;
            let existing: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM webhooks WHERE organization_id = $1 AND board_id = $2",
            )
            .bind(org).bind(new.board_id)
            .fetch_one(&mut *conn).await?;
            if existing >= new.max_per_board {
                return Err(super::StorageError::Rule(WEBHOOK_LIMIT_REACHED));
            }
            sqlx::query(
                "INSERT INTO webhooks (id, organization_id, board_id, url, events, secret, enabled, \
                 consecutive_failures, last_enqueued_seq, created_by, created_by_key, created_at, \
                 updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, true, 0, $7, $8, $10, $9, $9)",
            )
            .bind(id).bind(org).bind(new.board_id).bind(new.url).bind(Json(new.events))
            .bind(new.secret).bind(seq).bind(new.created_by).bind(at).bind(new.created_by_key)
            .execute(&mut *conn).await?;
            Ok(())
        })?;
        self.webhook(new.board_id, id).await?.ok_or(super::StorageError::NotFound)
    }

    /// The board's webhooks, oldest first.
    pub async fn webhooks(&self, board: Uuid) -> StorageResult<Vec<WebhookRow>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 AND board_id = $2 \
             ORDER BY id"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, WebhookRow>(&sql).bind(self.org_id()).bind(board).fetch_all(pool).await
        })?)
    }

    /// One webhook of the board.
    pub async fn webhook(&self, board: Uuid, id: Uuid) -> StorageResult<Option<WebhookRow>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 AND board_id = $2 \
             AND id = $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, WebhookRow>(&sql)
                .bind(self.org_id()).bind(board).bind(id)
                .fetch_optional(pool).await
        })?)
    }

    /// Applies `changes`; answers the webhook before and after. Re-enabling resets the failure
    /// count and starts from the board's current last event: what happened while disabled is
    /// not delivered.
    pub async fn update_webhook(
        &self,
        board: Uuid,
        id: Uuid,
        changes: &WebhookChanges,
    ) -> StorageResult<Option<WebhookUpdate>> {
        let org = self.org_id();
        let at = now();
        let before = transaction!(self.store, conn => {
            type Current = (bool, String, Json<Vec<String>>, Option<Uuid>, Option<Uuid>);
            let current: Option<Current> = sqlx::query_as(
                "SELECT enabled, url, events, created_by, created_by_key FROM webhooks \
                 WHERE organization_id = $1 AND board_id = $2 AND id = $3",
            )
            .bind(org).bind(board).bind(id)
            .fetch_optional(&mut *conn).await?;
            let Some((was_enabled, previous_url, previous_events, user, key)) = current else {
                return Ok(None);
            };
            if let Some((user, key)) = changes.creator {
                sqlx::query(
                    "UPDATE webhooks SET created_by = $3, created_by_key = $4, updated_at = $5 \
                     WHERE organization_id = $1 AND id = $2",
                )
                .bind(org).bind(id).bind(user).bind(key).bind(at)
                .execute(&mut *conn).await?;
            }
            if let Some(url) = &changes.url {
                sqlx::query("UPDATE webhooks SET url = $3, updated_at = $4 WHERE organization_id = $1 AND id = $2")
                    .bind(org).bind(id).bind(url).bind(at)
                    .execute(&mut *conn).await?;
            }
            if let Some(events) = &changes.events {
                sqlx::query("UPDATE webhooks SET events = $3, updated_at = $4 WHERE organization_id = $1 AND id = $2")
                    .bind(org).bind(id).bind(Json(events)).bind(at)
                    .execute(&mut *conn).await?;
            }
            match changes.enabled {
                Some(true) if !was_enabled => {
                    sqlx::query(
                        "UPDATE webhooks SET enabled = true, consecutive_failures = 0, updated_at = $3, \
                         disabled_reason = NULL, last_enqueued_seq = (SELECT seq FROM boards WHERE organization_id = $1 AND id = $4) \
                         WHERE organization_id = $1 AND id = $2",
                    )
                    .bind(org).bind(id).bind(at).bind(board)
                    .execute(&mut *conn).await?;
                }
                Some(false) if was_enabled => {
                    sqlx::query(
                        "UPDATE webhooks SET enabled = false, disabled_reason = 'owner', updated_at = $3 \
                         WHERE organization_id = $1 AND id = $2",
                    )
                    .bind(org).bind(id).bind(at)
                    .execute(&mut *conn).await?;
                }
                _ => {}
            }
            Ok(Some(WebhookUpdate {
                previous_url,
                previous_events: previous_events.0,
                was_enabled,
                previous_creator: (user, key),
                row: None,
            }))
        })?;
        let Some(mut update) = before else { return Ok(None) };
        update.row = self.webhook(board, id).await?;
        Ok(update.row.is_some().then_some(update))
    }

    /// The enabled webhooks `affected` names (of this organization), with their creators.
    pub async fn webhook_grants(&self, affected: Affected) -> StorageResult<Vec<WebhookGrant>> {
        let (filter, value) = match affected {
            Affected::Board { board, .. } => ("board_id", board),
            Affected::User { user, .. } => ("created_by", user),
            Affected::Key { key, .. } => ("created_by_key", key),
        };
        let sql = format!(
            "SELECT id, organization_id, board_id, created_by, created_by_key, events FROM webhooks \
             WHERE organization_id = $1 AND {filter} = $2 AND enabled ORDER BY id"
        );
        let rows: Vec<GrantRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, GrantRow>(&sql).bind(self.org_id()).bind(value).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(grant_of).collect())
    }

    /// Disables an enabled webhook whose creator lost access, recording `reason`. Returns
    /// whether this call disabled it (so one audit row is written, whoever races).
    pub async fn disable_webhook_for_access(&self, id: Uuid, reason: &str) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhooks SET enabled = false, disabled_reason = $3, updated_at = $4 \
                 WHERE organization_id = $1 AND id = $2 AND enabled",
            )
            .bind(self.org_id()).bind(id).bind(reason).bind(now())
            .execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Deletes a webhook and its deliveries. Returns whether it existed.
    pub async fn delete_webhook(&self, board: Uuid, id: Uuid) -> StorageResult<bool> {
        // The webhook actor may be enqueueing for this webhook at the same moment; the cascade
        // to its outbox can then deadlock with it, and Postgres aborts one side. Try again.
        let mut attempt = 0;
        loop {
            let result = write_on_pool!(self, pool => {
                sqlx::query("DELETE FROM webhooks WHERE organization_id = $1 AND board_id = $2 AND id = $3")
                    .bind(self.org_id()).bind(board).bind(id)
                    .execute(pool).await.map(|d| d.rows_affected())
            })
            .map_err(StorageError::from);
            match result {
                Err(err) if err.is_transient() && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
                other => return Ok(other? > 0),
            }
        }
    }

    /// Makes `secret` the signing secret; the old one keeps signing until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        board: Uuid,
        id: Uuid,
        secret: &str,
        previous_until: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhooks SET previous_secret = secret, previous_secret_expires_at = $4, \
                 secret = $5, updated_at = $6 \
                 WHERE organization_id = $1 AND board_id = $2 AND id = $3",
            )
            .bind(self.org_id()).bind(board).bind(id).bind(previous_until).bind(secret).bind(now())
            .execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// A webhook's deliveries, newest event first, at most `limit`.
    pub async fn webhook_deliveries(
        &self,
        webhook: Uuid,
        limit: i64,
    ) -> StorageResult<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE organization_id = $1 \
             AND webhook_id = $2 ORDER BY seq DESC LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(&sql)
                .bind(self.org_id()).bind(webhook).bind(limit)
                .fetch_all(pool).await
        })?)
    }

    /// Puts a delivery back in the queue, due now, with a fresh retry window. Returns whether
    /// it exists.
    pub async fn redeliver(
        &self,
        webhook: Uuid,
        delivery: Uuid,
        give_up_at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let at = now();
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, \
                 give_up_at = $5, updated_at = $4 \
                 WHERE organization_id = $1 AND webhook_id = $2 AND id = $3",
            )
            .bind(self.org_id()).bind(webhook).bind(delivery).bind(at).bind(give_up_at)
            .execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Fills the outbox of the board's enabled webhooks from `board_events`, past each one's
    /// last enqueued seq. Duplicates are ignored (unique on webhook and seq), so running it
    /// twice is harmless. Returns how many deliveries were added.
    pub async fn enqueue_webhook_deliveries(
        &self,
        board: Uuid,
        retry_window: chrono::Duration,
    ) -> StorageResult<u64> {
        let org = self.org_id();
        let hooks: Vec<(Uuid, Json<Vec<String>>, i64)> = on_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid, Json<Vec<String>>, i64)>(
                "SELECT id, events, last_enqueued_seq FROM webhooks \
                 WHERE organization_id = $1 AND board_id = $2 AND enabled",
            )
            .bind(org).bind(board)
            .fetch_all(pool).await
        })?;
        let mut added = 0u64;
        for (hook, kinds, mut last) in hooks {
            loop {
                let events = self.board_event_kinds(board, last, CATCH_UP_BATCH).await?;
                let Some(max) = events.last().map(|e| e.seq) else { break };
                let at = now();
                let give_up_at = at + retry_window;
                let wanted: Vec<_> = events.iter().filter(|e| wants(&kinds.0, &e.kind)).collect();
                let enqueued: Option<u64> = transaction!(self.store, conn => {
                    // The webhook's row first, and only while it is enabled: a deletion or a
                    // disabling racing this locks it first too, so the two queue rather than
                    // deadlock, and either these rows land before the disabling or none do.
                    let live = sqlx::query(
                        "UPDATE webhooks SET last_enqueued_seq = \
                         CASE WHEN last_enqueued_seq < $3 THEN $3 ELSE last_enqueued_seq END \
                         WHERE organization_id = $1 AND id = $2 AND enabled",
                    )
                    .bind(org).bind(hook).bind(max)
                    .execute(&mut *conn).await?
                    .rows_affected();
                    if live == 0 {
                        return Ok(None);
                    }
                    if wanted.is_empty() {
                        return Ok(Some(0));
                    }
                    // One statement for the page, not one per event.
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, board_id, \
                         seq, kind, status, attempts, next_attempt_at, give_up_at, created_at, updated_at) ",
                    );
                    q.push_values(&wanted, |mut row, event| {
                        row.push_bind(new_id()).push_bind(org).push_bind(hook).push_bind(board)
                            .push_bind(event.seq).push_bind(&event.kind).push("'pending'").push("0")
                            .push_bind(at).push_bind(give_up_at).push_bind(at).push_bind(at);
                    });
                    q.push(" ON CONFLICT (webhook_id, seq) DO NOTHING");
                    Ok(Some(q.build().execute(&mut *conn).await?.rows_affected()))
                })?;
                let Some(enqueued) = enqueued else { break };
                added += enqueued;
                last = max;
                if (events.len() as i64) < CATCH_UP_BATCH {
                    break;
                }
            }
        }
        Ok(added)
    }

    /// Claims a due delivery for one attempt by moving its `next_attempt_at` to `until`, so no
    /// other node (or a second dispatch) starts the same attempt; if this node dies mid-attempt,
    /// the claim lapses and the delivery is due again. Returns whether the claim is ours.
    pub async fn claim_delivery(
        &self,
        delivery: Uuid,
        until: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $3 \
                 WHERE organization_id = $1 AND id = $2 AND status = 'pending' \
                 AND next_attempt_at <= $4",
            )
            .bind(self.org_id()).bind(delivery).bind(until).bind(now())
            .execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// What an attempt at `delivery` needs, or `None` if it is gone.
    pub async fn delivery_job(&self, delivery: Uuid) -> StorageResult<Option<DeliveryJob>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryJob>(
                "SELECT d.id, d.organization_id, d.webhook_id, d.board_id, d.seq, d.kind, d.attempts, \
                 d.give_up_at, d.status, w.url, w.secret, w.previous_secret, \
                 w.previous_secret_expires_at, w.enabled, e.payload, e.created_at AS event_created_at \
                 FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id AND w.organization_id = d.organization_id \
                 JOIN board_events e ON e.board_id = d.board_id AND e.seq = d.seq \
                      AND e.organization_id = d.organization_id \
                 WHERE d.organization_id = $1 AND d.id = $2",
            )
            .bind(self.org_id()).bind(delivery)
            .fetch_optional(pool).await
        })?)
    }

    /// Records an attempt and its effect on the webhook's failure count; disables the webhook
    /// when a failure brings the count to `disable_after`.
    pub async fn record_attempt(
        &self,
        job: &DeliveryJob,
        record: &AttemptRecord,
        disable_after: i64,
    ) -> StorageResult<WebhookAfterAttempt> {
        let org = self.org_id();
        let at = now();
        let succeeded = record.status == "succeeded";
        transaction!(self.store, conn => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, \
                 next_attempt_at = $4, last_status_code = $5, last_error = $6, \
                 response_excerpt = $7, updated_at = $8 \
                 WHERE organization_id = $1 AND id = $2",
            )
            .bind(org).bind(job.id).bind(record.status).bind(record.next_attempt_at)
            .bind(record.status_code).bind(&record.error).bind(&record.excerpt).bind(at)
            .execute(&mut *conn).await?;
            if succeeded {
                sqlx::query("UPDATE webhooks SET consecutive_failures = 0 WHERE organization_id = $1 AND id = $2")
                    .bind(org).bind(job.webhook_id)
                    .execute(&mut *conn).await?;
                return Ok(WebhookAfterAttempt { consecutive_failures: 0, disabled_now: false });
            }
            let row: Option<(i64, bool)> = sqlx::query_as(
                "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 \
                 WHERE organization_id = $1 AND id = $2 RETURNING consecutive_failures, enabled",
            )
            .bind(org).bind(job.webhook_id)
            .fetch_optional(&mut *conn).await?;
            let Some((failures, enabled)) = row else {
                return Ok(WebhookAfterAttempt { consecutive_failures: 0, disabled_now: false });
            };
            let disable = enabled && failures >= disable_after;
            if disable {
                sqlx::query(
                    "UPDATE webhooks SET enabled = false, disabled_reason = 'consecutive_failures', \
                     updated_at = $3 WHERE organization_id = $1 AND id = $2",
                )
                .bind(org).bind(job.webhook_id).bind(at)
                .execute(&mut *conn).await?;
            }
            Ok(WebhookAfterAttempt { consecutive_failures: failures, disabled_now: disable })
        })
    }
}
