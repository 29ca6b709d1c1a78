//! File attachments on items and comments: the metadata answered by the attachment routes and
//! carried by `attachment.added` and `attachment.deleted`. Never the bytes, never where or how
//! they are stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A file attached to an item (and, with `update_id`, to one of its comments):
/// `POST /boards/{board}/items/{item}/attachments` answers it, and `attachment.added` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// Id.
    pub id: Uuid,
    /// The item it is on.
    pub item_id: Uuid,
    /// The comment (update) it is attached to, if any.
    #[schema(required = true)]
    pub update_id: Option<Uuid>,
    /// The file's name as uploaded, kept as display text only (never a path).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type, as checked against the file's bytes.
    pub content_type: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Who uploaded it.
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

/// `GET /boards/{board}/items/{item}/attachments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentList {
    /// The item's attachments, oldest first.
    pub attachments: Vec<Attachment>,
}

/// `attachment.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentDeleted {
    /// The attachment.
    pub id: Uuid,
    /// The item it was on.
    pub item_id: Uuid,
    /// The board.
    pub board_id: Uuid,
}

/// The `multipart/form-data` body of `POST /boards/{board}/items/{item}/attachments` (for the
/// OpenAPI document; the server reads the parts as a stream).
#[derive(Debug, Clone, PartialEq, ToSchema)]
pub struct UploadAttachment {
    /// The file; its part's `filename` becomes the attachment's name, and its `Content-Type`
    /// is checked against the bytes.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Attach to this comment (update) of the item. Sent before `file`.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub update_id: Option<Uuid>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::golden::{assert_golden, at, id};

    pub(crate) fn attachment() -> Attachment {
        Attachment {
            id: id(9),
            item_id: id(5),
            update_id: None,
            name: "Résumé.pdf".into(),
            size: 1234,
            content_type: "application/pdf".into(),
            sha256: "ab".repeat(32),
            created_by: Some(id(6)),
            created_at: at("2026-01-02T03:04:05Z"),
        }
    }

    #[test]
    fn attachments_are_pinned() {
        assert_golden(&attachment(), ATTACHMENT_JSON, ATTACHMENT_MSGPACK);
        let list = AttachmentList {
            attachments: vec![Attachment { update_id: Some(id(7)), ..attachment() }],
        };
        assert_golden(&list, ATTACHMENT_LIST_JSON, ATTACHMENT_LIST_MSGPACK);
        let deleted = AttachmentDeleted { id: id(9), item_id: id(5), board_id: id(1) };
        assert_golden(&deleted, ATTACHMENT_DELETED_JSON, ATTACHMENT_DELETED_MSGPACK);
    }

    const ATTACHMENT_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000009","item_id":"00000000-0000-0000-0000-000000000005","update_id":null,"name":"Résumé.pdf","size":1234,"content_type":"application/pdf","sha256":"abababababababababababababababababababababababababababababababab","created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z"}"#;
    const ATTACHMENT_MSGPACK: &str = "89a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303039a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a97570646174655f6964c0a46e616d65ac52c3a973756dc3a92e706466a473697a65cd04d2ac636f6e74656e745f74797065af6170706c69636174696f6e2f706466a6736861323536d94061626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355a";
    const ATTACHMENT_LIST_JSON: &str = r#"{"attachments":[{"id":"00000000-0000-0000-0000-000000000009","item_id":"00000000-0000-0000-0000-000000000005","update_id":"00000000-0000-0000-0000-000000000007","name":"Résumé.pdf","size":1234,"content_type":"application/pdf","sha256":"abababababababababababababababababababababababababababababababab","created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z"}]}"#;
    const ATTACHMENT_LIST_MSGPACK: &str = "81ab6174746163686d656e74739189a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303039a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a97570646174655f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a46e616d65ac52c3a973756dc3a92e706466a473697a65cd04d2ac636f6e74656e745f74797065af6170706c69636174696f6e2f706466a6736861323536d94061626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355a";
    const ATTACHMENT_DELETED_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000009","item_id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001"}"#;
    const ATTACHMENT_DELETED_MSGPACK: &str = "83a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303039a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
}
