//! Which content type an attachment is stored and served with. The type a client declares is
//! checked against what the file's first bytes are (`infer`'s magic numbers and the WHATWG
//! sniffing rules for HTML and XML): a contradiction is refused `415 unsupported_media_type`,
//! so a file declared `image/png` that is HTML or an executable is never stored as an image.
//! On download only types on a safe list are served as stored; anything else (HTML, SVG, XML,
//! JavaScript, unknown types) is `application/octet-stream`, always with `nosniff` and as an
//! attachment, so a browser never renders an uploaded file as active content of this origin.

/// No declared type, or this one, means "unknown": the sniffed type (if any) is stored.
const GENERIC: &str = "application/octet-stream";

/// Served as stored: passive formats a browser does not run.
const SAFE: &[&str] = &[
    "text/plain",
    "text/csv",
    "application/pdf",
    "application/json",
    "application/zip",
    "application/gzip",
    "application/x-tar",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/rtf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "image/avif",
    "image/heic",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/flac",
    "audio/aac",
    "audio/mp4",
    "audio/webm",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
];

/// Office and similar documents: ZIP containers, which the magic numbers may name only as ZIP.
const ZIP_FAMILY: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
    "application/epub+zip",
    "application/java-archive",
    "application/zip",
];

/// Why a file's type was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction(pub String);

/// The type to store for a file declared `declared` (its part's `Content-Type`) whose first
/// bytes are `head`: the declared one when the bytes agree, the sniffed one when nothing useful
/// was declared; refused when the bytes say otherwise.
pub fn checked(declared: Option<&str>, head: &[u8]) -> Result<String, Contradiction> {
    let declared = declared.map(essence).filter(|d| d != GENERIC);
    let sniffed = infer::get(head).map(|t| t.mime_type());
    match (declared, sniffed) {
        (None, Some(sniffed)) => Ok(sniffed.to_owned()),
        (None, None) => Ok(GENERIC.to_owned()),
        (Some(declared), Some(sniffed)) if agree(&declared, sniffed) => Ok(declared),
        (Some(declared), Some(sniffed)) => Err(Contradiction(format!(
            "the file is declared {declared} but its bytes are {sniffed}"
        ))),
        // A type the magic numbers would have recognised, not recognised in the bytes.
        (Some(declared), None) if infer::is_mime_supported(&declared) => {
            Err(Contradiction(format!("the file is declared {declared} but its bytes are not")))
        }
        (Some(declared), None) => Ok(declared),
    }
}

/// The `Content-Type` a stored type is served with.
pub fn served(stored: &str) -> &str {
    if SAFE.contains(&stored)
        || stored.starts_with("application/vnd.openxmlformats-officedocument.")
        || stored.starts_with("application/vnd.oasis.opendocument.")
    {
        stored
    } else {
        GENERIC
    }
}

/// `type/subtype`, lowercase, without parameters; what is not of that form is unknown.
fn essence(declared: &str) -> String {
    let essence = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => essence,
        _ => GENERIC.to_owned(),
    }
}

fn agree(declared: &str, sniffed: &str) -> bool {
    let zip = |t: &str| ZIP_FAMILY.iter().any(|family| t.starts_with(family));
    let xml = |t: &str| t == "text/xml" || t == "application/xml" || t.ends_with("+xml");
    declared == sniffed
        || matches!((declared, sniffed), ("image/jpg" | "image/pjpeg", "image/jpeg"))
        || (declared == "application/x-zip-compressed" && sniffed == "application/zip")
        || (zip(declared) && zip(sniffed))
        || (xml(declared) && sniffed == "text/xml")
        // A shell script is text; served as text/plain it is inert.
        || (declared == "text/plain" && sniffed == "text/x-shellscript")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn declared_types_must_agree_with_the_bytes() {
        assert_eq!(checked(Some("image/png"), PNG), Ok("image/png".into()));
        assert_eq!(checked(Some("IMAGE/PNG; q=1"), PNG), Ok("image/png".into()));
        assert_eq!(checked(None, PNG), Ok("image/png".into()));
        assert_eq!(checked(Some("application/octet-stream"), PNG), Ok("image/png".into()));
        assert_eq!(checked(Some("text/plain"), b"just words"), Ok("text/plain".into()));
        assert_eq!(checked(None, b"just words"), Ok(GENERIC.into()));
        // HTML, an executable, or nothing recognisable, declared as an image.
        assert!(checked(Some("image/png"), b"<html><script>alert(1)</script>").is_err());
        assert!(checked(Some("image/png"), b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").is_err());
        assert!(checked(Some("image/png"), b"just words").is_err());
        assert!(checked(Some("text/plain"), b"  <!DOCTYPE html><p>hi</p>").is_err());
        assert!(checked(Some("image/jpeg"), PNG).is_err());
    }

    #[test]
    fn only_passive_types_are_served_as_stored() {
        assert_eq!(served("image/png"), "image/png");
        assert_eq!(served("application/pdf"), "application/pdf");
        for active in ["text/html", "image/svg+xml", "text/xml", "application/javascript", "x/y"] {
            assert_eq!(served(active), GENERIC, "{active}");
        }
    }
}
