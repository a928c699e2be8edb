//! One `GET /` to a server right after its `ready`, before any load: its
//! status line, the headers a client acts on and its body's length
//! ([`runs::folder::Answer`]), kept in the run's `answers.json` so that
//! REPORT.md §7 can say whether every server (each mode, each peer)
//! answered the same bytes.
//!
//! The request is what a client's first one is: the request line and
//! `Host`, over a plain TCP connection, no `Connection: close` (the answer's
//! `connection` header is one of the things compared). The head is read to
//! its blank line, then the body by its `content-length`, or, without one,
//! to the connection's end (HTTP/1.1's rule for an answer without a
//! length). Every read is bounded by one deadline, [`ANSWER_TIMEOUT`] from
//! the connect: a server that does not answer is one error that names it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runs::folder::{Answer, AnswerHeaders};
use runs::labels::Mode as Label;

use crate::system::flag;

/// How long a server may take to answer, from the connect to the body's
/// last byte: it has just said `ready`, and the machine is idle between
/// two loads.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest head read: the workers refuse longer request heads (431),
/// and no answer of the suite's servers comes near it.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The request, as a client's first one.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Asks `name`, listening on 127.0.0.1:`port`, for `/` and reads its
/// answer within `timeout` (the comparison: [`ANSWER_TIMEOUT`]).
pub fn ask(name: Label, port: u16, timeout: Duration) -> anyhow::Result<Answer> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    let asked = || -> anyhow::Result<Answer> {
        let stream = TcpStream::connect_timeout(&addr, timeout).context("connect")?;
        stream.set_write_timeout(Some(timeout))?;
        (&stream).write_all(REQUEST).context("send GET /")?;
        read(name, Deadline { stream, deadline })
    };
    asked().with_context(|| {
        format!(
            "{name} at {addr} did not answer GET / within {}",
            flag(timeout)
        )
    })
}

/// Reads `name`'s answer from `from`: the head to its blank line, then the
/// body by its `content-length`, or to the end without one. An end before
/// the head's, or before the body's announced length, is an error saying
/// how far it got.
pub fn read(name: Label, mut from: impl Read) -> anyhow::Result<Answer> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
        ensure!(
            bytes.len() <= MAX_HEAD_BYTES,
            "a head over {MAX_HEAD_BYTES} bytes"
        );
        let n = from.read(&mut chunk).context("read the head")?;
        if n == 0 {
            bail!(
                "the connection closed after {} bytes, before the head's end",
                bytes.len()
            );
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&bytes[..head_end]).context("a head that is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    ensure!(
        status_line.starts_with("HTTP/"),
        "not HTTP: the first line is {status_line:?}"
    );
    let mut headers = AnswerHeaders {
        content_type: None,
        content_length: None,
        connection: None,
        x_worker_pid: None,
    };
    for line in lines {
        let (key, value) = line
            .split_once(':')
            .with_context(|| format!("a header line without a colon: {line:?}"))?;
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "content-type" => headers.content_type = Some(value.to_owned()),
            "content-length" => {
                headers.content_length = Some(
                    value
                        .parse()
                        .with_context(|| format!("content-length {value:?}"))?,
                );
            }
            "connection" => headers.connection = Some(value.to_owned()),
            "x-worker-pid" => {
                headers.x_worker_pid = Some(
                    value
                        .parse()
                        .with_context(|| format!("x-worker-pid {value:?}"))?,
                );
            }
            // Chunks are not counted here: every server of the suite, and
            // both peers, announce their length.
            "transfer-encoding" => bail!("a {value} body, not one of a content-length"),
            _ => {}
        }
    }
    let mut body_len = (bytes.len() - head_end - 4) as u64;
    match headers.content_length {
        Some(length) => {
            while body_len < length {
                let n = from
                    .read(&mut chunk)
                    .with_context(|| format!("read the body ({body_len} of its {length} bytes)"))?;
                if n == 0 {
                    bail!("the connection closed after {body_len} of the body's {length} bytes");
                }
                body_len += n as u64;
            }
            ensure!(
                body_len == length,
                "{body_len} bytes after the head, more than its content-length {length}"
            );
        }
        // No length: the body ends with the connection.
        None => loop {
            let n = from.read(&mut chunk).with_context(|| {
                format!(
                    "read a body without content-length to the connection's end ({body_len} bytes so far)"
                )
            })?;
            if n == 0 {
                break;
            }
            body_len += n as u64;
        },
    }
    Ok(Answer {
        name,
        status_line,
        headers,
        body_len,
    })
}

/// A connection whose reads all end by one deadline.
struct Deadline {
    /// The connection to the server.
    stream: TcpStream,
    /// When the last read must have returned.
    deadline: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "past the deadline"));
        }
        self.stream.set_read_timeout(Some(left))?;
        match self.stream.read(buf) {
            // EAGAIN: SO_RCVTIMEO ran out with no byte.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no byte before the deadline",
            )),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's answer, as `cluster/src/service.rs` writes it.
    const WORKER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-worker-pid: 4242\r\ncontent-length: 30\r\ndate: Sat, 28 Nov 2026 10:00:00 GMT\r\n\r\nhandled by child, pid is 4242\n";

    /// Bytes that arrive a few at a time, as a socket may give them.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The worker's answer reads as its status line, the headers that
    /// matter (names in any case) and its body's length, whether it comes
    /// at once or a few bytes at a time.
    #[test]
    fn reads_the_workers_answer() {
        let answer = read(Label::Direct, WORKER).expect("an answer");
        assert_eq!(answer.name, Label::Direct);
        assert_eq!(answer.status_line, "HTTP/1.1 200 OK");
        assert_eq!(
            answer.headers,
            AnswerHeaders {
                content_type: Some("text/plain".to_owned()),
                content_length: Some(30),
                connection: None,
                x_worker_pid: Some(4242),
            }
        );
        assert_eq!(answer.body_len, 30);
        assert_eq!(
            read(Label::Direct, Trickle(WORKER)).expect("trickled"),
            answer
        );
        let shouting = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
        let answer = read(Label::NodeRr, &shouting[..]).expect("an answer");
        assert_eq!(answer.headers.connection.as_deref(), Some("keep-alive"));
        assert_eq!(answer.headers.x_worker_pid, None);
        assert_eq!(answer.body_len, 2);
    }

    /// Without a content-length the body is what comes before the
    /// connection's end.
    #[test]
    fn a_body_without_length_ends_with_the_connection() {
        let answer = read(
            Label::Nginx,
            &b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello, no length\n"[..],
        )
        .expect("an answer");
        assert_eq!(answer.headers.content_length, None);
        assert_eq!(answer.body_len, 17);
    }

    /// A server that closes early is an error saying how far it got: before
    /// any byte, in the head, or short of the body's announced length.
    #[test]
    fn a_server_that_closes_early_is_an_error() {
        let err = read(Label::Proxy, &b""[..]).expect_err("nothing");
        assert!(
            format!("{err:#}").contains("closed after 0 bytes"),
            "{err:#}"
        );
        let err = read(Label::Proxy, &WORKER[..20]).expect_err("half a head");
        assert!(
            format!("{err:#}").contains("before the head's end"),
            "{err:#}"
        );
        let cut = WORKER.len() - 10;
        let err = read(Label::Proxy, &WORKER[..cut]).expect_err("short body");
        assert!(
            format!("{err:#}").contains("closed after 20 of the body's 30 bytes"),
            "{err:#}"
        );
        let err = read(Label::Proxy, &b"SSH-2.0-OpenSSH\r\n\r\n"[..]).expect_err("not HTTP");
        assert!(format!("{err:#}").contains("not HTTP"), "{err:#}");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let err = read(Label::NodeRr, &chunked[..]).expect_err("chunked");
        assert!(format!("{err:#}").contains("a chunked body"), "{err:#}");
    }

    /// A server that accepts and never answers is one error within the
    /// deadline, naming it and its address.
    #[test]
    fn a_silent_server_is_one_error_by_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = ask(Label::HandoffSocket, port, timeout).expect_err("silent");
        let waited = started.elapsed();
        assert!(waited >= timeout && waited < timeout * 10, "{waited:?}");
        let text = format!("{err:#}");
        assert!(
            text.starts_with(&format!(
                "handoff-socket at 127.0.0.1:{port} did not answer GET / within 300ms"
            )),
            "{text}"
        );
        drop(listener);
    }
}
