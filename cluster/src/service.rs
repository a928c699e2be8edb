//! The worker's HTTP/1.1 service: the same answer in every mode, so that modes
//! differ only in how connections reach the worker.
//!
//! Any method and path get `200`, `content-type: text/plain`, an
//! `x-worker-pid` header and the body `handled by child, pid is <pid>\n` (the
//! line of Node.js's cluster example). `?work_us=N` busy-computes for N µs first,
//! blocking this single-threaded worker as CPU work blocks a Node.js event loop,
//! so an unlucky worker shows in the tail latency.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
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

/// How the worker's HTTP connections are configured (from the master's flags).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long a client may take to send a request's head before the
    /// connection is closed (slowloris). hyper starts this clock when it waits
    /// for a request's head, so it also bounds how long a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
}

/// The parts of every answer that do not change within a process, built once.
#[derive(Clone)]
struct Answer {
    pid: HeaderValue,
    body: Bytes,
}

impl Answer {
    fn new() -> Answer {
        let pid = std::process::id();
        Answer {
            pid: HeaderValue::from(pid),
            body: Bytes::from(format!("handled by child, pid is {pid}\n")),
        }
    }

    /// The answer to `req`, after its `?work_us=` of busy work.
    async fn respond(self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let work = work_us(req.uri().query());
        if matches!(work, Ok(us) if us > 0) {
            // A turn for this worker's other connections and its channel
            // before the event loop blocks. hyper reads a pipelined request
            // from its buffer as soon as the previous answer is written,
            // without waiting for the socket, so without this one client
            // pipelining busy requests would hold the worker for the whole
            // pipeline: every other client, and the master's Stop, would wait
            // (issue 10). yield_now lets tokio poll for I/O first.
            tokio::task::yield_now().await;
        }
        let (status, body) = match work {
            Ok(us) => {
                busy_work(Duration::from_micros(us));
                (StatusCode::OK, self.body.clone())
            }
            Err(why) => (StatusCode::BAD_REQUEST, Bytes::from(why)),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-worker-pid", self.pid.clone());
        response
    }
}

/// Reads `work_us` from a query string: 0 when absent.
fn work_us(query: Option<&str>) -> Result<u64, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("work_us="))
    else {
        return Ok(0);
    };
    match value.parse::<u64>() {
        Ok(us) if us <= MAX_WORK_US => Ok(us),
        _ => Err(format!(
            "work_us must be an integer from 0 to {MAX_WORK_US}, got {value:?}\n"
        )),
    }
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
        static ANSWER: Answer = Answer::new();
    }
    let answer = ANSWER.with(Answer::clone);
    let service = service_fn(move |req| {
        let answer = answer.clone();
        async move { Ok::<_, Infallible>(answer.respond(req).await) }
    });
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
}
