//! §1c, the cost of the bytes: every mode, `proxy` once per `--relay`, and
//! nginx's stream proxy as a peer, asked for answers of several sizes
//! (`?bytes=N`) and sent uploads (`--body-bytes N`), keep-alive in an open
//! loop at the same offered rate for every server at a size, each load
//! repeated in shuffled rounds with the server tree watched. Per size and
//! server: the whole tree's CPU per request and per MiB moved, the
//! master's share of it, whether the load was held; then each server
//! against `handoff-socket` paired by round, and the two relays against
//! each other and against nginx. Its chart: `copies.svg`.
//!
//! `handoff-socket` is the reference: once it has handed a keep-alive
//! connection over, its master is out of the path, so its tree's cost of
//! a byte is the worker's own (writing it to the client's socket), which
//! every server pays. What a relay costs beyond it is its master's: a
//! second socket per connection and, with `--relay copy`, every byte read
//! into its memory and written out again.

use std::fmt;

use runs::Report;
use runs::format::{count_f64, rate};
use runs::labels::{Mode, Relay, Section};

use super::Figures;
use super::cost::{offered, ratio_cell};
use super::master_cost::{cpu_micros, run_cost};
use crate::charts::copies::CopiesChart;
use crate::charts::{Chart, boxed};
use crate::stats::{
    Disturbance, Failures, Paired, PerRound, Spread, by_round, disturbed_rounds, group, per_round,
};
use crate::text::{
    Marked, and_list, disturbed_mark, disturbed_note, failures, image, rounds, teach, w,
};

/// The heading, as links to it are written.
pub const HEADING: &str = "1c. The cost of the bytes";

/// The share of `--relay copy`'s extra CPU per MiB (over `handoff-socket`)
/// that `--relay splice`'s may be, at the largest answer, for splice to be
/// said to save what it is for: half (issue 25's goal).
pub const SPLICE_EXTRA_SHARE: f64 = 0.5;

/// Bytes in a MiB, the unit of the cost per byte.
const MIB: f64 = 1024.0 * 1024.0;

/// A server of §1c: a mode or peer and, for `proxy`, its `--relay`. Ordered
/// as the tables list them: by mode, `copy` before `splice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Server {
    /// The mode or peer.
    pub mode: Mode,
    /// `proxy --relay` (the `relay` label); `None` for the others.
    pub relay: Option<Relay>,
}

impl Server {
    /// The reference every server is paired with.
    pub const REFERENCE: Server = Server {
        mode: Mode::HandoffSocket,
        relay: None,
    };

    /// `proxy` with `relay`.
    pub fn proxy(relay: Relay) -> Server {
        Server {
            mode: Mode::Proxy,
            relay: Some(relay),
        }
    }

    /// nginx's stream proxy, the peer.
    pub const NGINX: Server = Server {
        mode: Mode::Nginx,
        relay: None,
    };
}

/// `proxy --relay splice`, `handoff-socket`.
impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.relay {
            Some(relay) => write!(f, "{} --relay {relay}", self.mode),
            None => write!(f, "{}", self.mode),
        }
    }
}

/// Which way the sized bodies went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Way {
    /// The answers (`?bytes=N`): the server sends them.
    Answer,
    /// The uploads (`--body-bytes N`, a `POST`): the server receives them.
    Upload,
}

impl Way {
    /// How a table names the way.
    fn title(self) -> &'static str {
        match self {
            Way::Answer => "Answers of N bytes (`?bytes=N`)",
            Way::Upload => "Uploads of N bytes (`POST`, `--body-bytes N`)",
        }
    }

    /// `answers`, `uploads`.
    fn plural(self) -> &'static str {
        match self {
            Way::Answer => "answers",
            Way::Upload => "uploads",
        }
    }
}

/// `64 B`, `4 KiB`, `1 MiB`, `1.5 KiB`.
pub fn size_name(bytes: u64) -> String {
    let trimmed = |value: f64| {
        let text = format!("{value:.1}");
        text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
    };
    if bytes >= 1 << 20 {
        format!("{} MiB", trimmed(bytes as f64 / MIB))
    } else if bytes >= 1 << 10 {
        format!("{} KiB", trimmed(bytes as f64 / 1024.0))
    } else {
        format!("{bytes} B")
    }
}

/// One run's cost of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct RunBytes {
    /// The whole tree's CPU per successful request, µs.
    tree_us: Option<f64>,
    /// The whole tree's CPU per MiB moved (written and read by loadgen,
    /// heads included), ms.
    tree_ms_per_mib: Option<f64>,
    /// The master's share of the tree's CPU, 0 to 1.
    master_share: Option<f64>,
    /// MiB moved per second of the window, both ways.
    mib_per_s: Option<f64>,
}

/// The cost of `run`'s bytes (see [`RunBytes`]).
fn run_bytes(run: &Report) -> RunBytes {
    let cost = run_cost(run);
    let moved = run
        .bytes
        .map(|bytes| (bytes.sent_bytes + bytes.received_bytes) as f64);
    let tree_ms_per_mib = match (cost.tree_us, moved) {
        (Some(tree_us), Some(moved)) if moved > 0.0 => {
            Some(tree_us * run.requests.ok as f64 / 1000.0 / (moved / MIB))
        }
        _ => None,
    };
    RunBytes {
        tree_us: cost.tree_us,
        tree_ms_per_mib,
        master_share: match (cost.master_us, cost.tree_us) {
            (Some(master), Some(tree)) if tree > 0.0 => Some(master / tree),
            _ => None,
        },
        mib_per_s: run
            .bytes
            .map(|bytes| (bytes.sent_bytes_per_s + bytes.received_bytes_per_s) / MIB),
    }
}

/// One server at one size and way, over its rounds.
#[derive(Debug, Clone)]
pub struct CopiesStep {
    /// The server.
    pub server: Server,
    /// Answers or uploads.
    pub way: Way,
    /// The size of each answer or upload asked, bytes.
    pub bytes: u64,
    /// The offered rate, requests/s.
    pub offered_per_s: f64,
    /// Runs (rounds) behind the step.
    pub rounds: usize,
    /// Rounds held ([`Report::held`]).
    pub held_rounds: usize,
    /// The whole tree's µs per request.
    pub tree_us: Option<Spread>,
    /// The whole tree's ms per MiB moved.
    pub tree_ms_per_mib: Option<Spread>,
    /// The master's share of the tree's CPU.
    pub master_share: Option<Spread>,
    /// MiB moved per second, both ways.
    pub mib_per_s: Option<Spread>,
    /// The tree's ms per MiB of each round, to pair.
    pub per_mib_per_round: PerRound,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// The disturbed rounds, and what disturbed them.
    pub disturbed: Vec<(Option<u32>, Disturbance)>,
}

impl CopiesStep {
    /// Held in most of its rounds.
    pub fn held(&self) -> bool {
        2 * self.held_rounds > self.rounds
    }
}

/// §1c's figures.
#[derive(Debug, Clone, Default)]
pub struct Copies {
    /// One step per way, size and server, in that order.
    pub steps: Vec<CopiesStep>,
}

/// The way and size of a §1c run, from its labels.
fn way_bytes(run: &Report) -> Option<(Way, u64)> {
    match (run.labels.answer_bytes, run.labels.body_bytes) {
        (Some(bytes), None) => Some((Way::Answer, bytes)),
        (None, Some(bytes)) => Some((Way::Upload, bytes)),
        _ => None,
    }
}

impl Copies {
    /// The figures of the copies runs.
    pub fn of(runs: &[&Report]) -> Copies {
        let key = |run: &Report| {
            let (way, bytes) = way_bytes(run)?;
            let server = Server {
                mode: run.labels.mode?,
                relay: run.labels.relay,
            };
            Some((way, bytes, server, offered(run)?))
        };
        let steps = group(runs, key)
            .into_iter()
            .map(|((way, bytes, server, offered_per_s), runs)| {
                let runs = by_round(&runs);
                let offered_per_s = offered_per_s as f64;
                let figures: Vec<RunBytes> = runs.iter().map(|run| run_bytes(run)).collect();
                let spread = |figure: fn(&RunBytes) -> Option<f64>| {
                    Spread::of(figures.iter().filter_map(figure))
                };
                CopiesStep {
                    server,
                    way,
                    bytes,
                    offered_per_s,
                    rounds: runs.len(),
                    held_rounds: runs.iter().filter(|run| run.held(offered_per_s)).count(),
                    tree_us: spread(|run| run.tree_us),
                    tree_ms_per_mib: spread(|run| run.tree_ms_per_mib),
                    master_share: spread(|run| run.master_share),
                    mib_per_s: spread(|run| run.mib_per_s),
                    per_mib_per_round: per_round(&runs, |run| run_bytes(run).tree_ms_per_mib),
                    failures: Failures::of(&runs),
                    disturbed: disturbed_rounds(&runs),
                }
            })
            .collect();
        Copies { steps }
    }

    /// The ways measured, answers first.
    pub fn ways(&self) -> Vec<Way> {
        let mut ways: Vec<Way> = self.steps.iter().map(|step| step.way).collect();
        ways.dedup();
        ways
    }

    /// The sizes of `way`, smallest first.
    pub fn sizes(&self, way: Way) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.of_way(way).map(|step| step.bytes).collect();
        sizes.dedup();
        sizes
    }

    /// The servers measured, in table order.
    pub fn servers(&self) -> Vec<Server> {
        let mut servers: Vec<Server> = self.steps.iter().map(|step| step.server).collect();
        servers.sort();
        servers.dedup();
        servers
    }

    /// The steps of `way`.
    pub fn of_way(&self, way: Way) -> impl Iterator<Item = &CopiesStep> {
        self.steps.iter().filter(move |step| step.way == way)
    }

    /// `server`'s step of `way` at `bytes`.
    pub fn step(&self, server: Server, way: Way, bytes: u64) -> Option<&CopiesStep> {
        self.of_way(way)
            .find(|step| step.server == server && step.bytes == bytes)
    }

    /// `a`'s tree CPU per MiB against `b`'s at the same way and size,
    /// paired by round.
    pub fn paired(&self, a: Server, b: Server, way: Way, bytes: u64) -> Option<Paired> {
        let (a, b) = (self.step(a, way, bytes)?, self.step(b, way, bytes)?);
        Paired::of(&a.per_mib_per_round, &b.per_mib_per_round)
    }

    /// What `--relay splice` costs per MiB over [`Server::REFERENCE`]
    /// against what `--relay copy` costs over it, round by round (the three
    /// runs of one round): the ratio of the two extras. A round in which
    /// copy costs no more than the reference has no extra to divide by and
    /// is left out.
    pub fn splice_extra(&self, way: Way, bytes: u64) -> Option<Paired> {
        let of = |server: Server| Some(&self.step(server, way, bytes)?.per_mib_per_round);
        let reference = of(Server::REFERENCE)?;
        let extra = |server: Server| -> Option<PerRound> {
            Some(
                of(server)?
                    .iter()
                    .filter_map(|&(round, value)| {
                        let &(_, base) = reference.iter().find(|(r, _)| *r == round)?;
                        Some((round, value - base))
                    })
                    .collect(),
            )
        };
        let copy: PerRound = extra(Server::proxy(Relay::Copy))?
            .into_iter()
            .filter(|&(_, extra)| extra > 0.0)
            .collect();
        Paired::of(&extra(Server::proxy(Relay::Splice))?, &copy)
    }
}

/// The chart of the tree's CPU per MiB against the answer's size, if any
/// answer step has one.
fn copies_chart(figures: &Figures) -> Option<CopiesChart<'_>> {
    let steps = &figures.copies.steps;
    steps
        .iter()
        .any(|step| step.way == Way::Answer && step.tree_ms_per_mib.is_some())
        .then_some(CopiesChart { steps })
}

/// §1c's chart.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    copies_chart(figures).into_iter().map(boxed).collect()
}

/// A figure over rounds to `digits` significant places, with its range.
fn spread_cell(spread: Option<Spread>, text: impl Fn(f64) -> String) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{} ({}–{})",
            text(spread.median),
            text(spread.min),
            text(spread.max)
        ),
        Some(spread) => text(spread.median),
    }
}

/// CPU ms per MiB: three significant digits.
fn per_mib(ms: f64) -> String {
    if ms >= 100.0 {
        count_f64(ms)
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// A share as a percentage.
fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// The paired ratio of the two extras against [`SPLICE_EXTRA_SHARE`]: in
/// every round at or below it, above it, or on both sides.
fn against_share(paired: &Paired) -> &'static str {
    if paired.pairs < 2 {
        "one round, no verdict"
    } else if paired.max <= SPLICE_EXTRA_SHARE {
        "at most half in every round"
    } else if paired.min > SPLICE_EXTRA_SHARE {
        "more than half in every round"
    } else {
        "on both sides of half"
    }
}

/// §1c: what it measures, a table per way, the pairs, the chart and what
/// they teach; nothing without copies runs.
pub fn markdown(out: &mut String, figures: &Figures) {
    let copies = &figures.copies;
    if copies.steps.is_empty() {
        return;
    }
    w!(out, "## {HEADING}");
    w!(out);
    let rates: Vec<String> = copies
        .ways()
        .into_iter()
        .map(|way| {
            let sizes: Vec<String> = copies
                .sizes(way)
                .into_iter()
                .filter_map(|bytes| {
                    let step = copies.of_way(way).find(|step| step.bytes == bytes)?;
                    Some(format!(
                        "{} at {}/s",
                        size_name(bytes),
                        rate(step.offered_per_s)
                    ))
                })
                .collect();
            format!("{}: {}", way.plural(), sizes.join(", "))
        })
        .collect();
    w!(
        out,
        "What moving bytes costs each server: answers of several sizes (`?bytes=N`, the \
         worker's filler) and uploads (a `POST` body of N bytes, `--body-bytes`), keep-alive \
         in an open loop at the same offered rate for every server at a size ({}), each load \
         repeated in rounds whose order was shuffled, the server tree watched. Per load: the \
         whole tree's CPU per request and per MiB moved (the bytes loadgen wrote and read, \
         heads included: at small sizes the heads and the request's own work dominate), the \
         master's share of the tree's CPU, and whether the load was held (as in §0). \
         `{}` is the reference: once it has handed a connection over its master is out of the \
         path, so its tree's cost per MiB is the worker's own, which every server pays; what \
         a relay costs beyond it is its master's. `proxy --relay copy` reads every byte into \
         the master's memory and writes it out again; `--relay splice` moves it through a \
         pipe inside the kernel; nginx's stream proxy copies as `--relay copy` does.",
        rates.join("; "),
        Server::REFERENCE
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Copies));
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    let mut lessons = Vec::new();
    for way in copies.ways() {
        w!(out, "**{}**:", way.title());
        w!(out);
        w!(
            out,
            "| server | size | offered/s | MiB/s moved | tree µs/request | tree CPU ms/MiB | master's share | held | failed / unanswered |"
        );
        w!(out, "|---|---:|---:|---:|---:|---:|---:|---|---:|");
        for step in copies.of_way(way) {
            w!(
                out,
                "| `{}`{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                step.server,
                disturbed_mark(&step.disturbed),
                size_name(step.bytes),
                rate(step.offered_per_s),
                spread_cell(step.mib_per_s, |mib| format!("{mib:.1}")),
                spread_cell(step.tree_us, cpu_micros),
                spread_cell(step.tree_ms_per_mib, per_mib),
                spread_cell(step.master_share, percent),
                match (step.held(), step.rounds) {
                    (held, 1) => (if held { "yes" } else { "no" }).to_owned(),
                    (held, n) => format!(
                        "{} ({} of {n})",
                        if held { "yes" } else { "no" },
                        step.held_rounds
                    ),
                },
                failures(&step.failures),
            );
        }
        w!(out);
        let marked: Vec<Marked<'_>> = copies
            .of_way(way)
            .map(|step| {
                (
                    format!("`{}` at {}", step.server, size_name(step.bytes)),
                    step.disturbed.as_slice(),
                )
            })
            .collect();
        disturbed_note(out, &marked);
        let sizes = copies.sizes(way);
        let header: Vec<String> = sizes.iter().map(|&bytes| size_name(bytes)).collect();
        let compared: Vec<Server> = copies
            .servers()
            .into_iter()
            .filter(|&server| server != Server::REFERENCE)
            .collect();
        if copies
            .of_way(way)
            .any(|step| step.server == Server::REFERENCE)
            && !compared.is_empty()
        {
            w!(
                out,
                "The whole tree's CPU per MiB against `{}`'s at the same size ({}): the ratio of \
                 the two runs of each round, their median (min–max), and \"clearly\" only when \
                 every round's ratio is on that side of 1:",
                Server::REFERENCE,
                way.plural()
            );
            w!(out);
            w!(out, "| server | {} |", header.join(" | "));
            w!(out, "|---|{}", "---:|".repeat(sizes.len()));
            for &server in &compared {
                let cells: Vec<String> = sizes
                    .iter()
                    .map(|&bytes| match copies.step(server, way, bytes) {
                        None => "–".to_owned(),
                        Some(step) => {
                            let cell =
                                ratio_cell(copies.paired(server, Server::REFERENCE, way, bytes));
                            if step.held() {
                                cell
                            } else {
                                format!("{cell} (not held)")
                            }
                        }
                    })
                    .collect();
                w!(out, "| `{server}` | {} |", cells.join(" | "));
            }
            w!(out);
        }
        let (copy, splice) = (Server::proxy(Relay::Copy), Server::proxy(Relay::Splice));
        let each = |pair: &dyn Fn(u64) -> Option<Paired>| -> Vec<Option<Paired>> {
            sizes.iter().map(|&bytes| pair(bytes)).collect()
        };
        let rows: Vec<(String, Vec<Option<Paired>>)> = [
            (
                format!("`{splice}` ÷ `{copy}`"),
                each(&|bytes| copies.paired(splice, copy, way, bytes)),
            ),
            (
                format!(
                    "what `{splice}` costs over `{}` ÷ what `{copy}` does",
                    Server::REFERENCE
                ),
                each(&|bytes| copies.splice_extra(way, bytes)),
            ),
            (
                format!("`{copy}` ÷ `{}`", Server::NGINX),
                each(&|bytes| copies.paired(copy, Server::NGINX, way, bytes)),
            ),
            (
                format!("`{splice}` ÷ `{}`", Server::NGINX),
                each(&|bytes| copies.paired(splice, Server::NGINX, way, bytes)),
            ),
        ]
        .into_iter()
        .filter(|(_, cells)| cells.iter().any(Option::is_some))
        .collect();
        if !rows.is_empty() {
            w!(
                out,
                "The relays against each other and against nginx, tree CPU per MiB paired by \
                 round as above ({}); the second row divides, round by round, what each relay \
                 costs per MiB beyond `{}` (a round in which `{copy}` costs no more than it \
                 is left out):",
                way.plural(),
                Server::REFERENCE
            );
            w!(out);
            w!(out, "| ratio | {} |", header.join(" | "));
            w!(out, "|---|{}", "---:|".repeat(sizes.len()));
            for (name, cells) in &rows {
                let cells: Vec<String> = cells.iter().map(|&paired| ratio_cell(paired)).collect();
                w!(out, "| {name} | {} |", cells.join(" | "));
            }
            w!(out);
        }
        lessons.extend(lessons_of(copies, way, &sizes));
    }
    teach(out, &lessons);
}

/// What the figures of `way` teach: the cost per MiB at the largest size
/// and the relays' share of it, splice's saving at the largest size and
/// its cost at the smallest, and the relays against nginx.
fn lessons_of(copies: &Copies, way: Way, sizes: &[u64]) -> Vec<String> {
    let mut lessons = Vec::new();
    let (copy, splice) = (Server::proxy(Relay::Copy), Server::proxy(Relay::Splice));
    let (Some(&smallest), Some(&largest)) = (sizes.first(), sizes.last()) else {
        return lessons;
    };
    let at_largest: Vec<String> = copies
        .of_way(way)
        .filter(|step| step.bytes == largest)
        .filter_map(|step| {
            let ms = step.tree_ms_per_mib?.median;
            let share = step
                .master_share
                .filter(|share| share.median >= 0.005)
                .map_or(String::new(), |share| {
                    format!(", {} of it the master's", percent(share.median))
                });
            Some(format!("`{}` {} ms{share}", step.server, per_mib(ms)))
        })
        .collect();
    if !at_largest.is_empty() {
        lessons.push(format!(
            "With {} of {}, the whole tree's CPU per MiB moved (median): {}.",
            way.plural(),
            size_name(largest),
            and_list(&at_largest)
        ));
    }
    if let Some(paired) = copies.splice_extra(way, largest) {
        let range = match paired.pairs {
            1 => String::new(),
            _ => format!(" ({:.2}–{:.2})", paired.min, paired.max),
        };
        lessons.push(format!(
            "At {}, what `{splice}` costs per MiB beyond `{}` is {:.2}×{range} what `{copy}` \
             costs: {}.",
            size_name(largest),
            Server::REFERENCE,
            paired.median,
            against_share(&paired)
        ));
    }
    if smallest != largest {
        if let Some(paired) = copies.paired(splice, copy, way, smallest) {
            lessons.push(format!(
                "At {}, `{splice}` against `{copy}`: {}.",
                size_name(smallest),
                crate::text::paired_ratio(&paired)
            ));
        }
    }
    for relay in [copy, splice] {
        let verdicts: Vec<(u64, Option<Paired>)> = sizes
            .iter()
            .map(|&bytes| (bytes, copies.paired(relay, Server::NGINX, way, bytes)))
            .filter(|(_, paired)| paired.is_some())
            .collect();
        if verdicts.is_empty() {
            continue;
        }
        let named = |keep: &dyn Fn(&Paired) -> bool| -> Vec<String> {
            verdicts
                .iter()
                .filter(|(_, paired)| paired.as_ref().is_some_and(keep))
                .map(|&(bytes, _)| size_name(bytes))
                .collect()
        };
        let below = named(&|paired| paired.pairs > 1 && paired.max < 1.0);
        let above = named(&|paired| paired.pairs > 1 && paired.min > 1.0);
        let unclear = named(&|paired| paired.pairs > 1 && paired.min <= 1.0 && paired.max >= 1.0);
        let one = named(&|paired| paired.pairs < 2);
        let mut parts = Vec::new();
        for (names, text) in [
            (below, "below nginx's in every round at"),
            (above, "above nginx's in every round at"),
            (unclear, "no clear difference from nginx's at"),
            (one, "against nginx's in one round only (no verdict) at"),
        ] {
            if !names.is_empty() {
                parts.push(format!("{text} {}", and_list(&names)));
            }
        }
        lessons.push(format!(
            "`{relay}`'s tree CPU per MiB ({}): {}.",
            way.plural(),
            parts.join("; ")
        ));
    }
    lessons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cost_run;

    /// A §1c run of `server` with answers (or uploads) of `bytes` in
    /// `round`: its master spends `master_us` and its workers `workers_us`
    /// per request; each request moves `bytes` and 200 bytes of heads.
    fn copies_run(
        server: Server,
        way: Way,
        bytes: u64,
        round: u32,
        (master_us, workers_us): (f64, f64),
    ) -> Report {
        let rate = 1_000;
        let mut run = cost_run(
            server.mode.name(),
            "keepalive",
            rate,
            round,
            (master_us, workers_us),
        );
        run.labels.section = Some(Section::Copies);
        run.labels.relay = server.relay;
        match way {
            Way::Answer => run.labels.answer_bytes = Some(bytes),
            Way::Upload => run.labels.body_bytes = Some(bytes),
        }
        let per_request = bytes + 200;
        let ok = run.requests.ok;
        run.bytes = Some(runs::BytesMoved {
            sent_bytes: ok * 100,
            received_bytes: ok * (per_request - 100),
            sent_bytes_per_s: (rate * 100) as f64,
            received_bytes_per_s: (rate * (per_request - 100)) as f64,
        });
        run
    }

    /// The figures over 3 rounds: the tree's CPU per MiB (µs per request
    /// times requests over MiB moved), the master's share, the ratio
    /// against `handoff-socket` paired by round, splice's extra over
    /// `handoff-socket` against copy's (round by round), the relays
    /// against nginx; the text with its tables, chart and lessons.
    #[test]
    fn cost_per_mib_paired_against_handoff_socket() {
        let mib = 1 << 20;
        let mut runs = Vec::new();
        // (round, handoff-socket workers, copy master, splice master, nginx master)
        for (round, socket, copy, splice, nginx) in [
            (1, 100.0, 300.0, 80.0, 400.0),
            (2, 120.0, 320.0, 120.0, 420.0),
            (3, 110.0, 400.0, 100.0, 350.0),
        ] {
            for (server, master) in [
                (Server::REFERENCE, 0.0),
                (Server::proxy(Relay::Copy), copy),
                (Server::proxy(Relay::Splice), splice),
                (Server::NGINX, nginx),
            ] {
                // The workers cost the same behind every server, per round.
                runs.push(copies_run(
                    server,
                    Way::Answer,
                    mib,
                    round,
                    (master, socket),
                ));
                runs.push(copies_run(
                    server,
                    Way::Answer,
                    64,
                    round,
                    (1.0 + master / 100.0, 10.0),
                ));
            }
            runs.push(copies_run(
                Server::proxy(Relay::Splice),
                Way::Upload,
                64 * 1024,
                round,
                (5.0, 5.0),
            ));
        }
        let figures = Figures::of(&runs);
        let copies = &figures.copies;
        assert_eq!(copies.ways(), [Way::Answer, Way::Upload]);
        assert_eq!(copies.sizes(Way::Answer), [64, mib]);
        let copy = copies
            .step(Server::proxy(Relay::Copy), Way::Answer, mib)
            .expect("a copy step");
        // Round 1: 400 µs per request, 3,000 requests, 3,000 × (1 MiB + 200 B).
        let moved = 3_000.0 * (mib + 200) as f64 / MIB;
        let round_1 = 400.0 * 3_000.0 / 1000.0 / moved;
        assert!((copy.per_mib_per_round[0].1 - round_1).abs() < 1e-9);
        let tree = copy.tree_us.expect("a tree");
        assert_eq!((tree.median, tree.min, tree.max), (440.0, 400.0, 510.0));
        let share = copy.master_share.expect("a share");
        // 300/400, 320/440, 400/510.
        assert!((share.median - 0.75).abs() < 1e-9);
        assert!(copy.held());
        // Against handoff-socket: 400/100, 440/120, 510/110.
        let paired = copies
            .paired(
                Server::proxy(Relay::Copy),
                Server::REFERENCE,
                Way::Answer,
                mib,
            )
            .expect("pairs");
        assert!((paired.median - 4.0).abs() < 1e-9, "{paired:?}");
        // Splice's extra over copy's: 80/300, 120/320, 100/400.
        let extra = copies.splice_extra(Way::Answer, mib).expect("extras");
        assert_eq!(extra.pairs, 3);
        assert!((extra.median - 80.0 / 300.0).abs() < 1e-9, "{extra:?}");
        assert!((extra.min - 0.25).abs() < 1e-9 && (extra.max - 0.375).abs() < 1e-9);
        assert_eq!(against_share(&extra), "at most half in every round");

        let text = figures.markdown();
        let start = text.find("## 1c. The cost of the bytes").expect("§1c");
        let section = &text[start..];
        let section = &section[..section.find("\n## 2. ").expect("§2 follows")];
        assert!(text.find("## 1b. ").expect("§1b") < start, "after §1b");
        for text in [
            "](copies.svg)",
            "(answers: 64 B at 1,000/s, 1 MiB at 1,000/s; uploads: 64 KiB at 1,000/s)",
            "| `proxy --relay copy` | 1 MiB | 1,000 | ",
            "| 440 (400–510) | ",
            "| `proxy --relay copy` | 1.29× (1.27–1.36), clearly above | 4.00× (3.67–4.64), clearly above |",
            "| what `proxy --relay splice` costs over `handoff-socket` ÷ what `proxy --relay copy` does | ",
            "0.27× (0.25–0.38) what `proxy --relay copy` costs: at most half in every round",
            "`proxy --relay copy`'s tree CPU per MiB (answers): no clear difference from nginx's at 64 B and 1 MiB.",
            "`proxy --relay splice`'s tree CPU per MiB (answers): below nginx's in every round at 64 B and 1 MiB.",
            "Each figure comes from 3 rounds",
            "**Uploads of N bytes",
        ] {
            assert!(section.contains(text), "§1c lacks {text:?}:\n{section}");
        }
        assert_eq!(charts(&figures).len(), 1);
    }

    /// Without copies runs (older folders) the section is left out, and so
    /// is its chart; a splice extra needs copy to cost more than the
    /// reference in the round.
    #[test]
    fn older_folders_have_no_section_and_extras_need_a_copy_extra() {
        let figures = Figures::of(&crate::fixtures::glance_runs());
        assert!(figures.copies.steps.is_empty() && charts(&figures).is_empty());
        assert!(!figures.markdown().contains(HEADING));
        let runs = vec![
            copies_run(Server::REFERENCE, Way::Answer, 64, 1, (0.0, 50.0)),
            copies_run(Server::proxy(Relay::Copy), Way::Answer, 64, 1, (0.0, 40.0)),
            copies_run(
                Server::proxy(Relay::Splice),
                Way::Answer,
                64,
                1,
                (10.0, 40.0),
            ),
        ];
        let figures = Figures::of(&runs);
        assert_eq!(figures.copies.splice_extra(Way::Answer, 64), None);
        assert_eq!(size_name(64), "64 B");
        assert_eq!(size_name(4096), "4 KiB");
        assert_eq!(size_name(1536), "1.5 KiB");
        assert_eq!(size_name(1 << 20), "1 MiB");
    }
}
