//! Golden tests' one helper (tests only): pins a value's JSON text and MessagePack bytes, and
//! checks that both decode back to the same value. The expected MessagePack bytes are checked
//! against Python's `msgpack.packb` of the pinned JSON (keys in the same order), so the two
//! encodings are known to say the same thing.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::codec::Encoding;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that `value` encodes to exactly `json` and to the MessagePack bytes `msgpack_hex`,
/// and that both decode back to `value`.
#[track_caller]
pub fn assert_golden<T>(value: &T, json: &str, msgpack_hex: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let name = std::any::type_name::<T>();
    let text = String::from_utf8(Encoding::Json.encode(value).unwrap()).unwrap();
    let bytes = Encoding::MessagePack.encode(value).unwrap();
    assert_eq!(text, json, "JSON of {name}");
    assert_eq!(hex(&bytes), msgpack_hex, "MessagePack of {name}");
    assert_eq!(&Encoding::Json.decode::<T>(json.as_bytes()).unwrap(), value, "JSON of {name}");
    assert_eq!(&Encoding::MessagePack.decode::<T>(&bytes).unwrap(), value, "MessagePack of {name}");
}

/// A fixed id for examples: `00000000-0000-0000-0000-0000000000nn`.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A fixed time for examples, from RFC 3339 text.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}
