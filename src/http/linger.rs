//! Lingering close: the rest of a request body that the answer did not need is read and dropped
//! before the answer goes out, so the connection stays usable.
//!
//! An answer may be ready before its request body has been read to the end: a body over the
//! size limit (413 after the first mebibyte), or a request refused before its body is looked at
//! (401, 404, 429, …). hyper then stops reading and closes the connection after the answer,
//! without saying so in the answer: a keep-alive client that has finished sending puts the
//! connection back in its pool and sends its next request into a closed socket ("connection
//! closed before message completed", hyper's `IncompleteMessage`: the flaky
//! `item_versions_guard_concurrent_edits`, whose 2 MiB body was answered 413 and whose next GET
//! failed about one run in six). And a socket closed with unread data is reset by the kernel,
//! which can also destroy the answer itself on its way out.
//!
//! [`linger`] keeps a handle on every request body and, once the answer is ready, reads what is
//! left and drops it, up to [`DRAIN_BYTES`] within [`DRAIN_TIME`]; the connection is then
//! genuinely reusable. A client that sends more than that, or more slowly, gets
//! `Connection: close` on the answer, so it does not reuse the connection: reading on without a
//! bound would let anyone keep the server reading.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// The most of an unread request body read and dropped after the answer is ready.
pub const DRAIN_BYTES: usize = 8 << 20;

/// The longest an answer waits for the rest of its request body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Middleware: serves the request with a shared handle on its body, then drains what the
/// handler left unread (see the module docs) before handing the answer to hyper; where that
/// cannot be done within bounds, the answer says `Connection: close`.
pub async fn linger(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    if expects_continue(&parts.headers) {
        // Draining would make hyper send `100 Continue` and invite a body the answer refused;
        // a client waiting to be told has sent nothing yet, so closing costs it nothing.
        let mut response = next.run(Request::from_parts(parts, body)).await;
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let shared = SharedBody(Arc::new(Mutex::new(body)));
    let mut response = next.run(Request::from_parts(parts, Body::new(shared.clone()))).await;
    if !drain(shared).await {
        tracing::debug!("request body left unread past the drain bounds; closing the connection");
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether the client asked to be told before it sends its body (`Expect: 100-continue`).
fn expects_continue(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and drops the rest of `body`; whether it ended within the bounds.
async fn drain(mut body: SharedBody) -> bool {
    let mut left = DRAIN_BYTES;
    let read_to_end = async {
        loop {
            match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                None => return true,
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    match left.checked_sub(len) {
                        Some(rest) => left = rest,
                        None => return false,
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME, read_to_end).await.unwrap_or(false)
}

/// A request body with two owners: the handler reads from it, and [`linger`] reads what the
/// handler left once the answer is ready. Only one of them polls at a time.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Body>>);

impl SharedBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Body> {
        // Polling a body cannot leave it half-changed for the other owner: poisoning is moot.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut *self.lock()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lock().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.lock().size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::post;
    use axum::Router;
    use futures::StreamExt as _;
    use tower::ServiceExt;

    use super::*;

    /// A route that answers without reading its body, and one that reads it, behind [`linger`].
    fn app() -> Router {
        Router::new()
            .route("/ignores", post(|| async { "early" }))
            .route("/reads", post(|body: Bytes| async move { body.len().to_string() }))
            .layer(axum::middleware::from_fn(linger))
    }

    async fn send(path: &str, body: Body) -> Response {
        let request = Request::post(path).body(body).unwrap();
        app().oneshot(request).await.unwrap()
    }

    fn closes(response: &Response) -> bool {
        response.headers().get(header::CONNECTION).is_some_and(|v| v == "close")
    }

    /// A body in `n` chunks of `size` bytes, with how many chunks were taken from it.
    fn chunked(n: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        let chunks = futures::stream::iter(0..n).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        });
        (Body::from_stream(chunks), taken)
    }

    #[tokio::test]
    async fn an_unread_body_is_drained_and_the_connection_kept() {
        let (body, taken) = chunked(32, 64 * 1024);
        let response = send("/ignores", body).await;
        assert_eq!(taken.load(Ordering::SeqCst), 32);
        assert!(!closes(&response));
        // A body the handler read is not touched again, and nothing is added to its answer.
        let response = send("/reads", Body::from(vec![b'x'; 1000])).await;
        assert!(!closes(&response));
        let response = send("/ignores", Body::empty()).await;
        assert!(!closes(&response));
    }

    #[tokio::test]
    async fn a_body_past_the_bound_is_left_and_the_connection_closed() {
        let chunk = 1024 * 1024;
        let (body, taken) = chunked(DRAIN_BYTES / chunk + 4, chunk);
        let response = send("/ignores", body).await;
        assert!(closes(&response));
        // Reading stopped at the bound, not at the end.
        assert_eq!(taken.load(Ordering::SeqCst), DRAIN_BYTES / chunk + 1);
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_given_up_after_the_drain_time() {
        let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let started = std::time::Instant::now();
        let response = send("/ignores", Body::from_stream(stalled)).await;
        assert!(closes(&response));
        assert!(started.elapsed() >= DRAIN_TIME);
    }
}
