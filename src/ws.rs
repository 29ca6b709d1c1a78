//! The WebSocket gateway: `GET /api/v1/ws` and `POST /api/v1/ws/ticket`.
//!
//! Over HTTP/2 (ALPN `h2` on the TLS listener) a socket opens with an extended `CONNECT`
//! (RFC 8441) on the same path: the server announces `SETTINGS_ENABLE_CONNECT_PROTOCOL`, so
//! browsers that negotiated `h2` open their sockets that way, and the route answers it exactly
//! as it answers the HTTP/1.1 `GET` upgrade.
//!
//! ## Layout
//! - this module: the upgrade (origin allowlist, credentials, subprotocol, socket limits) and
//!   the [`Gateway`] every connection shares.
//! - [`connection`]: one connection's reader (requests, subscriptions, replays, re-checks) and
//!   writer.
//! - [`outbox`]: a connection's byte-bounded outbound queue, its control queue and its close
//!   signal.
//! - [`fanout`]: committed board events, encoded once per encoding, to the subscribed sockets.
//! - [`delivery`]: the runtime the connections' writers run on, apart from the rest.
//! - [`tickets`]: single-use tickets for browsers, in the database so any node redeems them.
//!
//! Everything is refused before the upgrade with the usual JSON error body: a foreign `Origin`
//! (403), missing or bad credentials (401), Boardroom subprotocols of another protocol version
//! only (426, naming the supported ones), other unknown subprotocols only (400). Bots send
//! `Authorization: Bearer <JWT | API key>`; browsers send `?ticket=`. A browser's cookie alone
//! never opens a socket: any page could make the browser send it.

pub mod connection;
pub mod delivery;
pub mod fanout;
pub mod outbox;
pub mod tickets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Json;
use boardroom_actors::event_bus::EventBus;
use boardroom_protocol::codec::subprotocol_version;
use boardroom_protocol::identity::WsTicket;
use boardroom_protocol::{Encoding, ErrorCode, PROTOCOL_VERSION};
use serde::Deserialize;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::caller::credential;
use crate::auth::{Caller, RequestMeta};
use crate::config::Settings;
use crate::error::ApiError;
use crate::state::AppState;
use connection::{Accepted, Limits};
use delivery::Delivery;
use fanout::Fanout;
use tickets::{Tickets, MAX_TICKETS_PER_CREDENTIAL, TICKET_TTL};

/// Bytes one read of a socket takes at most, and the read buffer every socket keeps. tungstenite
/// zero-fills the buffer up to this before each read, so all of it is resident in every idle
/// socket: 4 KiB here was a third of an idle socket's memory. Client frames are a few hundred
/// bytes; a larger one grows the buffer to its size and is read in steps of this.
const READ_BUFFER: usize = 1024;
/// Bytes written before the socket is flushed.
const WRITE_BUFFER: usize = 8 * 1024;
/// The most a WebSocket frame's header adds to its payload.
const FRAME_HEADER_BYTES: usize = 14;

/// What every connection shares: the fan-out, the allowed origins, the open
/// sockets per user, shutdown.
pub struct Gateway {
    fanout: Arc<Fanout>,
    delivery: Delivery,
    origins: Vec<String>,
    sockets: Arc<SocketCounts>,
    max_sockets_per_user: u32,
    shutdown: watch::Sender<bool>,
}

/// Open sockets per user, and their outboxes (to reach them when the user's organization
/// membership changes).
#[derive(Default)]
struct SocketCounts(dashmap::DashMap<Uuid, UserSockets>);

#[derive(Default)]
struct UserSockets {
    open: u32,
    outboxes: Vec<std::sync::Weak<outbox::Outbox>>,
}

/// One open socket counted against its user; uncounted when dropped (the connection ended,
/// or the upgrade never completed).
pub struct SocketSlot {
    counts: Arc<SocketCounts>,
    user: Uuid,
}

impl SocketSlot {
    /// Registers the connection's outbox under its user.
    pub fn attach(&self, outbox: &Arc<outbox::Outbox>) {
        if let Some(mut sockets) = self.counts.0.get_mut(&self.user) {
            sockets.outboxes.retain(|o| o.strong_count() > 0);
            sockets.outboxes.push(Arc::downgrade(outbox));
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.counts.0.remove_if_mut(&self.user, |_, sockets| {
            sockets.open = sockets.open.saturating_sub(1);
            sockets.outboxes.retain(|o| o.strong_count() > 0);
            sockets.open == 0
        });
    }
}

impl Gateway {
    /// Starts the fan-out on `bus` and the writers' threads. Must run inside the tokio runtime.
    pub fn start(settings: &Settings, bus: &EventBus) -> std::io::Result<Gateway> {
        let threads = settings
            .ws_delivery_threads
            .map_or_else(Delivery::default_threads, |threads| threads as usize);
        let delivery = Delivery::start(threads)?;
        let fanout = Arc::new(Fanout::default());
        let (shutdown, stop) = watch::channel(false);
        tokio::spawn(fanout.clone().run(bus.clone(), stop));
        Ok(Gateway {
            fanout,
            delivery,
            origins: allowed_origins(settings),
            sockets: Arc::default(),
            max_sockets_per_user: settings.ws_max_sockets_per_user,
            shutdown,
        })
    }

    /// Counts a new socket of `user`, unless they already hold the most allowed.
    fn open_socket(&self, user: Uuid) -> Result<SocketSlot, ApiError> {
        let mut sockets = self.sockets.0.entry(user).or_default();
        let open = &mut sockets.open;
        if *open >= self.max_sockets_per_user {
            crate::metrics::rate_limited(crate::metrics::Limit::WsSockets);
            let mut err = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "this user has {} WebSockets open, the most allowed; close one first",
                    *open
                ),
            );
            err.set_retry_after(5);
            return Err(err);
        }
        *open += 1;
        Ok(SocketSlot { counts: self.sockets.clone(), user })
    }

    /// How many sockets `user` holds open (tests and metrics).
    pub fn open_sockets(&self, user: Uuid) -> u32 {
        self.sockets.0.get(&user).map_or(0, |sockets| sockets.open)
    }

    /// `user`'s membership or role in an organization changed: each of their sockets re-checks
    /// its subscriptions now, not at its next periodic re-check.
    pub fn recheck_user(&self, user: Uuid) {
        self.control_user(user, outbox::Control::RecheckAll);
    }

    /// `user`'s sessions, API keys or superadmin flag changed: each of their sockets re-checks
    /// its credential (closing 4001 if it ended) and then its subscriptions, now.
    pub fn recheck_credentials(&self, user: Uuid) {
        self.control_user(user, outbox::Control::RecheckCredential);
    }

    fn control_user(&self, user: Uuid, control: outbox::Control) {
        let outboxes: Vec<Arc<outbox::Outbox>> = match self.sockets.0.get(&user) {
            Some(sockets) => sockets.outboxes.iter().filter_map(std::sync::Weak::upgrade).collect(),
            None => return,
        };
        for outbox in outboxes {
            outbox.control(control);
        }
    }

    /// The fan-out.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// The runtime the connections' writers run on.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Closes every socket (code 1001) and stops the fan-out.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Flips to true when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        normalize_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }
}

fn normalize_origin(origin: &str) -> Option<String> {
    crate::config::parse_origin(origin).ok()
}

fn allowed_origins(settings: &Settings) -> Vec<String> {
    if settings.ws_origins.is_empty() {
        return settings
            .public_url()
            .ok()
            .and_then(|u| normalize_origin(u.as_str()))
            .into_iter()
            .collect();
    }
    settings.ws_origins.iter().filter_map(|o| normalize_origin(o)).collect()
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // OpenAPI has no CONNECT operation: the documented `GET` stands for both, and the extended
    // CONNECT of HTTP/2 is added to the same method router, so it can never drift from it.
    let (schemas, paths, upgrade_route) = routes!(upgrade);
    let upgrade_route = upgrade_route.on(MethodFilter::CONNECT, upgrade);
    OpenApiRouter::new().routes((schemas, paths, upgrade_route)).routes(routes!(ticket))
}

/// The token the request authenticated with (header, else cookie).
fn presented_token(headers: &HeaderMap) -> Option<String> {
    credential(headers).map(|c| c.token().to_owned()).filter(|token| !token.is_empty())
}

/// `POST /ws/ticket`: a single-use ticket for `?ticket=`, valid for a short while.
#[utoipa::path(post, path = "/ws/ticket", tag = "realtime", operation_id = "ws_ticket",
    summary = "A single-use ticket for `/ws?ticket=`, valid 30 seconds",
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "The ticket",
        body = WsTicket), crate::http::openapi::WriteErrors))]
async fn ticket(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<WsTicket>, ApiError> {
    let credential = presented_token(&headers)
        .ok_or_else(|| ApiError::unauthenticated("authentication required"))?;
    let tickets = Tickets::new(state.store().clone());
    let issued = tickets.issue(state.auth().tokens(), caller.credential_id(), &credential).await?;
    let ticket = issued.map_err(|_| {
        crate::metrics::rate_limited(crate::metrics::Limit::WsTickets);
        let mut err = ApiError::new(
            ErrorCode::RateLimited,
            format!("this session or key holds {MAX_TICKETS_PER_CREDENTIAL} unused tickets, the most allowed"),
        );
        err.set_retry_after(TICKET_TTL.as_secs());
        err
    })?;
    Ok(Json(WsTicket { ticket, expires_in: TICKET_TTL.as_secs() }))
}

#[derive(Deserialize)]
struct UpgradeQuery {
    ticket: Option<String>,
}

/// The encoding the client asked for; JSON when it named none. Offering only Boardroom
/// subprotocols of another protocol version is `426 Upgrade Required` (see [`refusal`]); only
/// unrelated names is `400`.
fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(Encoding::Json);
    }
    if let Some(encoding) = offered.iter().find_map(|p| Encoding::from_subprotocol(p)) {
        return Ok(encoding);
    }
    let supported = Encoding::supported_subprotocols();
    let other_version = offered
        .iter()
        .filter_map(|p| subprotocol_version(p))
        .find(|&version| version != PROTOCOL_VERSION);
    Err(match other_version {
        Some(version) => ApiError::new(
            ErrorCode::UnsupportedProtocolVersion,
            format!(
                "protocol version {version} is not supported; this server speaks version \
                 {PROTOCOL_VERSION}: offer {supported}"
            ),
        ),
        None => {
            ApiError::bad_request(format!("unsupported WebSocket subprotocol; offer {supported}"))
        }
    })
}

/// The answer to a refused upgrade. `426 Upgrade Required` also names what to upgrade to:
/// `Upgrade: websocket` (RFC 9110 requires it) and the supported subprotocols in
/// `Sec-WebSocket-Protocol`, so a client can pick one without parsing the message.
fn refusal(err: ApiError) -> Response {
    let upgrade_required = err.code() == ErrorCode::UnsupportedProtocolVersion;
    let mut response = err.into_response();
    if upgrade_required {
        if let Ok(supported) = HeaderValue::from_str(&Encoding::supported_subprotocols()) {
            response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, supported);
        }
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    response
}

#[utoipa::path(get, path = "/ws", tag = "realtime", operation_id = "websocket",
    summary = "Open the WebSocket (JSON or MessagePack by `Sec-WebSocket-Protocol`; frames in `docs/protocol.schema.json`)",
    description = "An HTTP/1.1 `GET` upgrade, or over HTTP/2 an extended `CONNECT` (RFC 8441) with `:protocol: websocket` on the same path.",
    params(("ticket" = Option<String>, Query,
        description = "A ticket from `POST /ws/ticket`, for clients that cannot send headers")),
    security(("session" = []), ("api_key" = []), ("cookie" = []), ("ticket" = [])),
    responses((status = 101, description = "Switching protocols"),
        crate::http::openapi::UpgradeErrors))]
async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: RequestMeta,
    caller: Result<Caller, ApiError>,
    query: Result<Query<UpgradeQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match accept(&state, &headers, meta, caller, query.ok().and_then(|q| q.0.ticket)).await {
        Ok((caller, credential, encoding)) => {
            let Ok(ws) = ws else {
                return ApiError::bad_request("this route expects a WebSocket upgrade")
                    .into_response();
            };
            let slot = match state.ws().open_socket(caller.user_id()) {
                Ok(slot) => slot,
                Err(err) => return err.into_response(),
            };
            let settings = state.settings();
            let limits = Limits {
                outbound_bytes: settings.ws_outbound_buffer_bytes as usize,
                frames_per_sec: settings.ws_frames_per_sec,
                heartbeat: Duration::from_secs(settings.ws_heartbeat_secs),
                recheck: Duration::from_secs(settings.ws_auth_recheck_secs),
            };
            let max_message = settings.ws_max_message_bytes as usize;
            // tungstenite refuses to write a frame that would take its write buffer past this
            // cap, and the refusal ends the socket: it must hold the largest message the outbox
            // lets through (one event may be most of the outbound bound: an item's values alone
            // reach `BOARDROOM_ITEM_VALUES_MAX_BYTES`). It is a cap, not an allocation.
            let largest_out = limits.outbound_bytes.max(max_message).max(64 * 1024);
            let accepted =
                Accepted { state: state.clone(), caller, credential, encoding, limits, slot };
            ws.protocols([encoding.subprotocol()])
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(WRITE_BUFFER)
                .max_write_buffer_size(WRITE_BUFFER + largest_out + FRAME_HEADER_BYTES)
                .max_message_size(max_message)
                .max_frame_size(max_message)
                .on_upgrade(move |socket| async move {
                    // axum awaits this inside its upgrade future, whose state is more than
                    // twice the connection's own (6.5 KiB against 2.6, by heaptrack); a task of
                    // the connection's own lets an idle socket keep only what it uses.
                    tokio::spawn(connection::run(socket, accepted));
                })
        }
        Err(err) => refusal(err),
    }
}

/// Origin, then credentials, then subprotocol; nothing is upgraded unless all pass.
async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    meta: RequestMeta,
    caller: Result<Caller, ApiError>,
    ticket: Option<String>,
) -> Result<(Caller, String, Encoding), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !state.ws().origin_allowed(origin) {
            return Err(ApiError::forbidden("this origin may not open WebSockets here"));
        }
    }
    let (caller, credential) = match ticket {
        Some(ticket) => {
            let tickets = Tickets::new(state.store().clone());
            let redeemed = tickets.redeem(state.auth().tokens(), &ticket).await?;
            let credential = redeemed.ok_or_else(|| {
                ApiError::unauthenticated("the ticket is unknown, used or expired")
            })?;
            match caller {
                // A browser's cookie is usually the very credential its ticket stands for, and
                // the middleware has just authenticated it: no second verification.
                Ok(caller) if presented_token(headers).as_deref() == Some(credential.as_str()) => {
                    (caller, credential)
                }
                _ => {
                    let principal = state.auth().authenticate(&credential, &meta).await?;
                    (Caller { principal, meta }, credential)
                }
            }
        }
        None => {
            // Only an explicit Authorization header: a cookie rides along on any page's upgrade.
            if headers.get(header::AUTHORIZATION).is_none() {
                return Err(ApiError::unauthenticated(
                    "send Authorization: Bearer <token or API key>, or ?ticket= from POST /api/v1/ws/ticket",
                ));
            }
            let caller = caller?;
            let credential = presented_token(headers)
                .ok_or_else(|| ApiError::unauthenticated("authentication required"))?;
            (caller, credential)
        }
    };
    let encoding = encoding(headers)?;
    Ok((caller, credential, encoding))
}
