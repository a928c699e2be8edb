//! The answer every mode gives: to one-shot and keep-alive requests, to busy
//! work, to bad input, to a slow or pipelining client.

use super::*;

/// Sends `requests` one-shot (`Connection: close`) requests: each must get a
/// worker's answer from a worker of the ready line, and, if `every_worker`, every
/// worker must answer at least one.
///
/// # Panics
/// If any request fails or any answer is wrong.
pub fn assert_answers(cluster: &Cluster, requests: usize, every_worker: bool) {
    let workers = cluster.worker_pids();
    let mut answered_by = BTreeSet::new();
    for request in 0..requests {
        let response = get(cluster.addr(), "/", true)
            .unwrap_or_else(|err| panic!("request {request}: {err:#}"));
        answered_by.insert(assert_worker_answer(&response, &workers));
    }
    if every_worker {
        let all: BTreeSet<u32> = workers.iter().copied().collect();
        assert_eq!(
            answered_by, all,
            "{requests} requests reached only some of the workers"
        );
    }
}

/// Sends `requests` requests on one keep-alive connection: each must get a worker's
/// answer, all from the same worker.
///
/// # Panics
/// If any request fails, any answer is wrong, or two workers answer.
pub fn assert_keep_alive(cluster: &Cluster, requests: usize) {
    let workers = cluster.worker_pids();
    let mut connection = KeepAlive::connect(cluster.addr()).expect("connect to the cluster");
    let mut answered_by = BTreeSet::new();
    for request in 0..requests {
        let response = connection
            .get("/")
            .unwrap_or_else(|err| panic!("request {request} on one connection: {err:#}"));
        answered_by.insert(assert_worker_answer(&response, &workers));
    }
    assert_eq!(
        answered_by.len(),
        1,
        "one connection answered by several workers: {answered_by:?}"
    );
}

/// Asks for `?work_us=20000`: the answer must be a worker's and take at least 15 ms
/// (20 ms of work, less a generous margin for clock granularity).
///
/// # Panics
/// If the request fails, the answer is wrong, or it comes too fast.
pub fn assert_work_delays_answer(cluster: &Cluster) {
    let started = Instant::now();
    let response = get(cluster.addr(), "/?work_us=20000", true)
        .unwrap_or_else(|err| panic!("request with work_us: {err:#}"));
    let elapsed = started.elapsed();
    assert_worker_answer(&response, &cluster.worker_pids());
    assert!(
        elapsed >= Duration::from_millis(15),
        "20 ms of work answered in {elapsed:?}"
    );
}

/// Bad HTTP input: a request that is not HTTP gets 400, a request head over
/// 16 KiB gets 431 (or 400, or the connection reset after it), and the workers
/// survive both: the same pids then answer a good request.
///
/// # Panics
/// If an answer is wrong or a worker dies.
pub fn assert_bad_http_input(cluster: &Cluster) {
    let workers = cluster.worker_pids();
    let garbage = send_raw(cluster.addr(), b"HELLO WORLD\r\n\r\n")
        .unwrap_or_else(|err| panic!("no answer to a request that is not HTTP: {err:#}"));
    assert_eq!(garbage.status, 400, "answer to a request that is not HTTP");

    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    match send_raw(cluster.addr(), &big) {
        Ok(response) => assert!(
            matches!(response.status, 431 | 400),
            "answer to a 20 KiB header: {}",
            response.status
        ),
        // The server closed with part of the request unread, so the kernel
        // reset the connection, possibly before the answer could be read.
        Err(err) => assert!(
            format!("{err:#}").contains("reset") || format!("{err:#}").contains("end of"),
            "a 20 KiB header: {err:#}"
        ),
    }
    let response = get(cluster.addr(), "/", true).expect("a good request after bad ones");
    assert_worker_answer(&response, &workers);
    assert_eq!(cluster.live_workers().len(), workers.len(), "a worker died");
}

/// Slowloris, with the cluster started with `--header-timeout 1s`: a client
/// that never finishes its headers is cut after about a second, and holds up
/// nobody meanwhile.
///
/// # Panics
/// If the slow client is not cut, or another client waits on it.
pub fn assert_slow_headers_are_cut(cluster: &Cluster) {
    let mut slow = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect");
    slow.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("send part of the head");
    let sent_at = Instant::now();
    // Meanwhile others are served at once, by every worker.
    assert_answers(cluster, 10, false);
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    let waited = sent_at.elapsed();
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "the slow client was not cut within {HTTP_TIMEOUT:?}: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(900),
        "cut after {waited:?}, before the 1 s header timeout"
    );
}

/// How many requests the pipelining client of the item 6 tests sends: the
/// more, the longer a slow test thread may take to send the other request.
pub const PIPELINED: usize = 10;

/// Issue 10, item 6 (pipelined busy work froze a worker: one client
/// pipelining `?work_us=` requests made every other client of that worker
/// wait for the whole pipeline). With the cluster started with `--workers 1`,
/// a client pipelines [`PIPELINED`] requests of 250 ms of work each; once
/// the first is answered, another client's request must be answered while
/// the pipeline still has at least three answers to come (between two of its
/// requests, not after the last).
///
/// # Panics
/// If the other client waits for the pipeline.
pub fn assert_pipelined_work_leaves_turns(cluster: &Cluster) {
    let workers = cluster.worker_pids();
    assert_eq!(workers.len(), 1, "start the cluster with --workers 1");
    let (answered, pipeline) = start_pipeline(cluster, "/?work_us=250000", PIPELINED);
    assert!(
        wait_until(HTTP_TIMEOUT, || *lock(&answered) >= 1),
        "the first pipelined request was not answered"
    );
    let started = Instant::now();
    let response = get(cluster.addr(), "/", true)
        .unwrap_or_else(|err| panic!("the other client's request: {err:#}"));
    let waited = started.elapsed();
    let pipeline_answered = *lock(&answered);
    assert_worker_answer(&response, &workers);
    assert!(
        pipeline_answered <= PIPELINED - 3,
        "the other client was answered after {waited:?}, when {pipeline_answered} of the \
         {PIPELINED} pipelined requests had been: it waited for the pipeline"
    );
    for answer in pipeline.join().expect("the client thread does not panic") {
        let answer = answer.unwrap_or_else(|err| panic!("a pipelined request: {err:#}"));
        assert_worker_answer(&answer, &workers);
    }
}
