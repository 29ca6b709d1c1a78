//! The blob store the vault writes to: a directory (`<data dir>/attachments` by default) or an
//! S3-compatible bucket (`BOARDROOM_ATTACHMENT_STORE=s3://bucket[/prefix]`), both through the
//! `object_store` crate. Only sealed blobs ever reach it.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

use crate::config::Settings;

/// The directory inside the data dir that holds the blobs by default.
pub const LOCAL_DIR: &str = "attachments";

/// A configured blob store and how it takes uploads.
pub struct BlobStore {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Bytes of each part of a streamed upload: S3 refuses parts under 5 MiB (but the last), a
    /// directory takes any, and smaller parts keep less in memory.
    pub part_bytes: usize,
    /// What it is, for logs (never a credential).
    pub describe: String,
}

/// S3's smallest part but the last.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
const LOCAL_PART_BYTES: usize = 256 * 1024;

/// The blob store the settings name. Errors name the setting at fault.
pub fn from_settings(settings: &Settings) -> Result<BlobStore, String> {
    match settings.attachment_store.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => {
            let dir = settings.data_dir.join(LOCAL_DIR);
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!("BOARDROOM_DATA_DIR (--data-dir): cannot create {}: {e}", dir.display())
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| format!("BOARDROOM_DATA_DIR (--data-dir): {}: {e}", dir.display()))?;
            Ok(BlobStore {
                store: Arc::new(store),
                part_bytes: LOCAL_PART_BYTES,
                describe: format!("directory {}", dir.display()),
            })
        }
        Some(raw) => s3(settings, raw),
    }
}

const STORE: &str = "BOARDROOM_ATTACHMENT_STORE (--attachment-store)";

fn s3(settings: &Settings, raw: &str) -> Result<BlobStore, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{STORE}: {e}"))?;
    if url.scheme() != "s3" {
        return Err(format!("{STORE}: must be s3://bucket[/prefix], or unset for the data dir"));
    }
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("{STORE}: names no bucket (s3://bucket[/prefix])"))?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(format!(
            "{STORE}: credentials and options go in the BOARDROOM_ATTACHMENT_S3_* settings"
        ));
    }
    let prefix = url.path().trim_matches('/').to_owned();
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&settings.attachment_s3_region)
        .with_allow_http(settings.attachment_s3_allow_http);
    if let Some(endpoint) = &settings.attachment_s3_endpoint {
        builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
    }
    if let Some(id) = &settings.attachment_s3_access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &settings.attachment_s3_secret_access_key {
        builder = builder.with_secret_access_key(secret.expose());
    }
    let store = builder
        .build()
        .map_err(|e| format!("{STORE}: cannot configure S3: {}", redact(&e, settings)))?;
    let describe = match &settings.attachment_s3_endpoint {
        Some(endpoint) => format!("s3://{bucket}/{prefix} at {endpoint}"),
        None => format!("s3://{bucket}/{prefix}"),
    };
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix.as_str()))
    };
    Ok(BlobStore { store, part_bytes: S3_PART_BYTES, describe })
}

/// An object-store error's first line, with the secret access key taken out should the
/// builder ever echo it.
fn redact(err: &object_store::Error, settings: &Settings) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or_default();
    match &settings.attachment_s3_secret_access_key {
        Some(secret) if !secret.expose().is_empty() => line.replace(secret.expose(), "***"),
        _ => line.to_owned(),
    }
}
