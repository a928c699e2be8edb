//! Payloads (issue 25): the worker answers `?bytes=N` with exactly N bytes and
//! counts a request body, within [`MAX_BODY_BYTES`] each way, in every mode
//! and through every relay: what a relaying master copies or splices must
//! arrive whole.

use cluster::service::{MAX_BODY_BYTES, RECEIVED_BYTES_HEADER};

use super::*;
use crate::http::read_answer;

/// The answer size asked for: 1 MiB, the largest the suite measures, and
/// the most the tests' client reads.
const ANSWER_BYTES: usize = 1024 * 1024;

/// The request body sent: 64 KiB, eight times the proxy's buffer.
const POST_BYTES: usize = 64 * 1024;

/// Checks a `?bytes=` answer: a worker's, `200`, and a body of exactly
/// `len` bytes of `x`.
fn assert_filler_answer(response: &Response, workers: &[u32], len: usize) {
    assert_eq!(response.status, 200, "status of the ?bytes={len} answer");
    let pid = response
        .worker_pid()
        .unwrap_or_else(|| panic!("no x-worker-pid in the ?bytes={len} answer"));
    assert!(
        workers.contains(&pid),
        "answered by {pid}, not one of {workers:?}"
    );
    assert_eq!(
        response.header("content-length"),
        Some(len.to_string().as_str()),
        "content-length of the ?bytes={len} answer"
    );
    assert_eq!(
        response.body.len(),
        len,
        "body length of the ?bytes={len} answer"
    );
    assert!(
        response.body.bytes().all(|byte| byte == b'x'),
        "a ?bytes={len} body is made of x"
    );
}

/// `?bytes=1048576` answers exactly that many bytes, twice on one
/// keep-alive connection (the second answer starts where the first ends);
/// `?bytes=0` an empty body; and with `work_us` both hold: the size, and the
/// work first.
///
/// # Panics
/// If an answer is not as above.
pub fn assert_bytes_answers_that_many(cluster: &Cluster) {
    let workers = cluster.worker_pids();
    let path = format!("/?bytes={ANSWER_BYTES}");
    let mut connection = KeepAlive::connect(cluster.addr()).expect("connect to the cluster");
    for request in 0..2 {
        let response = connection
            .get(&path)
            .unwrap_or_else(|err| panic!("request {request} for {path}: {err:#}"));
        assert_filler_answer(&response, &workers, ANSWER_BYTES);
    }
    let response = connection.get("/?bytes=0").expect("an empty answer");
    assert_filler_answer(&response, &workers, 0);
    let started = Instant::now();
    let response = connection
        .get("/?work_us=20000&bytes=100")
        .expect("an answer with work_us and bytes");
    assert_filler_answer(&response, &workers, 100);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(15),
        "?work_us=20000&bytes=100 answered after {elapsed:?}: no work done"
    );
}

/// A 64 KiB `POST` body, sent with a `content-length` and then chunked, is
/// read and counted (`x-received-bytes: 65536`), and the answer is the
/// documented one; a `GET` gets no such header.
///
/// # Panics
/// If an answer is not as above.
pub fn assert_request_body_is_counted(cluster: &Cluster) {
    let workers = cluster.worker_pids();
    let body = vec![b'p'; POST_BYTES];
    let mut with_length =
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {POST_BYTES}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    with_length.extend_from_slice(&body);
    let mut chunked =
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    // Two chunks of 32 KiB, then the last, empty one.
    for half in body.chunks(POST_BYTES / 2) {
        chunked.extend_from_slice(format!("{:x}\r\n", half.len()).as_bytes());
        chunked.extend_from_slice(half);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for (how, request) in [("with a content-length", with_length), ("chunked", chunked)] {
        let response = send_raw(cluster.addr(), &request)
            .unwrap_or_else(|err| panic!("POST of {POST_BYTES} bytes {how}: {err:#}"));
        assert_worker_answer(&response, &workers);
        assert_eq!(
            response.header(RECEIVED_BYTES_HEADER),
            Some(POST_BYTES.to_string().as_str()),
            "{RECEIVED_BYTES_HEADER} of a POST of {POST_BYTES} bytes {how}: {response:?}"
        );
    }
    let response = get(cluster.addr(), "/", true).expect("a GET");
    assert_eq!(
        response.header(RECEIVED_BYTES_HEADER),
        None,
        "a GET has no body to count: {response:?}"
    );
}

/// Sends `head`, then up to `body_bytes` of body in 64 KiB writes on a
/// thread of its own that stops at the first error (the worker closes on
/// its refusal, and the rest is reset), and reads the answer meanwhile.
/// Returns the answer and whether the server then closed the connection.
fn refused_upload(
    cluster: &Cluster,
    head: String,
    body_bytes: u64,
    chunked: bool,
) -> (Response, bool) {
    let client = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect");
    let mut writer = client.try_clone().expect("clone the client socket");
    writer
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .expect("set a write timeout");
    let sender = thread::spawn(move || {
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'p'; 64 * 1024];
        let mut sent = 0;
        while sent < body_bytes {
            let framed = if chunked {
                [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat()
            } else {
                chunk.clone()
            };
            if writer.write_all(&framed).is_err() {
                return;
            }
            sent += chunk.len() as u64;
        }
    });
    let reader = client.try_clone().expect("clone the client socket");
    let answer = read_answer(reader).expect("an answer to a refused upload");
    // After the answer: end of file, or a reset of what was unread.
    let mut rest = [0u8; 1];
    let closed = match (&client).read(&mut rest) {
        Ok(0) => true,
        Err(err) => err.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    drop(client);
    sender.join().expect("the sender does not panic");
    (answer, closed)
}

/// The bounds: `?bytes=` one over [`MAX_BODY_BYTES`] is a `400` that says
/// why; a request body announced over it (`content-length`) is a `413` at
/// once, before it is sent, and a chunked one that grows over it a `413`
/// once it does; each `413` closes the connection.
///
/// # Panics
/// If an answer is not as above.
pub fn assert_payload_bounds(cluster: &Cluster) {
    let over = MAX_BODY_BYTES + 1;
    let response = get(cluster.addr(), &format!("/?bytes={over}"), true).expect("an answer");
    assert_eq!(response.status, 400, "?bytes={over}: {response:?}");
    assert!(
        response.body.contains(&MAX_BODY_BYTES.to_string()),
        "a 400 says the bound: {response:?}"
    );
    let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {over}\r\n\r\n");
    let (response, closed) = refused_upload(cluster, head, 64 * 1024, false);
    assert_eq!(response.status, 413, "content-length {over}: {response:?}");
    assert!(closed, "a 413 closes the connection");
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned();
    let (response, closed) = refused_upload(cluster, head, over, true);
    assert_eq!(
        response.status, 413,
        "a chunked body over the bound: {response:?}"
    );
    assert!(closed, "a 413 closes the connection");
}
