//! `scripts/compare.sh --quick`, the suite's main job in its short form, run to
//! its end, so that the script and the report cannot rot: every section of
//! REPORT.md is written, with its charts and the record of how it was made.
//! It runs pinned (`--loadgen-cpus 0 --server-cpus 1`) where the machine has
//! two CPUs: the same loads, so it costs no time. It measures the peers
//! installed (Node.js cluster on CI, nginx where its stream module is), as
//! the comparison does by default, so that how each ran is checked too.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use runs::labels::Mode;

/// The quick run takes about 170 s after the build on 2 cores; the build of
/// the release binaries may come first.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The processes a run's `--watch`es saw: a master and 2 workers at least
/// (nginx is a watch of its own, in front of the cluster's).
fn watched(report: &serde_json::Value) -> usize {
    report["watch"].as_array().map_or(0, |watches| {
        watches
            .iter()
            .filter_map(|watch| watch["processes"].as_array())
            .map(Vec::len)
            .sum()
    })
}

/// The quick comparison writes REPORT.md with every section, §0 (cost at
/// equal load) with its tables rather than the sentence of a folder without
/// cost runs, and the sweep (§1b), the SVG charts (the strip chart of every
/// round, p99 and the cost per request against the offered rate among
/// them), README.md with the machine, the affinity, the seed, the sysctls,
/// §0's rates and the sweep's, commands.log, and one JSON per run, the
/// baseline `direct` among them, loading every worker's own port; §0 ran
/// every mode at the same rates in the same rounds, the sweep every mode at
/// the same ≥ 3 rates. answers.json holds one answer per server started
/// (each mode and peer), each the same as `direct`'s (issue 22, item 8),
/// and peers.json, when a peer ran, says how each ran and names its config
/// kept in the folder.
#[test]
fn quick_comparison_writes_every_section() {
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = std::env::temp_dir().join(format!("compare-test-{}", std::process::id()));
    let pinned = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() >= 2);
    let mut child = Command::new("bash")
        .arg(workspace.join("scripts/compare.sh"))
        .args(["--quick", "--workers", "2", "--seed", "42"])
        .args(if pinned {
            &["--loadgen-cpus", "0", "--server-cpus", "1"][..]
        } else {
            &[][..]
        })
        .arg("--out")
        .arg(&out)
        .current_dir(workspace)
        // The harness this test was built with, not a release build of it.
        .env("SUITE_BIN", env!("CARGO_BIN_EXE_suite"))
        // Its own process group, so that a run past the deadline can be
        // stopped with every cluster it started.
        .process_group(0)
        .spawn()
        .expect("start scripts/compare.sh");
    let started = Instant::now();
    // The peers the comparison measures by default: those installed.
    let (nginx, node) = suite::peers::installed();
    let mut peers = Vec::new();
    if nginx {
        peers.push(Mode::Nginx);
    }
    if node {
        peers.extend([Mode::NodeRr, Mode::NodeNone]);
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            // The process group this test created: compare.sh and every
            // cluster it started.
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(out.join("REPORT.md"));
    let readme = std::fs::read_to_string(out.join("README.md"));
    let runs: Vec<String> = std::fs::read_dir(out.join("runs")).map_or(Vec::new(), |runs| {
        runs.filter_map(|run| Some(run.ok()?.file_name().to_string_lossy().into_owned()))
            .collect()
    });
    let direct = std::fs::read_to_string(out.join("runs/throughput-direct-keepalive-r1.json"));
    // Section 8: (file name, upgrades made, tcp_migrate_req, in a netns of
    // its own, has a timeline) of every upgrade run.
    let upgrades: Vec<(String, usize, Option<u64>, bool, bool)> =
        std::fs::read_dir(out.join("runs"))
            .map(|runs| {
                runs.filter_map(|run| {
                    let path = run.ok()?.path();
                    let name = path.file_name()?.to_str()?.to_owned();
                    if !name.starts_with("upgrade-") {
                        return None;
                    }
                    let report: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
                    let block = &report["upgrades"];
                    Some((
                        name,
                        block["events"].as_array().map_or(0, Vec::len),
                        block["tcp_migrate_req"].as_u64(),
                        block["netns"].as_bool() == Some(true),
                        report["timeline"]["intervals"].is_array(),
                    ))
                })
                .collect()
            })
            .unwrap_or_default();
    let log = out.join("commands.log").is_file();
    let answers = runs::folder::read_answers(&out);
    let peers_ran = runs::folder::read_peers(&out);
    // The configs peers.json names, as kept in the folder.
    let kept: Vec<(String, bool)> = peers_ran
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|file| {
            file.peers
                .iter()
                .filter_map(|peer| peer.config.clone())
                .map(|config| (config.clone(), out.join(&config).is_file()))
                .collect()
        })
        .unwrap_or_default();
    // (mode, connections held, the master's most fds, the kernel memory
    // charged to the server tree's own cgroup) of every fd-bill run.
    let fd_bill: Vec<(String, f64, f64, Option<u64>)> = std::fs::read_dir(out.join("runs"))
        .map(|runs| {
            runs.filter_map(|run| {
                let path = run.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                if !name.starts_with("fdbill-") {
                    return None;
                }
                let report: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
                let mode = report["labels"]["mode"].as_str()?.to_owned();
                let connections = report["hold"]["held"].as_f64()?;
                let fds = report["watch"][0]["processes"][0]["summary"]["fds_max"].as_f64()?;
                let kernel = report["watch"][0]["memory_cgroup"]["kernel_max_bytes"].as_u64();
                Some((mode, connections, fds, kernel))
            })
            .collect()
        })
        .unwrap_or_default();
    // (mode, load, offered rate, around the knee) of every sweep run.
    let sweep: Vec<(String, String, u64, bool)> = std::fs::read_dir(out.join("runs"))
        .map(|runs| {
            runs.filter_map(|run| {
                let path = run.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                if !name.starts_with("sweep-") {
                    return None;
                }
                let report: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
                let labels = &report["labels"];
                assert_eq!(labels["section"], "sweep", "{}", path.display());
                assert_eq!(
                    report["requests"]["asked_per_s"].as_f64(),
                    labels["rate"].as_str()?.parse::<f64>().ok(),
                    "{}: the rate label is the asked rate",
                    path.display()
                );
                Some((
                    labels["mode"].as_str()?.to_owned(),
                    labels["load"].as_str()?.to_owned(),
                    labels["rate"].as_str()?.parse().ok()?,
                    name.contains("-knee-"),
                ))
            })
            .collect()
        })
        .unwrap_or_default();
    // §0 (issue 22): (mode, load, offered rate, round) of every cost run,
    // each an open loop at its `rate` label with the server tree watched.
    let cost: Vec<(String, String, u64, u32)> = std::fs::read_dir(out.join("runs"))
        .map(|runs| {
            runs.filter_map(|run| {
                let path = run.ok()?.path();
                if !path.file_name()?.to_str()?.starts_with("cost-") {
                    return None;
                }
                let report: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
                let labels = &report["labels"];
                assert_eq!(labels["section"], "cost", "{}", path.display());
                assert_eq!(
                    report["parameters"]["rate_per_s"].as_f64(),
                    labels["rate"].as_str()?.parse::<f64>().ok(),
                    "{}: the rate label is the offered rate",
                    path.display()
                );
                assert!(
                    watched(&report) >= 3,
                    "{}: the server tree was not watched: {}",
                    path.display(),
                    report["watch"]
                );
                Some((
                    labels["mode"].as_str()?.to_owned(),
                    labels["load"].as_str()?.to_owned(),
                    labels["rate"].as_str()?.parse().ok()?,
                    labels["round"].as_str()?.parse().ok()?,
                ))
            })
            .collect()
        })
        .unwrap_or_default();
    // §1c (issue 25): (server, answer bytes, the answers' bytes read) of
    // every copies run, each asking its size in its target's query, the
    // server tree watched.
    let copies: Vec<(String, u64, u64)> = std::fs::read_dir(out.join("runs"))
        .map(|runs| {
            runs.filter_map(|run| {
                let path = run.ok()?.path();
                if !path.file_name()?.to_str()?.starts_with("copies-") {
                    return None;
                }
                let report: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
                let labels = &report["labels"];
                assert_eq!(labels["section"], "copies", "{}", path.display());
                let bytes: u64 = labels["answer_bytes"].as_str()?.parse().ok()?;
                assert!(
                    report["parameters"]["target"]
                        .as_str()?
                        .ends_with(&format!("/?bytes={bytes}")),
                    "{}: the target asks another size",
                    path.display()
                );
                assert!(
                    watched(&report) >= 3,
                    "{}: the server tree was not watched",
                    path.display()
                );
                let server = match labels["relay"].as_str() {
                    Some(relay) => format!("{} --relay {relay}", labels["mode"].as_str()?),
                    None => labels["mode"].as_str()?.to_owned(),
                };
                let ok = report["requests"]["ok"].as_u64()?;
                let read = report["bytes"]["received_bytes"].as_u64()?;
                assert!(
                    ok > 0 && read >= ok * bytes,
                    "{}: {ok} answers in {read} bytes",
                    path.display()
                );
                Some((server, bytes, read))
            })
            .collect()
        })
        .unwrap_or_default();
    // §4 (issue 13): (accept label, workers label, stalls, stall_waits) of
    // every fairness run.
    let fairness: Vec<serde_json::Value> = std::fs::read_dir(out.join("runs"))
        .map(|runs| {
            runs.filter_map(|run| {
                let path = run.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                if !name.starts_with("fairness-") {
                    return None;
                }
                serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()
            })
            .collect()
        })
        .unwrap_or_default();
    let charts: Vec<bool> = [
        "cost-vs-rate.svg",
        "latency-vs-rate.svg",
        "copies.svg",
        "rounds.svg",
        "fds.svg",
        "memory.svg",
        "fairness.svg",
        "stall.svg",
        "queues.svg",
        "master-fds-over-time.svg",
        "cost-per-request.svg",
        "upgrade-failures.svg",
        "upgrade-timeline.svg",
    ]
    .iter()
    .map(|chart| out.join(chart).is_file())
    .collect();
    let _ = std::fs::remove_dir_all(&out);

    let status = status.expect("compare.sh --quick ran past its deadline");
    assert!(status.success(), "compare.sh --quick failed: {status}");
    let report = report.expect("REPORT.md written");
    for section in [
        "## 0. Cost at equal load",
        "## 1. Throughput and latency",
        "## 1b. Latency against offered load",
        "## 1c. The cost of the bytes",
        "## 2. The bill at scale",
        "## 3. The fd limit",
        "## 4. Fairness",
        "## 5. Master cost",
        "## 6. Faults",
        "## 7. Peers",
        "## 8. Upgrades",
    ] {
        assert!(report.contains(section), "REPORT.md lacks {section:?}");
    }
    // §0: its tables and chart, each mode against `direct` paired by round,
    // and its line at a glance; not the sentence of a folder without cost
    // runs. Every mode at the same rates, in the same 2 rounds.
    let zero = &report[report.find("## 0. Cost at equal load").expect("§0")..];
    let zero = &zero[..zero.find("\n## 1. ").expect("§1 follows §0")];
    assert!(
        !zero.contains("Cost at equal load was not measured"),
        "§0 fell back to its sentence:\n{zero}"
    );
    for text in [
        "](cost-vs-rate.svg)",
        "| mode | offered/s | tree µs/request | master µs/request |",
        "against the baseline `direct`'s at the same rate",
        "| `proxy` | ",
        "Each figure comes from 2 rounds",
    ] {
        assert!(zero.contains(text), "§0 lacks {text:?}:\n{zero}");
    }
    assert!(
        report.contains("**Server CPU per request at equal load, "),
        "the glance lacks §0's line:\n{report}"
    );
    let cost_cells = |mode: &str| {
        let mut cells: Vec<(String, u64, u32)> = cost
            .iter()
            .filter(|(m, _, _, _)| m == mode)
            .map(|(_, load, rate, round)| (load.clone(), *rate, *round))
            .collect();
        cells.sort();
        cells
    };
    // 5 modes and the peers × 2 loads × 2 rounds, the steps the dry run
    // plans (tests/compare_flags.rs counts them there).
    assert_eq!(cost.len(), 4 * (5 + peers.len()), "§0's runs: {cost:?}");
    let direct_cells = cost_cells("direct");
    let loads: Vec<&str> = direct_cells.iter().map(|cell| cell.0.as_str()).collect();
    assert!(
        loads.contains(&"keepalive") && loads.contains(&"newconn"),
        "§0's direct runs: {direct_cells:?}"
    );
    assert!(
        direct_cells.iter().any(|cell| cell.2 == 2),
        "§0 ran one round: {direct_cells:?}"
    );
    for mode in [
        "proxy",
        "handoff-socket",
        "handoff-listener",
        "handoff-reuseport",
    ]
    .into_iter()
    .chain(peers.iter().map(|peer| peer.name()))
    {
        assert_eq!(cost_cells(mode), direct_cells, "§0: {mode} ran other steps");
    }
    // §1c: every mode, `proxy` with each relay and nginx when installed,
    // asked the smallest and the largest answer in one round; its tables,
    // each server paired with `handoff-socket`, the relays' table, the chart.
    let mut servers: Vec<String> = copies.iter().map(|(server, ..)| server.clone()).collect();
    servers.sort();
    servers.dedup();
    let mut expected = vec![
        "handoff-listener",
        "handoff-reuseport",
        "handoff-socket",
        "proxy --relay copy",
        "proxy --relay splice",
    ];
    if nginx {
        expected.push("nginx");
        expected.sort();
    }
    assert_eq!(servers, expected, "§1c's servers: {copies:?}");
    assert_eq!(copies.len(), 2 * expected.len(), "§1c's runs: {copies:?}");
    assert!(
        copies.iter().any(|(_, bytes, _)| *bytes == 1 << 20),
        "{copies:?}"
    );
    let copies_text = &report[report.find("## 1c. The cost of the bytes").expect("§1c")..];
    let copies_text = &copies_text[..copies_text.find("\n## 2. ").expect("§2 follows §1c")];
    for text in [
        "](copies.svg)",
        "| server | size | offered/s | MiB/s moved | tree µs/request | tree CPU ms/MiB | master's share |",
        "against `handoff-socket`'s at the same size (answers)",
        "| `proxy --relay splice` | ",
        "| `proxy --relay splice` ÷ `proxy --relay copy` | ",
        "One run per figure, no rounds",
    ] {
        assert!(
            copies_text.contains(text),
            "§1c lacks {text:?}:\n{copies_text}"
        );
    }
    // Issue 22, item 8: one answer per server started, each the same as
    // direct's but for what a peer is known to add.
    let answers = answers
        .expect("answers.json reads")
        .expect("answers.json written");
    let mut names: Vec<Mode> = answers.answers.iter().map(|answer| answer.name).collect();
    names.sort();
    let mut started = vec![
        Mode::Direct,
        Mode::Proxy,
        Mode::HandoffSocket,
        Mode::HandoffListener,
        Mode::HandoffReuseport,
    ];
    started.extend(&peers);
    started.sort();
    assert_eq!(names, started, "answers.json: {answers:?}");
    let baseline = answers
        .answers
        .iter()
        .find(|answer| answer.name == Mode::Direct)
        .expect("direct's answer");
    assert_eq!(baseline.status_line, "HTTP/1.1 200 OK", "{baseline:?}");
    assert!(baseline.headers.x_worker_pid.is_some(), "{baseline:?}");
    assert_eq!(
        Some(baseline.body_len),
        baseline.headers.content_length,
        "{baseline:?}"
    );
    for answer in &answers.answers {
        // Node.js's http module says `Connection: keep-alive` on every
        // HTTP/1.1 answer it keeps open, hyper nothing: the same answer.
        let differences = answer.differences(baseline);
        assert!(differences.is_empty(), "{answer:?}: {differences:?}");
    }
    // peers.json: each peer that ran, its own processes and the workers
    // that served, its settings, and its config kept in the folder.
    let peers_ran = peers_ran.expect("peers.json reads");
    if peers.is_empty() {
        assert_eq!(peers_ran, None, "peers.json without peers");
    } else {
        let peers_ran = peers_ran.expect("peers.json written");
        let mut names: Vec<Mode> = peers_ran.peers.iter().map(|peer| peer.name).collect();
        names.sort();
        assert_eq!(names, peers, "peers.json: {peers_ran:?}");
        for peer in &peers_ran.peers {
            assert_eq!((peer.processes, peer.workers), (1, 2), "{peer:?}");
            assert!(!peer.settings.is_empty(), "{peer:?}");
            assert_ne!(peer.version, "unknown", "{peer:?}");
        }
        if let Some(node) = peers_ran.peers.iter().find(|p| p.name == Mode::NodeRr) {
            assert!(node.version.starts_with('v'), "{node:?}");
            assert_eq!(node.config.as_deref(), Some("peers/node-cluster.js"));
            assert!(
                node.settings
                    .contains(&"cluster.schedulingPolicy = cluster.SCHED_RR".to_owned()),
                "{node:?}"
            );
        }
        if let Some(nginx) = peers_ran.peers.iter().find(|p| p.name == Mode::Nginx) {
            assert_eq!(nginx.config.as_deref(), Some("peers/nginx.conf"));
            assert!(
                nginx.settings.contains(&"master_process off".to_owned()),
                "{nginx:?}"
            );
        }
        assert!(
            !kept.is_empty() && kept.iter().all(|(_, kept)| *kept),
            "configs kept: {kept:?}"
        );
        let seven = &report[report.find("## 7. Peers").expect("§7")..];
        let seven = &seven[..seven.find("\n## 8. ").expect("§8 follows §7")];
        for text in [
            "How each peer ran (`peers.json`):",
            "| peer | version | its own processes | workers that served | settings | config |",
            "**Same answer.**",
        ] {
            assert!(seven.contains(text), "§7 lacks {text:?}:\n{seven}");
        }
    }
    // §4: its three parts, each listener strategy, 4 workers whatever
    // --workers says, and two stalls in every stall run, both signals sent.
    for part in [
        "### Who gets the connections",
        "### A stalled worker",
        "### Where connections wait",
        "### Uneven work",
        "`handoff-listener --accept exclusive`",
    ] {
        assert!(report.contains(part), "REPORT.md §4 lacks {part:?}");
    }
    for accept in ["drain", "single", "exclusive", "blocking"] {
        assert!(
            fairness.iter().any(|run| run["labels"]["accept"] == accept),
            "no fairness run of --accept {accept}"
        );
    }
    assert!(fairness.iter().all(|run| run["labels"]["workers"] == "4"));
    let stall_runs: Vec<&serde_json::Value> = fairness
        .iter()
        .filter(|run| run["labels"]["stall_ms"].is_string())
        .collect();
    assert!(stall_runs.len() >= 6, "{} stall runs", stall_runs.len());
    for run in &stall_runs {
        // Issue 24: the master is watched, so every listener's accept
        // queue was sampled.
        let listeners = run["watch"][0]["listeners"]
            .as_array()
            .expect("watch[0].listeners");
        assert!(
            !listeners.is_empty()
                && listeners
                    .iter()
                    .all(|l| !l["samples"].as_array().expect("samples").is_empty()),
            "{}",
            run["labels"]
        );
    }
    // Issue 24: the small-backlog run, in a namespace of its own where one
    // can be made: the stalled worker's full queue overflowed, and a client
    // whose SYN was dropped connected on its retransmission (1 s).
    let backlog: Vec<&serde_json::Value> = fairness
        .iter()
        .filter(|run| run["labels"]["backlog"] == "8")
        .collect();
    if launch::netns::in_new_netns(&[], || ()).is_ok() {
        let [run] = backlog.as_slice() else {
            panic!("{} small-backlog runs", backlog.len());
        };
        let overflows = run["watch"][0]["listen_overflows"].as_u64();
        assert!(overflows.is_some_and(|n| n > 0), "overflows {overflows:?}");
        let connect_max = run["latency"]["connect"]["max_us"].as_u64();
        assert!(
            connect_max.is_some_and(|us| us >= 900_000),
            "connect max {connect_max:?} µs"
        );
        assert!(
            report.contains("overflows"),
            "REPORT.md §4 lacks the small-backlog table"
        );
    } else {
        assert!(
            backlog.is_empty(),
            "a small-backlog run without a namespace"
        );
    }
    for run in stall_runs {
        let stalls = run["stalls"].as_array().expect("stalls");
        assert_eq!(stalls.len(), 2, "{stalls:?}");
        assert!(
            stalls.iter().all(|stall| stall["error"].is_null()),
            "{stalls:?}"
        );
        assert!(
            run["stall_waits"]["at_least_tenth"].is_u64(),
            "{}",
            run["labels"]
        );
    }
    assert!(
        report.contains("fds per connection"),
        "REPORT.md does not state the fds per connection:\n{report}"
    );
    // The fd bill, from the runs themselves (a band, not REPORT.md's rounded
    // "2.0": one run per step on a loaded machine may sample a step a little
    // short): the proxy master holds about 2 fds per connection, a handoff
    // master about none.
    let slope = |mode: &str| {
        let mut points: Vec<(f64, f64)> = fd_bill
            .iter()
            .filter(|(m, _, _, _)| m == mode)
            .map(|(_, n, fds, _)| (*n, *fds))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (first, last) = (points.first().copied(), points.last().copied());
        match (first, last) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
            _ => panic!("no fd-bill runs of {mode} at two connection counts: {fd_bill:?}"),
        }
    };
    let proxy = slope("proxy");
    assert!(
        (1.5..=2.5).contains(&proxy),
        "the proxy master held {proxy:.2} fds per connection, not about 2: {fd_bill:?}"
    );
    for mode in ["handoff-socket", "handoff-listener", "handoff-reuseport"] {
        let held = slope(mode);
        assert!(
            held < 0.25,
            "the {mode} master held {held:.2} fds per connection, not about 0: {fd_bill:?}"
        );
    }
    // §2 at scale (issue 23): every mode held all 5,000 connections of the
    // quick run's last step; as root, the kernel memory of each server's
    // sockets was read from its own cgroup, at least 2 KiB a connection.
    for mode in [
        "proxy",
        "handoff-socket",
        "handoff-listener",
        "handoff-reuseport",
    ] {
        assert!(
            fd_bill
                .iter()
                .any(|(m, held, _, _)| m == mode && *held == 5_000.0),
            "{mode} did not hold 5,000 connections: {fd_bill:?}"
        );
    }
    if launch::cgroup::MemoryCgroup::create(&format!("compare-test-{}", std::process::id())).is_ok()
    {
        for (mode, held, _, kernel) in &fd_bill {
            let kernel = kernel.unwrap_or_else(|| panic!("{mode}: no kernel memory read"));
            assert!(
                kernel as f64 >= held * 2_048.0,
                "{mode}: {kernel} bytes of kernel memory for {held} connections"
            );
        }
    }
    assert!(
        report.contains("**Connections held under a limit of"),
        "no glance line of the bill at scale:\n{report}"
    );
    // The sweep: every mode at the same rates on the ladder (3 per load,
    // 4× apart), then at the middle of its knee, between two of them, once
    // with uniform and once with Poisson arrivals;
    // its section with the capacity at each objective and the chart.
    for load in ["keepalive", "newconn"] {
        let rates_of = |mode: &str, knee: bool| {
            let mut rates: Vec<u64> = sweep
                .iter()
                .filter(|(m, l, _, k)| m == mode && l == load && *k == knee)
                .map(|(_, _, rate, _)| *rate)
                .collect();
            rates.sort_unstable();
            rates
        };
        let direct = rates_of("direct", false);
        assert_eq!(direct.len(), 3, "{load}: sweep rates {direct:?}");
        for mode in [
            "direct",
            "proxy",
            "handoff-socket",
            "handoff-listener",
            "handoff-reuseport",
        ] {
            assert_eq!(
                rates_of(mode, false),
                direct,
                "{mode} {load}: not the same rates"
            );
            // The middle, with uniform and with Poisson arrivals.
            // The middle lies strictly between two adjacent rates of the
            // ladder, whichever two the mode's runs made its knee.
            let knee = rates_of(mode, true);
            assert!(
                knee.len() == 2
                    && knee[0] == knee[1]
                    && direct
                        .windows(2)
                        .any(|pair| pair[0] < knee[0] && knee[0] < pair[1]),
                "{mode} {load}: the knee's middle {knee:?} is not between two rates of the ladder {direct:?}"
            );
        }
    }
    for text in [
        "](latency-vs-rate.svg)",
        "](rounds.svg)",
        "The highest offered rate held at each objective:",
        "**Capacity at p99 ≤ 10 ms**",
        "**Keep-alive**, every step:",
        "**Poisson arrivals near each knee**",
        "**New connection per request**, every step:",
    ] {
        assert!(report.contains(text), "REPORT.md lacks {text:?}:\n{report}");
    }
    let readme = readme.expect("README.md written");
    assert!(
        readme.contains("- sweep (§1b): a ladder of rates 4× apart")
            && readme.contains("  keepalive: ")
            && readme.contains("  knee of `direct`: keepalive "),
        "README.md does not record the sweep's rates:\n{readme}"
    );
    assert!(
        readme.contains("- cost at equal load (§0): keep-alive at "),
        "README.md does not record §0's rates:\n{readme}"
    );
    for fact in [
        "git revision",
        "rustc",
        "CPU",
        "kernel",
        "ulimit -n",
        "seed 42",
        "net.core.somaxconn = ",
        "net.ipv4.tcp_max_syn_backlog = ",
        "net.ipv4.tcp_tw_reuse = ",
        "net.ipv4.ip_local_port_range = ",
        "fs.file-max = ",
        "commands.log",
        "[answers.json](answers.json)",
    ] {
        assert!(readme.contains(fact), "README.md lacks {fact}:\n{readme}");
    }
    // The first lines say whether loadgen shared the server's CPUs, and the
    // affinity read from /proc is the one asked for.
    let first = readme.lines().take(3).collect::<Vec<_>>().join("\n");
    if pinned {
        assert!(
            first.contains("**CPUs pinned**: loadgen on CPUs 0, the server tree on CPUs 1"),
            "{first}"
        );
        assert!(
            readme.contains("loadgen pinned to CPUs 0;") && readme.contains(" on CPUs 1\n"),
            "{readme}"
        );
        assert!(
            !readme.contains(" on CPUs 0\n"),
            "a server process on CPU 0:\n{readme}"
        );
    } else {
        assert!(first.contains("**CPUs shared**"), "{first}");
    }
    assert!(log, "commands.log not written");
    assert!(
        charts.iter().all(|&written| written),
        "charts written: {charts:?}"
    );
    assert!(runs.len() > 40, "only {} runs recorded", runs.len());
    // Section 8: every mode by takeover and restart, handoff-reuseport also
    // by overlap, and (as root, who may create a network namespace) by
    // overlap-migrate with tcp_migrate_req=1; one upgrade each under --quick,
    // each with its timeline.
    let mut expected: Vec<String> = [
        "proxy",
        "handoff-socket",
        "handoff-listener",
        "handoff-reuseport",
    ]
    .iter()
    .flat_map(|mode| {
        ["takeover", "restart"].map(|strategy| format!("upgrade-{mode}-{strategy}.json"))
    })
    .collect();
    expected.push("upgrade-handoff-reuseport-overlap.json".to_owned());
    // /proc/self belongs to this process's effective uid.
    let root = std::fs::metadata("/proc/self").is_ok_and(|proc| proc.uid() == 0);
    if root {
        expected.push("upgrade-handoff-reuseport-overlap-migrate.json".to_owned());
    }
    for name in &expected {
        let run = upgrades.iter().find(|run| &run.0 == name);
        assert!(
            run.is_some_and(|run| run.1 == 1 && run.4),
            "{name}: not one upgrade with a timeline: {upgrades:?}"
        );
    }
    if let Some(migrate) = upgrades
        .iter()
        .find(|run| run.0.ends_with("-overlap-migrate.json"))
    {
        assert_eq!((migrate.2, migrate.3), (Some(1), true), "{migrate:?}");
    }
    assert!(
        !runs.iter().any(|run| run.contains("ceiling")),
        "a ceiling run: {runs:?}"
    );
    // The baseline loads both workers' own ports, and loadgen saw the
    // affinity it was given (the JSON fields of issue 11's interface).
    let direct: serde_json::Value =
        serde_json::from_str(&direct.expect("the direct baseline was run")).expect("JSON");
    assert_eq!(direct["labels"]["mode"], "direct");
    assert_eq!(
        direct["parameters"]["targets"].as_array().map(Vec::len),
        Some(2),
        "{}",
        direct["parameters"]
    );
    if pinned {
        assert_eq!(direct["affinity"]["loadgen"], serde_json::json!([0]));
        let watched = direct["affinity"]["watched"].as_array().expect("watched");
        assert!(!watched.is_empty());
        for process in watched {
            assert_eq!(process["cpus"], serde_json::json!([1]), "{process}");
        }
    }
}
