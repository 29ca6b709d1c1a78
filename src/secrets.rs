//! Secrets kept in files: a secret setting that falls back to a value generated into the data
//! dir on first start (the JWT secret, the audit key, the attachments' master keys), and the
//! private files that hold them. Beneath `server` and `attachments`, which both load secrets.

use std::path::Path;

use crate::config::Settings;

/// Minimum length of a secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A secret setting that falls back to a file generated in the data dir.
pub(crate) struct SecretSetting<'a> {
    /// The configured value, if any.
    pub(crate) configured: Option<&'a str>,
    /// The environment variable.
    pub(crate) env: &'static str,
    /// The flag, without dashes.
    pub(crate) flag: &'static str,
    /// The file in the data dir holding the generated value.
    pub(crate) file: &'static str,
}

/// What to do when a secret is neither configured nor in the data dir yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Generate one into the data dir (a server starting for the first time).
    Generate,
    /// Fail (a command that must use the secret the server used, never a new one).
    Fail,
}

/// The secret `setting` names: the configured value (at least [`MIN_SECRET_BYTES`]), or the one
/// in its file in the data dir, generated there (mode 0600, with a warning that production must
/// set its own) under [`IfMissing::Generate`]. Errors are one line naming the setting.
pub(crate) fn load_secret(
    settings: &Settings,
    setting: SecretSetting<'_>,
    missing: IfMissing,
) -> Result<Vec<u8>, String> {
    let SecretSetting { configured, env, flag, file } = setting;
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "{env} (--{flag}): must be at least {MIN_SECRET_BYTES} bytes, got {}",
                secret.len()
            ));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = settings.data_dir.join(file);
    let secret = match std::fs::read_to_string(&path) {
        Ok(existing) => existing.trim().to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && missing == IfMissing::Fail => {
            return Err(format!(
                "{env} (--{flag}): not set, and the data dir has no generated one ({})",
                path.display()
            ))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let generated = generate_secret();
            write_private_file(&path, &generated).map_err(|e| {
                format!("BOARDROOM_DATA_DIR (--data-dir): cannot write {}: {e}", path.display())
            })?;
            generated
        }
        Err(err) => {
            return Err(format!(
                "BOARDROOM_DATA_DIR (--data-dir): cannot read {}: {err}",
                path.display()
            ))
        }
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "BOARDROOM_DATA_DIR (--data-dir): {} holds a secret shorter than {MIN_SECRET_BYTES} bytes",
            path.display()
        ));
    }
    tracing::warn!(
        file = %path.display(),
        "{env} is not set: using a generated secret from the data dir; production must set its own"
    );
    Ok(secret.into_bytes())
}

pub(crate) fn generate_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
