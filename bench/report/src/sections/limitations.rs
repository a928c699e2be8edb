//! "Limitations": what the setup cannot show, each line derived from what
//! the runs recorded: shared or pinned CPUs (their `affinity`), loopback or
//! other hosts (their targets), the workers (their label), the rounds per
//! section, and the machine.

use runs::Report;
use runs::labels::Section;

use super::{
    Figures, copies, cost, fairness, faults, fd_bill, fd_limit, master_cost, sweep, throughput,
};
use crate::text::{DISTURBED_MARK, and_list, one_of, section_link, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "Limitations";

/// How the runs were set up, as far as they recorded it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Setup {
    /// Runs whose `affinity` shows loadgen allowed on a CPU some watched
    /// process was allowed on too.
    pub shared: usize,
    /// Runs whose `affinity` shows loadgen's CPUs apart from every watched
    /// process's.
    pub pinned: usize,
    /// Runs without `affinity` (or without a watched process in it).
    pub unrecorded: usize,
    /// loadgen's CPU lists over the runs that recorded them, each once.
    pub loadgen_cpus: Vec<Vec<usize>>,
    /// The watched processes' CPUs (their union per run), each list once.
    pub server_cpus: Vec<Vec<usize>>,
    /// The host of every target of every run, each once, sorted.
    pub hosts: Vec<String>,
    /// The `workers` labels, each once, fewest first.
    pub workers: Vec<u64>,
    /// Runs that recorded the machine's CPU (`machine_usage`).
    pub machine_usage: usize,
    /// Runs read.
    pub runs: usize,
}

impl Setup {
    /// Reads the setup of `runs`.
    pub fn of(runs: &[Report]) -> Setup {
        let mut setup = Setup {
            runs: runs.len(),
            ..Setup::default()
        };
        for run in runs {
            setup.machine_usage += usize::from(run.machine_usage.is_some());
            match &run.affinity {
                Some(affinity) if !affinity.watched.is_empty() => {
                    let mut server: Vec<usize> = affinity
                        .watched
                        .iter()
                        .flat_map(|watched| watched.cpus.iter().copied())
                        .collect();
                    server.sort_unstable();
                    server.dedup();
                    if server.iter().any(|cpu| affinity.loadgen.contains(cpu)) {
                        setup.shared += 1;
                    } else {
                        setup.pinned += 1;
                    }
                    if !setup.loadgen_cpus.contains(&affinity.loadgen) {
                        setup.loadgen_cpus.push(affinity.loadgen.clone());
                    }
                    if !setup.server_cpus.contains(&server) {
                        setup.server_cpus.push(server);
                    }
                }
                _ => setup.unrecorded += 1,
            }
            let targets = if run.parameters.targets.is_empty() {
                std::slice::from_ref(&run.parameters.target)
            } else {
                run.parameters.targets.as_slice()
            };
            for target in targets {
                let host = host_of(target).to_owned();
                if !setup.hosts.contains(&host) {
                    setup.hosts.push(host);
                }
            }
            if let Some(workers) = run.labels.workers {
                if !setup.workers.contains(&workers) {
                    setup.workers.push(workers);
                }
            }
        }
        setup.hosts.sort();
        setup.workers.sort_unstable();
        setup
    }

    /// Whether every target was on this machine's loopback.
    pub fn loopback_only(&self) -> bool {
        !self.hosts.is_empty() && self.hosts.iter().all(|host| is_loopback(host))
    }
}

/// The host of a target URL: `127.0.0.1` of `http://127.0.0.1:80/x`, `::1`
/// of `http://[::1]:80/`.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    authority
        .split_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether `host` names this machine's loopback: 127.0.0.0/8, `::1`,
/// `localhost`.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `0-1` or `0, 2-3`: a CPU list as /proc writes it.
fn cpu_list(cpus: &[usize]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &cpu in cpus {
        match ranges.last_mut() {
            Some((_, high)) if *high + 1 == cpu => *high = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    let texts: Vec<String> = ranges
        .iter()
        .map(|&(low, high)| {
            if low == high {
                low.to_string()
            } else {
                format!("{low}-{high}")
            }
        })
        .collect();
    texts.join(", ")
}

/// `0-1` or `0-1 or 2-3`: the CPU lists the runs recorded.
fn cpu_lists(lists: &[Vec<usize>]) -> String {
    let texts: Vec<String> = lists.iter().map(|list| cpu_list(list)).collect();
    match texts.split_last() {
        None => "–".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The last section: what the runs do not show, from what they recorded.
/// The last section: what the runs do not show, from what they recorded.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    let setup = &figures.setup;
    let cores = {
        let mut cores: Vec<usize> = figures.header.machines.iter().map(|m| m.cores).collect();
        cores.sort_unstable();
        cores.dedup();
        one_of(&cores)
    };
    let recorded = setup.shared + setup.pinned;
    let mut cpus = if recorded == 0 {
        format!(
            "**CPUs:** the runs did not record which CPUs loadgen and the server could use (no \
             `affinity` in their JSON); the machine has {cores} cores, and nothing in the runs \
             says loadgen and the server did not share them. On shared cores requests/s at \
             saturation measures loadgen's CPU per request as much as the server's."
        )
    } else if setup.pinned == 0 {
        format!(
            "**CPUs: shared.** In every run that recorded it, loadgen (CPUs {}) and the server \
             (CPUs {}) could run on the same CPUs of the machine's {cores}: requests/s at \
             saturation measures loadgen's CPU per request as much as the server's.",
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    } else if setup.shared == 0 {
        format!(
            "**CPUs: pinned apart.** In every run that recorded it, loadgen ran on CPUs {} and \
             the server on CPUs {} of the machine's {cores}, none shared; they still share \
             memory, caches and the kernel.",
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    } else {
        format!(
            "**CPUs: mixed.** loadgen and the server shared CPUs in {} runs and were pinned \
             apart in {} (loadgen on CPUs {}, the server on {}, of the machine's {cores}): the \
             figures of the shared runs measure loadgen's CPU too.",
            setup.shared,
            setup.pinned,
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    };
    if recorded > 0 && setup.unrecorded > 0 {
        cpus.push_str(&format!(
            " {} runs did not record their CPUs.",
            setup.unrecorded
        ));
    }
    w!(out, "- {cpus}");
    let hosts: Vec<String> = setup.hosts.iter().map(|h| format!("`{h}`")).collect();
    if setup.loopback_only() {
        w!(
            out,
            "- **Loopback only:** every target was on this machine ({}): no network card, no \
             wire, no interrupts from one; a client on another host adds them.",
            and_list(&hosts)
        );
    } else if !hosts.is_empty() {
        w!(
            out,
            "- **Targets:** {}; the runs on loopback had no network card or wire in the path.",
            and_list(&hosts)
        );
    }
    let workers: Vec<usize> = setup.workers.iter().map(|&w| w as usize).collect();
    if workers.is_empty() {
        w!(
            out,
            "- **Workers:** the runs do not say how many workers the server had (no `workers` \
             label)."
        );
    } else {
        w!(
            out,
            "- **Workers:** {} per server (the runs' `workers` label); nothing here shows how \
             the modes scale with more.",
            one_of(&workers)
        );
    }
    let sections = [
        (Section::Cost, cost::HEADING),
        (Section::Throughput, throughput::HEADING),
        (Section::Sweep, sweep::HEADING),
        (Section::Copies, copies::HEADING),
        (Section::FdBill, fd_bill::HEADING),
        (Section::FdLimit, fd_limit::HEADING),
        (Section::Fairness, fairness::HEADING),
        (Section::Faults, faults::HEADING),
    ];
    let rounds: Vec<String> = sections
        .iter()
        .filter_map(|&(section, heading)| {
            let (low, high) = figures.rounds.get(&section)?;
            let n = if low == high {
                low.to_string()
            } else {
                format!("{low}–{high}")
            };
            let also = if section == Section::Throughput {
                format!(" and {}", section_link(master_cost::HEADING))
            } else {
                String::new()
            };
            Some(format!("{n} in {}{also}", section_link(heading)))
        })
        .collect();
    if !rounds.is_empty() {
        w!(
            out,
            "- **Rounds per figure:** {}. A figure from one run is an order of magnitude, \
             not a ranking; with few rounds, two modes differ only where the ratio of their \
             runs is on one side of 1 in every round paired.",
            rounds.join(", ")
        );
    }
    if setup.machine_usage == 0 {
        w!(
            out,
            "- **The machine:** a virtual machine or a machine shared with other work adds \
             noise no figure here measures (stolen CPU time, neighbours, frequency changes): a \
             caveat, not a measurement."
        );
    } else {
        w!(
            out,
            "- **The machine:** {} of {} runs recorded the machine's CPU over their window \
             (`/proc/stat`): a round in which steal or other processes took more than the \
             report's thresholds is marked{} where its figures stand; what they do not record \
             (neighbours' cache and memory traffic, frequency changes) is a caveat, not a \
             measurement.",
            setup.machine_usage,
            setup.runs,
            DISTURBED_MARK
        );
    }
    w!(out);
}

#[cfg(test)]
mod tests {
    use runs::{Affinity, WatchedAffinity};

    use super::*;
    use crate::fixtures::{newconn, run};

    /// The host of a target URL, and whether it is loopback.
    #[test]
    fn hosts_of_targets() {
        assert_eq!(host_of("http://127.0.0.1:8080/?work_us=0"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:8080/"), "::1");
        assert_eq!(host_of("http://localhost/"), "localhost");
        assert_eq!(host_of("http://10.0.0.5"), "10.0.0.5");
        assert!(is_loopback("127.0.0.2") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.5") && !is_loopback("example.com"));
    }

    /// The Limitations section reads the CPUs from each run's affinity:
    /// shared, pinned apart, or not recorded (with the machine's cores).
    #[test]
    fn limitations_say_shared_or_pinned_from_affinity() {
        let with = |loadgen: Vec<usize>, server: Vec<usize>| {
            let mut report = newconn("proxy", 1.0, 1.0);
            report.affinity = Some(Affinity {
                loadgen,
                watched: vec![WatchedAffinity {
                    pid: 1,
                    cpus: server,
                }],
            });
            report
        };
        let limitations = |runs: &[Report]| {
            let text = Figures::of(runs).markdown();
            let start = text.find("## Limitations").expect("a Limitations section");
            assert!(
                !text[start..].contains("\n## "),
                "Limitations is the last section"
            );
            text[start..].to_owned()
        };
        let shared = limitations(&[with(vec![0, 1], vec![0, 1])]);
        assert!(shared.contains("**CPUs: shared.**"), "{shared}");
        assert!(shared.contains("loadgen (CPUs 0-1) and the server (CPUs 0-1)"));
        let pinned = limitations(&[with(vec![0], vec![1])]);
        assert!(pinned.contains("**CPUs: pinned apart.**"), "{pinned}");
        assert!(
            pinned.contains("loadgen ran on CPUs 0 and the server on CPUs 1 of the machine's 2")
        );
        assert!(!pinned.contains("CPUs: shared"), "{pinned}");
        let mixed = limitations(&[with(vec![0], vec![1]), with(vec![0, 1], vec![1])]);
        assert!(mixed.contains("**CPUs: mixed.**"), "{mixed}");
        let unknown = limitations(&[newconn("proxy", 1.0, 1.0)]);
        assert!(unknown.contains("did not record which CPUs"), "{unknown}");
        assert!(unknown.contains("the machine has 2 cores"), "{unknown}");
        // Loopback from the targets; the workers from their label.
        assert!(unknown.contains("**Loopback only:**") && unknown.contains("`127.0.0.1`"));
        let mut remote = run(
            &[("section", "fdbill"), ("mode", "proxy"), ("workers", "2")],
            1.0,
            1,
        );
        remote.parameters.targets = vec![
            "http://[::1]:8080/".to_owned(),
            "http://10.0.0.5:8080/".to_owned(),
        ];
        let remote = limitations(&[remote]);
        assert!(
            remote.contains("**Targets:** `10.0.0.5` and `::1`"),
            "{remote}"
        );
        assert!(remote.contains("**Workers:** 2 per server"), "{remote}");
        assert!(remote.contains("a caveat, not a measurement"));
    }
}
