//! The command line of `loadgen` (clap derive) and its translation to a [`Config`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cluster::cli::{parse_duration, parse_positive_duration};
use runs::labels::Label;
use runs::{Arrivals, MixEntry};

use super::Config;
use super::arrivals;
use super::children::ChildOf;
use super::hold::DEFAULT_HOLD_INTERVAL;
use super::kill::Kill;
use super::mix;
use super::source;
use super::stall::Stop;
use super::target::Target;
use super::units::{parse_body_bytes, parse_positive_integer, parse_rate};
use crate::slo::Threshold;

/// Load an HTTP/1.1 server and measure what it costs: latency (HdrHistogram),
/// the spread over worker pids (`x-worker-pid`), errors by kind, and with
/// `--watch` the server's fds, memory and CPU. A summary goes to stdout;
/// `--json FILE` writes every figure (schema: bench/runs/schema.json); the
/// `report` binary renders a folder of them into REPORT.md and SVG charts.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// `report DIR`, which is refused: the report has its own binary.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The URL to load: `http://host:port/path?query` (plain HTTP/1.1).
    /// Repeatable: connections are dealt round robin over the targets
    /// (connection i goes to target i mod n, and keeps it under `--new-conn`;
    /// with `--new-conn --rate`, request i of the schedule goes to target i
    /// mod n),
    /// e.g. one per worker's own port for a baseline without a master.
    #[arg(long, value_name = "URL", value_parser = Target::parse, required = true)]
    target: Vec<Target>,

    /// Concurrent connections (`50`, `1k`); with `--new-conn --rate`, the
    /// most requests in flight (each on its own connection; a request due
    /// when they are all taken waits, counted). More than loadgen's fd limit
    /// or its memory could hold are refused before the run.
    #[arg(long, default_value = "50", value_parser = parse_positive_integer)]
    connections: usize,

    /// How long to measure, after the warm-up (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,

    /// How long to load before measuring; its requests are not recorded (`0` for none).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,

    /// Open loop: send R requests per second overall (`2000`, `5k`), whatever
    /// the answers, and count latency from each request's intended start
    /// (coordinated omission corrected, as wrk2 does). Without it: closed loop,
    /// each connection sends its next request when the previous answer is complete.
    /// At most 1e9 (one a nanosecond).
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    rate: Option<f64>,

    /// A new TCP connection for every request (`Connection: close`); the connect
    /// time is recorded in its own histogram. With `--rate`: the open model,
    /// each request started when due on its own connection, whatever became
    /// of the earlier ones.
    #[arg(long)]
    new_conn: bool,

    /// Load threads, each with its own event loop; connections are dealt to them
    /// in turn. Default: one per CPU.
    #[arg(long, value_parser = parse_positive_integer)]
    threads: Option<usize>,

    /// How long one request may take, connect included, before it counts as a
    /// timeout; also how long requests in flight at the end may still finish.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    timeout: Duration,

    /// Sample this process and its children (found afresh each time) from /proc:
    /// open fds, RSS, CPU time. Repeatable.
    #[arg(long = "watch", value_name = "PID")]
    watch: Vec<u32>,

    /// How often `--watch` samples.
    #[arg(long, default_value = "100ms", value_parser = parse_positive_duration)]
    sample_interval: Duration,

    /// Record a timeline: the window cut into `--sample-interval`s, each with
    /// the answers per worker pid, the failures by kind and the longest latency
    /// of the requests scheduled in it (`timeline` in the JSON), to place an
    /// event such as an upgrade in time.
    #[arg(long)]
    timeline: bool,

    /// Write the whole report as JSON to FILE (schema: bench/runs/schema.json).
    /// Checked before the load; an existing FILE is replaced only by a
    /// complete report.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Tag the JSON report with KEY=VALUE (`labels`), e.g. `--label mode=proxy`,
    /// for the report; repeatable (a repeated key keeps its last value).
    /// Keys: section, mode, load, round, rate, connections, max_fds, work_us,
    /// workers, accept, stall_ms, strategy.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = Label::from_str)]
    labels: Vec<Label>,

    /// The fault experiment: send SIGKILL to PID once, `--kill-after` after the
    /// measurement starts (the pid must exist at start).
    #[arg(long, value_name = "PID", requires = "kill_after")]
    kill: Option<u32>,

    /// When `--kill` strikes, after the warm-up (`2s`); less than `--duration`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "kill")]
    kill_after: Option<Duration>,

    /// The stalled-worker experiment: send SIGSTOP to PID at each
    /// `--stop-after`, and SIGCONT `--stop-for` later (the pid must exist at
    /// start). SIGCONT is sent even when the run fails or a signal ends
    /// loadgen (SIGINT, SIGTERM, SIGHUP, SIGUSR1, ...: every one a handler can
    /// catch); only a SIGKILL of loadgen leaves PID stopped.
    #[arg(long, value_name = "PID", requires = "stop_after")]
    stop: Option<u32>,

    /// When a stall begins, after the warm-up (`1s`); repeatable, one stall
    /// each, in order, at least `--stop-for` apart, each less than `--duration`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "stop")]
    stop_after: Vec<Duration>,

    /// How long each `--stop` stall lasts.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_positive_duration)]
    stop_for: Duration,

    /// Draw each request's path and query from weighted paths instead of
    /// the target's: `PATH=WEIGHT` (the weight after the last `=`),
    /// repeatable, e.g. `--mix /=95 --mix '/?work_us=5000=5'`. Every target
    /// gets the same mix.
    #[arg(long, value_name = "PATH=WEIGHT", value_parser = mix::parse_entry)]
    mix: Vec<MixEntry>,

    /// The seed of the draws, recorded in the JSON (`parameters.seed`): of
    /// `--mix` (each connection draws from its own generator, seeded with it
    /// and the connection's index) and of `--arrivals poisson`. Default 0;
    /// given without either, refused.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// How the open loop (`--rate`) spaces its requests: `uniform`, 1/R
    /// apart (as wrk2); `poisson`, a Poisson process at R: exponential gaps
    /// of mean 1/R, the bursts and lulls of independent users, drawn from
    /// `--seed` before the run (the same seed, the same schedule). Either
    /// way request i goes to connection i mod C. A Poisson schedule is held
    /// whole, 8 bytes an arrival: beyond 2^24 arrivals (R × (warm-up +
    /// duration): 128 MiB) or the memory left, it is refused before the run.
    #[arg(long, value_name = "PROCESS", default_value = "uniform", value_parser = arrivals::parse, requires = "rate")]
    arrivals: Arrivals,

    /// Write the latency histograms as HdrHistogram percentile distributions
    /// (`.hgrm`, values in ms, as wrk2 `--latency` prints them; read by
    /// HdrHistogram's plotter): `latency.request` (open loop: coordinated
    /// omission corrected) to PATH, the uncorrected one (from each send;
    /// closed loop: the same) beside it with `.uncorrected` before the
    /// extension (`run.hgrm`, `run.uncorrected.hgrm`). Checked before the
    /// load, replaced whole at the end, as `--json`.
    #[arg(long, value_name = "PATH")]
    pub hgrm: Option<PathBuf>,

    /// A threshold the run must meet, repeatable: `p99<=10ms`,
    /// `p99.9<=50ms`, `p50<1ms` (a percentile of the latency: in open loop
    /// the corrected one, from each request's intended start), `errors=0`,
    /// `errors<=5` (failed requests), `answered>=0.95` (or `95%`: the share
    /// of the window's requests answered with a 2xx, ok / (ok + failed +
    /// unanswered at the end): in open loop of the requests due, in closed
    /// loop of those sent), `rps>=1000` (successful requests/s); operators
    /// <, <=, >, >=, =. After the summary, a line each with what was
    /// measured, pass or FAIL, also in the JSON (`slo`); when any fails,
    /// loadgen exits 99 (as k6 does for thresholds: 1 is a failed run, 2 bad
    /// usage).
    #[arg(long = "slo", value_name = "EXPR", value_parser = Threshold::parse)]
    pub slo: Vec<Threshold>,

    /// Send each request as a `POST` with an N-byte body (`Content-Length:
    /// N`; `65536`, `1M`), at most 64 MiB, the most a worker reads (beyond:
    /// exit 2 before any connection). The body is built once and shared by
    /// every request. The bytes sent and received per second are in the
    /// summary's `bytes` line and the JSON (`bytes`) with or without it; ask
    /// for large answers with the worker's `?bytes=N` in the target.
    #[arg(long, value_name = "N", value_parser = parse_body_bytes)]
    body_bytes: Option<u64>,

    /// Open `--connections` keep-alive connections first, as fast as the
    /// server takes them (a progress line on a terminal; the time to open
    /// and every failure to open, by kind, in the JSON's `hold`), then hold
    /// them all for the run, each sending one request every
    /// `--hold-interval`: what the server's fds and memory show is what is
    /// held. The keep-alive open loop's schedule (as `--rate` =
    /// connections / interval) with 1 fd per connection; beyond one
    /// process's fd limit, spread over `--processes`.
    #[arg(long, conflicts_with_all = ["rate", "new_conn", "mix"])]
    hold: bool,

    /// With `--hold`: each held connection's time between requests. Keep it
    /// under the server's idle bound (a `handoff` worker's
    /// `--header-timeout`, 10 s), or held connections are closed between
    /// requests and counted as `reconnects`.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_HOLD_INTERVAL, value_parser = parse_positive_duration, requires = "hold")]
    hold_interval: Duration,

    /// With `--hold`: the loadgen processes that hold the connections, each
    /// every P-th connection under its own fd limit, their recordings merged
    /// into one report. Default: as many as the fd limit requires (one up to
    /// about 19,900 connections under a limit of 20,000); fewer than that is
    /// refused before any connection.
    #[arg(long, value_name = "P", value_parser = parse_positive_integer, requires = "hold")]
    processes: Option<usize>,

    /// Bind connection i to address i mod n of these before connect, for
    /// when one address's ephemeral ports (net.ipv4.ip_local_port_range,
    /// 28,232 by default, toward one target) do not suffice: a range
    /// `127.0.0.2-127.0.0.9` or a list `127.0.0.2,127.0.0.3`. Loopback only.
    #[arg(long, value_name = "ADDRESSES", value_parser = source::SourceIps::parse)]
    source_ips: Option<source::SourceIps>,

    /// Internal: this process is child K of P of a `--hold` run (see
    /// `--processes`): it holds every P-th connection from the K-th and
    /// talks to its parent on stdin and stdout.
    #[arg(long, value_name = "K/P", value_parser = ChildOf::parse, hide = true, requires = "hold")]
    pub child: Option<ChildOf>,
}

/// What `loadgen` was asked instead of a load.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The command that rendered reports before the renderer had its own
    /// binary: kept only to name that binary (`report DIR`) and exit 2.
    #[command(hide = true)]
    Report {
        /// The results folder (as `scripts/compare.sh` writes it).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

impl Cli {
    /// The run's configuration, defaults filled in; `command_line` is recorded
    /// in the report.
    pub fn config(&self, command_line: Vec<String>) -> Config {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        Config {
            // clap requires a --target when there is no subcommand; `run`
            // refuses an empty list all the same.
            targets: self.target.clone(),
            connections: self.connections,
            threads: self.threads.unwrap_or(cores).min(self.connections),
            duration: self.duration,
            warmup: self.warmup,
            rate: self.rate,
            new_conn: self.new_conn,
            timeout: self.timeout,
            watch: self.watch.clone(),
            sample_interval: self.sample_interval,
            timeline: self.timeline,
            command_line,
            labels: self.labels.iter().copied().collect(),
            kill: self
                .kill
                .zip(self.kill_after)
                .map(|(pid, after)| Kill { pid, after }),
            stop: self.stop.map(|pid| Stop {
                pid,
                after: self.stop_after.clone(),
                stop_for: self.stop_for,
            }),
            mix: self.mix.clone(),
            seed: self.seed,
            arrivals: self.arrivals,
            body_bytes: self.body_bytes,
            hold: self.hold.then_some(self.hold_interval),
            processes: self.processes,
            source_ips: self.source_ips.clone().map(|ips| ips.0).unwrap_or_default(),
            child: self.child,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    /// Defaults, humane values, repeatable `--watch`.
    #[test]
    fn parses_flags() {
        let cli = parse(&["--target", "http://127.0.0.1:8080/"]).expect("valid");
        assert_eq!(cli.connections, 50);
        assert_eq!(cli.duration, Duration::from_secs(10));
        assert_eq!(cli.warmup, Duration::from_secs(1));
        assert_eq!(cli.rate, None);
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--duration",
            "500ms",
            "--rate",
            "5k",
            "--watch",
            "1",
            "--watch",
            "2",
            "--threads",
            "3",
            "--connections",
            "2",
        ])
        .expect("valid");
        assert_eq!(cli.duration, Duration::from_millis(500));
        assert_eq!(cli.rate, Some(5000.0));
        assert_eq!(cli.watch, vec![1, 2]);
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--label",
            "mode=proxy",
            "--label",
            "work_us=200",
            "--label",
            "mode=handoff-socket",
            "--kill",
            "42",
            "--kill-after",
            "2s",
        ])
        .expect("valid");
        let config = cli.config(Vec::new());
        assert_eq!(config.labels.mode, Some(runs::labels::Mode::HandoffSocket));
        assert_eq!(config.labels.work_us, Some(200));
        assert_eq!(
            config.kill,
            Some(Kill {
                pid: 42,
                after: Duration::from_secs(2)
            })
        );
        // No more threads than connections.
        assert_eq!(cli.config(Vec::new()).threads, 2);
    }

    /// `--stop` with repeated `--stop-after`s; `--mix` with its seed.
    #[test]
    fn parses_stalls_and_mixes() {
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--stop",
            "42",
            "--stop-after",
            "1s",
            "--stop-after",
            "2s",
            "--mix",
            "/=95",
            "--mix",
            "/?work_us=5000=5",
            "--seed",
            "9",
        ])
        .expect("valid");
        let config = cli.config(Vec::new());
        assert_eq!(
            config.stop,
            Some(Stop {
                pid: 42,
                after: vec![Duration::from_secs(1), Duration::from_secs(2)],
                stop_for: Duration::from_millis(500),
            })
        );
        let paths: Vec<&str> = config.mix.iter().map(|entry| entry.path.as_str()).collect();
        assert_eq!(paths, ["/", "/?work_us=5000"]);
        assert_eq!(config.seed, Some(9));
    }

    /// `--hgrm PATH` parses.
    #[test]
    fn parses_hgrm() {
        let cli =
            parse(&["--target", "http://127.0.0.1:8080/", "--hgrm", "run.hgrm"]).expect("valid");
        assert_eq!(cli.hgrm.as_deref(), Some(std::path::Path::new("run.hgrm")));
    }

    /// `--slo` is repeatable; an expression that does not parse is a usage
    /// error.
    #[test]
    fn parses_repeated_slo_thresholds() {
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--slo",
            "p99<=10ms",
            "--slo",
            "errors=0",
        ])
        .expect("valid");
        assert_eq!(cli.slo.len(), 2);
        for args in [
            &["--target", "http://127.0.0.1:8080/", "--slo", "p99<10"][..],
            &["--target", "http://127.0.0.1:8080/", "--slo", "latency<1ms"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    /// `--arrivals` needs `--rate` and defaults to `uniform`; `--seed`
    /// parses without `--mix` (the run refuses it when nothing draws from
    /// it).
    #[test]
    fn parses_arrivals_and_their_seed() {
        let cli = parse(&["--target", "http://127.0.0.1:8080/", "--rate", "1k"]).expect("valid");
        assert_eq!(cli.config(Vec::new()).arrivals, Arrivals::Uniform);
        assert_eq!(cli.config(Vec::new()).seed, None);
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--rate",
            "1k",
            "--arrivals",
            "poisson",
            "--seed",
            "7",
        ])
        .expect("valid");
        let config = cli.config(Vec::new());
        assert_eq!(config.arrivals, Arrivals::Poisson);
        assert_eq!(config.seed, Some(7));
        for args in [
            &[
                "--target",
                "http://127.0.0.1:8080/",
                "--arrivals",
                "poisson",
            ][..],
            &[
                "--target",
                "http://127.0.0.1:8080/",
                "--rate",
                "1",
                "--arrivals",
                "bursty",
            ],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    /// `--target` is repeatable; the targets keep their order, the first is
    /// `parameters.target`.
    #[test]
    fn parses_repeated_targets() {
        let cli = parse(&[
            "--target",
            "http://127.0.0.1:8081/",
            "--target",
            "http://127.0.0.1:8082/x",
        ])
        .expect("valid");
        let urls: Vec<String> = cli
            .config(Vec::new())
            .targets
            .into_iter()
            .map(|target| target.url)
            .collect();
        assert_eq!(urls, ["http://127.0.0.1:8081/", "http://127.0.0.1:8082/x"]);
        assert!(parse(&["--target", "http://127.0.0.1:8081/", "--target", "x"]).is_err());
    }

    /// `report DIR` still parses (so that the binary can name the renderer's
    /// own command instead); it takes no load flags.
    #[test]
    fn parses_the_report_subcommand() {
        let cli = parse(&["report", "results/x"]).expect("valid");
        assert!(
            matches!(cli.command, Some(Command::Report { dir }) if dir.as_path() == std::path::Path::new("results/x"))
        );
        assert!(parse(&["report"]).is_err());
        assert!(parse(&["--connections", "5", "report", "x"]).is_err());
    }

    /// The labels spell the modes and the accept strategies as `cluster`
    /// does (`Mode::name`, `handoff --accept`), in the same order: one
    /// vocabulary from the flags to the report, checked here because the run
    /// model does not link `cluster`.
    #[test]
    fn labels_spell_modes_and_strategies_as_cluster_does() {
        let modes: Vec<&str> = cluster::Mode::ALL.iter().map(|mode| mode.name()).collect();
        let labels: Vec<&str> = runs::labels::Mode::CLUSTER
            .iter()
            .map(|mode| mode.name())
            .collect();
        assert_eq!(labels, modes);
        let accepts: Vec<String> = <cluster::Accept as clap::ValueEnum>::value_variants()
            .iter()
            .map(|accept| {
                clap::ValueEnum::to_possible_value(accept)
                    .expect("every strategy has a name")
                    .get_name()
                    .to_owned()
            })
            .collect();
        let labels: Vec<&str> = runs::labels::Accept::ALL
            .iter()
            .map(|accept| accept.name())
            .collect();
        assert_eq!(labels, accepts);
    }

    /// Bad values are usage errors.
    #[test]
    fn refuses_bad_values() {
        for args in [
            &["--target", "http://127.0.0.1:8080/", "--duration", "0"][..],
            &["--target", "ftp://127.0.0.1/"],
            &["--target", "http://127.0.0.1:8080/", "--connections", "0"],
            &["--target", "http://127.0.0.1:8080/", "--rate", "0"],
            &["--target", "http://127.0.0.1:8080/", "--label", "novalue"],
            &["--target", "http://127.0.0.1:8080/", "--label", "=x"],
            &["--target", "http://127.0.0.1:8080/", "--label", "note=a=b"],
            &["--target", "http://127.0.0.1:8080/", "--label", "mode=test"],
            &["--target", "http://127.0.0.1:8080/", "--kill", "1"],
            &["--target", "http://127.0.0.1:8080/", "--kill-after", "1s"],
            &["--target", "http://127.0.0.1:8080/", "--stop", "1"],
            &["--target", "http://127.0.0.1:8080/", "--stop-after", "1s"],
            &[
                "--target",
                "http://127.0.0.1:8080/",
                "--stop",
                "1",
                "--stop-after",
                "1s",
                "--stop-for",
                "0",
            ],
            &["--target", "http://127.0.0.1:8080/", "--mix", "/"],
            &[],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }
}
