//! Access tokens, refresh tokens and CSRF tokens.
//!
//! Access tokens are HS256 JWTs, pinned: the validation accepts HS256 only, so `none` and every
//! other algorithm fail. They live 15 minutes and carry `iss`, `aud`, `sub`, `sid` (session id),
//! `tv` (the user's token version), `iat`, `nbf` and `exp`; the clock leeway is 5 seconds.
//!
//! Refresh tokens are opaque: `brr_<session>.<generation>.<mac>`, where the MAC is an HMAC of the
//! session id, the generation and a per-session salt under the server secret. Only the current
//! generation refreshes; a valid token of an older generation means a rotated token was used
//! again, and the caller revokes the session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// `iss` of access tokens.
pub const ISSUER: &str = "boardroom";
/// `aud` of access tokens.
pub const AUDIENCE: &str = "boardroom-api";
/// Lifetime of an access token, in seconds.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Clock leeway when checking `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Lifetime of a session's refresh token from its last use, in days.
pub const REFRESH_TTL_DAYS: i64 = 30;

const REFRESH_PREFIX: &str = "brr_";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    /// The user's token version when issued.
    pub tv: i64,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Expires (unix seconds).
    pub exp: i64,
}

/// Why an access token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// It has expired.
    Expired,
    /// Anything else: bad signature, algorithm, claims, or shape.
    Invalid,
}

/// Keys derived from the server secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    mac_key: MacKey,
}

type HmacSha256 = Hmac<Sha256>;

impl TokenKeys {
    /// Keys for `secret` (at least 32 bytes, checked at start-up).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            mac_key: derive(secret, b"boardroom.mac.v1"),
        }
    }

    /// Issues an access token; returns it and its lifetime in seconds.
    pub fn issue_access(&self, user: Uuid, session: Uuid, token_version: i64) -> (String, i64) {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user,
            sid: session,
            tv: token_version,
            iat: now,
            nbf: now,
            exp: now + ACCESS_TTL_SECS,
        };
        // Encoding HS256 claims of plain types cannot fail; an empty token would be refused later.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default();
        (token, ACCESS_TTL_SECS)
    }

    /// Checks an access token's signature, algorithm and claims.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        match jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(err) => match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                _ => Err(TokenError::Invalid),
            },
        }
    }

    fn refresh_mac(&self, session: Uuid, generation: i64, salt: &[u8]) -> [u8; 32] {
        let mut mac = keyed(&self.mac_key);
        mac.update(b"refresh");
        mac.update(session.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.update(salt);
        mac.finalize().into_bytes().into()
    }

    /// The refresh token of `session` at `generation`.
    pub fn refresh_token(&self, session: Uuid, generation: i64, salt: &[u8]) -> String {
        let mac = self.refresh_mac(session, generation, salt);
        format!("{REFRESH_PREFIX}{}.{generation}.{}", session.simple(), URL_SAFE_NO_PAD.encode(mac))
    }

    /// Splits a refresh token into session id, generation and MAC, without trusting it yet.
    pub fn parse_refresh(token: &str) -> Option<RefreshToken> {
        let rest = token.strip_prefix(REFRESH_PREFIX)?;
        let mut parts = rest.splitn(3, '.');
        let session = Uuid::try_parse(parts.next()?).ok()?;
        let generation: i64 = parts.next()?.parse().ok()?;
        let mac = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        Some(RefreshToken { session, generation, mac })
    }

    /// Whether `token`'s MAC is genuine for the session's salt (constant time).
    pub fn refresh_is_genuine(&self, token: &RefreshToken, salt: &[u8]) -> bool {
        let expected = self.refresh_mac(token.session, token.generation, salt);
        expected.ct_eq(token.mac.as_slice()).into()
    }

    /// The CSRF token bound to `session`, for cookie-authenticated writes.
    pub fn csrf_token(&self, session: Uuid) -> String {
        let mut mac = keyed(&self.mac_key);
        mac.update(b"csrf");
        mac.update(session.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A keyed digest of `data` for cache keys: a stolen cache dump reveals nothing usable.
    pub fn digest(&self, purpose: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = keyed(&self.mac_key);
        mac.update(purpose);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// A parsed, not yet trusted, refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// The session it belongs to.
    pub session: Uuid,
    /// Its generation.
    pub generation: i64,
    /// Its MAC.
    pub mac: Vec<u8>,
}

/// An HMAC key of exactly one SHA-256 block, so keying is infallible.
type MacKey = [u8; 64];

fn keyed(key: &MacKey) -> HmacSha256 {
    <HmacSha256 as hmac::digest::KeyInit>::new(&(*key).into())
}

/// Derives a MAC key from the server secret and a purpose label.
fn derive(secret: &[u8], label: &[u8]) -> MacKey {
    use sha2::Digest;
    let digest = Sha256::new().chain_update(label).chain_update(secret).finalize();
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&digest);
    key
}

/// Constant-time equality of two secrets.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn access_token_round_trips() {
        let (user, sid) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, ttl) = keys().issue_access(user, sid, 3);
        assert_eq!(ttl, 900);
        let claims = keys().verify_access(&token).unwrap();
        assert_eq!((claims.sub, claims.sid, claims.tv), (user, sid, 3));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn another_secret_is_refused() {
        let (token, _) = keys().issue_access(Uuid::now_v7(), Uuid::now_v7(), 0);
        let other = TokenKeys::new(b"another-secret-another-secret-xx");
        assert_eq!(other.verify_access(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_parse_and_authenticate() {
        let keys = keys();
        let sid = Uuid::now_v7();
        let token = keys.refresh_token(sid, 7, b"salt");
        let parsed = TokenKeys::parse_refresh(&token).unwrap();
        assert_eq!((parsed.session, parsed.generation), (sid, 7));
        assert!(keys.refresh_is_genuine(&parsed, b"salt"));
        assert!(!keys.refresh_is_genuine(&parsed, b"other salt"));
        let forged = token.replace(".7.", ".8.");
        let forged = TokenKeys::parse_refresh(&forged).unwrap();
        assert!(!keys.refresh_is_genuine(&forged, b"salt"));
        assert!(TokenKeys::parse_refresh("brr_nonsense").is_none());
    }
}
