//! Google sign-in: OpenID Connect's authorization code flow with PKCE, `state` and `nonce`.
//!
//! [`Auth::google_start`](super::Auth::google_start) makes a fresh `state`, `nonce` and PKCE
//! pair, keeps them in the database (keyed by a SHA-256 of the state, for ten minutes, so any
//! node can finish the sign-in) and returns the provider's authorization URL.
//! [`Auth::google_callback`](super::Auth::google_callback) takes the
//! pending sign-in back exactly once, exchanges the code with the PKCE verifier, verifies the
//! ID token (RS256 against the provider's JWKS, `iss`, `aud`, `azp` when present, `exp`,
//! `nonce`), reads the userinfo endpoint (its `sub` must match), and requires a verified email.
//! The account is then the one linked to that Google subject, else the one with that email
//! (Google gets linked to it), else a new one; the session starts with method `google`.
//!
//! [`GoogleSignIn`] is the OpenID client: one per server, built from the settings by
//! [`Google::from_settings`], holding the HTTP client (10-second timeout, no redirects, answers
//! capped at 256 KiB) and the JWKS cache. Keys are kept for the `max-age` the JWKS answer
//! allows (clamped to 5 minutes – 24 hours; 1 hour without one) and fetched again at once when
//! a token names an unknown key id, at most once per [`FORCED_REFETCH_EVERY`].
//!
//! Nothing here logs or audits a code, a token or a verifier: failures are recorded as a fixed
//! `reason` word.
//!
//! ## Layout
//! - this file: the configured client ([`Google`]), what a sign-in carries ([`Authorization`],
//!   [`GoogleCallback`], [`GoogleIdentity`]), why one fails ([`SignInError`]), and the bounded
//!   reading of the provider's answers shared by the two below;
//! - `oidc`: the OpenID client: the authorization URL, the code exchange, the ID token's checks,
//!   userinfo;
//! - `jwks`: the provider's signing keys, cached for what the answer allows;
//! - `linking`: the sign-in's two ends on [`Auth`](super::Auth): the pending state, and the
//!   account found, linked or created.

mod jwks;
mod linking;
mod oidc;

use std::time::Duration;

use boardroom_protocol::ErrorCode;
use serde::Deserialize;
use url::Url;

pub use self::jwks::FORCED_REFETCH_EVERY;
pub use self::linking::state_key;
pub use self::oidc::{GoogleSignIn, IdTokenField};
use crate::config::Settings;
use crate::error::ApiError;

/// Where the provider sends the browser back to, below the public URL.
pub const CALLBACK_PATH: &str = "/api/v1/auth/google/callback";

/// Minutes a started sign-in may take.
pub const STATE_TTL_MINUTES: i64 = 10;

/// Timeout of every request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider answer read, in bytes (a JWKS or token answer is a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Google sign-in as configured: off, ready, or configured but unusable.
pub enum Google {
    /// No client id or secret: the endpoints answer 404.
    Off,
    /// Ready to sign people in.
    Ready(Box<GoogleSignIn>),
    /// Configured, but the client could not be built; the reason is logged at start.
    Broken(String),
}

impl Google {
    /// Builds the client when a client id and secret are both set. Never fails: a client that
    /// cannot be built is [`Google::Broken`], and its endpoints answer `internal`.
    pub fn from_settings(settings: &Settings) -> Google {
        let present = |value: &Option<String>| {
            value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
        };
        let (Some(id), Some(secret)) =
            (present(&settings.google_client_id), present(&settings.google_client_secret))
        else {
            return Google::Off;
        };
        match GoogleSignIn::new(settings, id, secret) {
            Ok(client) => Google::Ready(Box::new(client)),
            Err(reason) => {
                tracing::error!(%reason, "Google sign-in is configured but cannot be used");
                Google::Broken(reason)
            }
        }
    }

    /// The client, or the error both endpoints answer when there is none.
    pub fn get(&self) -> Result<&GoogleSignIn, ApiError> {
        match self {
            Google::Ready(client) => Ok(client),
            Google::Off => {
                Err(ApiError::new(ErrorCode::NotFound, "Google sign-in is not configured"))
            }
            Google::Broken(reason) => {
                Err(ApiError::internal(anyhow::anyhow!("Google sign-in is unusable: {reason}")))
            }
        }
    }
}

/// A sign-in just started: where to send the browser, and what to keep until it comes back.
pub struct Authorization {
    /// The provider's authorization URL with every parameter.
    pub url: Url,
    /// The `state` parameter.
    pub state: String,
    /// The PKCE code verifier (its S256 challenge is in the URL).
    pub pkce_verifier: String,
    /// The `nonce` parameter.
    pub nonce: String,
}

/// Who the provider says signed in, after every check passed.
#[derive(Debug, Clone)]
pub struct GoogleIdentity {
    /// The provider's stable subject id.
    pub sub: String,
    /// The verified email, lower-cased.
    pub email: String,
    /// The display name, if the provider gave one.
    pub name: Option<String>,
}

/// Why a sign-in was refused once the provider was involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInError {
    /// A fixed snake_case word for the audit log.
    pub reason: &'static str,
    message: &'static str,
    unavailable: bool,
}

impl SignInError {
    fn refused(reason: &'static str, message: &'static str) -> Self {
        SignInError { reason, message, unavailable: false }
    }

    fn unreachable(reason: &'static str) -> Self {
        SignInError {
            reason,
            message: "Google could not be reached; try signing in again shortly",
            unavailable: true,
        }
    }

    /// The message for the caller.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// Whether the provider could not be asked (so the answer is "retry", not "refused").
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

fn invalid_id_token(reason: &'static str) -> SignInError {
    SignInError::refused(reason, "Google's ID token failed verification")
}

/// What the provider sends the browser back with.
/// No `Debug`: it holds the authorization code, which must never reach a log.
#[derive(Default, Deserialize)]
pub struct GoogleCallback {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` sent at the start.
    pub state: Option<String>,
    /// Set instead of `code` when the sign-in failed at the provider (e.g. `access_denied`).
    pub error: Option<String>,
}

/// A failure to talk to the provider. Never carries an answer's body.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("cannot build the answer: {0}")]
    Http(#[from] axum::http::Error),
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|len| len > MAX_ANSWER_BYTES as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
