//! The JSON Schema of the socket frames, generated from the `utoipa::ToSchema` derives of
//! [`ClientFrame`] and [`ServerFrame`] (and of every type they carry), never written by hand.
//!
//! `docs/protocol.schema.json` is this schema, checked in; a test fails when it differs from
//! what the types generate. After changing a frame, regenerate it with
//! `BOARDROOM_WRITE_SCHEMA=1 cargo test -p boardroom-protocol schema::`.

use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::frames::{ClientFrame, Done, ServerFrame, Subscribed};

/// Collects the frame types and, through their derives, every schema they refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(ClientFrame, ServerFrame, Subscribed, Done)))]
struct Frames;

/// Where OpenAPI keeps schemas, and where a standalone JSON Schema keeps them.
const OPENAPI_REFS: &str = "#/components/schemas/";
const JSON_SCHEMA_REFS: &str = "#/$defs/";

/// The JSON Schema (draft 2020-12) of a socket frame in its JSON encoding (MessagePack carries
/// the same values): either a [`ClientFrame`] or a [`ServerFrame`], with every type they use
/// under `$defs`.
pub fn frames_json_schema() -> Value {
    let openapi = Frames::openapi();
    let schemas = openapi.components.map(|c| c.schemas).unwrap_or_default();
    let mut defs = serde_json::to_value(schemas).unwrap_or_else(|_| json!({}));
    rewrite_refs(&mut defs);
    open_objects(&mut defs);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("Boardroom WebSocket frames, protocol version {}", crate::PROTOCOL_VERSION),
        "description": "A frame a client sends (ClientFrame) or the server sends (ServerFrame). \
                        Generated from boardroom-protocol; see docs/PROTOCOL.md.",
        "oneOf": [
            { "$ref": format!("{JSON_SCHEMA_REFS}ClientFrame") },
            { "$ref": format!("{JSON_SCHEMA_REFS}ServerFrame") },
        ],
        "$defs": defs,
    })
}

/// Drops `additionalProperties: false`: a board write's body refuses unknown fields on REST,
/// but inside a frame it sits flattened beside `type`, `id` and the ids, and sockets ignore
/// fields they do not know (`docs/PROTOCOL.md`), so no frame object is closed.
fn open_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                map.remove("additionalProperties");
            }
            map.values_mut().for_each(open_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(open_objects),
        _ => {}
    }
}

/// Points every `$ref` at `$defs` instead of OpenAPI's components.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix(OPENAPI_REFS) {
                            *target = format!("{JSON_SCHEMA_REFS}{name}");
                        }
                    }
                    _ => rewrite_refs(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.schema.json")
    }

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&frames_json_schema()).unwrap() + "\n";
        if std::env::var_os("BOARDROOM_WRITE_SCHEMA").is_some() {
            std::fs::write(checked_in(), &generated).unwrap();
        }
        let file = std::fs::read_to_string(checked_in()).unwrap_or_default();
        assert!(
            file == generated,
            "docs/protocol.schema.json is not what the frame types generate; regenerate it with \
             BOARDROOM_WRITE_SCHEMA=1 cargo test -p boardroom-protocol schema::"
        );
    }

    #[test]
    fn every_ref_resolves_within_the_schema() {
        let schema = frames_json_schema();
        let text = schema.to_string();
        assert!(!text.contains(OPENAPI_REFS), "a $ref still points at OpenAPI components");
        for part in text.split(r#""$ref":""#).skip(1) {
            let target = part.split('"').next().unwrap();
            let name = target.strip_prefix(JSON_SCHEMA_REFS).unwrap();
            assert!(schema["$defs"].get(name).is_some(), "{target} is not defined");
        }
    }

    #[test]
    fn frames_validate_against_it_by_their_tags() {
        let schema = frames_json_schema();
        let defs = &schema["$defs"];
        // Every client message type and every server frame type is named in the schema.
        let client = defs["ClientMessage"].to_string() + &defs["ClientFrame"].to_string();
        for tag in ["subscribe", "unsubscribe", "create_item", "ping"] {
            assert!(client.contains(&format!("\"{tag}\"")), "client frame {tag} missing");
        }
        let server = defs["ServerFrame"].to_string();
        for tag in ["hello", "reply", "event", "presence", "unsubscribed"] {
            assert!(server.contains(&format!("\"{tag}\"")), "server frame {tag} missing");
        }
    }
}
