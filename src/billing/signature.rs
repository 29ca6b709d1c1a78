//! Stripe webhook signatures, checked exactly as Stripe's own libraries check them: the
//! `Stripe-Signature` header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]` (other schemes, such as
//! `v0`, are ignored); the expected signature is the HMAC-SHA256 of `"{t}.{raw body}"` keyed
//! with the endpoint secret's bytes (the whole `whsec_…` string); any `v1` that matches, compared
//! in constant time, passes; a timestamp more than [`TOLERANCE_SECS`] from now, in the past or
//! the future, fails. `tests/billing.rs` signs with the `stripe` PyPI package's own helper.

use subtle::ConstantTimeEq;

use crate::webhooks::sign;

/// How far a signature's timestamp may be from now, either way (Stripe's default tolerance).
pub const TOLERANCE_SECS: i64 = 300;

/// Longest header considered; Stripe's hold a timestamp and a few signatures.
const MAX_HEADER_BYTES: usize = 4096;

/// Why a delivery's signature was refused. The message is safe to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header has no timestamp or no `v1` signature, or is not the expected form.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// The timestamp is too old or in the future.
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Expired,
    /// No `v1` signature matches the body.
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks `header` against `body` and `secret` at `now` (Unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<&str> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { continue };
        match key {
            "t" => timestamp = Some(value),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let seconds: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - seconds).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    // The same construction as Boardroom's own webhook signatures, over the timestamp as a
    // number (as Stripe's libraries sign and check it), compared as lower-case hex text.
    let expected = sign(secret, seconds, body);
    // Every candidate is compared, so the time taken says nothing about which one matched.
    let matched = candidates.iter().fold(0u8, |any, candidate| {
        any | candidate.as_bytes().ct_eq(expected.as_bytes()).unwrap_u8()
    });
    if matched == 1 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.payment_failed"}"#;

    fn header(t: i64, body: &[u8], secret: &str) -> String {
        format!("t={t},v1={}", sign(secret, t, body))
    }

    #[test]
    fn a_good_signature_passes_and_anything_altered_fails() {
        let now = 1_700_000_000;
        assert_eq!(verify(Some(&header(now, BODY, SECRET)), BODY, SECRET, now), Ok(()));
        let altered = br#"{"id":"evt_2","type":"invoice.payment_failed"}"#;
        assert_eq!(
            verify(Some(&header(now, BODY, SECRET)), altered, SECRET, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header(now, BODY, "whsec_other")), BODY, SECRET, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes_either_way() {
        let now = 1_700_000_000;
        for t in [now - 300, now + 300] {
            assert_eq!(verify(Some(&header(t, BODY, SECRET)), BODY, SECRET, now), Ok(()));
        }
        for t in [now - 301, now + 301] {
            assert_eq!(
                verify(Some(&header(t, BODY, SECRET)), BODY, SECRET, now),
                Err(SignatureError::Expired)
            );
        }
    }

    #[test]
    fn any_matching_v1_passes_and_other_schemes_are_ignored() {
        let now = 1_700_000_000;
        let good = header(now, BODY, SECRET);
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let several = format!("t={now},v1={},v0={good_v1},v1={good_v1},v1=zz", "00".repeat(32));
        assert_eq!(verify(Some(&several), BODY, SECRET, now), Ok(()));
        let only_v0 = format!("t={now},v0={good_v1}");
        assert_eq!(verify(Some(&only_v0), BODY, SECRET, now), Err(SignatureError::Malformed));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let now = 1_700_000_000;
        for bad in ["", "t=", "v1=00", "t=abc,v1=00", "garbage", "t=1700000000"] {
            assert!(verify(Some(bad), BODY, SECRET, now).is_err(), "{bad:?}");
        }
        assert_eq!(verify(None, BODY, SECRET, now), Err(SignatureError::Missing));
        let huge = format!("t={now},{}", "v1=00,".repeat(2000));
        assert_eq!(verify(Some(&huge), BODY, SECRET, now), Err(SignatureError::Malformed));
    }
}
