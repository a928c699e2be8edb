//! A tiny blocking HTTP/1.1 client, enough to talk to the workers: one request
//! per connection ([`get`]), several on one ([`KeepAlive`]), many at once
//! ([`Clients`]), or bytes the client would never write ([`send_raw`]).
//!
//! The head of every answer is parsed by the load generator's own parser,
//! [`loadgen::response::parse_head`], so that the tests, the benches and the
//! load generator read an answer (its status, its worker pid, where its body
//! ends) the same way. This client then keeps what a test checks: the headers
//! and the body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use loadgen::response::{Body, Malformed, parse_head};

/// Connect, read and write timeout of the HTTP client: long enough for a loaded
/// machine, short enough that a hung server fails the test instead of hanging it.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest status or header line the client accepts, so a broken server cannot
/// make it buffer without end (the number of headers is bounded by [`parse_head`]).
const MAX_LINE_BYTES: u64 = 8 * 1024;

/// The largest body the client accepts (the worker's is one short line).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP answer as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The headers in order, names lowercased (HTTP header names are case-insensitive).
    pub headers: Vec<(String, String)>,
    /// The body, read up to its `content-length`.
    pub body: String,
    /// The `x-worker-pid` header as [`parse_head`] read it.
    worker_pid: Option<u32>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The pid in the `x-worker-pid` header, if present and a number.
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker_pid
    }
}

/// One client connection that sends several requests in turn (HTTP/1.1 keep-alive).
pub struct KeepAlive {
    /// The server's address, for the `Host` header.
    addr: SocketAddr,
    /// The connection, buffered for reading the answers; requests are written to
    /// the stream inside.
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects to `addr`, with [`HTTP_TIMEOUT`] on connecting, reading and writing.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<KeepAlive> {
        let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive {
            addr,
            stream: BufReader::new(stream),
        })
    }

    /// Sends `GET path` and reads the answer, keeping the connection open.
    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request(path, false)
    }

    /// Sends `GET path`, with `Connection: close` if `close`, and reads the answer.
    pub fn request(&mut self, path: &str, close: bool) -> anyhow::Result<Response> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if close {
            request.push_str("Connection: close\r\n");
        }
        request.push_str("\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .with_context(|| format!("send GET {path} to {}", self.addr))?;
        read_response(&mut self.stream).with_context(|| format!("read the answer to GET {path}"))
    }

    /// Reads until the server closes the connection, as the client of a
    /// `Connection: close` answer does, and closes it too.
    ///
    /// # Errors
    /// If the server sends more bytes after the answer, or the read fails.
    pub fn read_to_close(mut self) -> anyhow::Result<()> {
        let mut rest = [0; 256];
        let read = self
            .stream
            .read(&mut rest)
            .with_context(|| format!("wait for {} to close", self.addr))?;
        ensure!(
            read == 0,
            "{} sent {read} bytes after its answer: {:?}",
            self.addr,
            String::from_utf8_lossy(&rest[..read])
        );
        Ok(())
    }
}

/// A connection that sends the bytes a test gives it, when the test says, and
/// reads the answers one at a time: for pipelined requests (several written at
/// once) and for a head sent in parts.
pub struct RawClient {
    /// The connection, buffered for reading the answers.
    stream: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects to `addr`, with [`HTTP_TIMEOUT`] on connecting, reading and writing.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream: BufReader::new(stream),
        })
    }

    /// Writes `bytes` in one write.
    pub fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.get_mut().write_all(bytes).context("send")
    }

    /// Reads the next answer.
    pub fn answer(&mut self) -> anyhow::Result<Response> {
        read_response(&mut self.stream)
    }
}

/// `count` keep-alive requests `GET path`, back to back, as one pipelining
/// client writes them at once.
pub fn pipelined_gets(path: &str, count: usize) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(count)
}

/// Sends one `GET path` to `addr` on a new connection, with `Connection: close` if
/// `close`, and reads the answer.
pub fn get(addr: SocketAddr, path: &str, close: bool) -> anyhow::Result<Response> {
    KeepAlive::connect(addr)?.request(path, close)
}

/// Clients sending one `Connection: close` request each, all at once, each on
/// its own thread, counting the answers as they come: for tests that hold
/// some connections back (a stopped or full worker) and release them later.
pub struct Clients {
    answered: Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<JoinHandle<anyhow::Result<Response>>>,
}

impl Clients {
    /// Starts `count` clients, each sending `GET /` to `addr`.
    pub fn start(addr: SocketAddr, count: usize) -> Clients {
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = (0..count)
            .map(|_| {
                let answered = answered.clone();
                thread::spawn(move || {
                    let response = get(addr, "/", true);
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    response
                })
            })
            .collect();
        Clients { answered, threads }
    }

    /// How many have had their answer (or failed) so far.
    pub fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for every client and returns their answers, in start order.
    pub fn join(self) -> Vec<anyhow::Result<Response>> {
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a client thread does not panic"))
            .collect()
    }
}

/// Sends `bytes` as they are on a new connection to `addr` and reads one
/// answer, for requests the client above would not write.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> anyhow::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(bytes).context("send")?;
    read_response(&mut stream)
}

/// Reads one answer from `stream`, on which the test has already written its
/// request (by hand, e.g. after opening many connections first), waiting at
/// most [`HTTP_TIMEOUT`] for each read.
pub fn read_answer(stream: TcpStream) -> anyhow::Result<Response> {
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    read_response(&mut BufReader::new(stream))
}

/// Reads one answer: its head, parsed by [`parse_head`], then a body delimited
/// by `content-length` (or by the end of the connection if there is none).
fn read_response(reader: &mut impl BufRead) -> anyhow::Result<Response> {
    let head_bytes = read_head(reader)?;
    let head = parse_head(&head_bytes)
        .map_err(|Malformed(why)| anyhow!("{why}: {:?}", String::from_utf8_lossy(&head_bytes)))?
        .context("the head ends at an empty line, yet is incomplete")?;
    let body = match head.body {
        Body::Empty => Vec::new(),
        Body::Length(length) => {
            let length = usize::try_from(length)
                .ok()
                .filter(|length| *length <= MAX_BODY_BYTES)
                .with_context(|| format!("body of {length} bytes is too large"))?;
            let mut body = vec![0; length];
            reader.read_exact(&mut body).context("body cut short")?;
            body
        }
        Body::Chunked => {
            bail!("this client reads only content-length bodies, and the answer is chunked")
        }
        // No length: the body ends when the server closes the connection.
        Body::UntilClose => {
            let mut body = Vec::new();
            reader
                .take(MAX_BODY_BYTES as u64)
                .read_to_end(&mut body)
                .context("read the body")?;
            body
        }
    };
    Ok(Response {
        status: head.status,
        headers: header_fields(&head_bytes[..head.len]),
        body: String::from_utf8(body).context("the body is not UTF-8")?,
        worker_pid: head.worker_pid,
    })
}

/// Reads the head of an answer: its lines up to and including the empty line
/// that ends it, each at most [`MAX_LINE_BYTES`] long.
fn read_head(reader: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut head)?;
        ensure!(
            read > 0,
            "the server closed the connection before a full answer"
        );
        let line = &head[start..];
        ensure!(
            line.ends_with(b"\n"),
            "line cut short or longer than {MAX_LINE_BYTES} bytes: {:?}",
            String::from_utf8_lossy(line)
        );
        if start > 0 && matches!(line, b"\r\n" | b"\n") {
            return Ok(head);
        }
    }
}

/// The header fields of a head that [`parse_head`] accepted, in order, names
/// lowercased: every line after the status line, split at its first colon.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every answer in `bytes`, in turn, as a keep-alive connection does.
    fn read_all(bytes: &[u8]) -> Vec<anyhow::Result<Response>> {
        let mut reader = BufReader::new(bytes);
        let mut answers = Vec::new();
        while !reader.fill_buf().expect("a slice reads").is_empty() {
            answers.push(read_response(&mut reader));
        }
        answers
    }

    /// Two worker answers on one connection: status, headers (lowercased),
    /// worker pid and body of each, and no byte of the second taken by the first.
    #[test]
    fn reads_answers_back_to_back() {
        let one = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nx-worker-pid: 41\r\ncontent-length: 28\r\n\r\nhandled by child, pid is 41\n";
        let two = one.replace("41", "42");
        let answers = read_all(format!("{one}{two}").as_bytes());
        let pids: Vec<Option<u32>> = answers
            .iter()
            .map(|answer| answer.as_ref().expect("an answer").worker_pid())
            .collect();
        assert_eq!(pids, [Some(41), Some(42)]);
        let first = answers[0].as_ref().expect("an answer");
        assert_eq!(first.status, 200);
        assert_eq!(first.header("content-type"), Some("text/plain"));
        assert_eq!(first.headers[0].0, "content-type");
        assert_eq!(first.body, "handled by child, pid is 41\n");
    }

    /// Without a content-length the body ends with the connection; 204 has none.
    #[test]
    fn bodies_without_a_length() {
        let answers = read_all(b"HTTP/1.1 400 Bad Request\r\n\r\nbad request");
        assert_eq!(answers[0].as_ref().expect("an answer").body, "bad request");
        let answers = read_all(b"HTTP/1.1 204 No Content\r\nx: y\r\n\r\n");
        assert_eq!(answers[0].as_ref().expect("an answer").body, "");
    }

    /// A cut answer, a chunked body and a head that is not HTTP are errors.
    #[test]
    fn refuses_what_it_cannot_read() {
        for (bytes, expected) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-le"[..], "line cut short"),
            (b"HTTP/1.1 200 OK\r\n", "closed the connection"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
                "chunked",
            ),
            (b"HELLO\r\n\r\n", "not an HTTP/1.x answer"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
                "cut short",
            ),
        ] {
            let error = read_all(bytes).remove(0).expect_err("an error");
            assert!(
                format!("{error:#}").contains(expected),
                "{error:#} for {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
