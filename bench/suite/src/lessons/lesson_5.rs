//! Lesson 5, a worker dies: stopped (SIGSTOP) into a load, then SIGKILLed
//! while stopped, it dies holding what it had taken and what was on its
//! way to it, which is where the modes differ: the `proxy` loses what it
//! relayed to it, the `handoff-socket` master gives what the worker never
//! acknowledged to another worker, and no mode loses more than its
//! clients' requests in flight.

use super::{Lab, Verdict, WORKERS, lines_from};

/// Clients, each with one request at a time.
const CLIENTS: u64 = 8;
/// New connections a second.
const RATE: u64 = 400;
/// The master's log line of a rescue, with `connections=N`.
const RESCUE: &str = "re-handing unacknowledged connections";

/// The lesson's bound as loadgen's threshold: no more failed requests than
/// the clients can have had in flight (`--connections` bounds them, in the
/// open model too).
fn lost_at_most() -> String {
    format!("errors<={CLIENTS}")
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let (duration, stop_after, kill_after) = if lab.quick {
        ("2500ms", "500ms", "1200ms")
    } else {
        ("4s", "1s", "2s")
    };
    println!(
        "lesson 5: a worker dies: one of {WORKERS} workers stopped (SIGSTOP) {stop_after} into the run and killed (SIGKILL)"
    );
    println!(
        "  at {kill_after}, still stopped; {CLIENTS} clients, {RATE} new connections a second, each request computing 2 ms"
    );
    println!(
        "  (loadgen --new-conn --rate {RATE} --stop <worker> --stop-after {stop_after} --kill <worker> --kill-after {kill_after} --slo {})",
        lost_at_most()
    );
    let log = lab.path("log");
    let mut rows = Vec::new();
    for mode in cluster::Mode::ALL {
        let logged = lines_from(&log, 0).len();
        // --worker-timeout 60s: the master must not replace the stopped
        // worker first.
        let mut server = lab.serve(mode, WORKERS, &["--worker-timeout", "60s"])?;
        let killed = server.first_worker();
        let args: Vec<String> = [
            "--target",
            &format!("http://127.0.0.1:{}/?work_us=2000", server.port()),
            "--connections",
            &CLIENTS.to_string(),
            "--new-conn",
            "--rate",
            &RATE.to_string(),
            "--duration",
            duration,
            "--warmup",
            "200ms",
            "--timeout",
            "5s",
            "--stop",
            &killed.to_string(),
            "--stop-after",
            stop_after,
            "--stop-for",
            "5s",
            "--kill",
            &killed.to_string(),
            "--kill-after",
            kill_after,
            // loadgen judges the lesson's bound itself: no more failed
            // requests than the clients can have had in flight.
            "--slo",
            &lost_at_most(),
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        let report = lab.load(mode.name(), server.master(), &args)?;
        server.stop()?;
        // Its stdout after the ready line: a respawn line for the
        // successor; its log: how many unacknowledged handoffs the master
        // gave to another worker.
        let successor = server
            .rest_of_stdout()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| {
                event["event"] == "respawn" && event["old_pid"].as_u64() == Some(u64::from(killed))
            })
            .and_then(|event| event["pid"].as_u64());
        let rescued: u64 = lines_from(&log, logged)
            .iter()
            .filter(|line| line.contains(RESCUE))
            .filter_map(|line| {
                let (_, after) = line.rsplit_once("connections=")?;
                after
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        rows.push((mode, killed, rescued, successor, report));
    }
    let mut wrong = Vec::new();
    let mut proxy_failed = 0;
    println!(
        "  {:<18} {:>7} {:>7} {:>8}  successor answered   longest request",
        "mode", "ok", "failed", "rescued"
    );
    for (mode, killed, rescued, successor, report) in &rows {
        let handoff_socket = *mode == cluster::Mode::Handoff(cluster::Pass::Socket);
        let kill_ms = report.fault.as_ref().and_then(|fault| fault.at_ms);
        let failed = report.requests.failed;
        if *mode == cluster::Mode::Proxy {
            proxy_failed = failed;
        }
        let kinds: Vec<(&String, &u64)> = report
            .errors
            .by_kind
            .iter()
            .filter(|(_, count)| **count > 0)
            .collect();
        let longest = report
            .latency
            .request
            .as_ref()
            .map_or(0.0, |l| l.max_us as f64 / 1000.0);
        let after = successor.and_then(|pid| {
            let served = report
                .workers
                .by_pid
                .iter()
                .find(|w| u64::from(w.pid) == pid)?;
            Some(served.first_ms? - kill_ms?)
        });
        let how: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        println!(
            "  {:<18} {:>7} {failed:>7} {:>8}  {}   {longest:>6.0} ms{}",
            mode.name(),
            runs::format::count(report.requests.ok),
            if handoff_socket {
                rescued.to_string()
            } else {
                "–".to_owned()
            },
            after.map_or_else(
                || "no successor answered".to_owned(),
                |after| format!("{after:>5.0} ms after the kill")
            ),
            if how.is_empty() {
                String::new()
            } else {
                format!("   ({})", how.join(", "))
            }
        );
        let fault_error = report.fault.as_ref().and_then(|fault| fault.error.clone());
        if fault_error.is_some() || kill_ms.is_none() {
            wrong.push(format!("{mode}: the kill did not happen ({fault_error:?})"));
        }
        match report.slo.iter().find(|slo| slo.expr == lost_at_most()) {
            Some(slo) if slo.pass => {}
            Some(_) => wrong.push(format!(
                "{mode} lost {failed} requests, more than the {CLIENTS} clients can have had in flight (loadgen's --slo {} failed)",
                lost_at_most()
            )),
            None => wrong.push(format!(
                "{mode}: loadgen did not judge --slo {}",
                lost_at_most()
            )),
        }
        if kinds
            .iter()
            .any(|(kind, _)| *kind == "connect_refused" || *kind == "timeout")
        {
            wrong.push(format!("{mode}: {}", how.join(", ")));
        }
        if after.is_none() {
            wrong.push(format!("{mode}: no successor of {killed} answered"));
        }
        if handoff_socket && *rescued < 1 {
            wrong.push(
                "the handoff-socket master gave no unacknowledged connection to another worker"
                    .to_owned(),
            );
        }
    }
    if proxy_failed < 1 {
        wrong.push("the proxy lost no request: none was relayed to the stopped worker".to_owned());
    }
    Ok(Verdict {
        wrong,
        ok: format!(
            "the proxy lost the requests it had relayed to the worker ({proxy_failed}); the handoff-socket master gave the sockets the worker had not acknowledged to another worker; no mode lost more than its {CLIENTS} clients' requests in flight, none was refused, and a successor served"
        ),
    })
}
