//! Attachments over REST: upload (`multipart/form-data`), list, download and delete a file
//! attached to an item of a board, or to one of its comments.
//!
//! An upload is checked before a byte of its body is read (the board visible to the caller,
//! the editor role and `items:write`, the item, room for one more: `BoardQuery::MayAttach`), so
//! a viewer or another organization never streams bytes into the blob store. The `file` part
//! then streams into [`Vault::seal`](crate::attachments::Vault::seal), bounded by
//! `BOARDROOM_ATTACHMENT_MAX_BYTES` (413 `payload_too_large`, nothing kept); its type is checked
//! against its first bytes ([`media`]); the board actor records it with its `attachment.added`
//! event. Anything refused after the bytes were sealed deletes the blob again (and the sweep is
//! the backstop if that fails). The file's name is display text only, never a path.
//!
//! Downloads stream out of [`Vault::open`](crate::attachments::Vault::open): a damaged blob is
//! never served (the first chunk is verified before the answer starts; a later bad chunk cuts
//! the answer short of its `Content-Length`). They go out as attachments with `nosniff`, and
//! active types as `application/octet-stream`.

pub mod media;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boardroom_actors::board::{BoardQuery, Requester};
use boardroom_actors::domain::{BoardCommand, EventData, StoredBlob};
use boardroom_actors::values::{check_text, MAX_NAME_CHARS};
use boardroom_protocol::attachments as wire;
use boardroom_protocol::{ErrorCode, Scope};
use futures::TryStreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::ApiPath;
use super::AppState;
use crate::access::requester_for;
use crate::attachments::SealedBlob;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::wire::attachments as to_wire;

/// Bytes a multipart body may carry beyond its file: part headers, boundaries, `update_id`.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Characters kept as they are in `filename*` (RFC 8187 `attr-char`); the rest is
/// percent-encoded, so no quote, semicolon or line break reaches the header.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_attachments, upload_attachment))
        .routes(routes!(download_attachment, delete_attachment))
}

#[utoipa::path(post, path = "/boards/{board}/items/{item}/attachments", tag = "attachments",
        operation_id = "upload_attachment",
    summary = "Attach a file to an item, or to one of its comments (editors)",
    description = "A `multipart/form-data` body with the part `file` (its `filename` becomes the \
        attachment's name; its `Content-Type` is checked against the bytes) and optionally \
        `update_id`. At most `BOARDROOM_ATTACHMENT_MAX_BYTES` (25 MiB) per file and \
        `BOARDROOM_ITEM_MAX_ATTACHMENTS` (100) per item.",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    request_body(content = boardroom_protocol::attachments::UploadAttachment,
        content_type = "multipart/form-data"),
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Attached",
        body = boardroom_protocol::attachments::Attachment), crate::http::openapi::BoardCreateErrors))]
async fn upload_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    // Before any byte of the body is read.
    state.boards().read(org, board, requester.clone(), BoardQuery::MayAttach(item)).await?;
    let max_bytes = state.settings().attachment_max_bytes;
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > max_bytes.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(too_large(max_bytes));
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the file as multipart/form-data (with a boundary)",
            )
        })?;
    let constraints =
        multer::Constraints::new().allowed_fields(vec!["file", "update_id"]).size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_bytes.saturating_add(MULTIPART_OVERHEAD))
                .for_field("update_id", 64),
        );
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut upload = Upload::default();
    let read = upload.read(&state, &mut multipart, max_bytes).await;
    let recorded = match read {
        Ok(()) => record(&state, org, board, item, requester, &mut upload).await,
        Err(err) => Err(err),
    };
    match recorded {
        Ok(attachment) => Ok((StatusCode::CREATED, Json(attachment)).into_response()),
        Err(err) => {
            if let Some(sealed) = upload.file.take() {
                forget_blob(&state, &sealed.blob.blob_key).await;
            }
            Err(err)
        }
    }
}

/// What an upload's parts said.
#[derive(Default)]
struct Upload {
    file: Option<SealedFile>,
    update_id: Option<Uuid>,
}

/// The `file` part, sealed into the blob store.
struct SealedFile {
    name: String,
    declared: Option<String>,
    blob: SealedBlob,
}

impl Upload {
    /// Reads the parts, sealing the file as it streams. On an error, a file already sealed is
    /// left in `self.file` for the caller to delete.
    async fn read(
        &mut self,
        state: &AppState,
        multipart: &mut multer::Multipart<'static>,
        max_bytes: u64,
    ) -> ApiResult<()> {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name() {
                Some("update_id") => {
                    let text = field.text().await.map_err(multipart_error)?;
                    let id = Uuid::parse_str(text.trim())
                        .map_err(|_| ApiError::validation("update_id must be a UUID"))?;
                    self.update_id = Some(id);
                }
                Some("file") => {
                    if self.file.is_some() {
                        return Err(ApiError::validation("send one file per upload"));
                    }
                    let name = display_name(field.file_name())?;
                    let declared = field.content_type().map(|m| m.essence_str().to_owned());
                    let cut_short = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let flag = cut_short.clone();
                    // The body's own bound (a stream of parts past it) is the file's size bound
                    // too: answered 413 like the vault's.
                    let bytes = field.inspect_err(move |err| {
                        if matches!(
                            err,
                            multer::Error::StreamSizeExceeded { .. }
                                | multer::Error::FieldSizeExceeded { .. }
                        ) {
                            flag.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                    let blob = match state.vault().seal(bytes, max_bytes).await {
                        Ok(blob) => blob,
                        Err(_) if cut_short.load(std::sync::atomic::Ordering::Relaxed) => {
                            return Err(too_large(max_bytes));
                        }
                        Err(err) => return Err(err.into()),
                    };
                    self.file = Some(SealedFile { name, declared, blob });
                }
                // Refused by the constraints already.
                _ => return Err(ApiError::validation("the parts are `file` and `update_id`")),
            }
        }
        Ok(())
    }
}

/// Checks the sealed file's type and records it on the board; answers its metadata.
async fn record(
    state: &AppState,
    org: Uuid,
    board: Uuid,
    item: Uuid,
    requester: Requester,
    upload: &mut Upload,
) -> ApiResult<wire::Attachment> {
    let file = upload
        .file
        .as_ref()
        .ok_or_else(|| ApiError::validation("the upload has no `file` part"))?;
    let content_type = media::checked(file.declared.as_deref(), &file.blob.head)
        .map_err(|media::Contradiction(why)| ApiError::new(ErrorCode::UnsupportedMediaType, why))?;
    let command = BoardCommand::AddAttachment {
        item_id: item,
        update_id: upload.update_id,
        name: file.name.clone(),
        size: file.blob.size,
        content_type,
        sha256: file.blob.sha256.clone(),
        blob: StoredBlob {
            blob_key: file.blob.blob_key.clone(),
            key_id: file.blob.key_id.clone(),
            wrapped_key: file.blob.wrapped_key.clone(),
        },
    };
    // The plan's attachment storage, with the organization's creation turn held until the row
    // is written, so two uploads cannot both take the last bytes.
    let admission = state.auth().orgs().admit_storage(org, file.blob.size).await?;
    let output = state.boards().command(org, board, requester, command, None).await?;
    drop(admission);
    // Recorded: the blob is the row's now.
    upload.file = None;
    match output.data {
        EventData::AttachmentAdded(attachment) => Ok(to_wire::attachment(&attachment)),
        other => Err(ApiError::internal(anyhow::anyhow!("an upload answered {:?}", other.kind()))),
    }
}

/// The file's name as display text: its last path segment (a browser may send a whole path),
/// held to the rules of board text.
fn display_name(file_name: Option<&str>) -> ApiResult<String> {
    let name = file_name.ok_or_else(|| ApiError::validation("the `file` part needs a filename"))?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    check_text("filename", last, MAX_NAME_CHARS).map_err(ApiError::from)
}

fn too_large(max_bytes: u64) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("a file may be at most {max_bytes} bytes"))
}

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the upload is too large")
        }
        multer::Error::UnknownField { .. } => {
            ApiError::validation("the parts are `file` and `update_id`")
        }
        other => {
            ApiError::new(ErrorCode::MalformedBody, format!("unreadable multipart body: {other}"))
        }
    }
}

/// Deletes a blob no row names (anymore); a failure is left to the sweep.
async fn forget_blob(state: &AppState, blob_key: &str) {
    if let Err(err) = state.vault().delete(blob_key).await {
        tracing::warn!(error = %err, "an attachment blob could not be deleted; the sweep will");
        state.sweeper().poke();
    }
}

#[utoipa::path(get, path = "/boards/{board}/items/{item}/attachments", tag = "attachments",
        operation_id = "list_attachments",
    summary = "An item's attachments (its comments' included), oldest first",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    security(("session" = []), ("api_key" = ["items:read"]), ("cookie" = [])),
    responses((status = 200, description = "The attachments",
        body = boardroom_protocol::attachments::AttachmentList), crate::http::openapi::ReadErrors))]
async fn list_attachments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<wire::AttachmentList>> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    // The item must be on this board and visible (and `items:read` for a key).
    state.boards().item(org, board, requester, item).await?;
    let stored = state.store().tenant(org).attachments(board, item).await?;
    Ok(Json(to_wire::list(&stored)))
}

#[utoipa::path(get, path = "/boards/{board}/attachments/{attachment}", tag = "attachments",
        operation_id = "download_attachment",
    summary = "Download an attachment's file",
    description = "Streams the file, as an attachment (`Content-Disposition: attachment; \
        filename*=UTF-8''…`), with `X-Content-Type-Options: nosniff` and its stored type; \
        active types (HTML, SVG, XML, JavaScript, anything not known to be passive) are \
        served as `application/octet-stream`.",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("attachment" = uuid::Uuid,
        Path, description = "The attachment")),
    security(("session" = []), ("api_key" = ["items:read"]), ("cookie" = [])),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream",
        body = Vec<u8>), crate::http::openapi::ReadErrors))]
async fn download_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    state.boards().access(org, board, requester, Scope::ItemsRead).await?;
    let stored = state
        .store()
        .tenant(org)
        .attachment(board, id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let blob = &stored.blob;
    let stream = state.vault().open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await?;
    let attachment = id;
    let stream = stream.inspect_err(move |err| {
        tracing::error!(%attachment, error = %err, "an attachment failed while streaming; answer cut");
    });
    let a = &stored.attachment;
    let disposition =
        format!("attachment; filename*=UTF-8''{}", utf8_percent_encode(&a.name, ATTR_CHAR));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media::served(&a.content_type))
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

#[utoipa::path(delete, path = "/boards/{board}/attachments/{attachment}", tag = "attachments",
        operation_id = "delete_attachment",
    summary = "Delete an attachment and its file (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("attachment" = uuid::Uuid,
        Path, description = "The attachment")),
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    // The blob's name, read before the row goes; the actor decides whether it goes.
    let stored = state.store().tenant(org).attachment(board, id).await?;
    let command = BoardCommand::DeleteAttachment { attachment_id: id };
    state.boards().command(org, board, requester, command, None).await?;
    if let Some(stored) = stored {
        forget_blob(&state, &stored.blob.blob_key).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
