//! Lesson 1, two fds per connection: N keep-alive connections held open
//! against each mode; the `proxy` master holds two fds per connection (the
//! client's socket and its own to a worker), a handoff master none for the
//! connections it serves (`handoff-socket`: at most its window in flight).

use std::collections::BTreeMap;

use super::{Lab, Verdict, WORKERS, fds};

/// Connections held open (`--quick`: fewer).
const CONNECTIONS: usize = 200;
/// Connections held open with `--quick`.
const CONNECTIONS_QUICK: usize = 100;
/// `handoff-socket`: at most 8 unacknowledged handoffs per worker.
const WINDOW_PER_WORKER: i64 = 8;
/// The fds a master may hold beyond its bound (a timer, a log rotation).
const SLACK: i64 = 2;

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
    for mode in cluster::Mode::ALL {
        let mut server = lab.serve(mode, WORKERS, &[])?;
        let master = server.master();
        let idle = fds(master);
        let tree_idle = idle + server.workers().iter().map(|&w| fds(w)).sum::<usize>();
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
        server.stop()?;
        rows.push((mode, idle, tree_idle, master, report, view));
    }
    println!(
        "  {:<18} {:<25} {:<15} whole tree: idle → held",
        "mode", "master fds: idle → held", "per connection"
    );
    let mut wrong = Vec::new();
    let mut holders = Vec::new();
    for (mode, idle, tree_idle, master, report, view) in &rows {
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
    Ok(Verdict {
        wrong,
        ok: format!(
            "the proxy master held 2 fds per connection ({} ± {SLACK} for {n}: the client's socket and its own to a worker), the handoff masters none for the connections they serve (handoff-socket: at most {window} in flight, {WINDOW_PER_WORKER} unacknowledged per worker; {SLACK} of slack for each)",
            2 * n
        ),
    })
}

/// The pid of `ss -p`'s `users:(("name",pid=123,fd=4))`, if any.
fn pid_of(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once("pid=")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
