//! A tiny blocking HTTP/1.1 client, enough to talk to the workers: one request
//! per connection ([`get`]), several on one ([`KeepAlive`]), many at once
//! ([`Clients`]), or bytes the client would never write ([`send_raw`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, ensure};

/// Connect, read and write timeout of the HTTP client: long enough for a loaded
/// machine, short enough that a hung server fails the test instead of hanging it.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest status or header line the client accepts, so a broken server cannot
/// make it buffer without end.
const MAX_LINE_BYTES: u64 = 8 * 1024;

/// The most headers the client accepts in one answer (the worker sends three or four).
const MAX_HEADERS: usize = 100;

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
        self.header("x-worker-pid")?.trim().parse().ok()
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

/// Reads one answer: status line, headers, and a body delimited by
/// `content-length` (or by the end of the connection if there is none).
fn read_response(reader: &mut impl BufRead) -> anyhow::Result<Response> {
    let status_line = read_line(reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    ensure!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1 status line: {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status code in {status_line:?}"))?;

    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        ensure!(
            headers.len() < MAX_HEADERS,
            "more than {MAX_HEADERS} headers"
        );
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("malformed header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    ensure!(
        response.header("transfer-encoding").is_none(),
        "this client reads only content-length bodies, and the answer is chunked"
    );

    let body = match response.header("content-length") {
        Some(length) => {
            let length: usize = length
                .parse()
                .with_context(|| format!("bad content-length {length:?}"))?;
            ensure!(
                length <= MAX_BODY_BYTES,
                "body of {length} bytes is too large"
            );
            let mut body = vec![0; length];
            reader.read_exact(&mut body).context("body cut short")?;
            body
        }
        // No length: the body ends when the server closes the connection.
        None => {
            let mut body = Vec::new();
            reader
                .take(MAX_BODY_BYTES as u64)
                .read_to_end(&mut body)
                .context("read the body")?;
            body
        }
    };
    response.body = String::from_utf8(body).context("the body is not UTF-8")?;
    Ok(response)
}

/// Reads one CRLF-terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    let read = reader.take(MAX_LINE_BYTES).read_line(&mut line)?;
    ensure!(
        read > 0,
        "the server closed the connection before a full answer"
    );
    ensure!(
        line.ends_with('\n'),
        "line cut short or longer than {MAX_LINE_BYTES} bytes: {line:?}"
    );
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
