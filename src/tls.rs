//! TLS on the main listener: the certificate in use, its reloading, and the listener that
//! performs handshakes.
//!
//! `BOARDROOM_TLS_CERT` and `BOARDROOM_TLS_KEY` (PEM) make the main listener speak HTTPS and WSS
//! with rustls on the `ring` provider: TLS 1.2 and 1.3 only, rustls's default (safe) cipher
//! suites, ALPN `h2` then `http/1.1`. [`Tls::load`] reads and checks the pair (readable, the key
//! matches the certificate, inside its validity period); `check-config` prints what it found.
//!
//! The pair in use sits behind a resolver that every new handshake asks, so a reload swaps it
//! for new connections while open ones keep the session they negotiated. [`Tls::watch`] reloads
//! on SIGHUP and when either file's modification time or size changes (polled); a pair that
//! fails to load is logged and the old one stays.
//!
//! [`TlsListener`] accepts TCP connections and runs their handshakes concurrently (each within
//! [`HANDSHAKE_TIMEOUT`]), handing axum only finished TLS streams, so a slow or silent client
//! never holds up the accept loop. At most `BOARDROOM_TLS_MAX_HANDSHAKES` are in progress: past
//! it the listener stops accepting until one ends, so silent connections cost bounded memory. The plain-HTTP redirect listener lives in [`redirect`].

pub mod redirect;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;

/// Longest a client may take to complete its handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate and key could not be used. Displayed as one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two settings is set.
    #[error("BOARDROOM_TLS_CERT (--tls-cert) and BOARDROOM_TLS_KEY (--tls-key) go together: set both or neither")]
    Half,
    /// A file could not be read.
    #[error("{setting}: cannot read {path}: {source}")]
    Read {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable PEM of the expected kind, or the pair does not fit together.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting at fault.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

const CERT_SETTING: &str = "BOARDROOM_TLS_CERT (--tls-cert)";
const KEY_SETTING: &str = "BOARDROOM_TLS_KEY (--tls-key)";

fn invalid(setting: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid { setting, reason: reason.into() }
}

/// What a loaded certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject, RFC 4514 style (`CN=boardroom.example.com`).
    pub subject: String,
    /// Not valid before this.
    pub not_before: DateTime<Utc>,
    /// Not valid after this.
    pub not_after: DateTime<Utc>,
}

impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject {}, valid until {}",
            self.subject,
            self.not_after.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// The two PEM files.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate and key read from their files and checked.
struct Loaded {
    certified: Arc<CertifiedKey>,
    summary: CertSummary,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Files {
    fn from_settings(settings: &Settings) -> Result<Option<Files>, TlsError> {
        match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(Files { cert: cert.clone(), key: key.clone() })),
            (None, None) => Ok(None),
            _ => Err(TlsError::Half),
        }
    }

    fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| TlsError::Read {
            setting,
            path: path.to_owned(),
            source,
        })
    }

    /// Reads both files and checks them against each other and the clock.
    fn load(&self, now: SystemTime) -> Result<Loaded, TlsError> {
        let cert_pem = Self::read(CERT_SETTING, &self.cert)?;
        let key_pem = Self::read(KEY_SETTING, &self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                invalid(CERT_SETTING, format!("{}: not PEM certificates: {e}", self.cert.display()))
            })?;
        let Some(leaf) = chain.first() else {
            return Err(invalid(
                CERT_SETTING,
                format!("{}: holds no certificate", self.cert.display()),
            ));
        };
        let summary = summarize(leaf)
            .map_err(|e| invalid(CERT_SETTING, format!("{}: {e}", self.cert.display())))?;
        if now < SystemTime::from(summary.not_before) {
            return Err(invalid(
                CERT_SETTING,
                format!(
                    "{}: {} is not valid before {}",
                    self.cert.display(),
                    summary.subject,
                    summary.not_before
                ),
            ));
        }
        if now > SystemTime::from(summary.not_after) {
            return Err(invalid(
                CERT_SETTING,
                format!(
                    "{}: {} expired on {}",
                    self.cert.display(),
                    summary.subject,
                    summary.not_after
                ),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            invalid(KEY_SETTING, format!("{}: no PEM private key: {e}", self.key.display()))
        })?;
        let signing = provider().key_provider.load_private_key(key).map_err(|e| {
            invalid(KEY_SETTING, format!("{}: unusable private key: {e}", self.key.display()))
        })?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| {
            invalid(
                KEY_SETTING,
                format!(
                    "{} does not belong to the certificate in {}: {e}",
                    self.key.display(),
                    self.cert.display()
                ),
            )
        })?;
        Ok(Loaded { certified: Arc::new(certified), summary })
    }

    /// What identifies the files' current contents without reading them.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let of = |path: &Path| {
            std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        Some([of(&self.cert)?, of(&self.key)?])
    }
}

/// Subject and validity of a DER certificate.
fn summarize(cert: &CertificateDer<'_>) -> Result<CertSummary, String> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &parsed.tbs_certificate;
    let time = |t: x509_cert::time::Time| {
        let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    Ok(CertSummary {
        subject: tbs.subject.to_string(),
        not_before: time(tbs.validity.not_before),
        not_after: time(tbs.validity.not_after),
    })
}

/// Answers every handshake with the pair currently loaded.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a whole Arc (it is replaced in one assignment).
        Some(match self.0.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// TLS as configured: the files, the pair in use, and the rustls configuration around it.
pub struct Tls {
    files: Files,
    current: Arc<Current>,
    config: Arc<ServerConfig>,
    summary: RwLock<CertSummary>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the configured pair: `None` when TLS is not configured. Errors name the setting.
    pub fn load(settings: &Settings) -> Result<Option<Arc<Tls>>, TlsError> {
        let Some(files) = Files::from_settings(settings)? else { return Ok(None) };
        let Loaded { certified, summary } = files.load(SystemTime::now())?;
        let current = Arc::new(Current(RwLock::new(certified)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid(CERT_SETTING, format!("cannot configure TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Some(Arc::new(Tls {
            files,
            current,
            config: Arc::new(config),
            summary: RwLock::new(summary),
        })))
    }

    /// The certificate in use.
    pub fn summary(&self) -> CertSummary {
        match self.summary.read() {
            Ok(summary) => summary.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; a good pair replaces the one in use for new handshakes, a bad one
    /// changes nothing.
    pub fn reload(&self) -> Result<CertSummary, TlsError> {
        let Loaded { certified, summary } = self.files.load(SystemTime::now())?;
        match self.current.0.write() {
            Ok(mut current) => *current = certified,
            Err(poisoned) => *poisoned.into_inner() = certified,
        }
        match self.summary.write() {
            Ok(mut current) => *current = summary.clone(),
            Err(poisoned) => *poisoned.into_inner() = summary.clone(),
        }
        Ok(summary)
    }

    /// Reloads on SIGHUP and whenever the files change (checked every `poll`), until aborted.
    pub fn watch(self: &Arc<Self>, poll: Duration) -> JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangups = hangups();
            let mut seen = tls.files.stamp();
            let mut every = tokio::time::interval(poll);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let why = tokio::select! {
                    _ = every.tick() => {
                        let now = tls.files.stamp();
                        if now == seen || now.is_none() {
                            continue;
                        }
                        // Remembered even when the pair fails, so a bad pair is reported once
                        // per change rather than at every poll.
                        seen = now;
                        "the files changed"
                    }
                    Some(()) = hangups.recv() => {
                        seen = tls.files.stamp();
                        "SIGHUP"
                    }
                };
                match tls.reload() {
                    Ok(summary) => tracing::info!(%summary, why, "TLS certificate reloaded"),
                    Err(err) => {
                        tracing::error!(error = %err, why, "TLS certificate not reloaded; the previous one stays in use")
                    }
                }
            }
        })
    }

    /// A listener doing this configuration's handshakes on `tcp`, at most `max_handshakes` at
    /// once.
    pub fn listener(&self, tcp: TcpListener, max_handshakes: u32) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(self.config.clone()),
            handshakes: FuturesUnordered::new(),
            max_handshakes: max_handshakes.max(1) as usize,
        }
    }
}

/// SIGHUPs as a channel (never one on platforms without them, or when they cannot be caught).
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    forward_hangups(tx);
    rx
}

#[cfg(unix)]
fn forward_hangups(tx: tokio::sync::mpsc::Sender<()>) {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut signal) => {
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    // A full channel already has a reload pending, which reads the files anew.
                    if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = tx.try_send(())
                    {
                        break;
                    }
                }
            });
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot catch SIGHUP; TLS reloads on file changes only")
        }
    }
}

#[cfg(not(unix))]
fn forward_hangups(_tx: tokio::sync::mpsc::Sender<()>) {}

type Handshake = Pin<
    Box<dyn std::future::Future<Output = (io::Result<TlsStream<TcpStream>>, SocketAddr)> + Send>,
>;

/// A TCP listener that yields connections once their TLS handshake is done.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
    max_handshakes: usize,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept(), if self.handshakes.len() < self.max_handshakes => match accepted {
                    Ok((stream, addr)) => {
                        crate::server::nodelay(&stream);
                        let acceptor = self.acceptor.clone();
                        self.handshakes.push(Box::pin(async move {
                            let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            let result = match shake.await {
                                Ok(result) => result,
                                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
                            };
                            (result, addr)
                        }));
                    }
                    Err(err) => accept_error(err).await,
                },
                Some((result, addr)) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    match result {
                        Ok(stream) => return (stream, addr),
                        // A refused protocol version, a scanner, a client that gave up: theirs.
                        Err(err) => tracing::debug!(error = %err, %addr, "TLS handshake failed"),
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum does for its own TCP listener: a connection's own failure is skipped; anything else
/// (out of file descriptors) is logged and waited out for a second.
async fn accept_error(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// For `check-config`: the configured pair's summary, `None` without TLS.
pub fn check(settings: &Settings) -> Result<Option<CertSummary>, TlsError> {
    Ok(Tls::load(settings)?.map(|tls| tls.summary()))
}
