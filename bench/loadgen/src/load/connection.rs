//! One client connection of the load: sends requests, closed or open loop, over
//! keep-alive or a new TCP connection each (`--new-conn`), and hands each
//! request's raw timings to the thread's [`Recorder`].
//!
//! The hot path allocates nothing: the request heads are built once for the
//! run and shared, so is the one `--body-bytes` body every request sends
//! after its head (one writev(2) for both), each connection reads into one
//! buffer it keeps, and answers are parsed in place ([`super::response`]) with
//! the body skipped. A new connection sends its request straight after
//! connect(2) (`connect_and_send`). Each request counts the bytes it wrote
//! and read ([`Moved`]).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at};

use rand::rngs::SmallRng;

use super::arrivals::PoissonSchedule;
use super::failure::Failure;
use super::mix::Mix;
use super::recorder::{Answer, Moved, Recorder, Sample, Window};
use super::response::{self, Body, Chunked};
use super::timer::{PreciseTimer, sleep_until_due};

/// The read buffer of a connection: an answer's head must fit in it (the worker's
/// is about 150 bytes); a body of any size streams through it.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// About the memory one connection takes: its read buffer, and a page for
/// the rest (the [`Connection`], its task and the futures of its loop, its
/// socket's and timer's registrations with the reactor). Measured: 17.7 KiB
/// (keep-alive) and 18.1 KiB (open loop) of RSS per connection, release
/// build, 10,000 and 5,000 connections against 100. Checked against the
/// memory left before any connection is built (`super::limits`).
pub const MEMORY_PER_CONNECTION_BYTES: u64 = READ_BUFFER_BYTES as u64 + 4096;

/// How long a closed-loop connection waits after a failed connect before trying
/// again, so that a refused or exhausted target is not hammered in a busy loop
/// that would only count errors faster.
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How a run sends its requests: the three load models, from `--rate` and
/// `--new-conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// No `--rate`: each connection sends its next request when the last
    /// one is answered.
    Closed,
    /// `--rate` over keep-alive connections: the schedule is dealt to the
    /// connections in turn (as wrk2 does), each sending its share in series.
    OpenDealt,
    /// `--rate --new-conn`: each due request on a connection of its own,
    /// whatever became of the earlier ones, at most `--connections` in flight
    /// (as k6's arrival-rate executors do; `super::open_model`).
    OpenEach,
    /// `--hold`: every connection opened first, then held, each sending one
    /// request every `--hold-interval`: the keep-alive open loop's schedule
    /// at `--rate` = held / interval, without a timerfd per connection
    /// (seconds apart, tokio's millisecond timer is precise enough), so one
    /// fd each (`super::hold`).
    Hold,
}

impl Model {
    /// The model of a run with a rate (or not) and `--new-conn` (or not).
    pub fn of(rate: Option<f64>, new_conn: bool) -> Model {
        match (rate, new_conn) {
            (None, _) => Model::Closed,
            (Some(_), false) => Model::OpenDealt,
            (Some(_), true) => Model::OpenEach,
        }
    }
}

/// Which of the run's open-loop arrivals one sender takes: its `k`-th is
/// the run's arrival `first + k * every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Its first arrival's index in the run.
    pub first: usize,
    /// The stride between its arrivals.
    pub every: usize,
}

impl Share {
    /// The index in the run of this share's `k`-th arrival (saturating: an
    /// index the clock cannot reach is due at the window's end anyway).
    pub fn index(&self, k: u64) -> u64 {
        k.saturating_mul(self.every as u64)
            .saturating_add(self.first as u64)
    }
}

/// One `--target` of a run: where its connections go and what they send.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The target's address.
    pub addr: SocketAddr,
    /// The requests' heads, built once (with `Connection: close` under
    /// `--new-conn`, a `POST` with its `Content-Length` under
    /// `--body-bytes`); their `Host` header is the target's own. One, to the
    /// target's path; with `--mix`, one per mixed path, in `--mix` order.
    pub requests: Vec<Box<[u8]>>,
}

/// What every connection of a run shares, read-only.
#[derive(Debug)]
pub struct Plan {
    /// The `--target`s, in order; never empty. Connection `id` goes to
    /// `endpoints[id % len]` ([`Plan::target_of`]).
    pub endpoints: Vec<Endpoint>,
    /// A new TCP connection for every request.
    pub new_conn: bool,
    /// Open loop: requests per second over all connections; `None`: closed loop.
    pub rate: Option<f64>,
    /// How many connections the run has, to spread the keep-alive open
    /// loop's schedule; in the open model, the most requests in flight.
    pub connections: usize,
    /// How long one request may take, connect included.
    pub timeout: Duration,
    /// When the run (warm-up first) started; the open-loop schedule counts from it.
    pub start: Instant,
    /// Which requests are measured.
    pub window: Window,
    /// `--mix`: how each request's path is drawn; `None`: always the first.
    pub mix: Option<Mix>,
    /// `--arrivals poisson`: the open loop's arrivals, drawn before the run;
    /// `None`: evenly spaced (`uniform`).
    pub poisson: Option<PoissonSchedule>,
    /// `--body-bytes`: the body every request sends after its head, built
    /// once for the run (up to 64 MiB: one copy, not one per connection or
    /// per `--mix` path); empty without it.
    pub body: Box<[u8]>,
    /// `--source-ips`: connection `id` binds to `source_ips[id % len]`
    /// before connect(2) ([`Plan::source_of`]); empty: the kernel chooses.
    pub source_ips: Vec<IpAddr>,
    /// `--hold`: the connections were opened before the schedule, and sleep
    /// between requests on tokio's timer rather than a timerfd each.
    pub hold: bool,
}

impl Plan {
    /// The index of the target of connection `id`: the connections are dealt
    /// round robin over the targets, so their counts differ by at most one, and
    /// a connection keeps its target for the whole run (under closed-loop
    /// `--new-conn`, every new connection of that slot goes to the same
    /// target; the open model deals its requests instead, `super::open_model`).
    pub fn target_of(&self, id: usize) -> usize {
        id % self.endpoints.len().max(1)
    }

    /// The end of the drain: requests still unanswered then are cut off. Requests
    /// scheduled before the window's end get `timeout` more to finish.
    pub fn hard_stop(&self) -> Instant {
        self.window.end + self.timeout
    }

    /// The longest latency the run can measure: from its start (the earliest a
    /// request can be due) to the end of the drain (the latest it can be
    /// answered), so warm-up, `--duration` and `--timeout`. The histograms hold
    /// up to this ([`super::recorder::histogram_max_us`]).
    pub fn longest_latency(&self) -> Duration {
        self.hard_stop().saturating_duration_since(self.start)
    }

    /// The model the run's flags choose.
    pub fn model(&self) -> Model {
        match self.hold {
            true => Model::Hold,
            false => Model::of(self.rate, self.new_conn),
        }
    }

    /// The source address of connection `id` (`--source-ips`, round robin,
    /// as targets are dealt); `None`: the kernel's choice.
    pub fn source_of(&self, id: usize) -> Option<IpAddr> {
        source_of(&self.source_ips, id)
    }

    /// Open loop, keep-alive: the arrivals of connection `id`. The run's
    /// requests are dealt to the connections in turn (as wrk2 does), so each
    /// connection sends every `connections`-th one.
    fn share_of(&self, id: usize) -> Share {
        Share {
            first: id,
            every: self.connections,
        }
    }

    /// Open loop: when the `k`-th request of connection `id` is due
    /// ([`Plan::due_of`] its [`Plan::share_of`]).
    fn due(&self, rate: f64, id: usize, k: u64) -> Instant {
        self.due_of(rate, self.share_of(id), k)
    }

    /// Open loop: when the `k`-th arrival of `share` is due, the run's
    /// arrival `index = first + k * every`: evenly spaced, `index / rate`
    /// after the start, and under `--arrivals poisson` the schedule's
    /// arrival `index`.
    ///
    /// A time the clock cannot hold (a tiny `--rate`: `1e-300`), like an
    /// index past the Poisson schedule's last arrival, is past the window's
    /// end whatever it is, so it is that end: the request is not sent.
    pub fn due_of(&self, rate: f64, share: Share, k: u64) -> Instant {
        let after = match &self.poisson {
            None => {
                let index = share.first as f64 + k as f64 * share.every as f64;
                Duration::try_from_secs_f64(index / rate).ok()
            }
            Some(schedule) => k
                .checked_mul(share.every as u64)
                .and_then(|index| index.checked_add(share.first as u64))
                .and_then(|index| schedule.due_ns(index))
                .map(Duration::from_nanos),
        };
        after
            .and_then(|after| self.start.checked_add(after))
            .unwrap_or(self.window.end)
    }

    /// Open loop: how many requests of connection `id` are due before `at`
    /// ([`Plan::due_before_of`] its [`Plan::share_of`]).
    fn due_before(&self, rate: f64, id: usize, at: Instant) -> u64 {
        self.due_before_of(rate, self.share_of(id), at)
    }

    /// Open loop: how many arrivals of `share` are due before `at`, which is
    /// the index `k` of its first arrival due at or after `at`.
    ///
    /// Found by bisection over `k`, at most 64 steps of [`Plan::due_of`]
    /// whatever the rate, rather than by walking the schedule one request at
    /// a time, which at `--rate 1e9` is a billion steps per second of run.
    /// `due_of(k) >= at` is false and then true as `k` grows, for any `at` up
    /// to the window's end: `due_of` grows with `k` until the clock (or the
    /// Poisson schedule, whose arrivals are in order and all before the
    /// window's end) cannot hold it, and from there it is the window's end.
    pub fn due_before_of(&self, rate: f64, share: Share, at: Instant) -> u64 {
        let (mut low, mut high) = (0, u64::MAX);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.due_of(rate, share, middle) >= at {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        low
    }
}

/// Address `id % len` of `source_ips`; `None` when there are none.
pub fn source_of(source_ips: &[IpAddr], id: usize) -> Option<IpAddr> {
    (!source_ips.is_empty()).then(|| source_ips[id % source_ips.len()])
}

/// One client connection and its state between requests.
pub struct Connection {
    /// Its index among the run's connections.
    id: usize,
    /// The index of its target in the plan's endpoints.
    target: usize,
    /// The local address it binds to before connect(2) (`--source-ips`).
    source: Option<IpAddr>,
    /// The run's plan.
    plan: Arc<Plan>,
    /// The open connection, if any; `None` after a failure, a close, or under
    /// `--new-conn`.
    stream: Option<TcpStream>,
    /// The read buffer, allocated once.
    buffer: Box<[u8]>,
    /// Whether this connection has already been counted for its worker pid.
    counted: bool,
    /// Whether the last request failed while opening its connection (the connect
    /// or the first write), after which a closed loop waits before the next try.
    connect_failed: bool,
    /// `--mix`: this connection's own generator of paths.
    generator: Option<SmallRng>,
}

impl Connection {
    /// Connection `id` of the run (none is opened yet).
    pub fn new(id: usize, plan: Arc<Plan>) -> Connection {
        Connection {
            id,
            generator: plan.mix.as_ref().map(|mix| mix.generator(id)),
            target: plan.target_of(id),
            source: plan.source_of(id),
            plan,
            stream: None,
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            counted: false,
            connect_failed: false,
        }
    }

    /// `--hold`: a connection opened before the schedule ([`open_held`]),
    /// `id` its place in the schedule (of the held connections of this
    /// process), going to target `target` from `source`.
    pub fn held(
        id: usize,
        target: usize,
        source: Option<IpAddr>,
        stream: Option<TcpStream>,
        plan: Arc<Plan>,
    ) -> Connection {
        Connection {
            target,
            source,
            stream,
            ..Connection::new(id, plan)
        }
    }

    /// Sends requests until the end of the window, then lets the last one finish
    /// (for at most `--timeout`).
    pub async fn run(mut self, recorder: Rc<RefCell<Recorder>>) {
        match self.plan.rate {
            None => self.closed_loop(&recorder).await,
            Some(rate) => self.open_loop(rate, &recorder).await,
        }
    }

    /// Closed loop: the next request goes out as soon as the previous one is done.
    async fn closed_loop(&mut self, recorder: &RefCell<Recorder>) {
        let end = self.plan.window.end;
        loop {
            let scheduled = Instant::now();
            if scheduled >= end {
                return;
            }
            self.request(scheduled, recorder).await;
            if self.connect_failed {
                sleep_until((Instant::now() + CONNECT_RETRY_DELAY).min(end).into()).await;
            }
        }
    }

    /// Open loop: requests go out on a fixed schedule whatever the answers; a late
    /// request is sent at once, its latency still counted from when it was due.
    async fn open_loop(&mut self, rate: f64, recorder: &RefCell<Recorder>) {
        let plan = Arc::clone(&self.plan);
        // Without a timerfd (none left), tokio's millisecond timer will do: less
        // precise, and fd exhaustion shows in the errors anyway.
        // `--hold`: requests seconds apart; a timerfd each would double the
        // fds of tens of thousands of connections for no precision needed.
        let timer = match plan.hold {
            true => None,
            false => PreciseTimer::new().ok(),
        };
        let mut k = 0;
        loop {
            let due = plan.due(rate, self.id, k);
            if due >= plan.window.end {
                // Hold the connection open, idle, to the end of the window, as
                // a keep-alive client does: the server's cost of the
                // connections open (its fds) lasts the whole run.
                sleep_until(plan.window.end.into()).await;
                return;
            }
            recorder.borrow_mut().record_scheduled(due);
            k += 1;
            sleep_until_due(timer.as_ref(), due).await;
            if Instant::now() >= plan.hard_stop() {
                // The server is so far behind that the run's end came first: this
                // request and every later one of the window go unanswered. The
                // later ones are counted, never sent, and counted at once: a
                // connection can be billions of requests behind (`--rate 1e9`),
                // and counting them one by one kept loadgen busy for as long
                // again after its hard stop.
                let window_first = plan.due_before(rate, self.id, plan.window.start);
                let window_end = plan.due_before(rate, self.id, plan.window.end);
                let mut recorder = recorder.borrow_mut();
                recorder.record_unanswered(u64::from(plan.window.contains(due)));
                recorder.record_unsent(window_end.saturating_sub(k.max(window_first)));
                return;
            }
            self.request(due, recorder).await;
        }
    }

    /// Sends one request scheduled at `scheduled` to this connection's
    /// target, its path drawn from `--mix`, and records it.
    async fn request(&mut self, scheduled: Instant, recorder: &RefCell<Recorder>) {
        let path = match (&self.plan.mix, &mut self.generator) {
            (Some(mix), Some(generator)) => mix.draw(generator),
            _ => 0,
        };
        self.request_to(scheduled, self.target, path, recorder)
            .await;
    }

    /// Sends one request scheduled at `scheduled` to target `target`, path
    /// `path` (an index into its request heads), and records it.
    pub async fn request_to(
        &mut self,
        scheduled: Instant,
        target: usize,
        path: usize,
        recorder: &RefCell<Recorder>,
    ) {
        let sent = Instant::now();
        let own_deadline = sent + self.plan.timeout;
        let hard_stop = self.plan.hard_stop();
        let mut moved = Moved::default();
        let result = timeout_at(
            own_deadline.min(hard_stop).into(),
            self.exchange(scheduled, target, path, recorder, &mut moved),
        )
        .await;
        let done = Instant::now();
        let (outcome, server_closes) = match result {
            Ok(Ok((answer, server_closes))) => (Ok(answer), server_closes),
            Ok(Err(failure)) => (Err(failure), true),
            // Cut off by the end of the run, not by its own timeout (an open-loop
            // request sent late, during the drain).
            Err(_) if hard_stop < own_deadline => {
                self.stream = None;
                if recorder.borrow().window().contains(scheduled) {
                    recorder.borrow_mut().record_unanswered(1);
                }
                return;
            }
            Err(_) => (Err(Failure::Timeout), true),
        };
        {
            let mut recorder = recorder.borrow_mut();
            let first_on_connection =
                outcome.is_ok() && !self.counted && recorder.window().contains(scheduled);
            self.counted |= first_on_connection;
            recorder.record(&Sample {
                scheduled,
                sent,
                done,
                outcome,
                first_on_connection,
                target,
                moved,
            });
        }
        if outcome.is_err() {
            self.stream = None;
        } else if server_closes {
            self.await_close(own_deadline.min(hard_stop)).await;
        } else if self.plan.new_conn {
            // The server ignored `Connection: close`: close from this side.
            self.stream = None;
        }
    }

    /// After an answer that ends with the connection (`Connection: close`), waits
    /// (until `deadline` at most) for the server to close first, then closes. The
    /// side that closes first keeps the connection in TIME_WAIT: on the server
    /// that costs nothing, here it would hold a local port for a minute and make
    /// every later connect search longer for a free one (a `--new-conn` run opens
    /// tens of thousands per second, from about 28,000 ephemeral ports).
    async fn await_close(&mut self, deadline: Instant) {
        if let Some(stream) = &self.stream {
            // Whatever ends the wait (the end of stream, stray bytes, an error, the
            // deadline), the answer is recorded and the connection closes here.
            let _ = timeout_at(
                deadline.into(),
                await_end_of_stream(stream, &mut self.buffer),
            )
            .await;
        }
        self.stream = None;
    }

    /// Connects if needed, writes the request and reads the answer; says whether
    /// the server closes the connection after it.
    ///
    /// A keep-alive connection may have been closed by the server while it sat
    /// idle (its keep-alive or header timeout: hyper's `header_read_timeout`,
    /// nginx's `keepalive_timeout`), and the request written on it then meets
    /// the end of the stream or a reset before any byte of an answer. That is
    /// not the server failing a request it took: as wrk and oha do (and Go's and
    /// hyper's clients for a request they may repeat), the request is sent once
    /// more on a new connection, within the same `--timeout`, and counted as a
    /// reconnect rather than a failure. A new connection is never retried.
    async fn exchange(
        &mut self,
        scheduled: Instant,
        target: usize,
        path: usize,
        recorder: &RefCell<Recorder>,
        moved: &mut Moved,
    ) -> Result<(Answer, bool), Failure> {
        self.connect_failed = false;
        let endpoint = &self.plan.endpoints[target];
        let request = Request {
            head: &endpoint.requests[path.min(endpoint.requests.len() - 1)],
            body: &self.plan.body,
        };
        if let Some(stream) = &mut self.stream {
            match exchange_on_idle(stream, request, &mut self.buffer, moved).await {
                Ok(head) => return Ok(answered(&head)),
                Err(Reused::ClosedWhileIdle) => {
                    self.stream = None;
                    recorder.borrow_mut().record_reconnect(scheduled);
                }
                Err(Reused::Failed(failure)) => return Err(failure),
            }
        }
        let (stream, took) =
            match connect_and_send(endpoint.addr, self.source, request, moved).await {
                Ok(connected) => connected,
                Err(err) => {
                    self.connect_failed = true;
                    return Err(Failure::of(&err));
                }
            };
        recorder.borrow_mut().record_connect(scheduled, took);
        // Nagle's algorithm holds a small write only while earlier data is
        // unacknowledged, which the answer to each request acknowledges; a
        // keep-alive connection turns it off all the same, once.
        if !self.plan.new_conn {
            stream.set_nodelay(true).map_err(|err| Failure::of(&err))?;
        }
        self.counted = false;
        let stream = self.stream.insert(stream);
        let head = read_answer(stream, &mut self.buffer, 0, moved).await?;
        Ok(answered(&head))
    }
}

/// The bytes of one request: its head, then its body (empty for a `GET`),
/// both shared by every request of the run.
#[derive(Debug, Clone, Copy)]
struct Request<'a> {
    /// The request line and headers, up to the blank line.
    head: &'a [u8],
    /// `--body-bytes`, or nothing.
    body: &'a [u8],
}

impl Request<'_> {
    /// The whole request's length.
    fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// What is left to write after the first `written` bytes, as slices for
    /// writev(2): the rest of the head and the body, or the rest of the body.
    fn rest(&self, written: usize) -> [IoSlice<'_>; 2] {
        match written.checked_sub(self.head.len()) {
            None => [IoSlice::new(&self.head[written..]), IoSlice::new(self.body)],
            Some(in_body) => [IoSlice::new(&self.body[in_body..]), IoSlice::new(&[])],
        }
    }
}

/// Writes `request` on `stream` from its byte `written` on, counting what is
/// written in `moved`. A request without a body is one write(2) of its head,
/// as before bodies existed; with one, writev(2) sends the head and as much
/// of the body as the socket takes in one call, so a small body never waits
/// for the head's ACK (Nagle's algorithm holds a second small write until
/// then, and the server, waiting for the body, delays its ACK).
async fn write_request(
    stream: &mut TcpStream,
    request: Request<'_>,
    mut written: usize,
    moved: &mut Moved,
) -> io::Result<()> {
    while written < request.len() {
        let wrote = match request.body.is_empty() {
            true => stream.write(&request.head[written..]).await?,
            false => stream.write_vectored(&request.rest(written)).await?,
        };
        if wrote == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += wrote;
        moved.sent += wrote as u64;
    }
    Ok(())
}

/// How a request on a connection kept from an earlier one went wrong.
enum Reused {
    /// The server had closed the connection: the write or the first read met a
    /// reset or the end of the stream before any byte of an answer.
    ClosedWhileIdle,
    /// Anything else, or after some of the answer: the request failed.
    Failed(Failure),
}

/// Writes `request` on `stream`, a connection kept open after an earlier answer,
/// and reads the answer into `buffer`; tells a connection the server closed
/// while it was idle from a failed request.
async fn exchange_on_idle(
    stream: &mut TcpStream,
    request: Request<'_>,
    buffer: &mut [u8],
    moved: &mut Moved,
) -> Result<response::Head, Reused> {
    // ECONNRESET or EPIPE here: the server's close was already answered with a
    // reset (an earlier write after its FIN); the end of the stream or a reset
    // on the first read: its FIN or reset came before any byte of an answer.
    let closed = |failure: Failure| match failure {
        Failure::Reset | Failure::ShortResponse => Reused::ClosedWhileIdle,
        failure => Reused::Failed(failure),
    };
    write_request(stream, request, 0, moved)
        .await
        .map_err(|err| closed(Failure::of(&err)))?;
    let first = read_some(stream, buffer, moved).await.map_err(closed)?;
    read_answer(stream, buffer, first, moved)
        .await
        .map_err(Reused::Failed)
}

/// What the recorder keeps of an answer's head, and whether the server closes
/// the connection after it.
fn answered(head: &response::Head) -> (Answer, bool) {
    let answer = Answer {
        status: head.status,
        worker_pid: head.worker_pid,
    };
    (answer, head.close)
}

/// Opens a connection to `addr` and writes `request` on it; returns the stream and
/// the time the connection took to be established (connect(2) to writable).
///
/// A non-blocking connect(2) returns EINPROGRESS, but on loopback the kernel has
/// usually completed the handshake before it returns (the SYN, SYN-ACK and ACK are
/// processed on the way out of the call). So the request is written at once, and
/// only if that finds the socket not yet connected (EAGAIN) does it wait for the
/// socket to become writable, as an ordinary async connect always does. That saves
/// a trip through the event loop and a getsockopt(2) per connection, which is what
/// a `--new-conn` run is made of.
async fn connect_and_send(
    addr: SocketAddr,
    source: Option<IpAddr>,
    request: Request<'_>,
    moved: &mut Moved,
) -> io::Result<(TcpStream, Duration)> {
    let started = Instant::now();
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Some(source) = source {
        super::source::bind(&socket, source)?;
    }
    match socket.connect(&addr.into()) {
        // EINPROGRESS: the handshake is under way, perhaps already complete.
        Err(err) if err.raw_os_error() != Some(libc::EINPROGRESS) => return Err(err),
        _ => {}
    }
    let returned = Instant::now();
    let sent = match request.body.is_empty() {
        true => socket.send(request.head),
        false => socket.send_vectored(&request.rest(0)),
    };
    let written = match sent {
        Ok(written) => written,
        // EAGAIN: still SYN_SENT (a full listen queue, a remote host).
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
        // ECONNREFUSED and the like: the handshake already failed.
        Err(err) => return Err(err),
    };
    let mut stream = TcpStream::from_std(socket.into())?;
    let took = if written > 0 {
        returned - started
    } else {
        stream.writable().await?;
        if let Some(err) = stream.take_error()? {
            return Err(err);
        }
        started.elapsed()
    };
    moved.sent += written as u64;
    write_request(&mut stream, request, written, moved).await?;
    Ok((stream, took))
}

/// `--hold`: opens one connection to `endpoint` (from `source`), sends it
/// its first request (the first path; `body` after the head) and reads the
/// answer, all before `deadline`: a connection is held once the server has
/// taken it and answered on it, not merely once the kernel completed its
/// handshake into an accept queue. Returns the stream and its connect time.
///
/// A failure is counted by kind ([`Failure::of`]): on loadgen's side
/// EMFILE/ENFILE (`fd_exhaustion`) and EADDRNOTAVAIL (`port_exhaustion`)
/// from socket(2), bind(2) or connect(2); from the server, a refused
/// connect, a reset, or no answer by the deadline (`timeout`). An answer
/// that is not 2xx is `bad_status`; one that closes the connection
/// (`Connection: close`) cannot be held and is `short_response`.
pub async fn open_held(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    body: &[u8],
    deadline: Instant,
    buffer: &mut [u8],
) -> Result<(TcpStream, Duration), Failure> {
    let request = Request {
        head: &endpoint.requests[0],
        body,
    };
    let mut moved = Moved::default();
    let exchange = async {
        let (mut stream, took) = connect_and_send(endpoint.addr, source, request, &mut moved)
            .await
            .map_err(|err| Failure::of(&err))?;
        stream.set_nodelay(true).map_err(|err| Failure::of(&err))?;
        let head = read_answer(&mut stream, buffer, 0, &mut moved).await?;
        if !(200..300).contains(&head.status) {
            return Err(Failure::BadStatus);
        }
        if head.close {
            return Err(Failure::ShortResponse);
        }
        Ok((stream, took))
    };
    timeout_at(deadline.into(), exchange)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// `--hold`: one request on a connection [`open_held`] opened, while it
/// waits for the run to start, so that the server does not close it as
/// idle; the answer must be a 2xx that keeps the connection.
pub async fn keep_alive(
    stream: &mut TcpStream,
    endpoint: &Endpoint,
    body: &[u8],
    deadline: Instant,
    buffer: &mut [u8],
) -> Result<(), Failure> {
    let request = Request {
        head: &endpoint.requests[0],
        body,
    };
    let mut moved = Moved::default();
    let exchange = async {
        write_request(stream, request, 0, &mut moved)
            .await
            .map_err(|err| Failure::of(&err))?;
        let head = read_answer(stream, buffer, 0, &mut moved).await?;
        match (200..300).contains(&head.status) && !head.close {
            true => Ok(()),
            false => Err(Failure::BadStatus),
        }
    };
    timeout_at(deadline.into(), exchange)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// Reads one answer from `stream` into `buffer`, whose first `filled` bytes have
/// already been read, and returns its head; the body is read and dropped.
async fn read_answer(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    mut filled: usize,
    moved: &mut Moved,
) -> Result<response::Head, Failure> {
    let malformed = |_| Failure::MalformedResponse;
    let head = loop {
        if filled > 0 {
            if let Some(head) = response::parse_head(&buffer[..filled]).map_err(malformed)? {
                break head;
            }
        }
        if filled == buffer.len() {
            return Err(Failure::MalformedResponse);
        }
        filled += read_some(stream, &mut buffer[filled..], moved).await?;
    };
    let in_buffer = filled - head.len;
    match head.body {
        // Bytes beyond the answer: the server sent more than one answer.
        Body::Empty if in_buffer > 0 => return Err(Failure::MalformedResponse),
        Body::Empty => {}
        Body::Length(length) => {
            let mut left = length
                .checked_sub(in_buffer as u64)
                .ok_or(Failure::MalformedResponse)?;
            while left > 0 {
                let read = read_some(stream, buffer, moved).await? as u64;
                left = left.checked_sub(read).ok_or(Failure::MalformedResponse)?;
            }
        }
        Body::Chunked => {
            let mut chunked = Chunked::new();
            let mut fed = &buffer[head.len..filled];
            loop {
                let used = chunked.feed(fed).map_err(malformed)?;
                if used < fed.len() {
                    return Err(Failure::MalformedResponse);
                }
                if chunked.is_done() {
                    break;
                }
                let read = read_some(stream, buffer, moved).await?;
                fed = &buffer[..read];
            }
        }
        Body::UntilClose => loop {
            match stream.read(buffer).await {
                Ok(0) => break,
                Ok(read) => moved.received += read as u64,
                Err(err) => return Err(Failure::of(&err)),
            }
        },
    }
    Ok(head)
}

/// Returns once the server has closed its side. Usually its FIN came with the
/// answer and the reactor already knows (EPOLLRDHUP): no system call at all.
/// Otherwise a read finds nothing yet (EAGAIN), and the next readiness is the FIN.
async fn await_end_of_stream(stream: &TcpStream, buffer: &mut [u8]) {
    loop {
        match stream.ready(Interest::READABLE).await {
            Ok(ready) if ready.is_read_closed() => return,
            Ok(_) => {}
            Err(_) => return,
        }
        match stream.try_read(buffer) {
            // The end of stream, or bytes after the answer (ignored: closing anyway).
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Reads at least one byte, counted in `moved`; the end of the stream here
/// is a short answer.
async fn read_some(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    moved: &mut Moved,
) -> Result<usize, Failure> {
    match stream.read(buffer).await {
        Ok(0) => Err(Failure::ShortResponse),
        Ok(read) => {
            moved.received += read as u64;
            Ok(read)
        }
        Err(err) => Err(Failure::of(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// The request arrives whole, and a connect time is measured.
    #[test]
    fn connect_and_send_writes_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut moved = Moved::default();
        let took = runtime().block_on(async {
            let request = Request {
                head: request,
                body: &[],
            };
            let (_stream, took) = connect_and_send(addr, None, request, &mut moved)
                .await
                .expect("connect");
            took
        });
        assert_eq!(moved.sent, request.len() as u64);
        assert!(took < Duration::from_secs(5));
        let (mut accepted, _) = listener.accept().expect("accept");
        accepted
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut received = vec![0; request.len()];
        accepted
            .read_exact(&mut received)
            .expect("read the request");
        assert_eq!(received, request);
    }

    /// `--body-bytes` on the wire: loadgen's own request (its head from
    /// `Target::request_bytes`, the shared body after it, written by
    /// `connect_and_send` and `write_request`, here a body larger than a
    /// socket's buffer, so the write continues) reaches a real `handoff`
    /// worker whole: it answers 200 with `x-received-bytes` the body's
    /// length (none for an empty body), and the bytes counted each way are
    /// the request's and the answer's.
    #[test]
    fn a_body_reaches_the_worker_whole_and_is_counted() {
        use super::super::target::Target;
        let handoff = testkit::workspace_bin("handoff").expect("build handoff");
        let handoff = handoff.to_str().expect("a UTF-8 path");
        let cluster = testkit::Cluster::start(handoff, &["--workers", "1"]).expect("handoff");
        let target = Target::parse(&format!("http://{}/", cluster.addr())).expect("url");
        for body_bytes in [0_usize, 100, 3 * 1024 * 1024] {
            let head = target.request_bytes(&target.path, true, Some(body_bytes as u64));
            let body = vec![b'x'; body_bytes];
            let request = Request {
                head: &head,
                body: &body,
            };
            let mut moved = Moved::default();
            let mut buffer = vec![0; READ_BUFFER_BYTES];
            let answer = runtime().block_on(async {
                let deadline = Instant::now() + Duration::from_secs(10);
                timeout_at(deadline.into(), async {
                    let (mut stream, _) =
                        connect_and_send(cluster.addr(), None, request, &mut moved)
                            .await
                            .expect("send");
                    let head = read_answer(&mut stream, &mut buffer, 0, &mut moved)
                        .await
                        .expect("an answer");
                    (head.status, head.len)
                })
                .await
                .expect("answered within 10 s")
            });
            assert_eq!(answer.0, 200, "{body_bytes} bytes");
            let head = String::from_utf8_lossy(&buffer[..answer.1]).to_ascii_lowercase();
            // The worker names what it read only when a body came (an empty
            // body is none), so that its answer to a GET stays the same.
            let received = format!("x-received-bytes: {body_bytes}\r\n");
            assert_eq!(
                head.contains(&received),
                body_bytes > 0,
                "{body_bytes} bytes: {head}"
            );
            assert_eq!(moved.sent, (request.len()) as u64);
            assert!(moved.received > answer.1 as u64, "{moved:?}");
        }
    }

    /// An open-loop request due later than the clock can hold (`--rate 1e-300`)
    /// is due at the window's end, so it is not sent: no overflow panic.
    #[test]
    fn due_beyond_the_clock_is_the_windows_end() {
        let start = Instant::now();
        let window = Window {
            start,
            end: start + Duration::from_secs(1),
        };
        let plan = Plan {
            endpoints: vec![Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                requests: vec![Box::default()],
            }],
            new_conn: false,
            rate: Some(1e-300),
            connections: 1,
            timeout: Duration::from_secs(1),
            start,
            window,
            mix: None,
            poisson: None,
            body: Box::default(),
            source_ips: Vec::new(),
            hold: false,
        };
        assert_eq!(plan.due(1e-300, 0, 0), start);
        assert_eq!(plan.due(1e-300, 0, 1), window.end);
        assert_eq!(plan.due(2.0, 0, 1), start + Duration::from_millis(500));
    }

    /// An open-loop plan of `connections` at `rate`, whose window is
    /// `window_ms` (from, to) after its start.
    fn open_plan(rate: f64, connections: usize, window_ms: (u64, u64)) -> Plan {
        let start = Instant::now();
        Plan {
            endpoints: vec![Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                requests: vec![Box::default()],
            }],
            new_conn: false,
            rate: Some(rate),
            connections,
            timeout: Duration::from_secs(1),
            start,
            window: Window {
                start: start + Duration::from_millis(window_ms.0),
                end: start + Duration::from_millis(window_ms.1),
            },
            mix: None,
            poisson: None,
            body: Box::default(),
            source_ips: Vec::new(),
            hold: false,
        }
    }

    /// Regression (issue 19, item 6): the requests a connection has due
    /// before an instant are counted as walking its schedule would count
    /// them, and at the highest rate in a few steps: `--rate 1e9` cut off at
    /// its hard stop used to walk a billion requests per second of run.
    #[test]
    fn due_before_counts_the_schedule_without_walking_it() {
        let plan = open_plan(1000.0, 3, (500, 1500));
        for id in 0..3 {
            for at in [plan.start, plan.window.start, plan.window.end] {
                let walked = (0..).take_while(|&k| plan.due(1000.0, id, k) < at).count();
                assert_eq!(plan.due_before(1000.0, id, at), walked as u64, "{id}");
            }
        }
        // A second at one request a nanosecond: a billion requests, dealt to
        // 50 connections, counted at once.
        let plan = open_plan(1e9, 50, (0, 1000));
        let total: u64 = (0..50)
            .map(|id| plan.due_before(1e9, id, plan.window.end))
            .sum();
        assert_eq!(total, 1_000_000_000);
        assert_eq!(plan.due_before(1e9, 7, plan.window.start), 0);
        // A rate whose requests are due beyond the clock: none before the end.
        let plan = open_plan(1e-300, 1, (0, 1000));
        assert_eq!(plan.due_before(1e-300, 0, plan.window.end), 1);
    }

    /// Every request of the window of `plan` (at `rate`), over all its
    /// connections, as ns from the start, in order: the schedule the server
    /// sees.
    fn merged_schedule(plan: &Plan, rate: f64) -> Vec<u64> {
        let mut times: Vec<u64> = (0..plan.connections)
            .flat_map(|id| {
                (0..)
                    .map(move |k| plan.due(rate, id, k))
                    .take_while(|&due| due < plan.window.end)
                    .map(|due| (due - plan.start).as_nanos() as u64)
            })
            .collect();
        times.sort_unstable();
        times
    }

    /// `--arrivals`: the schedule of a 20 s open loop at 1,000/s over 7
    /// connections, as the server sees it (every connection's requests
    /// merged). Both hold the rate within a few %; uniform gaps do not vary
    /// (coefficient of variation near 0), Poisson gaps vary as an
    /// exponential's (near 1). The Poisson arrivals are dealt to the
    /// connections in turn, as the uniform ones (connection `id`'s k-th is
    /// the run's arrival `id + 7k`), and counting a connection's requests due
    /// before an instant agrees with walking its schedule. The same seed
    /// gives the same schedule.
    #[test]
    fn arrivals_hold_the_rate_uniform_evenly_poisson_exponentially() {
        use super::super::arrivals::tests::gap_statistics;
        let uniform = open_plan(1000.0, 7, (0, 20_000));
        let span = uniform.window.end - uniform.start;
        let draw = |seed| PoissonSchedule::draw(1000.0, span, seed);
        let poisson = Plan {
            poisson: Some(draw(42)),
            ..open_plan(1000.0, 7, (0, 20_000))
        };
        for (name, plan, cv_range) in [
            ("uniform", &uniform, 0.0..=0.01),
            ("poisson", &poisson, 0.95..=1.05),
        ] {
            let times = merged_schedule(plan, 1000.0);
            let rate = times.len() as f64 / span.as_secs_f64();
            assert!((970.0..=1030.0).contains(&rate), "{name}: {rate}/s of 1000");
            let (mean_ns, cv) = gap_statistics(&times);
            assert!(
                (0.97e6..=1.03e6).contains(&mean_ns),
                "{name}: mean gap {mean_ns} ns"
            );
            assert!(
                cv_range.contains(&cv),
                "{name}: coefficient of variation {cv}"
            );
        }
        let schedule = poisson.poisson.as_ref().expect("drawn");
        for id in 0..7 {
            for k in [0, 1, 2, 100] {
                let index = id as u64 + 7 * k;
                let expected = poisson.start
                    + Duration::from_nanos(schedule.due_ns(index).expect("in the span"));
                assert_eq!(
                    poisson.due(1000.0, id, k),
                    expected,
                    "connection {id}, request {k}"
                );
            }
            for at in [
                poisson.start,
                poisson.start + Duration::from_millis(4321),
                poisson.window.end,
            ] {
                let walked = (0..)
                    .take_while(|&k| poisson.due(1000.0, id, k) < at)
                    .count();
                assert_eq!(poisson.due_before(1000.0, id, at), walked as u64, "{id}");
            }
        }
        let again = Plan {
            poisson: Some(draw(42)),
            ..open_plan(1000.0, 7, (0, 20_000))
        };
        let mut times = merged_schedule(&again, 1000.0);
        assert_eq!(times, merged_schedule(&poisson, 1000.0));
        let other = Plan {
            poisson: Some(draw(43)),
            ..open_plan(1000.0, 7, (0, 20_000))
        };
        times = merged_schedule(&other, 1000.0);
        assert_ne!(times, merged_schedule(&poisson, 1000.0));
    }

    /// Connections are dealt round robin over the targets: connection i goes
    /// to target i mod n, so the counts per target differ by at most one, and
    /// a connection slot keeps its target (under `--new-conn`, each new
    /// connection of the slot is made by the same `Connection`, with this target).
    #[test]
    fn connections_are_dealt_round_robin_over_the_targets() {
        let start = Instant::now();
        let plan = |targets: usize, connections: usize| Plan {
            endpoints: (0..targets)
                .map(|port| Endpoint {
                    addr: SocketAddr::from(([127, 0, 0, 1], 1 + port as u16)),
                    requests: vec![Box::default()],
                })
                .collect(),
            new_conn: true,
            rate: None,
            connections,
            timeout: Duration::from_secs(1),
            start,
            window: Window {
                start,
                end: start + Duration::from_secs(1),
            },
            mix: None,
            poisson: None,
            body: Box::default(),
            source_ips: Vec::new(),
            hold: false,
        };
        let two = Arc::new(plan(2, 5));
        let dealt: Vec<usize> = (0..5).map(|id| two.target_of(id)).collect();
        assert_eq!(dealt, [0, 1, 0, 1, 0]);
        for (targets, connections) in [(1, 7), (2, 5), (2, 8), (3, 7), (3, 2), (4, 1000)] {
            let plan = Arc::new(plan(targets, connections));
            let mut counts = vec![0usize; targets];
            for id in 0..connections {
                let connection = Connection::new(id, Arc::clone(&plan));
                assert_eq!(connection.target, id % targets);
                counts[connection.target] += 1;
            }
            let most = counts.iter().max().copied().unwrap_or(0);
            let least = counts.iter().min().copied().unwrap_or(0);
            assert!(
                most - least <= 1,
                "{connections} connections over {targets} targets: {counts:?}"
            );
            assert_eq!(counts.iter().sum::<usize>(), connections);
        }
    }

    /// A port nobody listens on is a refused connect.
    #[test]
    fn connect_and_send_reports_refused() {
        // Bound but not listening: refused, and the port cannot be taken by a
        // test running in parallel (as a merely freed port could).
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let addr = socket
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("inet");
        let err = runtime()
            .block_on(connect_and_send(
                addr,
                None,
                Request {
                    head: b"GET / HTTP/1.1\r\n\r\n",
                    body: &[],
                },
                &mut Moved::default(),
            ))
            .expect_err("refused");
        assert_eq!(Failure::of(&err), Failure::ConnectRefused, "{err}");
    }
}
