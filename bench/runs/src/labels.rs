//! What a run was: the `--label KEY=VALUE`s that `scripts/compare.sh` gives
//! every loadgen run and that the renderer (`report DIR`) groups the runs
//! by. This module is the contract between the two: compare.sh passes these
//! keys with these values and no others, and loadgen refuses any other (a
//! misspelt key or mode is a usage error at the run, not a row missing from
//! the report).
//!
//! | key | values | compare.sh gives it to |
//! |---|---|---|
//! | `section` | `cost`, `throughput`, `sweep`, `copies`, `fdbill`, `fdlimit`, `fairness`, `faults`, `upgrade` | every run |
//! | `mode` | `proxy`, `handoff-socket`, `handoff-listener`, `handoff-reuseport`, `direct`, `ceiling` (old runs only), `nginx`, `node-rr`, `node-none` | every run |
//! | `load` | `keepalive`, `newconn`, `openloop` (old runs only) | cost, throughput, sweep, fairness, faults |
//! | `round` | 1, 2, ...: the round of the interleaved matrix (of the shuffled order in which every step of cost and sweep is repeated) | cost, throughput, sweep, fairness |
//! | `rate` | the offered rate, requests/s, as `--rate` | cost, sweep |
//! | `connections` | the connections held, as `--connections` | fdbill, fdlimit |
//! | `max_fds` | the master's fd limit: its `--max-fds` (fdlimit), or the RLIMIT_NOFILE soft limit it and its workers inherited from the harness (fdbill) | fdlimit, fdbill |
//! | `work_us` | the busy work per request (`?work_us=`), µs | fairness |
//! | `workers` | workers in the cluster (a worker that answered nothing counts as 0) | every run |
//! | `accept` | `drain`, `single`, `exclusive`, `blocking`: `handoff --pass listener --accept` | fairness (handoff-listener) |
//! | `stall_ms` | how long `--stop` stalled a worker each time, ms | fairness (the stalled-worker runs) |
//! | `strategy` | `takeover`, `restart`, `overlap`, `overlap-migrate` | upgrade (by `suite upgrade`) |
//! | `backlog` | the master's `--backlog` (a small one, so that the accept queue overflows) | fairness (the small-backlog run) |
//! | `relay` | `copy`, `splice`: `proxy --relay` | copies (proxy) |
//! | `answer_bytes` | the answer's body asked (`?bytes=N`), bytes | copies (the downloads) |
//! | `body_bytes` | each request's body (`--body-bytes N`, a `POST`), bytes | copies (the uploads) |
//!
//! In the JSON, `labels` stays a map of strings (`"round": "1"`), so reports
//! written before the labels were typed read as they are.
//!
//! The modes and accept strategies are spelt as `cluster` spells them (its
//! `Mode::name`, `handoff --accept`): one vocabulary from the flags to the
//! report. This crate does not link `cluster` (a server, with its runtime);
//! loadgen, which links both, checks that the two lists agree
//! (`labels_spell_modes_and_strategies_as_cluster_does`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a label's enum: its variants in the order every table and legend
/// lists them (the derived `Ord`), each with its name on the command line and
/// in the JSON.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in table order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The name on the command line and in the JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        /// As its name, the string `--label` takes.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        /// From its name; another string is an error naming the values.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.name() == text)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|value| value.name()).collect();
                        format!("{text:?} is not {} ({})", $what, names.join(", "))
                    })
            }
        }
    };
}

label_enum! {
    /// The section of REPORT.md a run belongs to.
    Section, "a section" {
        /// 0, the headline: open-loop runs at the same absolute `--rate` for
        /// every mode and peer, each step repeated in shuffled rounds, the
        /// server tree watched: CPU per request and latency at equal load.
        Cost = "cost",
        /// 1 (and 5, from the same runs): requests/s and latency per mode and load.
        Throughput = "throughput",
        /// 1b: latency against offered load, an open-loop sweep of rates.
        Sweep = "sweep",
        /// 1c: the CPU that moving bytes costs: answers and uploads of
        /// several sizes at equal offered rates, the server tree watched.
        Copies = "copies",
        /// 2: the master's fds with N connections held open.
        FdBill = "fdbill",
        /// 3: the master under `--max-fds`, connections rising.
        FdLimit = "fdlimit",
        /// 4: the spread of the requests over the workers.
        Fairness = "fairness",
        /// 6: a worker killed mid-run.
        Faults = "faults",
        /// 8: masters replaced under load (`suite upgrade`).
        Upgrade = "upgrade",
    }
}

label_enum! {
    /// How a master was replaced by a new one (section 8, `suite upgrade`).
    Strategy, "a strategy" {
        /// The new master takes the listening sockets over SCM_RIGHTS
        /// (`--takeover`).
        Takeover = "takeover",
        /// SIGTERM the old master, wait for its exit, start the new one.
        Restart = "restart",
        /// `handoff-reuseport`: a second master binds its own `SO_REUSEPORT`
        /// listeners on the port, then the old one gets SIGTERM; the kernel's
        /// `net.ipv4.tcp_migrate_req` as the host has it.
        Overlap = "overlap",
        /// The same in a network namespace with `net.ipv4.tcp_migrate_req=1`:
        /// a closing listener's queue moves to the others (Linux ≥ 5.14).
        OverlapMigrate = "overlap-migrate",
    }
}

label_enum! {
    /// The server a run loaded (label `mode`): one of the suite's four modes,
    /// the `direct` baseline (the old `ceiling`), or a peer measured beside
    /// them. Ordered as every table and legend lists them.
    Mode, "a mode" {
        /// The master relays every connection to a worker's own port.
        Proxy = "proxy",
        /// The master hands every accepted connection to a worker
        /// (`handoff --pass socket`).
        HandoffSocket = "handoff-socket",
        /// The workers accept on the one listening socket the master handed
        /// them (`handoff --pass listener`).
        HandoffListener = "handoff-listener",
        /// Each worker accepts on its own `SO_REUSEPORT` listener
        /// (`handoff --pass reuseport`).
        HandoffReuseport = "handoff-reuseport",
        /// The baseline. The clients connect straight to every worker's own
        /// port (one `--target` per worker, connections dealt round robin):
        /// no master in the path, no sharing — what a perfect port-sharing
        /// mechanism would cost.
        Direct = "direct",
        /// One worker's own port, no master in between. Runs written before
        /// `direct` replaced it still read; compare.sh no longer makes it.
        Ceiling = "ceiling",
        /// Peer: nginx's stream proxy in front of the proxy cluster's workers.
        Nginx = "nginx",
        /// Peer: Node.js cluster, round-robin scheduling.
        NodeRr = "node-rr",
        /// Peer: Node.js cluster, SCHED_NONE (the workers accept).
        NodeNone = "node-none",
    }
}

impl Mode {
    /// The suite's own modes, as `cluster::Mode::ALL` lists them.
    pub const CLUSTER: [Mode; 4] = [
        Mode::Proxy,
        Mode::HandoffSocket,
        Mode::HandoffListener,
        Mode::HandoffReuseport,
    ];

    /// The peers: other software doing the same job (`compare.sh --peers`).
    pub const PEERS: [Mode; 3] = [Mode::Nginx, Mode::NodeRr, Mode::NodeNone];

    /// Whether this is a peer, not one of the suite's modes.
    pub fn is_peer(self) -> bool {
        Mode::PEERS.contains(&self)
    }

    /// Whether the master hands sockets over (the three `handoff-*` modes).
    pub fn is_handoff(self) -> bool {
        matches!(
            self,
            Mode::HandoffSocket | Mode::HandoffListener | Mode::HandoffReuseport
        )
    }

    /// Whether the workers accept on one shared listening socket, so that
    /// the kernel decides how the connections split over them:
    /// `handoff-listener` and Node.js's SCHED_NONE.
    pub fn shares_listener(self) -> bool {
        matches!(self, Mode::HandoffListener | Mode::NodeNone)
    }

    /// Whether the master relays every byte, holding two fds per
    /// connection: `proxy`, and nginx in front of its workers.
    pub fn relays(self) -> bool {
        matches!(self, Mode::Proxy | Mode::Nginx)
    }

    /// Whether this is the baseline every mode is compared with: `direct`, or
    /// `ceiling` in old runs.
    pub fn is_baseline(self) -> bool {
        matches!(self, Mode::Direct | Mode::Ceiling)
    }

    /// Whether the first `--watch`'s process (the master) carries the
    /// traffic: not for the baseline, whose clients go straight to the
    /// workers (the master watched is only their parent).
    pub fn master_in_path(self) -> bool {
        !self.is_baseline()
    }
}

label_enum! {
    /// How `proxy`'s master moves a relay's bytes (label `relay`), named as
    /// `proxy --relay` names it.
    Relay, "a relay" {
        /// Read into the master's memory and written out: two copies per byte.
        Copy = "copy",
        /// splice(2) through a pipe, inside the kernel.
        Splice = "splice",
    }
}

label_enum! {
    /// The load a run put on the server.
    Load, "a load" {
        /// Keep-alive connections in a closed loop.
        KeepAlive = "keepalive",
        /// A new connection for every request (`--new-conn`).
        NewConn = "newconn",
        /// Keep-alive connections in an open loop at a fixed `--rate`: the
        /// single-rate runs of §1 written before the sweep replaced them
        /// (the sweep labels its open-loop runs `keepalive` or `newconn`
        /// with a `rate`).
        OpenLoop = "openloop",
    }
}

label_enum! {
    /// How the workers of `handoff --pass listener` accept (label `accept`),
    /// named as `handoff --accept` names it.
    Accept, "an accept strategy" {
        /// Every waiting worker's event loop is woken; the first takes the queue.
        Drain = "drain",
        /// The same, one connection per wake-up.
        Single = "single",
        /// `EPOLLEXCLUSIVE`: one waiting thread woken per connection.
        Exclusive = "exclusive",
        /// A thread blocked in accept(2): the kernel's FIFO queue.
        Blocking = "blocking",
    }
}

/// A run's labels, each `None` if not given (see the module docs for who gets
/// which).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Labels {
    /// The section of REPORT.md.
    pub section: Option<Section>,
    /// The server loaded.
    pub mode: Option<Mode>,
    /// The load.
    pub load: Option<Load>,
    /// The round of the interleaved matrix (throughput, cost, sweep,
    /// fairness), from 1: runs of one round ran adjacent in time, so two
    /// modes compare within it.
    pub round: Option<u32>,
    /// Cost and sweep: the offered (open-loop) rate of the step, requests/s.
    pub rate: Option<u64>,
    /// The connections held, the N of an fd bill or fd limit step.
    pub connections: Option<u64>,
    /// The master's fd limit: its `--max-fds` (the fd limit's runs), or the
    /// RLIMIT_NOFILE it inherited (the fd bill's).
    pub max_fds: Option<u64>,
    /// The busy work per request, µs.
    pub work_us: Option<u64>,
    /// Workers in the cluster: loadgen only sees the pids that answered, and
    /// fairness counts the others as zero.
    pub workers: Option<u64>,
    /// `handoff --pass listener --accept`: how its workers accept.
    pub accept: Option<Accept>,
    /// How long `--stop` stalled a worker each time, ms.
    pub stall_ms: Option<u64>,
    /// How the master was replaced (section 8).
    pub strategy: Option<Strategy>,
    /// The master's `--backlog`, when the run set one (section 4's
    /// small-backlog run, where the accept queue overflows).
    pub backlog: Option<u64>,
    /// `proxy --relay`: how its master moved the bytes.
    pub relay: Option<Relay>,
    /// The answer's body asked with `?bytes=N`, bytes.
    pub answer_bytes: Option<u64>,
    /// Each request's body (`--body-bytes N`), bytes.
    pub body_bytes: Option<u64>,
}

/// One `--label KEY=VALUE`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `section=`.
    Section(Section),
    /// `mode=`.
    Mode(Mode),
    /// `load=`.
    Load(Load),
    /// `round=`.
    Round(u32),
    /// `rate=`.
    Rate(u64),
    /// `connections=`.
    Connections(u64),
    /// `max_fds=`.
    MaxFds(u64),
    /// `work_us=`.
    WorkUs(u64),
    /// `workers=`.
    Workers(u64),
    /// `accept=`.
    Accept(Accept),
    /// `stall_ms=`.
    StallMs(u64),
    /// `strategy=`.
    Strategy(Strategy),
    /// `backlog=`.
    Backlog(u64),
    /// `relay=`.
    Relay(Relay),
    /// `answer_bytes=`.
    AnswerBytes(u64),
    /// `body_bytes=`.
    BodyBytes(u64),
}

/// The keys, as [`Label`] parses them.
const KEYS: [&str; 16] = [
    "section",
    "mode",
    "load",
    "round",
    "rate",
    "connections",
    "max_fds",
    "work_us",
    "workers",
    "accept",
    "stall_ms",
    "strategy",
    "backlog",
    "relay",
    "answer_bytes",
    "body_bytes",
];

impl Label {
    /// Parses `value` as the label `key`.
    pub fn parse(key: &str, value: &str) -> Result<Label, String> {
        let number = |value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}={value}: not a whole number"))
        };
        Ok(match key {
            "section" => Label::Section(value.parse()?),
            "mode" => Label::Mode(value.parse()?),
            "load" => Label::Load(value.parse()?),
            "round" => Label::Round(
                value
                    .parse()
                    .map_err(|_| format!("round={value}: not a whole number"))?,
            ),
            "rate" => Label::Rate(number(value)?),
            "connections" => Label::Connections(number(value)?),
            "max_fds" => Label::MaxFds(number(value)?),
            "work_us" => Label::WorkUs(number(value)?),
            "workers" => Label::Workers(number(value)?),
            "accept" => Label::Accept(value.parse()?),
            "stall_ms" => Label::StallMs(number(value)?),
            "strategy" => Label::Strategy(value.parse()?),
            "backlog" => Label::Backlog(number(value)?),
            "relay" => Label::Relay(value.parse()?),
            "answer_bytes" => Label::AnswerBytes(number(value)?),
            "body_bytes" => Label::BodyBytes(number(value)?),
            _ => {
                return Err(format!("{key:?} is not a label key ({})", KEYS.join(", ")));
            }
        })
    }
}

impl FromStr for Label {
    type Err = String;

    /// `KEY=VALUE`, as `--label` takes it.
    fn from_str(text: &str) -> Result<Label, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
        Label::parse(key, value)
    }
}

impl Labels {
    /// Sets one label; a key given twice keeps its last value.
    pub fn set(&mut self, label: Label) {
        match label {
            Label::Section(section) => self.section = Some(section),
            Label::Mode(mode) => self.mode = Some(mode),
            Label::Load(load) => self.load = Some(load),
            Label::Round(round) => self.round = Some(round),
            Label::Rate(rate) => self.rate = Some(rate),
            Label::Connections(n) => self.connections = Some(n),
            Label::MaxFds(n) => self.max_fds = Some(n),
            Label::WorkUs(n) => self.work_us = Some(n),
            Label::Workers(n) => self.workers = Some(n),
            Label::Accept(accept) => self.accept = Some(accept),
            Label::StallMs(n) => self.stall_ms = Some(n),
            Label::Strategy(strategy) => self.strategy = Some(strategy),
            Label::Backlog(n) => self.backlog = Some(n),
            Label::Relay(relay) => self.relay = Some(relay),
            Label::AnswerBytes(n) => self.answer_bytes = Some(n),
            Label::BodyBytes(n) => self.body_bytes = Some(n),
        }
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<I: IntoIterator<Item = Label>>(labels: I) -> Labels {
        let mut all = Labels::default();
        for label in labels {
            all.set(label);
        }
        all
    }
}

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = String;

    fn try_from(map: BTreeMap<String, String>) -> Result<Labels, String> {
        map.iter()
            .map(|(key, value)| Label::parse(key, value))
            .collect()
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> BTreeMap<String, String> {
        let texts = [
            labels.section.map(|section| section.to_string()),
            labels.mode.map(|mode| mode.to_string()),
            labels.load.map(|load| load.to_string()),
            labels.round.map(|round| round.to_string()),
            labels.rate.map(|rate| rate.to_string()),
            labels.connections.map(|n| n.to_string()),
            labels.max_fds.map(|n| n.to_string()),
            labels.work_us.map(|n| n.to_string()),
            labels.workers.map(|n| n.to_string()),
            labels.accept.map(|accept| accept.to_string()),
            labels.stall_ms.map(|n| n.to_string()),
            labels.strategy.map(|strategy| strategy.to_string()),
            labels.backlog.map(|n| n.to_string()),
            labels.relay.map(|relay| relay.to_string()),
            labels.answer_bytes.map(|n| n.to_string()),
            labels.body_bytes.map(|n| n.to_string()),
        ];
        KEYS.iter()
            .zip(texts)
            .filter_map(|(key, text)| Some(((*key).to_owned(), text?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key reads and writes back the same string map, in table order.
    #[test]
    fn round_trips_through_the_json_map() {
        let map: BTreeMap<String, String> = [
            ("section", "fdlimit"),
            ("mode", "handoff-socket"),
            ("load", "keepalive"),
            ("round", "2"),
            ("rate", "12000"),
            ("connections", "150"),
            ("max_fds", "256"),
            ("work_us", "200"),
            ("workers", "2"),
            ("accept", "exclusive"),
            ("stall_ms", "500"),
            ("strategy", "overlap-migrate"),
            ("backlog", "8"),
            ("relay", "splice"),
            ("answer_bytes", "1048576"),
            ("body_bytes", "65536"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let labels = Labels::try_from(map.clone()).expect("valid labels");
        assert_eq!(labels.mode, Some(Mode::HandoffSocket));
        assert_eq!(labels.connections, Some(150));
        assert_eq!(labels.rate, Some(12_000));
        assert_eq!(BTreeMap::from(labels), map);
        let sorted = {
            let mut all = Mode::ALL.to_vec();
            all.sort();
            all
        };
        assert_eq!(sorted, Mode::ALL, "ALL is in table order");
        assert!(Load::KeepAlive < Load::NewConn && Load::NewConn < Load::OpenLoop);
    }

    /// A misspelt key, an unknown mode or a word for a number is refused, and
    /// the message says what would do.
    #[test]
    fn refuses_what_the_contract_does_not_name() {
        let refused = |text: &str| text.parse::<Label>().expect_err(text);
        assert!(refused("mdoe=proxy").contains("section, mode, load"));
        assert!(refused("mode=haproxy").contains("proxy, handoff-socket"));
        assert!(refused("round=one").contains("not a whole number"));
        assert!(refused("rate=5k").contains("not a whole number"));
        assert_eq!(
            "section=sweep".parse::<Label>(),
            Ok(Label::Section(Section::Sweep))
        );
        assert!(refused("novalue").contains("KEY=VALUE"));
        assert_eq!(
            "mode=node-rr".parse::<Label>(),
            Ok(Label::Mode(Mode::NodeRr))
        );
    }

    /// The cost section reads as the first of the report, and the modes
    /// whose workers share one listener are the two the kernel splits.
    #[test]
    fn cost_section_and_shared_listeners() {
        assert_eq!(
            "section=cost".parse::<Label>(),
            Ok(Label::Section(Section::Cost))
        );
        assert_eq!(Section::ALL[0], Section::Cost);
        let shared: Vec<Mode> = Mode::ALL
            .iter()
            .copied()
            .filter(|mode| mode.shares_listener())
            .collect();
        assert_eq!(shared, [Mode::HandoffListener, Mode::NodeNone]);
    }

    /// `direct` is the baseline, and `ceiling` of old runs still reads as one.
    #[test]
    fn direct_is_the_baseline_and_ceiling_still_reads() {
        assert_eq!(
            "mode=direct".parse::<Label>(),
            Ok(Label::Mode(Mode::Direct))
        );
        assert_eq!(
            "mode=ceiling".parse::<Label>(),
            Ok(Label::Mode(Mode::Ceiling))
        );
        assert!(Mode::Direct.is_baseline() && !Mode::Direct.master_in_path());
        assert!(Mode::Proxy.master_in_path() && Mode::Nginx.master_in_path());
    }
}
