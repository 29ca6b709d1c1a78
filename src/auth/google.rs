//! Google sign-in: OpenID Connect's authorization code flow with PKCE, `state` and `nonce`.
//!
//! [`Auth::google_start`] makes a fresh `state`, `nonce` and PKCE pair, keeps them in the
//! database (keyed by a SHA-256 of the state, for ten minutes, so any node can finish the
//! sign-in) and returns the provider's authorization URL. [`Auth::google_callback`] takes the
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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use boardroom_actors::audit::AuditAction;
use boardroom_protocol::ErrorCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::tokens::secrets_equal;
use super::{Auth, RequestMeta, SessionTokens};
use crate::config::Settings;
use crate::error::ApiError;
use crate::storage::{NewOAuthState, NewUser, StorageError, UserRow};

/// Where the provider sends the browser back to, below the public URL.
pub const CALLBACK_PATH: &str = "/api/v1/auth/google/callback";

/// Minutes a started sign-in may take.
pub const STATE_TTL_MINUTES: i64 = 10;

/// Timeout of every request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider answer read, in bytes (a JWKS or token answer is a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// JWKS lifetime when the answer names none.
const DEFAULT_KEYS_TTL: Duration = Duration::from_secs(60 * 60);
const MIN_KEYS_TTL: Duration = Duration::from_secs(5 * 60);
const MAX_KEYS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Least time between two JWKS fetches forced by unknown key ids.
pub const FORCED_REFETCH_EVERY: Duration = Duration::from_secs(30);

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

/// The extra field OpenID adds to the token answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The ID token (a JWT); missing when the provider did not do OpenID.
    #[serde(default)]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OidcClient = Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The OpenID client for Google (or any provider configured in its place).
pub struct GoogleSignIn {
    oauth: OidcClient,
    http: reqwest::Client,
    client_id: String,
    userinfo_url: Url,
    validation: Validation,
    keys: KeyCache,
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

/// Claims read from the ID token. `iss`, `aud` and `exp` are checked by the JWT validation.
#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

/// The userinfo endpoint's answer.
#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

/// `email_verified` is a JSON boolean, but some providers (and old Google tokens) send
/// `"true"`.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(deserializer)? {
        Some(Flag::Bool(value)) => Some(value),
        Some(Flag::Text(text)) => Some(text.eq_ignore_ascii_case("true")),
        None => None,
    })
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

impl GoogleSignIn {
    fn new(settings: &Settings, client_id: String, secret: String) -> Result<Self, String> {
        let redirect = callback_url(&settings.public_url()?);
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("boardroom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let oauth = Client::new(ClientId::new(client_id.clone()))
            .set_client_secret(ClientSecret::new(secret))
            .set_auth_uri(AuthUrl::from_url(settings.google_auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(settings.google_token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(redirect))
            .set_auth_type(AuthType::RequestBody);
        let mut issuers = vec![settings.google_issuer.clone()];
        // Google documents both spellings of its issuer.
        if settings.google_issuer == "https://accounts.google.com" {
            issuers.push("accounts.google.com".to_owned());
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&issuers);
        validation.set_audience(&[&client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(GoogleSignIn {
            oauth,
            http,
            client_id,
            userinfo_url: settings.google_userinfo_url.clone(),
            validation,
            keys: KeyCache::new(settings.google_jwks_url.clone()),
        })
    }

    /// Starts a sign-in: fresh state, nonce and PKCE pair, and the authorization URL.
    pub fn authorization(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random_len(32).into_secret();
        let (url, state) = self
            .oauth
            .authorize_url(|| CsrfToken::new_random_len(32))
            .add_scope(Scope::new("openid".to_owned()))
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .url();
        Authorization {
            url,
            state: state.into_secret(),
            pkce_verifier: verifier.into_secret(),
            nonce,
        }
    }

    /// Finishes a sign-in at the provider: exchanges `code`, verifies the ID token against
    /// `nonce`, reads userinfo, and requires a verified email.
    pub async fn identify(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<GoogleIdentity, SignInError> {
        let tokens = self.exchange(code, pkce_verifier).await?;
        let id_token = tokens.extra_fields().id_token.as_deref().ok_or_else(|| {
            SignInError::refused("no_id_token", "Google's answer carried no ID token")
        })?;
        let claims = self.verify_id_token(id_token, nonce).await?;
        let info = self.userinfo(tokens.access_token()).await?;
        if info.sub != claims.sub {
            return Err(SignInError::refused(
                "userinfo_subject_mismatch",
                "Google's userinfo names another account than the ID token",
            ));
        }
        // The subject is looked up and stored: an empty one, or one with characters no
        // identifier has, is refused whoever signed it.
        let sub_usable = !claims.sub.is_empty()
            && claims.sub.len() <= 255
            && boardroom_actors::text::check(boardroom_actors::text::Form::Identifier, &claims.sub)
                .is_ok();
        if !sub_usable {
            return Err(invalid_id_token("unusable_subject"));
        }
        // The signed ID token wins; userinfo fills what it left out.
        let (email, verified) = match claims.email {
            Some(email) => (Some(email), claims.email_verified),
            None => (info.email, info.email_verified),
        };
        let email = email.ok_or_else(|| {
            SignInError::refused("no_email", "Google did not share the account's email")
        })?;
        if verified != Some(true) {
            return Err(SignInError::refused(
                "email_not_verified",
                "the Google account's email is not verified",
            ));
        }
        let email = crate::validate::email(&email).map_err(|_| {
            SignInError::refused("unusable_email", "the Google account's email is not usable")
        })?;
        Ok(GoogleIdentity { sub: claims.sub, email, name: claims.name.or(info.name) })
    }

    async fn exchange(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<OidcTokenResponse, SignInError> {
        let answer = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&CappedClient(&self.http))
            .await;
        let tokens = answer.map_err(|err| match err {
            RequestTokenError::ServerResponse(answer) => {
                tracing::info!(error = answer.error().as_ref(), "Google refused the code");
                SignInError::refused("code_rejected", "Google refused the authorization code")
            }
            RequestTokenError::Request(err) => {
                tracing::warn!(error = %err, "Google's token endpoint could not be reached");
                SignInError::unreachable("token_endpoint_unreachable")
            }
            // Neither the body nor the parser's message is logged: both may quote a token.
            RequestTokenError::Parse(..) => SignInError::refused(
                "malformed_token_response",
                "Google's token answer could not be read",
            ),
            RequestTokenError::Other(reason) => {
                tracing::warn!(%reason, "Google's token answer was unexpected");
                SignInError::refused(
                    "malformed_token_response",
                    "Google's token answer could not be read",
                )
            }
        })?;
        if *tokens.token_type() != BasicTokenType::Bearer {
            return Err(SignInError::refused(
                "unexpected_token_type",
                "Google's token answer could not be read",
            ));
        }
        Ok(tokens)
    }

    async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<IdClaims, SignInError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid_id_token("malformed_id_token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid_id_token("unexpected_algorithm"));
        }
        let kid = header.kid.ok_or_else(|| invalid_id_token("no_key_id"))?;
        let key = self.keys.key(&self.http, &kid).await?;
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &self.validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                invalid_id_token(match err.kind() {
                    ErrorKind::InvalidSignature => "bad_signature",
                    ErrorKind::ExpiredSignature => "id_token_expired",
                    ErrorKind::InvalidIssuer => "wrong_issuer",
                    ErrorKind::InvalidAudience => "wrong_audience",
                    ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                    ErrorKind::InvalidAlgorithm => "unexpected_algorithm",
                    _ => "malformed_id_token",
                })
            })?
            .claims;
        if claims.azp.as_ref().is_some_and(|azp| *azp != self.client_id) {
            return Err(invalid_id_token("wrong_authorized_party"));
        }
        match &claims.nonce {
            Some(got) if secrets_equal(got.as_bytes(), nonce.as_bytes()) => Ok(claims),
            _ => Err(invalid_id_token("nonce_mismatch")),
        }
    }

    async fn userinfo(&self, access_token: &AccessToken) -> Result<UserInfo, SignInError> {
        let response = self
            .http
            .get(self.userinfo_url.clone())
            .bearer_auth(access_token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "Google's userinfo endpoint could not be reached");
                SignInError::unreachable("userinfo_unreachable")
            })?;
        if !response.status().is_success() {
            tracing::info!(status = %response.status(), "Google's userinfo endpoint refused");
            return Err(SignInError::refused(
                "userinfo_refused",
                "Google refused to describe the account",
            ));
        }
        let body = read_capped(response)
            .await
            .map_err(|_| SignInError::unreachable("userinfo_unreachable"))?;
        serde_json::from_slice(&body).map_err(|_| {
            SignInError::refused(
                "malformed_userinfo",
                "Google's account description could not be read",
            )
        })
    }
}

/// The provider's HTTP client as the `oauth2` crate uses it: the client's timeout and redirect
/// policy, and an answer of bounded size.
struct CappedClient<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for CappedClient<'_> {
    type Error = FetchError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = axum::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = read_capped(response).await?;
            Ok(answer.body(body)?)
        })
    }
}

/// `<public_url>/api/v1/auth/google/callback`, keeping any path prefix of the public URL.
fn callback_url(public: &Url) -> Url {
    let mut url = public.clone();
    let path = format!("{}{CALLBACK_PATH}", public.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
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

/// The provider's signing keys by key id, fetched from the JWKS URL.
struct KeyCache {
    url: Url,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent misses fetch once; holds the time of the last fetch
    /// forced by an unknown key id.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
    ttl: Duration,
}

impl KeySet {
    fn is_fresh(&self) -> bool {
        self.fetched_at.elapsed() < self.ttl
    }
}

/// One entry of a JWKS; entries of other shapes are skipped, not fatal.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

impl KeyCache {
    fn new(url: Url) -> Self {
        KeyCache { url, current: RwLock::new(None), fetching: tokio::sync::Mutex::new(None) }
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The key `kid`, fetching the set when it is stale, missing, or lacks that key.
    async fn key(&self, http: &reqwest::Client, kid: &str) -> Result<DecodingKey, SignInError> {
        let cached = self.snapshot().filter(|set| set.is_fresh());
        if let Some(key) = cached.as_deref().and_then(|set| set.keys.get(kid)) {
            return Ok(key.clone());
        }
        let mut last_forced = self.fetching.lock().await;
        // Whoever held the lock before may just have fetched.
        if let Some(set) = self.snapshot().filter(|set| set.is_fresh()) {
            if let Some(key) = set.keys.get(kid) {
                return Ok(key.clone());
            }
            // A fresh set without the key: the provider may have rotated. Ask again, but not
            // on every token that names a key nobody published.
            if last_forced.is_some_and(|at| at.elapsed() < FORCED_REFETCH_EVERY) {
                return Err(invalid_id_token("unknown_key_id"));
            }
            *last_forced = Some(Instant::now());
        }
        let set = Arc::new(self.fetch(http).await?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
        set.keys.get(kid).cloned().ok_or_else(|| invalid_id_token("unknown_key_id"))
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<KeySet, SignInError> {
        let unreachable = |err: &dyn std::fmt::Display| {
            tracing::warn!(error = %err, url = %self.url, "Google's signing keys could not be fetched");
            SignInError::unreachable("jwks_unreachable")
        };
        let response = http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!("status {}", response.status())));
        }
        let ttl = max_age(response.headers())
            .unwrap_or(DEFAULT_KEYS_TTL)
            .clamp(MIN_KEYS_TTL, MAX_KEYS_TTL);
        let body = read_capped(response).await.map_err(|e| unreachable(&e))?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| unreachable(&e))?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<Jwk>(entry).ok())
            .filter(|jwk| {
                jwk.kty == "RSA"
                    && jwk.usage.as_deref().is_none_or(|u| u == "sig")
                    && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            })
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?);
                Some((jwk.kid?, key.ok()?))
            })
            .collect();
        Ok(KeySet { keys, fetched_at: Instant::now(), ttl })
    }
}

/// The `max-age` of a `Cache-Control` header.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            secs.trim().parse::<u64>().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

/// The key a pending sign-in is stored under: SHA-256 of its `state`.
pub fn state_key(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// A provider `error` parameter, cut to something safe to repeat and record.
fn provider_error_code(error: &str) -> String {
    error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// How the account of a Google sign-in was found.
enum Account {
    /// Already linked to the Google subject.
    Linked(UserRow),
    /// Found by its email; Google was linked to it now.
    NewlyLinked(UserRow),
    /// Created now.
    Created(UserRow),
}

impl Auth {
    /// Begins a Google sign-in: stores the pending state and returns the URL to send the
    /// browser to.
    /// Returns the provider URL and the state, which the edge also binds to the browser in a
    /// cookie so that a callback URL forwarded to someone else cannot sign them in.
    pub async fn google_start(&self, google: &GoogleSignIn) -> Result<(Url, String), ApiError> {
        let start = google.authorization();
        self.store
            .put_oauth_state(NewOAuthState {
                state_hash: &state_key(&start.state),
                pkce_verifier: &start.pkce_verifier,
                nonce: &start.nonce,
                expires_at: crate::storage::now() + chrono::Duration::minutes(STATE_TTL_MINUTES),
            })
            .await?;
        Ok((start.url, start.state))
    }

    /// Finishes a Google sign-in: the pending state is taken (it works once), the provider's
    /// answer is verified, and the account is found, linked or created before its session
    /// starts. A callback without a known state is not audited (anyone can send one); every
    /// failure after that is, with a reason.
    ///
    /// `browser_state` is the state cookie set at the start; it must match the `state`
    /// parameter, which stops login CSRF (a victim sent someone else's callback URL).
    pub async fn google_callback(
        &self,
        google: &GoogleSignIn,
        callback: &GoogleCallback,
        browser_state: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let state = callback.state.as_deref().filter(|s| !s.is_empty());
        let pending = match state {
            Some(state) => self.store.take_oauth_state(&state_key(state)).await?,
            None => None,
        };
        if let Some(error) = &callback.error {
            let error = provider_error_code(error);
            if pending.is_some() {
                self.google_failed(meta, "provider_error", Some(&error));
            }
            return Err(ApiError::bad_request(format!("Google sign-in failed: {error}")));
        }
        if state.is_none() {
            return Err(ApiError::bad_request("the state parameter is required"));
        }
        let bound = match (state, browser_state) {
            (Some(state), Some(cookie)) => {
                crate::auth::tokens::secrets_equal(state.as_bytes(), cookie.as_bytes())
            }
            _ => false,
        };
        if pending.is_some() && !bound {
            self.google_failed(meta, "state_not_bound_to_browser", None);
            return Err(ApiError::bad_request(
                "this sign-in was started in another browser; start the sign-in again",
            ));
        }
        let Some(pending) = pending else {
            return Err(ApiError::bad_request(
                "unknown, expired or already used sign-in state; start the sign-in again",
            ));
        };
        let Some(code) = callback.code.as_deref().filter(|c| !c.is_empty()) else {
            self.google_failed(meta, "no_code", None);
            return Err(ApiError::bad_request("the code parameter is required"));
        };
        let identity = match google.identify(code, &pending.pkce_verifier, &pending.nonce).await {
            Ok(identity) => identity,
            Err(err) => {
                self.google_failed(meta, err.reason, None);
                return Err(err.into());
            }
        };
        let account = match self.google_account(&identity).await {
            Ok(account) => account,
            Err(err) => {
                if err.code() == ErrorCode::Conflict {
                    self.google_failed(meta, "account_conflict", None);
                }
                return Err(err);
            }
        };
        let (user, action, metadata) = match account {
            Account::Created(user) => {
                (user, AuditAction::Signup, serde_json::json!({ "method": "google" }))
            }
            Account::NewlyLinked(user) => (
                user,
                AuditAction::LoginSucceeded,
                serde_json::json!({ "method": "google", "linked": true }),
            ),
            Account::Linked(user) => {
                (user, AuditAction::LoginSucceeded, serde_json::json!({ "method": "google" }))
            }
        };
        self.audit(action, meta, |e| {
            e.actor_id = Some(user.id);
            e.target = Some(user.id.to_string());
            e.metadata = metadata;
        });
        let tokens = self.start_session(&user, "google", meta).await?;
        Ok((user, tokens))
    }

    /// Records a failed Google sign-in with its reason (and the provider's error code, if any).
    fn google_failed(&self, meta: &RequestMeta, reason: &str, provider_error: Option<&str>) {
        self.audit(AuditAction::LoginFailed, meta, |e| {
            e.metadata = serde_json::json!({ "method": "google", "reason": reason });
            if let Some(code) = provider_error {
                e.metadata["provider_error"] = serde_json::json!(code);
            }
        });
    }

    /// The account for `identity`: linked by subject, else found by email and linked, else new.
    /// A race with a concurrent sign-in or registration is settled by looking again once.
    async fn google_account(&self, identity: &GoogleIdentity) -> Result<Account, ApiError> {
        let conflict = || {
            ApiError::conflict("the account with this email is linked to another Google account")
        };
        for _ in 0..2 {
            if let Some(user) = self.store.user_by_google_sub(&identity.sub).await? {
                return Ok(Account::Linked(user));
            }
            if let Some(user) = self.store.user_by_email(&identity.email).await? {
                if user.google_sub.is_some() {
                    return Err(conflict());
                }
                // Google vouches for the email, so the account is taken to be this person's.
                // An unverified account's password, sessions and API keys end (see `link_google`).
                match self.store.link_google(user.id, &identity.sub).await {
                    Ok(Some(revoked_keys)) => {
                        self.sessions.forget_user(user.id);
                        for key in revoked_keys {
                            self.keys.invalidate(key);
                        }
                    }
                    Ok(None) => {}
                    Err(StorageError::Unique(_)) => continue,
                    Err(err) => return Err(err.into()),
                }
                let user = self
                    .store
                    .user_by_id(user.id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("user"))?;
                return Ok(Account::NewlyLinked(user));
            }
            let name = display_name(identity);
            let created = self
                .store
                .create_user(NewUser {
                    email: &identity.email,
                    name: &name,
                    password_hash: None,
                    email_verified: true,
                    google_sub: Some(&identity.sub),
                })
                .await;
            match created {
                Ok(user) => return Ok(Account::Created(user)),
                Err(StorageError::Unique(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(conflict())
    }
}

/// The provider's name for the person (cut to 100 characters), else the local part of the
/// email, else "user": whichever first passes the rule for names.
fn display_name(identity: &GoogleIdentity) -> String {
    let usable = |name: &str| {
        let cut: String = name.trim().chars().take(crate::validate::MAX_NAME_CHARS).collect();
        crate::validate::name("name", &cut).ok()
    };
    let local = identity.email.split('@').next().unwrap_or_default();
    identity
        .name
        .as_deref()
        .and_then(usable)
        .or_else(|| usable(local))
        .unwrap_or_else(|| "user".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_url_keeps_a_path_prefix() {
        let plain = Url::parse("https://boardroom.example.com").unwrap();
        assert_eq!(
            callback_url(&plain).as_str(),
            "https://boardroom.example.com/api/v1/auth/google/callback"
        );
        let prefixed = Url::parse("https://example.com/boardroom/?x=1").unwrap();
        assert_eq!(
            callback_url(&prefixed).as_str(),
            "https://example.com/boardroom/api/v1/auth/google/callback"
        );
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=21432, must-revalidate, no-transform".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(21432)));
        headers.insert(reqwest::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }

    #[test]
    fn provider_errors_are_cut_to_a_safe_word() {
        assert_eq!(provider_error_code("access_denied"), "access_denied");
        assert_eq!(provider_error_code("<script>x</script>"), "scriptxscript");
        assert_eq!(provider_error_code(&"a".repeat(500)).len(), 64);
    }

    #[test]
    fn email_verified_accepts_booleans_and_text() {
        let claims: UserInfo =
            serde_json::from_str(r#"{"sub":"1","email_verified":"true"}"#).unwrap();
        assert_eq!(claims.email_verified, Some(true));
        let claims: UserInfo =
            serde_json::from_str(r#"{"sub":"1","email_verified":false}"#).unwrap();
        assert_eq!(claims.email_verified, Some(false));
        let claims: UserInfo = serde_json::from_str(r#"{"sub":"1"}"#).unwrap();
        assert_eq!(claims.email_verified, None);
    }

    #[test]
    fn display_name_falls_back_to_the_email() {
        let identity = |name: Option<&str>| GoogleIdentity {
            sub: "1".into(),
            email: "ada@example.com".into(),
            name: name.map(str::to_owned),
        };
        assert_eq!(display_name(&identity(Some("  Ada Lovelace "))), "Ada Lovelace");
        assert_eq!(display_name(&identity(Some("   "))), "ada");
        assert_eq!(display_name(&identity(None)), "ada");
        assert_eq!(display_name(&identity(Some(&"x".repeat(300)))).chars().count(), 100);
        assert_eq!(display_name(&identity(Some("Ada\u{202e}ecalovol"))), "ada");
        assert_eq!(display_name(&identity(Some("Ada\0"))), "ada");
    }
}
