//! The OpenID client for Google: the authorization URL with PKCE, `state` and `nonce`; the code
//! exchange; the ID token's checks (RS256 against the provider's keys, `iss`, `aud`, `azp`,
//! `exp`, `nonce`); userinfo, whose `sub` must match; a verified email. Every request goes
//! through one HTTP client with a timeout, no redirects and answers of bounded size.

use std::future::Future;
use std::pin::Pin;

use jsonwebtoken::{Algorithm, Validation};
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
use url::Url;

use super::jwks::KeyCache;
use super::{
    invalid_id_token, read_capped, Authorization, FetchError, GoogleIdentity, SignInError,
    CALLBACK_PATH, PROVIDER_TIMEOUT,
};
use crate::auth::tokens::secrets_equal;
use crate::config::Settings;

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

impl GoogleSignIn {
    pub(super) fn new(
        settings: &Settings,
        client_id: String,
        secret: String,
    ) -> Result<Self, String> {
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
}
