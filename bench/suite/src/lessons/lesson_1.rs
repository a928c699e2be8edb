//! Lesson 1, two fds per connection: N keep-alive connections held open
//! against each mode; the `proxy` master holds two fds per connection (the
//! client's socket and its own to a worker), a handoff master none for the
//! connections it serves (`handoff-socket`: at most its window in flight).
//! Each mode runs in a network namespace of its own, so that the kernel's
//! count of TCP sockets (`/proc/net/sockstat`) is the lesson's alone: behind
//! the proxy each connection is four TCP sockets on this machine, behind a
//! handoff master two.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::sockstat::{self, Tcp};
use super::{KernelView, Lab, Verdict, WORKERS, fds};

/// Connections held open (`--quick`: fewer).
const CONNECTIONS: usize = 200;
/// Connections held open with `--quick`.
const CONNECTIONS_QUICK: usize = 100;
/// `handoff-socket`: at most 8 unacknowledged handoffs per worker.
const WINDOW_PER_WORKER: i64 = 8;
/// The fds a master may hold beyond its bound (a timer, a log rotation).
const SLACK: i64 = 2;
/// TCP sockets per client connection on this machine behind the proxy: the
/// client's end, the master's end of it, the master's own connection to a
/// worker and the worker's end of that.
const TCP_PER_CONNECTION_PROXY: i64 = 4;
/// Behind a handoff master: the client's end and the one the worker holds.
const TCP_PER_CONNECTION_HANDOFF: i64 = 2;
/// TCP sockets the count may differ by beyond its bound in a namespace of
/// the lesson's own (nothing else opens sockets there).
const TCP_SLACK: i64 = 2;
/// How long the lesson waits, after the clients left, for the count to come
/// back to what it was at rest before it reads it anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One mode's run.
struct Row {
    mode: cluster::Mode,
    /// The master's fds at rest.
    idle: usize,
    /// The whole tree's fds at rest.
    tree_idle: usize,
    master: u32,
    report: runs::Report,
    view: KernelView,
    /// `/proc/net/sockstat`'s TCP line at rest, and once the clients left
    /// (and the count came back, or 10 s passed).
    rest: Option<Tcp>,
    after: Option<Tcp>,
}

/// Where the kernel's counters came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// A network namespace per mode: `inuse` and `tw` are the lesson's own.
    OwnNamespace,
    /// No namespace could be made (not root): the machine's, shared with
    /// whatever else runs.
    HostWide,
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let n = if lab.quick {
        CONNECTIONS_QUICK
    } else {
        CONNECTIONS
    };
    println!(
        "lesson 1: two fds per connection: {n} keep-alive connections held open against each mode, {WORKERS} workers"
    );
    println!(
        "  loadgen --connections {n} --rate {n} (one request a second each) --watch <master>; fds from /proc/<pid>/fd"
    );
    let window = WINDOW_PER_WORKER * WORKERS as i64;
    let n_i = n as i64;
    let mut rows = Vec::new();
    let mut counted = Counted::OwnNamespace;
    for mode in cluster::Mode::ALL {
        let row = if counted == Counted::OwnNamespace {
            match launch::netns::in_new_netns(&[], || measure(lab, mode, n)) {
                Ok(row) => row?,
                Err(err) => {
                    println!(
                        "  ({err}: the kernel's counters below are the whole machine's, shared with anything else running)"
                    );
                    counted = Counted::HostWide;
                    measure(lab, mode, n)?
                }
            }
        } else {
            measure(lab, mode, n)?
        };
        rows.push(row);
    }
    println!(
        "  {:<18} {:<25} {:<15} whole tree: idle → held",
        "mode", "master fds: idle → held", "per connection"
    );
    let mut wrong = Vec::new();
    let mut holders = Vec::new();
    for Row {
        mode,
        idle,
        tree_idle,
        master,
        report,
        view,
        ..
    } in &rows
    {
        // Who holds the server end of each connection on the public port.
        let mut by: BTreeMap<u8, (&str, usize)> = BTreeMap::new();
        for end in view.ends.lines().filter(|line| !line.trim().is_empty()) {
            let holder = match pid_of(end) {
                None => (2, "the accept queue"),
                Some(pid) if pid == *master => (0, "master"),
                Some(_) => (1, "workers"),
            };
            by.entry(holder.0).or_insert((holder.1, 0)).1 += 1;
        }
        let said: Vec<String> = by
            .values()
            .map(|(who, count)| format!("{who} {count}"))
            .collect();
        holders.push((
            mode,
            if said.is_empty() {
                "none".to_owned()
            } else {
                said.join(", ")
            },
        ));
        let Some(watched) = report.watch.first() else {
            wrong.push(format!("loadgen did not watch the {mode} master"));
            continue;
        };
        // The most fds over every sample, warm-up included: the
        // connections stay open to the end.
        let held = watched.processes.first().map_or(0, |process| {
            process.samples.iter().map(|s| s.fds).max().unwrap_or(0)
        });
        let mut at: BTreeMap<u64, usize> = BTreeMap::new();
        for process in &watched.processes {
            for sample in &process.samples {
                *at.entry(sample.t_ms.to_bits()).or_default() += sample.fds;
            }
        }
        let tree = at.values().copied().max().unwrap_or(0);
        let extra = held as i64 - *idle as i64;
        if watched.error.is_some() || watched.gone_at_ms.is_some() {
            wrong.push(format!(
                "watching the {mode} master stopped: {}",
                watched.error.clone().unwrap_or_else(|| "it exited".into())
            ));
        }
        println!(
            "  {:<18} {:<25} {:<15} {tree_idle} → {tree} ({:+})",
            mode.name(),
            format!("{idle} → {held} ({extra:+})"),
            format!("{:.2}", extra as f64 / n as f64),
            tree as i64 - *tree_idle as i64
        );
        let (low, high) = match mode {
            cluster::Mode::Proxy => (2 * n_i - SLACK, 2 * n_i + SLACK),
            cluster::Mode::Handoff(cluster::Pass::Socket) => (0, window + SLACK),
            cluster::Mode::Handoff(_) => (0, SLACK),
        };
        if !(low..=high).contains(&extra) {
            wrong.push(format!(
                "the {mode} master held {extra:+} fds for {n} connections, expected {low}..{high}"
            ));
        }
        if report.requests.failed > 0 {
            wrong.push(format!(
                "{} requests failed against {mode}",
                report.requests.failed
            ));
        }
    }
    println!();
    println!(
        "  the kernel's view while held: who holds the server end of the {n} connections on the public port (ss -tnp)"
    );
    for (mode, said) in holders {
        println!("  {:<18} {said}", mode.name());
    }
    kernel_count(&rows, n_i, counted, &mut wrong);
    Ok(Verdict {
        wrong,
        ok: format!(
            "the proxy master held 2 fds per connection ({} ± {SLACK} for {n}: the client's socket and its own to a worker), the handoff masters none for the connections they serve (handoff-socket: at most {window} in flight, {WINDOW_PER_WORKER} unacknowledged per worker; {SLACK} of slack for each); the kernel counted {TCP_PER_CONNECTION_PROXY} TCP sockets per connection behind the proxy and {TCP_PER_CONNECTION_HANDOFF} behind a handoff master (± {TCP_SLACK}{})",
            2 * n,
            if counted == Counted::HostWide {
                "; at least that, the count being the whole machine's"
            } else {
                ""
            }
        ),
    })
}

/// Starts `mode`, reads its fds and the kernel's TCP count at rest, holds
/// `n` connections open against it (watching the kernel meanwhile), reads
/// the count again once the clients left, and stops it; in the calling
/// thread's network namespace.
fn measure(lab: &Lab, mode: cluster::Mode, n: usize) -> anyhow::Result<Row> {
    let mut server = lab.serve(mode, WORKERS, &[])?;
    let master = server.master();
    let idle = fds(master);
    let tree_idle = idle + server.workers().iter().map(|&w| fds(w)).sum::<usize>();
    let rest = sockstat::read();
    let args: Vec<String> = [
        "--target".to_owned(),
        format!("http://127.0.0.1:{}/", server.port()),
        "--connections".into(),
        n.to_string(),
        "--rate".into(),
        n.to_string(),
        "--duration".into(),
        "1s".into(),
        "--warmup".into(),
        "1s".into(),
    ]
    .to_vec();
    let (report, view) = lab.load_watching(mode.name(), n, server.port(), master, &args)?;
    // The clients have closed; their sockets, the master's and the
    // workers' leave the count as each side closes.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut after = sockstat::read();
    while let (Some(now), Some(rest)) = (after, rest) {
        if now.inuse <= rest.inuse || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        after = sockstat::read();
    }
    server.stop()?;
    Ok(Row {
        mode,
        idle,
        tree_idle,
        master,
        report,
        view,
        rest,
        after,
    })
}

/// Prints the kernel's count of TCP sockets at rest, held and after, and
/// judges `inuse`'s rise: 4 per connection behind the proxy, 2 behind a
/// handoff master (in a namespace of the lesson's own ± 2; machine-wide,
/// at least that).
fn kernel_count(rows: &[Row], n: i64, counted: Counted, wrong: &mut Vec<String>) {
    println!();
    match counted {
        Counted::OwnNamespace => println!(
            "  the kernel's own count of TCP sockets ({}, its TCP line), each mode in a network namespace of its own: at rest → held → after the clients closed",
            sockstat::PATH
        ),
        Counted::HostWide => println!(
            "  the kernel's own count of TCP sockets ({}, its TCP line), the whole machine's (no namespace: shared with anything else running): at rest → held → after the clients closed",
            sockstat::PATH
        ),
    }
    println!(
        "  {:<18} {:<27} {:<15} {:<21} {:<21} {:<15} orphan*: held, after",
        "mode",
        "inuse: rest → held → after",
        "per connection",
        "tw: rest → after",
        "alloc*: rest → held",
        "mem* (pages)"
    );
    for row in rows {
        let mode = row.mode;
        let (Some(rest), Some(held), Some(after)) = (row.rest, row.view.tcp_peak, row.after) else {
            wrong.push(format!(
                "could not read {} while {mode} ran",
                sockstat::PATH
            ));
            continue;
        };
        let rise = held.inuse - rest.inuse;
        println!(
            "  {:<18} {:<27} {:<15} {:<21} {:<21} {:<15} {}, {}",
            mode.name(),
            format!(
                "{} → {} ({rise:+}) → {}",
                rest.inuse, held.inuse, after.inuse
            ),
            format!("{:.2}", rise as f64 / n as f64),
            format!("{} → {} ({:+})", rest.tw, after.tw, after.tw - rest.tw),
            format!(
                "{} → {} ({:+})",
                rest.alloc,
                held.alloc,
                held.alloc - rest.alloc
            ),
            format!("{} → {}", rest.mem, held.mem),
            held.orphan,
            after.orphan
        );
        let per = match mode {
            cluster::Mode::Proxy => TCP_PER_CONNECTION_PROXY,
            cluster::Mode::Handoff(_) => TCP_PER_CONNECTION_HANDOFF,
        };
        let (low, high) = match counted {
            Counted::OwnNamespace => (per * n - TCP_SLACK, per * n + TCP_SLACK),
            Counted::HostWide => (per * n - TCP_SLACK, i64::MAX),
        };
        if !(low..=high).contains(&rise) {
            wrong.push(format!(
                "the kernel counted {rise:+} TCP sockets in use while {n} connections were held against {mode}, expected {}",
                if high == i64::MAX {
                    format!("at least {low}")
                } else {
                    format!("{low}..{high}")
                }
            ));
        }
    }
    println!(
        "  * the whole machine's, every namespace's: orphan (closed, still closing), alloc (TCP sockets allocated), mem (pages of TCP buffers); inuse (not TIME_WAIT) and tw (TIME_WAIT) are {}",
        match counted {
            Counted::OwnNamespace => "the namespace's",
            Counted::HostWide => "the machine's too here",
        }
    );
}

/// The pid of `ss -p`'s `users:(("name",pid=123,fd=4))`, if any.
fn pid_of(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once("pid=")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
