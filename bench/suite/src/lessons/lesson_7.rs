//! Lesson 7, the proxy's second limit, ephemeral ports: each mode in a
//! network namespace of its own whose `net.ipv4.ip_local_port_range` is
//! narrowed to 1,000 ports, 3,000 connections held. Every connection the
//! `proxy` relays over `--upstream tcp` is also a loopback connection from
//! the master to a worker's own port, which takes a local port of that range
//! (one per worker address: the same port may go to another worker). So the
//! master relays at most workers × (the range less the listening ports bound
//! in it); it closes every other client without an answer, and logs one
//! warning for them all. Over `--upstream unix` it needs no port, and no
//! handoff mode has a second hop: all hold every connection.
//!
//! The clients' own connections take ports from the same range: from one
//! address towards the master's one port, at most the range's 1,000. So
//! loadgen spreads them over 4 source addresses (`--source-ips`), each with
//! the range's ports of its own towards that port, 4,000 in all; what runs
//! out is the master's second hop, never the clients'.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::cli::UsageError;

use super::{Lab, Verdict, WORKERS, fds, lines_from, ss};

/// Connections held against each mode (`--quick`: fewer).
const CONNECTIONS: usize = 3000;
/// Connections held with `--quick`.
const CONNECTIONS_QUICK: usize = 300;
/// The first port of the narrowed range.
const FIRST_PORT: usize = 40000;
/// The ports of the narrowed range (`--quick`: fewer).
const PORTS: usize = 1000;
/// The ports of the narrowed range with `--quick`.
const PORTS_QUICK: usize = 100;
/// The clients' source addresses (loadgen `--source-ips`), none of them
/// 127.0.0.1, the master's to its workers.
const SOURCE_IPS: &str = "127.0.0.2-127.0.0.5";
/// How many addresses [`SOURCE_IPS`] names: each has the whole range
/// towards the master's port.
const SOURCES: usize = 4;
/// Ports of the range bound by the `proxy --upstream tcp` servers' listening
/// sockets (port 0 is bound from the range too), which no connection can
/// take: the master's public port and each worker's own.
const LISTENING_IN_RANGE: usize = 1 + WORKERS;
/// How many fewer relays than the formula the proxy may hold: ports of the
/// range in TIME_WAIT towards a worker while the clients open (the relay of
/// loadgen's probe connection, closed just before: one), and one spare.
const RELAY_SLACK: usize = 2;
/// The proxy master's warnings for the clients it closed: one per episode
/// (failures less than a second apart are one); the clients fail in one
/// burst, and a pause of a second on a busy machine may make it two.
const WARNINGS_MAX: usize = 2;
/// What the proxy master logs when no worker can be reached for want of a
/// local port (proxy/src/relay.rs).
const NO_PORT_WARNING: &str = "no local port left to reach a worker";
/// How often the lesson asks the kernel (`ss`) for the master's connections
/// to its workers while the clients are held.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

// The clients fit: their source addresses × the range's ports towards the
// master's one port hold them all.
const _: () = assert!(SOURCES * PORTS >= CONNECTIONS && SOURCES * PORTS_QUICK >= CONNECTIONS_QUICK);

/// A server the lesson loads.
#[derive(Clone, Copy)]
struct Setup {
    /// What the lesson calls it.
    label: &'static str,
    /// Its mode.
    mode: cluster::Mode,
    /// Its extra flags.
    flags: &'static [&'static str],
    /// Whether its master relays to the workers over TCP: the one whose
    /// relays take local ports.
    relays_over_tcp: bool,
}

/// The servers, in the lesson's order.
const SETUPS: [Setup; 5] = [
    Setup {
        label: "proxy --upstream tcp",
        mode: cluster::Mode::Proxy,
        flags: &["--upstream", "tcp"],
        relays_over_tcp: true,
    },
    Setup {
        label: "proxy --upstream unix",
        mode: cluster::Mode::Proxy,
        flags: &["--upstream", "unix"],
        relays_over_tcp: false,
    },
    Setup {
        label: "handoff-socket",
        mode: cluster::Mode::Handoff(cluster::Pass::Socket),
        flags: &[],
        relays_over_tcp: false,
    },
    Setup {
        label: "handoff-listener",
        mode: cluster::Mode::Handoff(cluster::Pass::Listener),
        flags: &[],
        relays_over_tcp: false,
    },
    Setup {
        label: "handoff-reuseport",
        mode: cluster::Mode::Handoff(cluster::Pass::Reuseport),
        flags: &[],
        relays_over_tcp: false,
    },
];

/// One server's run.
struct Row {
    setup: Setup,
    /// The master's fds at rest.
    idle: usize,
    report: runs::Report,
    /// The master's connections to each worker's own port, from the kernel
    /// (`ss`) while the clients were held: (port, established, in
    /// TIME_WAIT), at the moment most were established.
    relays: Vec<(u16, usize, usize)>,
    /// The master's warnings that it had no local port left.
    warnings: Vec<String>,
}

/// Lesson 7 narrows `ip_local_port_range` in a network namespace of its
/// own, never the machine's: one line and exit 2 where none can be made
/// (before anything is built).
pub fn check_netns() -> anyhow::Result<()> {
    match launch::netns::in_new_netns(&[], || ()) {
        Ok(()) => Ok(()),
        Err(err) => Err(UsageError(format!(
            "lesson 7 narrows net.ipv4.ip_local_port_range in a network namespace of its own, and {err}: run it as root"
        ))
        .into()),
    }
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let (n, ports) = if lab.quick {
        (CONNECTIONS_QUICK, PORTS_QUICK)
    } else {
        (CONNECTIONS, PORTS)
    };
    let range = format!("{FIRST_PORT} {}", FIRST_PORT + ports - 1);
    let count = |n: usize| runs::format::count(n as u64);
    println!(
        "lesson 7: the proxy's second limit, ephemeral ports: {} connections held against each mode, {WORKERS} workers,",
        count(n)
    );
    println!(
        "  each in a network namespace of its own with net.ipv4.ip_local_port_range = {range} ({} ports)",
        count(ports)
    );
    println!(
        "  loadgen --hold --connections {n} --source-ips {SOURCE_IPS} --duration 1s --warmup 0 --watch <master>"
    );
    println!(
        "  (the clients come from {SOURCES} addresses, each with the range's {} ports towards the master's port: {} in all, so they fit;",
        count(ports),
        count(SOURCES * ports)
    );
    println!("  the master's connections to its workers come from 127.0.0.1)");
    let mut rows = Vec::new();
    for setup in SETUPS {
        let row = launch::netns::in_new_netns(
            &[("net/ipv4/ip_local_port_range", range.as_str())],
            || measure(lab, setup, n),
        )??;
        rows.push(row);
    }
    let per_worker = ports - LISTENING_IN_RANGE;
    let most = WORKERS * per_worker;
    let least = most - RELAY_SLACK;
    println!(
        "  {:<22} {:>6}  {:<20} {:<24} master → each worker's port (ss: established + TIME_WAIT)",
        "mode", "held", "failed to open", "master fds: idle → held"
    );
    let mut wrong = Vec::new();
    let mut proxy_held = 0;
    let mut proxy_failed = 0;
    let mut proxy_warning = None;
    for row in &rows {
        let label = row.setup.label;
        let Some(hold) = &row.report.hold else {
            wrong.push(format!("{label}: loadgen's report has no hold"));
            continue;
        };
        let held = hold.held as usize;
        let failed: BTreeMap<&str, usize> = hold
            .failed_to_open
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| (kind.as_str(), *n as usize))
            .collect();
        let failed_total: usize = failed.values().sum();
        let kinds = if failed.is_empty() {
            "none".to_owned()
        } else {
            failed
                .iter()
                .map(|(kind, n)| format!("{kind} {}", count(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let master_max = row
            .report
            .watch
            .first()
            .and_then(|watched| watched.processes.first())
            .map_or(0, |process| {
                process.samples.iter().map(|s| s.fds).max().unwrap_or(0)
            });
        let relays = if row.relays.is_empty() {
            if row.setup.mode == cluster::Mode::Proxy {
                "– (Unix sockets: no port)".to_owned()
            } else {
                "– (no second hop)".to_owned()
            }
        } else {
            row.relays
                .iter()
                .map(|(port, established, waiting)| {
                    format!(":{port} {} + {waiting}", count(*established))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {label:<22} {:>6}  {kinds:<20} {:<24} {relays}",
            count(held),
            format!("{} → {}", row.idle, count(master_max))
        );
        if held + failed_total != n {
            wrong.push(format!(
                "{label}: loadgen opened {held} and failed {failed_total} of {n} connections"
            ));
        }
        if let Some(own) = failed.get("port_exhaustion") {
            wrong.push(format!(
                "{label}: loadgen itself had no local port left for {own} clients: the clients did not fit"
            ));
        }
        if row.report.requests.failed > 0 {
            wrong.push(format!(
                "{label}: {} requests on held connections failed ({})",
                row.report.requests.failed,
                crate::loadgen::failures(&row.report, &[])
            ));
        }
        if row.setup.relays_over_tcp {
            proxy_held = held;
            proxy_failed = failed_total;
            proxy_warning = row
                .warnings
                .first()
                .map(|line| (label, row.warnings.len(), line));
            if !(least..=most).contains(&held) {
                wrong.push(format!(
                    "{label} held {held} connections, expected {least}..{most}: {WORKERS} workers × ({ports} ports − {LISTENING_IN_RANGE} listening) less {RELAY_SLACK}"
                ));
            }
            if let Some((kind, _)) = failed
                .iter()
                .find(|(kind, _)| !["reset", "short_response"].contains(kind))
            {
                wrong.push(format!(
                    "{label}: clients failed to open as {kind}, expected closed without an answer (reset or short_response)"
                ));
            }
            if !(1..=WARNINGS_MAX).contains(&row.warnings.len()) {
                wrong.push(format!(
                    "{label}: the master logged {} warnings \"{NO_PORT_WARNING}\" for {failed_total} clients closed, expected 1..{WARNINGS_MAX} (one per episode)",
                    row.warnings.len()
                ));
            }
        } else {
            if held != n {
                wrong.push(format!("{label} held {held} of {n} connections"));
            }
            if !row.warnings.is_empty() {
                wrong.push(format!(
                    "{label}: the master logged \"{NO_PORT_WARNING}\" {} times",
                    row.warnings.len()
                ));
            }
        }
    }
    println!();
    println!(
        "  the formula: workers × (ports − listening ports bound in the range) = {WORKERS} × ({} − {LISTENING_IN_RANGE}) = {} relays at most",
        count(ports),
        count(most)
    );
    println!(
        "  (the listening ports: the master's public port and each worker's own; a port in TIME_WAIT towards a worker is not free either)"
    );
    if let Some((label, warnings, first)) = proxy_warning {
        println!(
            "  the {label} master's log: {warnings} warning(s) for the {} clients it closed:",
            count(proxy_failed)
        );
        // Without the timestamp: `… WARN no local port left …`.
        let shown = first
            .split_once(" WARN ")
            .map_or(first.as_str(), |(_, rest)| rest);
        println!("    WARN {shown}");
    }
    Ok(Verdict {
        wrong,
        ok: format!(
            "with {} local ports, proxy --upstream tcp relayed {} connections at once ({least}..{most}: {WORKERS} workers × ({ports} − {LISTENING_IN_RANGE}) ports, each port once per worker) and closed the other {} clients without an answer, with one warning for them all; --upstream unix and every handoff mode held all {}",
            count(ports),
            count(proxy_held),
            count(proxy_failed),
            count(n)
        ),
    })
}

/// Starts `setup`, holds `n` connections against it, asking the kernel
/// meanwhile for the master's connections to each worker's port, and stops
/// it; in the calling thread's network namespace.
fn measure(lab: &Lab, setup: Setup, n: usize) -> anyhow::Result<Row> {
    let log = lab.path("log");
    let logged = lines_from(&log, 0).len();
    let mut server = lab.serve(setup.mode, WORKERS, setup.flags)?;
    let master = server.master();
    let idle = fds(master);
    let worker_ports = server.line().worker_ports();
    let args: Vec<String> = [
        "--target".to_owned(),
        format!("http://127.0.0.1:{}/", server.port()),
        "--hold".into(),
        "--connections".into(),
        n.to_string(),
        "--source-ips".into(),
        SOURCE_IPS.into(),
        "--duration".into(),
        "1s".into(),
        "--warmup".into(),
        "0".into(),
    ]
    .to_vec();
    let name = setup.label.replace(' ', "");
    let mut load = lab.load_running(&name, master, &args)?;
    let mut relays: Vec<(u16, usize, usize)> = Vec::new();
    if !worker_ports.is_empty() {
        loop {
            let ended = load.running.has_ended();
            let now = to_workers(&worker_ports);
            let total = |of: &[(u16, usize, usize)]| of.iter().map(|r| r.1).sum::<usize>();
            if relays.is_empty() || total(&now) > total(&relays) {
                relays = now;
            }
            if ended {
                break;
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    }
    let report = load.finish()?;
    server.stop()?;
    let warnings = lines_from(&log, logged)
        .into_iter()
        .filter(|line| line.contains("WARN") && line.contains(NO_PORT_WARNING))
        .collect();
    Ok(Row {
        setup,
        idle,
        report,
        relays,
        warnings,
    })
}

/// The connections to each of `ports` (`ss -tan`): (port, established, in
/// TIME_WAIT).
fn to_workers(ports: &[u16]) -> Vec<(u16, usize, usize)> {
    let all = ss(&["-Htan"]);
    ports
        .iter()
        .map(|port| {
            let peer = format!(":{port}");
            let (mut established, mut waiting) = (0, 0);
            for line in all.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.len() < 5 || !words[4].ends_with(&peer) {
                    continue;
                }
                match words[0] {
                    "ESTAB" => established += 1,
                    "TIME-WAIT" => waiting += 1,
                    _ => {}
                }
            }
            (*port, established, waiting)
        })
        .collect()
}
