//! A thin client for the parts of Boardroom's REST API that scenarios set up with: accounts,
//! organizations, API keys.
//!
//! Set-up calls fail loudly with the server's answer; measured calls are made by the scenarios
//! themselves so they can time exactly the request and nothing around it. Bodies and answers are
//! the `boardroom-protocol` types.

use std::time::Duration;

use anyhow::{bail, Context};
use boardroom_protocol::api_keys::{CreateApiKey, CreatedApiKey};
use boardroom_protocol::boards::{CreateBoard, CreatedBoard};
use boardroom_protocol::identity::{Register, SessionAnswer};
use boardroom_protocol::orgs::{CreateOrganization, Organization};
use rand::Rng;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

/// The password of every account a scenario registers (passes the server's policy).
pub const PASSWORD: &str = "loadtest-password-0123";

/// An HTTP client for one server, reusing its connections.
#[derive(Clone)]
pub struct Api {
    client: Client,
    base: url::Url,
}

/// An account registered for a run.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its email.
    pub email: String,
    /// Its access JWT from registration.
    pub access_token: String,
}

impl Api {
    /// A client for the server at `base`, keeping connections alive between requests.
    pub fn new(base: &url::Url) -> anyhow::Result<Api> {
        Ok(Api { client: http_client()?, base: base.clone() })
    }

    /// Like [`Api::new`], every connection from the source address `source` (a loopback
    /// address: the server's per-IP limits then count this client apart).
    pub fn from_source(base: &url::Url, source: std::net::IpAddr) -> anyhow::Result<Api> {
        let client = client_builder()
            .local_address(source)
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Api { client, base: base.clone() })
    }

    /// The URL of `path` (relative, e.g. `api/v1/orgs`).
    pub fn url(&self, path: &str) -> anyhow::Result<url::Url> {
        self.base.join(path).with_context(|| format!("bad path {path}"))
    }

    /// A request to `path`, on this client's connection pool.
    pub fn request(&self, method: Method, path: &str) -> anyhow::Result<RequestBuilder> {
        Ok(self.client.request(method, self.url(path)?))
    }

    /// Registers a new account with a unique email made from `label`.
    pub async fn register(&self, label: &str) -> anyhow::Result<Account> {
        let email = format!("{label}-{:012x}@loadtest.example", rand::thread_rng().gen::<u64>());
        let body = Register { email: email.clone(), password: PASSWORD.into(), name: label.into() };
        let request = self.request(Method::POST, "api/v1/auth/register")?.json(&body);
        let answer: SessionAnswer = expect(request, 201).await?;
        Ok(Account { email, access_token: answer.access_token })
    }

    /// Creates an organization as `account`; returns its id.
    pub async fn create_org(&self, account: &Account, name: &str) -> anyhow::Result<String> {
        let request = self
            .request(Method::POST, "api/v1/orgs")?
            .bearer_auth(&account.access_token)
            .json(&CreateOrganization { name: name.into() });
        let org: Organization = expect(request, 201).await?;
        Ok(org.id.to_string())
    }

    /// Creates a board in `org` as `account`; returns the board as answered (with its groups).
    pub async fn create_board(
        &self,
        account: &Account,
        org: &str,
        name: &str,
    ) -> anyhow::Result<CreatedBoard> {
        let request = self
            .request(Method::POST, &format!("api/v1/orgs/{org}/boards"))?
            .bearer_auth(&account.access_token)
            .json(&CreateBoard { name: name.into(), description: String::new() });
        expect(request, 201).await
    }

    /// Creates an API key in `org` as `account`, with `scopes` and the highest rate limit the
    /// server allows; returns the whole key.
    pub async fn create_api_key(
        &self,
        account: &Account,
        org: &str,
        name: &str,
        scopes: &[&str],
    ) -> anyhow::Result<String> {
        let request = self
            .request(Method::POST, &format!("api/v1/orgs/{org}/api-keys"))?
            .bearer_auth(&account.access_token)
            .json(&CreateApiKey {
                name: name.into(),
                scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
                rate_limit_per_minute: Some(100_000),
                expires_at: None,
            });
        let created: CreatedApiKey = expect(request, 201).await?;
        Ok(created.key)
    }
}

/// A client with keep-alive connections, no proxy (targets are loopback) and a generous
/// timeout: a login queued behind a bcrypt flood can take seconds, and that is what is measured.
pub fn http_client() -> anyhow::Result<Client> {
    client_builder().build().context("cannot build an HTTP client")
}

fn client_builder() -> reqwest::ClientBuilder {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
}

/// Sends `request` and returns its body as the protocol type `T`, or an error naming the status
/// and body when the status is not `status` or the body is no `T`.
pub async fn expect<T: DeserializeOwned>(
    request: RequestBuilder,
    status: u16,
) -> anyhow::Result<T> {
    let response = request.send().await.context("request failed")?;
    let got = response.status();
    let url = response.url().path().to_owned();
    let text = response.text().await.unwrap_or_default();
    if got != StatusCode::from_u16(status)? {
        let hint = if got == StatusCode::TOO_MANY_REQUESTS {
            " (a server started without relaxed limits? see loadtest/README.md)"
        } else {
            ""
        };
        bail!("{url} answered {got}, expected {status}{hint}: {text}");
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{url} answered no {}: {text}", std::any::type_name::<T>()))
}
