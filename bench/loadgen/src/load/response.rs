//! Reading an HTTP/1.1 answer just enough: the status, how the body ends
//! (`content-length`, `chunked`, or the end of the connection), whether the
//! server will close the connection, and the `x-worker-pid` header. The body
//! itself is skipped, never kept.
//!
//! Pure functions over byte slices, so the I/O loop (`connection.rs`) stays
//! short and this part is tested on its own.

/// How many headers an answer may have: the worker sends four; a larger number
/// means a server the load generator was not pointed at on purpose.
const MAX_HEADERS: usize = 32;

/// What the head of an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The `x-worker-pid` header, if present and a number.
    pub worker_pid: Option<u32>,
    /// How the body is delimited.
    pub body: Body,
    /// Whether the server closes the connection after this answer
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// The length of the head in bytes, up to and including the empty line.
    pub len: usize,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body: 1xx, 204 and 304 answers.
    Empty,
    /// `content-length` bytes.
    Length(u64),
    /// `transfer-encoding: chunked`: see [`Chunked`].
    Chunked,
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

/// An answer that is not HTTP/1.x as the load generator reads it; the text says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Parses the head at the start of `buf`: `Ok(None)` if it is not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Malformed("too many headers")),
        Err(_) => return Err(Malformed("not an HTTP/1.x answer")),
    };
    let status = response.code.ok_or(Malformed("no status code"))?;
    let http_1_0 = response.version == Some(0);

    let mut worker_pid = None;
    let mut length = None;
    let mut chunked = false;
    let mut close = http_1_0;
    for header in response.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_decimal(value).ok_or(Malformed("bad content-length"))?;
            if length.is_some_and(|known| known != parsed) {
                return Err(Malformed("two different content-lengths"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; any other coding ends at close.
            chunked = last_token(value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(value, b"close") {
                close = true;
            } else if has_token(value, b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("x-worker-pid") {
            worker_pid = parse_decimal(value).and_then(|pid| u32::try_from(pid).ok());
        }
    }
    let body = if matches!(status, 100..=199 | 204 | 304) {
        Body::Empty
    } else if chunked {
        Body::Chunked
    } else if let Some(length) = length {
        Body::Length(length)
    } else {
        close = true;
        Body::UntilClose
    };
    Ok(Some(Head {
        status,
        worker_pid,
        body,
        close,
        len,
    }))
}

/// A decimal number of at most 19 digits, surrounded by optional spaces.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |number, &byte| {
        byte.is_ascii_digit()
            .then(|| number * 10 + u64::from(byte - b'0'))
    })
}

/// Whether the comma-separated header value has `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// The last item of a comma-separated header value, trimmed.
fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|&byte| byte == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// A streaming decoder of a chunked body that only skips it: fed the bytes as they
/// arrive, it says how many belong to the body and when the body has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    /// Where in the chunk grammar the next byte falls.
    state: ChunkState,
}

/// The states of [`Chunked`]: `size [; extension] CRLF data CRLF ... 0 CRLF trailers CRLF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hexadecimal size; `digits` so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping a chunk extension or spaces up to the CR.
    Extension {
        size: u64,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// After the final empty line's CR.
    FinalLf,
    /// The body is complete.
    Done,
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked::new()
    }
}

impl Chunked {
    /// A decoder at the start of a body.
    pub fn new() -> Chunked {
        Chunked {
            state: ChunkState::Size { size: 0, digits: 0 },
        }
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of the body from `input` and returns how many belong to it:
    /// all of `input`, or fewer if the body ended within it.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, Malformed> {
        use ChunkState::*;
        let mut at = 0;
        while at < input.len() && self.state != Done {
            if let Data(left) = self.state {
                let take = left.min((input.len() - at) as u64);
                at += take as usize;
                self.state = if take == left {
                    DataCr
                } else {
                    Data(left - take)
                };
                continue;
            }
            let byte = input[at];
            at += 1;
            self.state = match (self.state, byte) {
                (Size { size, digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if digits >= 15 {
                        return Err(Malformed("chunk size too large"));
                    }
                    let digit = (byte as char).to_digit(16).unwrap_or_default();
                    Size {
                        size: size * 16 + u64::from(digit),
                        digits: digits + 1,
                    }
                }
                (Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => Extension { size },
                (Size { size, digits }, b'\r') if digits > 0 => SizeLf { size },
                (Extension { size }, b'\r') => SizeLf { size },
                (Extension { size }, _) => Extension { size },
                (SizeLf { size: 0 }, b'\n') => TrailerStart,
                (SizeLf { size }, b'\n') => Data(size),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size { size: 0, digits: 0 },
                (TrailerStart, b'\r') => FinalLf,
                (TrailerStart | Trailer, b'\n') => TrailerStart,
                (TrailerStart | Trailer, _) => Trailer,
                (FinalLf, b'\n') => Done,
                _ => return Err(Malformed("bad chunked encoding")),
            };
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's answer: 200, its pid, a content-length, keep-alive.
    #[test]
    fn reads_the_workers_answer() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-worker-pid: 4242\r\ncontent-length: 30\r\ndate: now\r\n\r\nhandled by child, pid is 4242\n";
        let head = parse_head(answer).expect("valid").expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(head.worker_pid, Some(4242));
        assert_eq!(head.body, Body::Length(30));
        assert!(!head.close);
        assert_eq!(answer.len() - head.len, 30);
    }

    /// An incomplete head asks for more bytes, at every cut.
    #[test]
    fn partial_head_needs_more() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        for cut in 0..answer.len() {
            assert_eq!(parse_head(&answer[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_head(answer).expect("valid").is_some());
    }

    /// Connection: close, HTTP/1.0, bodies without a length, bodyless statuses.
    #[test]
    fn close_and_body_rules() {
        let head = |text: &str| {
            parse_head(text.as_bytes())
                .expect("valid")
                .expect("complete")
        };
        assert!(head("HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 1\r\n\r\n").close);
        assert!(head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").close);
        assert!(
            !head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n").close
        );
        let until_close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(until_close.body, Body::UntilClose);
        assert!(until_close.close);
        assert_eq!(head("HTTP/1.1 204 No Content\r\n\r\n").body, Body::Empty);
        assert_eq!(
            head(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n"
            )
            .body,
            Body::Chunked
        );
        assert_eq!(
            head("HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n").status,
            503
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nx-worker-pid: none\r\ncontent-length: 0\r\n\r\n").worker_pid,
            None
        );
    }

    /// Garbage and contradictions are malformed.
    #[test]
    fn malformed_heads() {
        for text in [
            "HTTP/2 200 OK\r\n\r\n",
            "hello\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        ] {
            assert!(
                parse_head(text.as_bytes()).is_err(),
                "{text:?} was accepted"
            );
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            parse_head(many.as_bytes()),
            Err(Malformed("too many headers"))
        );
    }

    /// A chunked body with extensions and trailers ends where it should, whatever
    /// the bytes' split into reads.
    #[test]
    fn chunked_bodies_at_every_split() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\ntrailer: x\r\n\r\n";
        let extra = b"HTTP/1.1 next";
        let input = [&body[..], extra].concat();
        for split in 0..input.len() {
            let mut chunked = Chunked::new();
            let first = chunked.feed(&input[..split]).expect("valid");
            assert_eq!(first, split.min(body.len()));
            let second = chunked.feed(&input[first..]).expect("valid");
            assert!(chunked.is_done(), "split at {split}");
            assert_eq!(first + second, body.len(), "split at {split}");
        }
        let mut chunked = Chunked::new();
        assert_eq!(chunked.feed(b"0\r\n\r\n"), Ok(5));
        assert!(chunked.is_done());
    }

    /// Bad chunk sizes and missing CRLFs are malformed.
    #[test]
    fn malformed_chunks() {
        for text in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"ffffffffffffffff\r\n",
        ] {
            assert!(Chunked::new().feed(text).is_err(), "{text:?} was accepted");
        }
    }
}
