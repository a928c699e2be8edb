//! What one connection and one request cost through each way of sharing the
//! port, measured against the real binaries (`target/release/proxy` and
//! `target/release/handoff`) with 2 workers each.
//!
//! Five targets per group: the four modes (`proxy`, `handoff --pass socket`,
//! `--pass listener`, `--pass reuseport`), and one worker's own port (the first
//! worker of the `proxy` cluster's ready line), which is the floor: the same
//! worker with nobody in between.
//!
//! - `connect`: a new TCP connection, one `GET /` with `Connection: close`, the
//!   whole answer read until the server closes, then close. This is where the
//!   modes differ most: the `proxy` master opens a second connection to a
//!   worker, the `handoff-socket` master passes the socket over the channel
//!   and takes the worker's acknowledgement, while in `listener` and
//!   `reuseport` a worker accepts the connection itself.
//! - `keep_alive_request`: one `GET /` on a connection opened beforehand.
//!   Per request, only `proxy` adds work (two more socket reads and writes in
//!   the master); the handoff modes should equal the direct worker.
//!
//! Each group starts a cluster the first time one of its benchmarks needs it
//! (criterion runs only the benchmarks its filter selects, e.g.
//! `cargo bench -- connect`), and stops them all with SIGTERM at its end;
//! `testkit::Cluster` SIGKILLs the master and its workers if that
//! fails, or if a benchmark panics, so no process outlives the bench.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, PlottingBackend, criterion_group, criterion_main};
use testkit::{Cluster, KeepAlive, STOP_TIMEOUT, Signal, wait_until};

/// Workers per cluster: one per core of the 2-core machine the figures were
/// taken on; the bench itself and the master share the same cores.
const WORKERS: &str = "2";

/// How long the workers may take to be gone after their master stopped.
const WORKERS_GONE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a benchmark sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The `proxy` master's public port.
    Proxy,
    /// The `handoff --pass socket` master's public port.
    HandoffSocket,
    /// The `handoff --pass listener` public port (the workers accept on it).
    HandoffListener,
    /// The `handoff --pass reuseport` public port (the kernel picks a worker).
    HandoffReuseport,
    /// The own port of the first worker of the `proxy` cluster.
    Worker,
}

/// Every target, in the order of the report.
const TARGETS: [Target; 5] = [
    Target::Proxy,
    Target::HandoffSocket,
    Target::HandoffListener,
    Target::HandoffReuseport,
    Target::Worker,
];

impl Target {
    /// The benchmark's name in the report: the mode name of ARCHITECTURE.md.
    fn name(self) -> &'static str {
        match self {
            Target::Proxy => "proxy",
            Target::HandoffSocket => "handoff-socket",
            Target::HandoffListener => "handoff-listener",
            Target::HandoffReuseport => "handoff-reuseport",
            Target::Worker => "worker (direct)",
        }
    }

    /// The binary and the flags of the cluster that serves this target
    /// (`--listen 127.0.0.1:0` is added by `Cluster::start`).
    fn command(self) -> Command {
        match self {
            // The direct target is a worker of the proxy cluster.
            Target::Proxy | Target::Worker => ("proxy", &["--workers", WORKERS]),
            Target::HandoffSocket => ("handoff", &["--workers", WORKERS, "--pass", "socket"]),
            Target::HandoffListener => ("handoff", &["--workers", WORKERS, "--pass", "listener"]),
            Target::HandoffReuseport => ("handoff", &["--workers", WORKERS, "--pass", "reuseport"]),
        }
    }
}

/// A cluster binary's name (in `target/release`) and its flags.
type Command = (&'static str, &'static [&'static str]);

/// The clusters one group has started, at most one per binary and flags.
struct Clusters {
    /// The folder of the `proxy` and `handoff` binaries, once checked.
    bin_dir: Option<PathBuf>,
    /// The running clusters, with the command that started each.
    running: Vec<(Command, Cluster)>,
}

impl Clusters {
    fn new() -> Clusters {
        Clusters {
            bin_dir: None,
            running: Vec::new(),
        }
    }

    /// The address of `target`, starting its cluster if none runs yet.
    fn addr(&mut self, target: Target) -> SocketAddr {
        let command = target.command();
        let index = match self
            .running
            .iter()
            .position(|(started, _)| *started == command)
        {
            Some(index) => index,
            None => {
                let (bin, args) = command;
                let bin = self.bin_dir().join(bin);
                let bin = bin.to_str().expect("the target folder's path is UTF-8");
                let cluster = Cluster::start(bin, args)
                    .unwrap_or_else(|err| panic!("start {bin} {args:?}: {err:#}"));
                self.running.push((command, cluster));
                self.running.len() - 1
            }
        };
        let cluster = &self.running[index].1;
        match target {
            Target::Worker => {
                let port = cluster.ready().workers[0]
                    .port
                    .expect("a proxy worker's ready entry has its own port");
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            _ => cluster.addr(),
        }
    }

    /// The folder of the cluster binaries, `target/release`. `cargo bench`
    /// builds the binaries only as test harnesses, never `target/release/<bin>`
    /// itself, so [`testkit::workspace_bin`] builds `proxy` and `handoff` once
    /// (a no-op when they are up to date), so that the figures are those of the
    /// code as it is. It runs before the first cluster starts, so a failure
    /// leaves no process behind.
    fn bin_dir(&mut self) -> &Path {
        self.bin_dir.get_or_insert_with(|| {
            let built = ["proxy", "handoff"].map(testkit::workspace_bin);
            let mut dirs = Vec::new();
            for bin in built {
                match bin {
                    Ok(bin) => dirs.extend(bin.parent().map(Path::to_path_buf)),
                    Err(err) => {
                        eprintln!("error: the release binaries these benches run: {err:#}");
                        std::process::exit(1);
                    }
                }
            }
            dirs.dedup();
            assert_eq!(dirs.len(), 1, "proxy and handoff built apart: {dirs:?}");
            dirs.remove(0)
        })
    }

    /// Stops every cluster with SIGTERM and checks that its workers are gone;
    /// a cluster that does not stop in time is SIGKILLed when dropped.
    fn stop(self) {
        for (_, mut cluster) in self.running {
            let mode = cluster.mode().to_owned();
            if let Err(err) = cluster.signal(Signal::SIGTERM) {
                eprintln!("warning: SIGTERM to the {mode} master: {err:#}; killing it");
                continue;
            }
            match cluster.wait_exit(STOP_TIMEOUT) {
                Some(status) if status.success() => {}
                other => eprintln!(
                    "warning: the {mode} master did not stop cleanly ({other:?}); killing it"
                ),
            }
            if !wait_until(WORKERS_GONE_TIMEOUT, || cluster.live_workers().is_empty()) {
                eprintln!(
                    "warning: {mode} workers {:?} outlived their master; killing them",
                    cluster.live_workers()
                );
            }
            // Dropping the cluster SIGKILLs whatever still runs.
        }
    }
}

/// A new connection to `addr`, one request with `Connection: close`, the whole
/// answer, a wait until the server closes, then close: the test kit's client,
/// which reads the head with the load generator's parser.
fn one_shot(addr: SocketAddr) {
    let mut connection = KeepAlive::connect(addr).unwrap_or_else(|err| panic!("{err:#}"));
    let response = connection
        .request("/", true)
        .unwrap_or_else(|err| panic!("{addr}: {err:#}"));
    assert_eq!(response.status, 200, "{addr} answered {response:?}");
    connection
        .read_to_close()
        .unwrap_or_else(|err| panic!("{err:#}"));
}

/// Sets the timing of a group: short enough that the whole `cargo bench`
/// stays within a few minutes on 2 cores, long enough for stable medians.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
}

fn connect(c: &mut Criterion) {
    let mut clusters = Clusters::new();
    let mut group = c.benchmark_group("connect");
    configure(&mut group);
    for target in TARGETS {
        group.bench_function(target.name(), |b| {
            let addr = clusters.addr(target);
            b.iter(|| one_shot(addr));
        });
    }
    group.finish();
    clusters.stop();
}

fn keep_alive_request(c: &mut Criterion) {
    let mut clusters = Clusters::new();
    let mut group = c.benchmark_group("keep_alive_request");
    configure(&mut group);
    for target in TARGETS {
        // Opened at the first call, kept across criterion's calls of the
        // routine, closed before the clusters stop.
        let mut connection: Option<KeepAlive> = None;
        group.bench_function(target.name(), |b| {
            let connection = connection.get_or_insert_with(|| {
                let addr = clusters.addr(target);
                KeepAlive::connect(addr).unwrap_or_else(|err| panic!("{err:#}"))
            });
            b.iter(|| {
                let response = connection
                    .get("/")
                    .unwrap_or_else(|err| panic!("{}: {err:#}", target.name()));
                assert_eq!(response.status, 200, "{}: {response:?}", target.name());
                response
            });
        });
    }
    group.finish();
    clusters.stop();
}

criterion_group! {
    name = benches;
    // Charts for the HTML report drawn in Rust: no gnuplot to install, and
    // the same charts on every machine.
    config = Criterion::default().plotting_backend(PlottingBackend::Plotters);
    targets = connect, keep_alive_request
}
criterion_main!(benches);
