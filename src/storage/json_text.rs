//! [`JsonText`]: JSON the server has already serialized, written as it is.
//!
//! The event log's `payload` is a `json` column on Postgres (migration 0020), not `jsonb`: the
//! log is only ever read back whole, so parsing each payload into `jsonb`'s tree (and rendering
//! it back to text for `payload_bytes`) was work no reader used. It was 17% of Postgres's CPU on
//! a hot board. A `jsonb` parameter would still be parsed into a tree before the cast to `json`,
//! so the hot writers bind this type, which Postgres receives as `json`: a syntax check and a
//! copy. On SQLite it is the TEXT the column always held.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, Type};

/// Postgres's built-in OIDs of `json` and `json[]` (`pg_type.dat`; they never change).
const JSON_OID: Oid = Oid(114);
const JSON_ARRAY_OID: Oid = Oid(199);

/// A JSON document already serialized: Postgres receives it as `json`, SQLite as TEXT.
#[derive(Debug)]
pub struct JsonText(String);

impl JsonText {
    /// `text`, which must be a JSON document (as `serde_json` writes one): Postgres refuses
    /// anything else, and SQLite stores it as it is.
    pub fn new(text: String) -> Self {
        JsonText(text)
    }
}

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }
}

impl PgHasArrayType for JsonText {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_ARRAY_OID)
    }
}

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // `json`'s binary form is its text.
        <&str as Encode<Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for JsonText {
    fn encode(self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0, buf)
    }

    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode_by_ref(&self.0, buf)
    }
}
