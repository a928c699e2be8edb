//! `--watch PID`: a thread that samples each watched process and its children
//! from `/proc` ([`cluster::procfs`]) every `--sample-interval`, keeping the time
//! series. Children are found afresh at each sample, so a respawned worker shows
//! up as a new process of the tree. Each sample also reads the accept queue of
//! every listening socket the tree holds, and the namespace's counters of
//! connections a full queue turned away ([`super::queues`]), and what the
//! kernel charged to the tree's memory cgroup when it has one of its own
//! ([`super::memcg`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cluster::procfs::{self, ProcError, Reading};
use runs::Role;

use super::memcg::{self, MemcgReading};
use super::queues::{self, ListenCounters};

/// One sample of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// When it was taken, from the start of the run.
    pub at: Duration,
    /// Open file descriptors.
    pub fds: usize,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User-mode CPU time since the process started.
    pub cpu_user: Duration,
    /// Kernel-mode CPU time since the process started.
    pub cpu_system: Duration,
}

/// The samples of one process (one pid and start time) of a watched tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSeries {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid when first seen.
    pub ppid: u32,
    /// Its command name.
    pub name: String,
    /// Watched process or child.
    pub role: Role,
    /// Its start time in clock ticks, which tells it from a later process that
    /// reuses its pid.
    pub start_ticks: u64,
    /// Its samples, in time order.
    pub samples: Vec<ProcessSample>,
}

/// The time series of one `--watch PID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedTree {
    /// The pid named by `--watch`.
    pub pid: u32,
    /// Every process seen in the tree, the watched one first.
    pub processes: Vec<ProcessSeries>,
    /// When the watched process was found gone, if it exited during the run.
    pub gone_at: Option<Duration>,
    /// A reading that failed for another reason, after which sampling stopped.
    pub error: Option<String>,
    /// The listening sockets the tree holds, by inode, and their queues.
    pub listeners: BTreeMap<u64, ListenerSeries>,
    /// The namespace's `ListenOverflows` and `ListenDrops` at each sample.
    pub counters: Vec<(Duration, ListenCounters)>,
    /// Why the queues could not be read, after which only they stopped.
    pub queue_error: Option<String>,
    /// The watched process's memory cgroup, if it is not the root one
    /// (looked up at the first sample: the harness places the tree before
    /// it starts loadgen).
    pub memcg: Option<PathBuf>,
    /// Its counters at each sample.
    pub memory: Vec<(Duration, MemcgReading)>,
    /// Why the cgroup could not be read, after which only it stopped.
    pub memcg_error: Option<String>,
    /// The tree's pids when its listeners were last looked for.
    listener_pids: BTreeSet<u32>,
    /// The sockets those pids held then, by inode, with their holders.
    holders: BTreeMap<u64, Vec<u32>>,
}

/// One listening socket of a watched tree and its accept queue over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSeries {
    /// Its address.
    pub address: std::net::SocketAddr,
    /// The queue's limit (the backlog, capped by `somaxconn`) when last read.
    pub limit: u32,
    /// The processes of the tree that hold it, ascending.
    pub holders: Vec<u32>,
    /// Connections queued, at each sample that found it listening.
    pub queued: Vec<(Duration, u32)>,
}

impl WatchedTree {
    /// Whether sampling this tree has ended (process gone, or an error).
    fn stopped(&self) -> bool {
        self.gone_at.is_some() || self.error.is_some()
    }

    /// Takes one sample of the tree at `at`.
    fn sample(&mut self, at: Duration) {
        if self.stopped() {
            return;
        }
        match procfs::read_tree(self.pid) {
            Ok(tree) => {
                self.add(&tree.root, Role::Watched, at);
                for child in &tree.children {
                    self.add(child, Role::Child, at);
                }
                let pids = std::iter::once(&tree.root)
                    .chain(&tree.children)
                    .map(|reading| reading.pid)
                    .collect();
                self.sample_queues(pids, at);
                self.sample_memcg(at);
            }
            Err(ProcError::Gone { .. }) => self.gone_at = Some(at),
            Err(err) => self.error = Some(err.to_string()),
        }
    }

    /// Reads the queue of every listener the tree's processes (`pids`) hold,
    /// looking the listeners up again when the processes changed, and the
    /// namespace's overflow counters. A failure stops only these readings.
    fn sample_queues(&mut self, pids: BTreeSet<u32>, at: Duration) {
        if self.queue_error.is_some() {
            return;
        }
        if pids != self.listener_pids {
            let mut holders: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
            for &pid in &pids {
                for inode in queues::socket_inodes(pid) {
                    holders.entry(inode).or_default().push(pid);
                }
            }
            // Sockets of the tree that are not listeners drop out below,
            // when the dump does not name them.
            self.listener_pids = pids;
            self.holders = holders;
        }
        let listening = match queues::listeners() {
            Ok(listening) => listening,
            Err(err) => {
                self.queue_error = Some(format!("sock_diag: {err}"));
                return;
            }
        };
        for (inode, holders) in &self.holders {
            let Some(listener) = listening.get(inode) else {
                continue;
            };
            let series = self
                .listeners
                .entry(*inode)
                .or_insert_with(|| ListenerSeries {
                    address: listener.address,
                    limit: listener.limit,
                    holders: Vec::new(),
                    queued: Vec::new(),
                });
            series.limit = listener.limit;
            for pid in holders {
                if let Err(at) = series.holders.binary_search(pid) {
                    series.holders.insert(at, *pid);
                }
            }
            series.queued.push((at, listener.queued));
        }
        match queues::listen_counters(self.pid) {
            Ok(counters) => self.counters.push((at, counters)),
            Err(err) => self.queue_error = Some(format!("/proc/{}/net/netstat: {err}", self.pid)),
        }
    }

    /// Reads the tree's memory cgroup, if it has one; a failure stops only
    /// these readings.
    fn sample_memcg(&mut self, at: Duration) {
        if self.memcg_error.is_some() {
            return;
        }
        let Some(dir) = &self.memcg else {
            return;
        };
        match memcg::read(dir) {
            Ok(reading) => self.memory.push((at, reading)),
            Err(err) => self.memcg_error = Some(format!("{}: {err}", dir.display())),
        }
    }

    /// Appends `reading` to its process's series, starting a new series for a
    /// process not seen before.
    fn add(&mut self, reading: &Reading, role: Role, at: Duration) {
        let sample = ProcessSample {
            at,
            fds: reading.fds,
            rss_bytes: reading.rss_bytes,
            cpu_user: reading.cpu_user,
            cpu_system: reading.cpu_system,
        };
        let known = self
            .processes
            .iter_mut()
            .find(|series| series.pid == reading.pid && series.start_ticks == reading.start_ticks);
        match known {
            Some(series) => series.samples.push(sample),
            None => self.processes.push(ProcessSeries {
                pid: reading.pid,
                ppid: reading.ppid,
                name: reading.name.clone(),
                role,
                start_ticks: reading.start_ticks,
                samples: vec![sample],
            }),
        }
    }
}

/// The sampling thread of a run.
pub struct Watcher {
    /// Dropping or sending on it stops the thread, which takes a last sample.
    stop: Sender<()>,
    /// The thread, which returns the series.
    thread: JoinHandle<Vec<WatchedTree>>,
}

impl Watcher {
    /// Takes a first sample of every tree now (so a pid that does not exist or
    /// cannot be read is an error before the run), then samples every `interval`,
    /// on a schedule counted from `origin`, until [`Watcher::stop`].
    pub fn start(pids: &[u32], interval: Duration, origin: Instant) -> Result<Watcher, String> {
        let mut trees = Vec::new();
        for &pid in pids {
            let mut tree = WatchedTree {
                pid,
                processes: Vec::new(),
                gone_at: None,
                error: None,
                listeners: BTreeMap::new(),
                counters: Vec::new(),
                queue_error: None,
                memcg: None,
                memory: Vec::new(),
                memcg_error: None,
                listener_pids: BTreeSet::new(),
                holders: BTreeMap::new(),
            };
            match memcg::of_pid(pid) {
                Ok(dir) => tree.memcg = dir,
                // Gone or unreadable: the first sample below says which.
                Err(err) => tree.memcg_error = Some(format!("/proc/{pid}/cgroup: {err}")),
            }
            tree.sample(origin.elapsed());
            if tree.gone_at.is_some() {
                return Err(format!("--watch {pid}: no such process"));
            }
            if let Some(err) = &tree.error {
                return Err(format!("--watch {pid}: {err}"));
            }
            trees.push(tree);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("loadgen-watch".to_owned())
            .spawn(move || {
                let mut tick = 1u32;
                loop {
                    let next = origin + interval * tick;
                    let wait = next.saturating_duration_since(Instant::now());
                    let last = match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    let at = origin.elapsed();
                    for tree in &mut trees {
                        tree.sample(at);
                    }
                    if last {
                        return trees;
                    }
                    // After a stall (a loaded machine), skip the missed ticks
                    // rather than sampling several times at once.
                    tick = (at.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
                }
            })
            .map_err(|err| format!("start the --watch thread: {err}"))?;
        Ok(Watcher { stop, thread })
    }

    /// Takes a last sample and returns every tree's series.
    pub fn stop(self) -> Vec<WatchedTree> {
        // The thread may have ended already only by panicking, which join reports.
        let _ = self.stop.send(());
        self.thread
            .join()
            .expect("the --watch thread does not panic: it only reads /proc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Watching this process: a first sample at once, more every interval, and
    /// the thread stops when asked.
    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        let origin = Instant::now();
        let watcher = Watcher::start(&[me], Duration::from_millis(10), origin).expect("start");
        // Let a few intervals pass (not a synchronisation: any count from two up passes).
        thread::sleep(Duration::from_millis(50));
        let trees = watcher.stop();
        assert_eq!(trees.len(), 1);
        let mine = &trees[0].processes[0];
        assert_eq!((mine.pid, mine.role), (me, Role::Watched));
        assert!(mine.samples.len() >= 2, "{} samples", mine.samples.len());
        assert!(mine.samples.windows(2).all(|pair| pair[0].at <= pair[1].at));
        assert!(
            mine.samples
                .iter()
                .all(|sample| sample.fds > 0 && sample.rss_bytes > 0)
        );
    }

    /// A pid that does not exist is refused before the run.
    #[test]
    fn refuses_a_missing_pid() {
        let err = Watcher::start(&[u32::MAX], Duration::from_millis(10), Instant::now())
            .err()
            .expect("refused");
        assert!(err.contains("no such process"), "{err}");
    }
}
