//! The worker's HTTP/1.1 service: the same answer in every mode, so that modes
//! differ only in how connections reach the worker.
//!
//! Any method and path get `200`, `content-type: text/plain`, an
//! `x-worker-pid` header and the body `handled by child, pid is <pid>\n` (the
//! line of Node.js's cluster example). `?work_us=N` busy-computes for N µs first,
//! blocking this single-threaded worker as CPU work blocks a Node.js event loop,
//! so an unlucky worker shows in the tail latency.
//!
//! Payloads, so that what a relaying master copies shows (issue 25):
//! `?bytes=N` answers N bytes instead of the line, streamed from one static
//! buffer ([`AnswerBody`]: no allocation and no copy per request); a request
//! body is read, counted and dropped, and the answer says how many bytes
//! came in [`RECEIVED_BYTES_HEADER`]. Both are bounded by [`MAX_BODY_BYTES`].

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest `work_us` accepted: one second of busy work per request is
/// already far beyond any sensible experiment.
pub const MAX_WORK_US: u64 = 1_000_000;

/// The largest request head (request line and headers) accepted; a larger
/// one is answered `431 Request Header Fields Too Large` and the connection
/// closed. Node.js's default `--max-http-header-size` is 16 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The largest body, either way: the most `?bytes=` may ask for (beyond:
/// `400`), and the most of a request body the worker reads (beyond: `413
/// Payload Too Large`, and the connection closed). 64 times the largest size
/// the suite measures (1 MiB), and small enough that one request cannot keep
/// a worker busy for long.
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The header that says how many bytes of a request body the worker read.
/// Only on the answer to a request that has a body, so that the answer to a
/// `GET` stays byte for byte the documented one (and the peers' answer).
pub const RECEIVED_BYTES_HEADER: &str = "x-received-bytes";

/// The size of the static buffer a `?bytes=` answer is cut from: each chunk
/// of the body is a slice of it, handed to hyper as `Bytes::from_static` (a
/// pointer and a length, no refcount). 64 KiB: a 1 MiB answer is 16 chunks.
const FILLER_BYTES: usize = 64 * 1024;

/// What a `?bytes=` body is made of: `x`, repeated. In the binary's
/// read-only data, shared by every answer.
static FILLER: [u8; FILLER_BYTES] = [b'x'; FILLER_BYTES];

/// How the worker's HTTP connections are configured (from the master's flags).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long a client may take to send a request's head before the
    /// connection is closed (slowloris). hyper starts this clock when it waits
    /// for a request's head, so it also bounds how long a keep-alive
    /// connection may sit idle between requests. It bounds each silence
    /// within a request body too (`408`, connection closed): hyper does not.
    pub header_timeout: Duration,
}

/// The body of every answer: a text (the documented line, or why a request
/// was refused), or `?bytes=N` bytes of `x` (`FILLER`), cut into slices of the static
/// buffer as hyper asks for them. Its exact length is known up front, so
/// hyper writes a `content-length`, never chunks.
#[derive(Debug)]
pub struct AnswerBody {
    /// The text still to send; `None` once sent, or when there is none.
    text: Option<Bytes>,
    /// Bytes of [`FILLER`] still to send.
    filler_left: u64,
}

impl AnswerBody {
    /// A body of exactly `text`.
    fn text(text: Bytes) -> AnswerBody {
        AnswerBody {
            text: (!text.is_empty()).then_some(text),
            filler_left: 0,
        }
    }

    /// A body of `len` bytes of [`FILLER`].
    fn filler(len: u64) -> AnswerBody {
        AnswerBody {
            text: None,
            filler_left: len,
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(text) = this.text.take() {
            return Poll::Ready(Some(Ok(Frame::data(text))));
        }
        if this.filler_left == 0 {
            return Poll::Ready(None);
        }
        let len =
            usize::try_from(this.filler_left).map_or(FILLER_BYTES, |left| left.min(FILLER_BYTES));
        this.filler_left -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILLER[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.text.is_none() && self.filler_left == 0
    }

    fn size_hint(&self) -> SizeHint {
        let text = self.text.as_ref().map_or(0, |text| text.len() as u64);
        SizeHint::with_exact(text + self.filler_left)
    }
}

/// Why a request body was not read to its end.
#[derive(Debug)]
enum BodyError {
    /// Over [`MAX_BODY_BYTES`], announced or read: `413`.
    TooLarge,
    /// Silent for `--header-timeout`: `408`.
    Stalled,
    /// The client reset, or sent a malformed chunk: nobody left to answer.
    Failed(hyper::Error),
}

/// Reads `body` to its end and drops it, counting its bytes: at most
/// [`MAX_BODY_BYTES`] (a `content-length` above is refused before a byte is
/// read), each read waiting at most `timeout`.
async fn count_body(
    content_length: Option<&HeaderValue>,
    mut body: Incoming,
    timeout: Duration,
) -> Result<u64, BodyError> {
    let announced = content_length
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let mut received: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(received),
            Ok(Some(Err(err))) => return Err(BodyError::Failed(err)),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            if received > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
        }
    }
}

/// The parts of every answer that do not change within a process, built once.
#[derive(Clone)]
struct Answer {
    pid: HeaderValue,
    body: Bytes,
    /// The longest silence within a request body (`--header-timeout`).
    body_timeout: Duration,
}

impl Answer {
    fn new(config: Config) -> Answer {
        let pid = std::process::id();
        Answer {
            pid: HeaderValue::from(pid),
            body: Bytes::from(format!("handled by child, pid is {pid}\n")),
            body_timeout: config.header_timeout,
        }
    }

    /// The answer to `req`: its body read and counted, then its `?work_us=`
    /// of busy work, then the line, or `?bytes=` of filler.
    ///
    /// An error is a request body hyper could not read (a reset, a malformed
    /// chunk): hyper then closes the connection, and nobody is answered.
    async fn respond(self, req: Request<Incoming>) -> Result<Response<AnswerBody>, hyper::Error> {
        let (head, body) = req.into_parts();
        let query = head.uri.query();
        let asked = work_us(query).and_then(|us| Ok((us, bytes(query)?)));
        // A request without a body (a GET) waits for nothing here and gets
        // no header more.
        let received = if body.is_end_stream() {
            None
        } else {
            match count_body(head.headers.get(CONTENT_LENGTH), body, self.body_timeout).await {
                Ok(received) => Some(received),
                Err(BodyError::TooLarge) => {
                    let why = format!("a request body may have at most {MAX_BODY_BYTES} bytes\n");
                    return Ok(self.closing(StatusCode::PAYLOAD_TOO_LARGE, why));
                }
                Err(BodyError::Stalled) => {
                    let why = format!("the request body stalled for {:?}\n", self.body_timeout);
                    return Ok(self.closing(StatusCode::REQUEST_TIMEOUT, why));
                }
                Err(BodyError::Failed(err)) => return Err(err),
            }
        };
        if matches!(asked, Ok((us, _)) if us > 0) {
            // A turn for this worker's other connections and its channel
            // before the event loop blocks. hyper reads a pipelined request
            // from its buffer as soon as the previous answer is written,
            // without waiting for the socket, so without this one client
            // pipelining busy requests would hold the worker for the whole
            // pipeline: every other client, and the master's Stop, would wait
            // (issue 10). yield_now lets tokio poll for I/O first.
            tokio::task::yield_now().await;
        }
        let mut response = match asked {
            Ok((us, bytes)) => {
                busy_work(Duration::from_micros(us));
                Response::new(match bytes {
                    Some(len) => AnswerBody::filler(len),
                    None => AnswerBody::text(self.body.clone()),
                })
            }
            Err(why) => {
                let mut response = Response::new(AnswerBody::text(Bytes::from(why)));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }
        };
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-worker-pid", self.pid.clone());
        if let Some(received) = received {
            headers.insert(RECEIVED_BYTES_HEADER, HeaderValue::from(received));
        }
        Ok(response)
    }

    /// A refusal with `status` and `why` that closes the connection: the
    /// rest of the request body is still on its way, and no next request
    /// can be found behind it.
    fn closing(&self, status: StatusCode, why: String) -> Response<AnswerBody> {
        let mut response = Response::new(AnswerBody::text(Bytes::from(why)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-worker-pid", self.pid.clone());
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// Reads the number `name=N` from a query string, at most `max`: `None`
/// when absent; the text of a `400` when not a number in range.
fn query_number(query: Option<&str>, name: &str, max: u64) -> Result<Option<u64>, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(format!(
            "{name} must be an integer from 0 to {max}, got {value:?}\n"
        )),
    }
}

/// Reads `work_us` from a query string: 0 when absent.
fn work_us(query: Option<&str>) -> Result<u64, String> {
    Ok(query_number(query, "work_us", MAX_WORK_US)?.unwrap_or(0))
}

/// Reads `bytes` from a query string: the answer's body length, `None` for
/// the documented line.
fn bytes(query: Option<&str>) -> Result<Option<u64>, String> {
    query_number(query, "bytes", MAX_BODY_BYTES)
}

/// Spins on the CPU for `duration`: work, not a sleep, so the worker's event
/// loop is blocked as it would be by real computation.
fn busy_work(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// A connection the worker serves: a TCP stream, or a Unix stream from a
/// relaying master (`proxy --upstream unix`).
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for S {}

/// Serves HTTP/1.1 on one connection until the client closes it, keep-alive
/// ends, or a graceful shutdown (through `watcher`) finishes the request in
/// flight and closes it.
pub fn serve<S: Connection>(stream: S, watcher: Watcher, config: Config) {
    spawn_connection(stream, watcher, config, false);
}

/// Serves one request on a connection taken as the worker stops (from its
/// accept queue, or handed by the master as it stopped listening), then
/// closes it (`Connection: close`).
///
/// Not through the graceful shutdown's signal: hyper answers it by closing
/// at once a connection that has not started reading a request, and this
/// one's request is likely still in the socket, unread. `watcher` is only
/// held, so that the stop still waits for this connection (bounded by
/// `--header-timeout` and the grace period).
pub fn serve_at_stop<S: Connection>(stream: S, watcher: Watcher, config: Config) {
    spawn_connection(stream, watcher, config, true);
}

/// Spawns the task serving [`Answer`]s on `stream`: see [`serve`] and
/// [`serve_at_stop`].
fn spawn_connection<S: Connection>(stream: S, watcher: Watcher, config: Config, at_stop: bool) {
    thread_local! {
        static ANSWER: std::cell::OnceCell<Answer> = const { std::cell::OnceCell::new() };
    }
    let answer = ANSWER.with(|answer| answer.get_or_init(|| Answer::new(config)).clone());
    let service = service_fn(move |req| answer.clone().respond(req));
    let conn = http1::Builder::new()
        // A client may send its request and then its end-of-file
        // (`shutdown(SHUT_WR)`, `curl --data @- <file`-style tools, the proxy
        // relaying such a client): it still gets its answer. Without this
        // hyper closes the connection when it reads the end-of-file while the
        // answer is computed, and the client gets nothing (1 time in 5 here).
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(!at_stop)
        .serve_connection(TokioIo::new(stream), service);
    tokio::spawn(async move {
        let result = if at_stop {
            let _counted = watcher;
            conn.await
        } else {
            watcher.watch(conn).await
        };
        // Errors here concern one client (reset, malformed request, timeout);
        // hyper has already answered what can be answered (400, 431).
        if let Err(err) = result {
            tracing::debug!(cause = %err, "connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `work_us` is read from anywhere in the query and bounded.
    #[test]
    fn work_us_parses_and_bounds() {
        assert_eq!(work_us(None), Ok(0));
        assert_eq!(work_us(Some("a=1")), Ok(0));
        assert_eq!(work_us(Some("a=1&work_us=250")), Ok(250));
        assert_eq!(work_us(Some("work_us=1000000")), Ok(1_000_000));
        assert!(work_us(Some("work_us=1000001")).is_err());
        assert!(work_us(Some("work_us=-1")).is_err());
        assert!(work_us(Some("work_us=")).is_err());
    }

    /// `bytes` is read beside `work_us`, bounded by `MAX_BODY_BYTES`, and a
    /// parameter whose name merely starts with it is another parameter.
    #[test]
    fn bytes_parses_and_bounds() {
        assert_eq!(bytes(None), Ok(None));
        assert_eq!(bytes(Some("work_us=5&bytes=1048576")), Ok(Some(1_048_576)));
        assert_eq!(bytes(Some("bytes=0")), Ok(Some(0)));
        assert_eq!(bytes(Some("bytesx=3")), Ok(None));
        assert_eq!(
            bytes(Some(&format!("bytes={MAX_BODY_BYTES}"))),
            Ok(Some(MAX_BODY_BYTES))
        );
        assert!(bytes(Some(&format!("bytes={}", MAX_BODY_BYTES + 1))).is_err());
        assert!(bytes(Some("bytes=1k")).is_err());
    }

    /// A `?bytes=` body is exactly as long as asked, in slices of the static
    /// buffer, and says so up front (hyper's `content-length`).
    #[test]
    fn filler_body_has_the_length_asked() {
        use http_body_util::BodyExt;
        let len = 3 * FILLER_BYTES as u64 + 5;
        let body = AnswerBody::filler(len);
        assert_eq!(body.size_hint().exact(), Some(len));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let collected = runtime
            .block_on(body.collect())
            .expect("an infallible body")
            .to_bytes();
        assert_eq!(collected.len() as u64, len);
        assert!(collected.iter().all(|byte| *byte == b'x'));
        assert!(AnswerBody::filler(0).is_end_stream());
        assert!(AnswerBody::text(Bytes::new()).is_end_stream());
    }
}
