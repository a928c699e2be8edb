//! Lesson 2, the fd limit: each master started with `--max-fds 256`, 300
//! clients on keep-alive connections. The `proxy` serves exactly
//! (limit − own fds − spare) / 2 clients at once (its relay budget); every
//! handoff mode serves them all with a handful of fds.

use super::{Lab, Verdict, WORKERS, fds};

/// Each master's `--max-fds`.
const LIMIT: usize = 256;
/// Clients, more than the proxy can hold.
const CLIENTS: usize = 300;
/// The fds the proxy keeps spare below its limit (proxy/src/lib.rs).
const SPARE: usize = 16;
/// `handoff-socket`: at most 8 unacknowledged handoffs per worker.
const WINDOW_PER_WORKER: usize = 8;
/// The fds a handoff master may hold beyond its bound.
const SLACK: usize = 2;

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    println!(
        "lesson 2: the fd limit: each master started with --max-fds {LIMIT}, {CLIENTS} clients on keep-alive connections, {WORKERS} workers"
    );
    println!(
        "  loadgen --connections {CLIENTS} --duration 3s --warmup 0 --timeout 2s --watch <master>"
    );
    let mut rows = Vec::new();
    for mode in cluster::Mode::ALL {
        let mut server = lab.serve(mode, WORKERS, &["--max-fds", &LIMIT.to_string()])?;
        let master = server.master();
        let idle = fds(master);
        let args: Vec<String> = [
            "--target".to_owned(),
            format!("http://127.0.0.1:{}/", server.port()),
            "--connections".into(),
            CLIENTS.to_string(),
            "--duration".into(),
            "3s".into(),
            "--warmup".into(),
            "0".into(),
            "--timeout".into(),
            "2s".into(),
        ]
        .to_vec();
        let (report, view) =
            lab.load_watching(mode.name(), CLIENTS, server.port(), master, &args)?;
        server.stop()?;
        rows.push((mode, idle, report, view));
    }
    let mut wrong = Vec::new();
    let mut queue = Vec::new();
    for (mode, idle, report, view) in &rows {
        let idle = *idle;
        let Some(watched) = report.watch.first() else {
            wrong.push(format!("loadgen did not watch the {mode} master"));
            continue;
        };
        let held = watched.processes.first().map_or(0, |process| {
            process.samples.iter().map(|s| s.fds).max().unwrap_or(0)
        });
        if watched.error.is_some() || watched.gone_at_ms.is_some() {
            wrong.push(format!(
                "watching the {mode} master stopped: {}",
                watched.error.clone().unwrap_or_else(|| "it exited".into())
            ));
        }
        // The listening socket while loaded (ss -ltn): Recv-Q, the
        // connections waiting in its accept queue; Send-Q, the queue's limit.
        let listening: Vec<&str> = view.listening.split_whitespace().collect();
        let waiting = if listening.len() > 2 {
            format!("{} of {}", listening[1], listening[2])
        } else {
            "?".to_owned()
        };
        queue.push((mode, waiting));
        let failed = report.requests.failed;
        let kinds = crate::loadgen::failures(report, &[]);
        if *mode == cluster::Mode::Proxy {
            // The master counts its own fds by reading /proc/self/fd, whose
            // directory is one more open fd while it reads.
            let own = idle + 1;
            let capacity = (LIMIT.saturating_sub(own + SPARE) / 2).max(1);
            let relays = held.saturating_sub(idle) / 2;
            println!(
                "  {:<18} master fds {idle} idle, at most {held} of {LIMIT}: {relays} clients served at once; {failed} requests failed ({kinds}): the other clients waited in the accept queue",
                mode.name()
            );
            println!(
                "  {:<18} the formula: (limit − own fds − spare) / 2 = ({LIMIT} − {own} − {SPARE}) / 2 = {capacity} (own: the {idle} fds it holds idle, and the one it opens to read /proc/self/fd)",
                ""
            );
            if relays != capacity {
                wrong.push(format!(
                    "the proxy served {relays} clients at once, the formula says {capacity}"
                ));
            }
            if failed < (CLIENTS - capacity) as u64 {
                wrong.push(format!(
                    "only {failed} proxy requests failed, but {} clients cannot have been served",
                    CLIENTS - capacity
                ));
            }
        } else {
            println!(
                "  {:<18} master fds {idle} idle, at most {held} of {LIMIT}: all {CLIENTS} clients served; {failed} requests failed ({kinds})",
                mode.name()
            );
            if failed > 0 {
                wrong.push(format!("{failed} requests failed against {mode}"));
            }
            let window = if *mode == cluster::Mode::Handoff(cluster::Pass::Socket) {
                WINDOW_PER_WORKER * WORKERS
            } else {
                0
            };
            let bound = idle + window + SLACK;
            if held > bound {
                wrong.push(format!(
                    "the {mode} master held {held} fds, more than {bound}"
                ));
            }
        }
    }
    println!();
    println!(
        "  the kernel's view while loaded: connections waiting in the accept queue (ss -ltn: Recv-Q of Send-Q)"
    );
    for (mode, waiting) in queue {
        println!("  {:<18} {waiting}", mode.name());
    }
    Ok(Verdict {
        wrong,
        ok: format!(
            "under --max-fds {LIMIT} the proxy served exactly what its formula allows at once and every handoff mode served all {CLIENTS} clients with a handful of fds"
        ),
    })
}
