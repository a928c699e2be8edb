//! §1b, latency against offered load: every mode at the same offered rates
//! in an open loop, a step per rate; which steps were held, and each mode's
//! capacity at each latency objective (the highest offered rate up to which
//! every step was held within it). Its chart: `latency-vs-rate.svg`; its
//! headline on the first screen: the capacity at the loosest objective.

use runs::format::{count, rate};
use runs::labels::{Load, Mode, Section};
use runs::{Arrivals, HistogramSummary, KEPT_UP_RATIO, Report};

use super::Figures;
use crate::charts::latency_vs_rate::LatencyVsRateChart;
use crate::charts::{Chart, boxed};
use crate::stats::{
    Failures, Quote, SAMPLES_ABOVE_A_PERCENTILE, by_round, corrected_of, group, latency_median,
    median, mode_load, samples_for, sent_of,
};
use crate::text::{
    and_list, failures, image, load_name, nothing, opt_micros, opt_quote, rounds, section_link,
    teach, w, with_load,
};

/// The heading, as links to it are written.
pub const HEADING: &str = "1b. Latency against offered load";

pub use runs::judge::{SLOS_US, WAITING_RATIO};

/// One run of a sweep step: the step may be repeated in several rounds
/// (label `round`), and each repeat is held or not on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeat {
    /// Its round; `None` in runs written before the steps were repeated.
    pub round: Option<u32>,
    /// Held (see [`SweepStep::held`]), judged on this run alone.
    pub held: bool,
    /// Its corrected p99 as the report may quote it: the p99, or the
    /// largest sample when too few lie above the p99 (an upper bound of it).
    pub p99: Option<Quote>,
}

impl Repeat {
    /// Held with its p99 (or the maximum standing in for it) at most `slo_us`.
    pub fn meets(&self, slo_us: f64) -> bool {
        self.held && self.p99.is_some_and(|p99| p99.us() <= slo_us)
    }
}

/// Whether most of `repeats` (more than half) satisfy `test`.
fn most(repeats: &[Repeat], test: impl Fn(&Repeat) -> bool) -> bool {
    let yes = repeats.iter().filter(|repeat| test(repeat)).count();
    2 * yes > repeats.len()
}

/// 1b: one step of the open-loop sweep (one offered rate) of one mode and
/// load, over its repeats; latencies are the median over them.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepStep {
    /// The offered rate, requests/s (the `rate` label, else `--rate`).
    pub offered_per_s: f64,
    /// The requests due in the window that were answered, late ones
    /// included (loadgen waits up to `--timeout` after the window), per
    /// second of the window: not a throughput once the server falls behind.
    pub achieved_per_s: f64,
    /// p50, corrected for coordinated omission (from each request's
    /// intended start), µs.
    pub p50_us: Option<f64>,
    /// p99, corrected, µs.
    pub p99_us: Option<f64>,
    /// p99.9, corrected, µs.
    pub p99_9_us: Option<f64>,
    /// p50 as sent (uncorrected), µs.
    pub p50_sent_us: Option<f64>,
    /// p99 as sent, µs.
    pub p99_sent_us: Option<f64>,
    /// p99.9 as sent, µs.
    pub p99_9_sent_us: Option<f64>,
    /// Requests failed or never answered, all the step's runs.
    pub failures: Failures,
    /// Runs behind the step.
    pub runs: usize,
    /// Under loadgen's open model (a new connection per request): the
    /// bound on requests in flight, and the requests of all the step's runs
    /// that found it reached and waited for a place (their latency counts
    /// from when they were due); `None` in the other models.
    pub in_flight: Option<(usize, u64)>,
    /// Each run of the step, in round order.
    pub repeats: Vec<Repeat>,
    /// The corrected p99 as the report may quote it (the median over the
    /// repeats; the maximum when a repeat has too few samples).
    pub p99_quote: Option<Quote>,
    /// The same of p99.9.
    pub p99_9_quote: Option<Quote>,
    /// The same of the p99 as sent.
    pub p99_sent_quote: Option<Quote>,
    /// The same of the p99.9 as sent.
    pub p99_9_sent_quote: Option<Quote>,
}

impl SweepStep {
    /// Held: no request failed or left unanswered, at least
    /// [`KEPT_UP_RATIO`] of the offered rate answered (loadgen's own
    /// judgement of an open loop), and the server kept up with the
    /// schedule: the corrected p50 below [`WAITING_RATIO`] times the p50 as
    /// sent. The last condition matters because a late answer still counts
    /// as answered: a server at half the offered rate answers every request
    /// of a short step, a second late. Each repeat is judged on its own,
    /// and a step repeated in rounds is held when most of its repeats were:
    /// one stall in one round does not decide it. A step not held shows a
    /// lower bound of its latency, not a value: the chart draws it hollow
    /// and joins it to nothing.
    pub fn held(&self) -> bool {
        most(&self.repeats, |repeat| repeat.held)
    }

    /// Most repeats held with a (corrected) p99 of at most `slo_us`; a p99
    /// the samples do not support counts as their maximum (see [`Quote`]).
    pub fn meets(&self, slo_us: f64) -> bool {
        most(&self.repeats, |repeat| repeat.meets(slo_us))
    }

    /// The corrected p99 is at least [`WAITING_RATIO`] times the p99 as
    /// sent: the load generator's requests waited to be sent, the server
    /// having fallen behind the schedule.
    pub fn waiting(&self) -> bool {
        match (self.p99_us, self.p99_sent_us) {
            (Some(corrected), Some(sent)) => corrected >= WAITING_RATIO * sent.max(1.0),
            _ => false,
        }
    }
}

/// 1b: the sweep of one mode under one load, its steps by offered rate.
#[derive(Debug, Clone)]
pub struct SweepLine {
    /// The mode.
    pub mode: Mode,
    /// `keepalive` or `newconn`.
    pub load: Load,
    /// The steps, lowest offered rate first: uniform arrivals (the
    /// schedule of every step, and of runs before `--arrivals`).
    pub steps: Vec<SweepStep>,
    /// The runs with Poisson arrivals (`--arrivals poisson`), lowest rate
    /// first: one near the knee, beside the uniform step at its rate.
    pub poisson: Vec<PoissonStep>,
}

/// One run of the sweep with Poisson arrivals, and the uniform step at the
/// same rate: what bursts of independent arrivals do to the tail near the
/// knee, where the uniform schedule flatters a server most.
#[derive(Debug, Clone, PartialEq)]
pub struct PoissonStep {
    /// The offered rate, requests/s.
    pub offered_per_s: f64,
    /// Held, by the uniform steps' rule.
    pub held: bool,
    /// Its corrected p99 as the report may quote it.
    pub p99: Option<Quote>,
    /// The uniform step's at the same rate (over its repeats), if it ran.
    pub uniform_p99: Option<Quote>,
    /// The uniform step's repeats.
    pub uniform_runs: usize,
}

/// The capacity of a sweep at a latency objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SloCapacity {
    /// The lightest step already missed it.
    None,
    /// The highest offered rate up to which every step met it, and the next
    /// step did not.
    Held(f64),
    /// Every step met it, the highest too: the capacity is at least that.
    NotReached(f64),
}

impl SloCapacity {
    /// The highest offered rate of `steps` up to which every step `met`
    /// (lowest first): a step that misses ends the count, even if a higher
    /// one met it by chance.
    fn of(steps: &[SweepStep], met: impl Fn(&SweepStep) -> bool) -> SloCapacity {
        let met = steps.iter().take_while(|step| met(step)).count();
        match (met, steps.get(met.wrapping_sub(1))) {
            (0, _) | (_, None) => SloCapacity::None,
            (n, Some(step)) if n == steps.len() => SloCapacity::NotReached(step.offered_per_s),
            (_, Some(step)) => SloCapacity::Held(step.offered_per_s),
        }
    }

    /// The rate, for ordering: 0 for none.
    fn rate(self) -> f64 {
        match self {
            SloCapacity::None => 0.0,
            SloCapacity::Held(rate) | SloCapacity::NotReached(rate) => rate,
        }
    }
}

impl SweepLine {
    /// The highest offered rate up to which every step was held with p99 ≤
    /// `slo_us` in most of its repeats (see [`SweepStep::meets`]).
    pub fn capacity(&self, slo_us: f64) -> SloCapacity {
        SloCapacity::of(&self.steps, |step| step.meets(slo_us))
    }

    /// The capacity of each round alone (its own repeat of every step, or
    /// the step's verdict over its runs where it has none in that round:
    /// the sweep repeats only the steps around each knee), the lowest and
    /// the highest; `None` unless some step was repeated in two rounds or
    /// more.
    pub fn capacity_range(&self, slo_us: f64) -> Option<(SloCapacity, SloCapacity)> {
        let mut rounds: Vec<u32> = self
            .steps
            .iter()
            .flat_map(|step| step.repeats.iter().filter_map(|repeat| repeat.round))
            .collect();
        rounds.sort_unstable();
        rounds.dedup();
        if rounds.len() < 2 {
            return None;
        }
        let per_round: Vec<SloCapacity> = rounds
            .iter()
            .map(|&round| {
                SloCapacity::of(&self.steps, |step| {
                    let mut own = step
                        .repeats
                        .iter()
                        .filter(|repeat| repeat.round == Some(round))
                        .peekable();
                    // A step run in fewer rounds (the ladder's, away from
                    // the knee, once) counts as it counts over its runs.
                    match own.peek() {
                        Some(_) => own.any(|repeat| repeat.meets(slo_us)),
                        None => step.meets(slo_us),
                    }
                })
            })
            .collect();
        let low = per_round
            .iter()
            .copied()
            .min_by(|a, b| a.rate().total_cmp(&b.rate()))?;
        let high = per_round
            .iter()
            .copied()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))?;
        Some((low, high))
    }

    /// The steps whose requests waited to be sent (see
    /// [`SweepStep::waiting`]).
    pub fn waiting(&self) -> impl Iterator<Item = &SweepStep> {
        self.steps.iter().filter(|step| step.waiting())
    }
}

/// §1b's figures.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// One line per mode and load, its steps by offered rate.
    pub lines: Vec<SweepLine>,
    /// How the sweep's clients ran ([`crate::text::open_loop_clients`]).
    pub clients: String,
}

impl Sweep {
    /// The figures of the sweep's runs.
    pub fn of(runs: &[&Report]) -> Sweep {
        let clients = crate::text::open_loop_clients(runs);
        Sweep {
            lines: sweep(runs),
            clients,
        }
    }
}

/// The offered rate of a sweep run: its `rate` label, else its `--rate`.
fn offered(run: &Report) -> Option<u64> {
    run.labels
        .rate
        .or_else(|| Some(run.parameters.rate_per_s?.round() as u64))
}

/// Whether a run spaced its arrivals as a Poisson process.
fn is_poisson(run: &Report) -> bool {
    run.parameters.arrivals == Some(Arrivals::Poisson)
}

fn sweep(runs: &[&Report]) -> Vec<SweepLine> {
    group(runs, mode_load)
        .into_iter()
        .map(|((mode, load), all)| {
            let (poisson_runs, runs): (Vec<&Report>, Vec<&Report>) =
                all.into_iter().partition(|run| is_poisson(run));
            let steps: Vec<SweepStep> = group(&runs, offered)
                .into_iter()
                .map(|(offered_per_s, runs)| {
                    let offered_per_s = offered_per_s as f64;
                    let runs = by_round(&runs);
                    let corrected =
                        |figure: fn(&HistogramSummary) -> u64| latency_median(&runs, figure);
                    let sent = |figure: fn(&HistogramSummary) -> u64| {
                        median(runs.iter().filter_map(|run| {
                            Some(figure(run.latency.request_uncorrected.as_ref()?) as f64)
                        }))
                    };
                    SweepStep {
                        offered_per_s,
                        achieved_per_s: median(runs.iter().map(|run| run.requests.per_s))
                            .unwrap_or(0.0),
                        p50_us: corrected(|s| s.p50_us),
                        p99_us: corrected(|s| s.p99_us),
                        p99_9_us: corrected(|s| s.p99_9_us),
                        p50_sent_us: sent(|s| s.p50_us),
                        p99_sent_us: sent(|s| s.p99_us),
                        p99_9_sent_us: sent(|s| s.p99_9_us),
                        failures: Failures::of(&runs),
                        runs: runs.len(),
                        in_flight: runs
                            .iter()
                            .filter_map(|run| run.requests.in_flight)
                            .map(|in_flight| (in_flight.bound, in_flight.waited))
                            .reduce(|(bound, a), (_, b)| (bound, a + b)),
                        repeats: runs
                            .iter()
                            .map(|run| Repeat {
                                round: run.labels.round,
                                held: run.held(offered_per_s),
                                p99: run
                                    .latency
                                    .request
                                    .as_ref()
                                    .map(|summary| Quote::of(summary, 99.0, summary.p99_us)),
                            })
                            .collect(),
                        p99_quote: Quote::over(&runs, corrected_of, 99.0, |s| s.p99_us),
                        p99_9_quote: Quote::over(&runs, corrected_of, 99.9, |s| s.p99_9_us),
                        p99_sent_quote: Quote::over(&runs, sent_of, 99.0, |s| s.p99_us),
                        p99_9_sent_quote: Quote::over(&runs, sent_of, 99.9, |s| s.p99_9_us),
                    }
                })
                .collect();
            let poisson = poisson_runs
                .iter()
                .filter_map(|run| {
                    let offered_per_s = offered(run)? as f64;
                    let uniform = steps
                        .iter()
                        .find(|step| step.offered_per_s == offered_per_s);
                    Some(PoissonStep {
                        offered_per_s,
                        held: run.held(offered_per_s),
                        p99: run
                            .latency
                            .request
                            .as_ref()
                            .map(|summary| Quote::of(summary, 99.0, summary.p99_us)),
                        uniform_p99: uniform.and_then(|step| step.p99_quote),
                        uniform_runs: uniform.map_or(0, |step| step.runs),
                    })
                })
                .collect::<Vec<_>>();
            let mut poisson = poisson;
            poisson.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
            SweepLine {
                mode,
                load,
                steps,
                poisson,
            }
        })
        .collect()
}

/// The chart of p99 against the offered rate, if there is a sweep.
fn latency_vs_rate_chart(figures: &Figures) -> Option<LatencyVsRateChart<'_>> {
    let lines = &figures.sweep.lines;
    (!lines.is_empty()).then_some(LatencyVsRateChart { lines })
}

/// §1b's chart.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    latency_vs_rate_chart(figures)
        .into_iter()
        .map(boxed)
        .collect()
}

/// A capacity: `12,000/s`, `≥ 40,000/s (not reached)`, `< 1,000/s (the
/// lightest step missed)`, or `–` without steps.
fn capacity_text(capacity: SloCapacity, line: &SweepLine) -> String {
    match capacity {
        SloCapacity::Held(rate_per_s) => format!("{}/s", rate(rate_per_s)),
        SloCapacity::NotReached(rate_per_s) => {
            format!("≥ {}/s (not reached)", rate(rate_per_s))
        }
        SloCapacity::None => line.steps.first().map_or("–".to_owned(), |step| {
            format!(
                "< {}/s (the lightest step missed)",
                rate(step.offered_per_s)
            )
        }),
    }
}

/// A capacity in a range: `12,000/s`, `≥ 40,000`, `none`.
fn capacity_short(capacity: SloCapacity) -> String {
    match capacity {
        SloCapacity::Held(rate_per_s) => rate(rate_per_s),
        SloCapacity::NotReached(rate_per_s) => format!("≥ {}", rate(rate_per_s)),
        SloCapacity::None => "none".to_owned(),
    }
}

/// A sweep's capacity at an objective (see [`capacity_text`]), and when
/// its steps were repeated the range of each round's own: `12,000/s (each
/// round alone: 5,600–25,000/s)`.
fn slo_capacity(line: &SweepLine, slo_us: f64) -> String {
    let text = capacity_text(line.capacity(slo_us), line);
    match line.capacity_range(slo_us) {
        Some((low, high)) if low == high => format!("{text} (every round alike)"),
        Some((low, high)) => format!(
            "{text} (each round alone: {}–{}/s)",
            capacity_short(low),
            capacity_short(high)
        ),
        None => text,
    }
}

/// An objective: `p99 ≤ 1 ms`.
fn slo_name(slo_us: f64) -> String {
    format!("p99 ≤ {}", micros_short(slo_us))
}

/// `1 ms`, `10 ms`, `500 µs`: a latency objective, without decimals.
fn micros_short(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", us / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// The glance line of the sweep: each mode's capacity at the loosest
/// objective, under each load.
pub fn glance(figures: &Figures) -> Option<String> {
    let slo = SLOS_US[SLOS_US.len() - 1];
    let mut modes: Vec<Mode> = figures.sweep.lines.iter().map(|line| line.mode).collect();
    modes.dedup();
    let loads: Vec<Load> = [Load::KeepAlive, Load::NewConn]
        .into_iter()
        .filter(|&load| figures.sweep.lines.iter().any(|line| line.load == load))
        .collect();
    if modes.is_empty() || loads.is_empty() {
        return None;
    }
    let entries: Vec<String> = modes
        .iter()
        .map(|&mode| {
            let per_load: Vec<String> = loads
                .iter()
                .map(|&load| {
                    figures
                        .sweep
                        .lines
                        .iter()
                        .find(|line| line.mode == mode && line.load == load)
                        .map_or("–".to_owned(), |line| slo_capacity(line, slo))
                })
                .collect();
            format!("`{mode}` {}", per_load.join(" / "))
        })
        .collect();
    let loads: Vec<&str> = loads.iter().map(|&load| load_name(load)).collect();
    Some(format!(
        "**Capacity at {}** (the highest offered rate held with every request answered, open loop; {}): {}. \
         {}",
        slo_name(slo),
        loads.join(" / "),
        entries.join(", "),
        section_link(HEADING)
    ))
}

/// Section 1b: latency against offered load.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Every mode at the same offered rates in an open loop ({}, `--rate`), with \
         keep-alive and with a new connection per request, from light load to past the \
         capacity of the slowest mode. Latency is counted from when each request was due \
         (corrected for coordinated omission); the latency as sent (uncorrected) is beside it. \
         A step is **held** when at least {:.0} % of its requests were answered, none \
         failed or was left unanswered, and most were sent on time (the p50 less than {:.0}× the p50 as sent): \
         *answered/s* counts late answers too, so a server that fell behind the schedule \
         can show 100 % with a p50 of a second. A step repeated in rounds is held when most \
         of its repeats were. A mode's capacity at an objective is the highest offered rate \
         up to which every step was held with its p99 within it (in most repeats; beside it, \
         the range of each round's own). A percentile is quoted only when at least {:.0} \
         samples lie above it (a p99 needs {} samples, a p99.9 {}); otherwise the cell gives \
         the largest sample, *max of N*, which also stands for the p99 against an objective; \
         *samples* is the fewest of a run of the step. The rates, and how they were chosen, \
         are in [README.md](README.md).",
        figures.sweep.clients,
        KEPT_UP_RATIO * 100.0,
        WAITING_RATIO,
        SAMPLES_ABOVE_A_PERCENTILE,
        count(samples_for(99.0)),
        count(samples_for(99.9)),
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Sweep));
    if figures.sweep.lines.is_empty() {
        nothing(out, "sweep");
        return;
    }
    for chart in charts(figures) {
        image(out, chart.as_ref());
        w!(
            out,
            "_The chart draws each step's p99 as measured (the median over its repeats), also \
             where the table gives the maximum for want of samples._"
        );
        w!(out);
    }
    let loads: Vec<Load> = [Load::KeepAlive, Load::NewConn, Load::OpenLoop]
        .into_iter()
        .filter(|&load| figures.sweep.lines.iter().any(|line| line.load == load))
        .collect();
    let mut header = vec!["mode".to_owned()];
    for &load in &loads {
        for slo in SLOS_US {
            header.push(format!("{}, {}", load_name(load), slo_name(slo)));
        }
    }
    w!(out, "The highest offered rate held at each objective:");
    w!(out);
    w!(out, "| {} |", header.join(" | "));
    w!(out, "|---|{}", "---:|".repeat(header.len() - 1));
    let mut modes: Vec<Mode> = figures.sweep.lines.iter().map(|line| line.mode).collect();
    modes.dedup();
    for &mode in &modes {
        let mut cells = vec![format!("`{mode}`")];
        for &load in &loads {
            let line = figures
                .sweep
                .lines
                .iter()
                .find(|line| line.mode == mode && line.load == load);
            for slo in SLOS_US {
                cells.push(line.map_or("–".to_owned(), |line| slo_capacity(line, slo)));
            }
        }
        w!(out, "| {} |", cells.join(" | "));
    }
    w!(out);
    for &load in &loads {
        w!(out, "**{}**, every step:", capitalised(load_name(load)));
        w!(out);
        w!(
            out,
            "| mode | offered/s | answered/s | held | p50 | p99 | p99.9 | p50 as sent | p99 as sent | p99.9 as sent | samples | failed / unanswered |"
        );
        w!(
            out,
            "|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for line in figures.sweep.lines.iter().filter(|line| line.load == load) {
            for step in &line.steps {
                let held = if step.held() { "yes" } else { "no" };
                let held = if step.repeats.len() > 1 {
                    format!(
                        "{held} ({} of {})",
                        step.repeats.iter().filter(|repeat| repeat.held).count(),
                        step.repeats.len()
                    )
                } else {
                    held.to_owned()
                };
                let samples = step
                    .p99_quote
                    .map_or("–".to_owned(), |quote| count(quote.samples()));
                w!(
                    out,
                    "| {} | {} | {} ({:.0} %) | {held} | {} | {}{} | {} | {} | {} | {} | {samples} | {} |",
                    line.mode,
                    rate(step.offered_per_s),
                    rate(step.achieved_per_s),
                    100.0 * step.achieved_per_s / step.offered_per_s.max(1e-9),
                    opt_micros(step.p50_us),
                    opt_quote(step.p99_quote),
                    if step.waiting() { " ²" } else { "" },
                    opt_quote(step.p99_9_quote),
                    opt_micros(step.p50_sent_us),
                    opt_quote(step.p99_sent_quote),
                    opt_quote(step.p99_9_sent_quote),
                    failures(&step.failures),
                );
            }
        }
        w!(out);
    }
    poisson_table(out, figures);
    let mut lessons = Vec::new();
    if figures
        .sweep
        .lines
        .iter()
        .any(|line| line.waiting().next().is_some())
    {
        w!(
            out,
            "² The corrected p99 is {WAITING_RATIO:.0}× or more the p99 as sent: the load \
             generator's requests were waiting to be sent."
        );
        w!(out);
    }
    for &load in &loads {
        if let Some(text) = sweep_capacity_lesson(figures, load) {
            lessons.push(text);
        }
    }
    for line in &figures.sweep.lines {
        let waiting: Vec<_> = line.waiting().collect();
        let Some(worst) = waiting.iter().max_by(|a, b| {
            let ratio =
                |s: &&&SweepStep| s.p99_us.unwrap_or(0.0) / s.p99_sent_us.unwrap_or(1.0).max(1.0);
            ratio(a).total_cmp(&ratio(b))
        }) else {
            continue;
        };
        let rates: Vec<String> = waiting
            .iter()
            .map(|step| format!("{}/s", rate(step.offered_per_s)))
            .collect();
        lessons.push(format!(
            "`{}` {}: at {} of its {} steps ({} offered) the corrected p99 was \
             {WAITING_RATIO:.0}× or more the p99 as sent (at {}/s: {} against {}): the load \
             generator's requests were waiting to be sent — the server fell behind the \
             schedule, and the latency counted from the send hides it.",
            line.mode,
            load_name(line.load),
            waiting.len(),
            line.steps.len(),
            and_list(&rates),
            rate(worst.offered_per_s),
            opt_micros(worst.p99_us),
            opt_micros(worst.p99_sent_us),
        ));
    }
    for line in &figures.sweep.lines {
        let reached: Vec<(&SweepStep, usize, u64)> = line
            .steps
            .iter()
            .filter_map(|step| match step.in_flight {
                Some((bound, waited)) if waited > 0 => Some((step, bound, waited)),
                _ => None,
            })
            .collect();
        let Some(&(_, bound, _)) = reached.first() else {
            continue;
        };
        let rates: Vec<String> = reached
            .iter()
            .map(|(step, _, waited)| {
                format!("{}/s ({} waited)", rate(step.offered_per_s), count(*waited))
            })
            .collect();
        lessons.push(format!(
            "`{}` {}: at {} loadgen's bound of {bound} requests in flight was reached, and \
             requests due then waited for a place: their latency counts from when they were \
             due, so the wait is the server's, but beyond the bound loadgen offered no more \
             connections at once.",
            line.mode,
            load_name(line.load),
            and_list(&rates),
        ));
    }
    teach(out, &lessons);
}

/// The Poisson runs beside the uniform steps at their rates, if any ran.
fn poisson_table(out: &mut String, figures: &Figures) {
    let rows: Vec<(&SweepLine, &PoissonStep)> = figures
        .sweep
        .lines
        .iter()
        .flat_map(|line| line.poisson.iter().map(move |step| (line, step)))
        .collect();
    if rows.is_empty() {
        return;
    }
    w!(
        out,
        "**Poisson arrivals near each knee** (`--arrivals poisson`: gaps drawn from an \
         exponential of mean 1/rate, as independent clients arrive, where the uniform \
         schedule sends one request every 1/rate): one run per mode and load at the middle \
         rate of its knee, beside the uniform step at that rate (its p99 over its repeats). \
         One run shows an order of magnitude, not a ranking."
    );
    w!(out);
    w!(
        out,
        "| mode | load | offered/s | held (Poisson) | p99 uniform | p99 Poisson | Poisson / uniform |"
    );
    w!(out, "|---|---|---:|:---:|---:|---:|---:|");
    for (line, step) in rows {
        let ratio = match (step.p99, step.uniform_p99) {
            (Some(poisson), Some(uniform)) if uniform.us() > 0.0 => {
                format!("{:.2}×", poisson.us() / uniform.us())
            }
            _ => "–".to_owned(),
        };
        let uniform = match step.uniform_runs {
            0 => "not run".to_owned(),
            1 => opt_quote(step.uniform_p99),
            n => format!("{} ({n} runs)", opt_quote(step.uniform_p99)),
        };
        w!(
            out,
            "| {} | {} | {} | {} | {uniform} | {} | {ratio} |",
            line.mode,
            load_name(line.load),
            rate(step.offered_per_s),
            if step.held { "yes" } else { "no" },
            opt_quote(step.p99),
        );
    }
    w!(out);
}

/// What the sweep of `load` shows of the capacity at the loosest objective:
/// its range over the modes, and the modes that missed it at the lightest
/// step.
fn sweep_capacity_lesson(figures: &Figures, load: Load) -> Option<String> {
    let slo = SLOS_US[SLOS_US.len() - 1];
    let lines: Vec<&SweepLine> = figures
        .sweep
        .lines
        .iter()
        .filter(|line| line.load == load)
        .collect();
    let named = |modes: &[Mode]| -> String {
        let names: Vec<String> = modes.iter().map(|mode| format!("`{mode}`")).collect();
        and_list(&names)
    };
    let mut held: Vec<(Mode, f64)> = Vec::new();
    let mut missed: Vec<Mode> = Vec::new();
    for line in &lines {
        match line.capacity(slo) {
            SloCapacity::Held(rate) | SloCapacity::NotReached(rate) => held.push((line.mode, rate)),
            SloCapacity::None => missed.push(line.mode),
        }
    }
    let lightest = lines
        .iter()
        .filter_map(|line| line.steps.first())
        .map(|step| step.offered_per_s)
        .fold(f64::INFINITY, f64::min);
    let missed_text = if missed.is_empty() {
        String::new()
    } else {
        format!(
            "{} missed it even at the lightest step, {}/s",
            named(&missed),
            rate(lightest)
        )
    };
    let low = held.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
    let high = held.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
    let at = |value: f64| -> Vec<Mode> {
        held.iter()
            .filter(|(_, rate)| *rate == value)
            .map(|(mode, _)| *mode)
            .collect()
    };
    let text = match (low, high) {
        (None, _) | (_, None) => format!(
            "{}, no mode held p99 ≤ {} with no error even at the lightest step, {}/s.",
            with_load(load),
            micros_short(slo),
            rate(lightest)
        ),
        (Some(low), Some(high)) if low.1 < high.1 => format!(
            "{}, the capacity at {} ran from {}/s ({}) to {}/s ({}){}; the steps are a \
             factor {:.1} apart, so modes one step apart may differ by less.",
            with_load(load),
            slo_name(slo),
            rate(low.1),
            named(&at(low.1)),
            rate(high.1),
            named(&at(high.1)),
            if missed_text.is_empty() {
                String::new()
            } else {
                format!("; {missed_text}")
            },
            step_factor(figures, load)
        ),
        (Some(low), Some(_)) if missed.is_empty() && held.len() > 1 => format!(
            "{}, every mode had the same capacity at {}: {}/s.",
            with_load(load),
            slo_name(slo),
            rate(low.1)
        ),
        (Some(low), Some(_)) => format!(
            "{}, {} held {} up to {}/s{}.",
            with_load(load),
            named(&at(low.1)),
            slo_name(slo),
            rate(low.1),
            if missed_text.is_empty() {
                String::new()
            } else {
                format!("; {missed_text}")
            }
        ),
    };
    Some(text)
}

/// The median factor between consecutive offered rates of `load`'s sweep.
fn step_factor(figures: &Figures, load: Load) -> f64 {
    median(
        figures
            .sweep
            .lines
            .iter()
            .filter(|line| line.load == load)
            .flat_map(|line| {
                line.steps
                    .windows(2)
                    .map(|pair| pair[1].offered_per_s / pair[0].offered_per_s.max(1e-9))
            }),
    )
    .unwrap_or(1.0)
}

/// `Keep-alive` of `keep-alive`.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{glance_lines, sweep_run};
    use crate::sections::Figures;

    /// The sweep: steps by offered rate; a step is held with ≥ 97 % of the
    /// offered rate achieved and no error; the capacity at an SLO is the
    /// highest rate up to which every step was held within it, "not
    /// reached" when the top step was, none when the lightest missed.
    #[test]
    fn sweep_capacity_at_an_slo() {
        let runs = vec![
            // proxy: 1 ms up to 2,000/s, 10 ms up to 4,000/s, then behind.
            sweep_run("proxy", "keepalive", 4_000, 3_990.0, (4_000, 900), 0),
            sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 290), 0),
            sweep_run("proxy", "keepalive", 2_000, 2_000.0, (900, 850), 0),
            sweep_run("proxy", "keepalive", 8_000, 6_000.0, (90_000, 2_000), 0),
            // A step at p99 ≤ 1 ms but 94 % achieved is not held.
            sweep_run("handoff-socket", "keepalive", 1_000, 1_000.0, (200, 200), 0),
            sweep_run("handoff-socket", "keepalive", 2_000, 1_880.0, (500, 500), 0),
            sweep_run("handoff-socket", "keepalive", 4_000, 4_000.0, (500, 500), 0),
            // Errors fail a step whatever its latency; then a lucky step
            // above does not count.
            sweep_run("direct", "keepalive", 1_000, 1_000.0, (200, 200), 1),
            sweep_run("direct", "keepalive", 2_000, 2_000.0, (200, 200), 0),
            // Every step within 10 ms: not reached.
            sweep_run("proxy", "newconn", 500, 500.0, (2_000, 2_000), 0),
            sweep_run("proxy", "newconn", 1_000, 999.0, (3_000, 2_900), 0),
        ];
        // Every request answered, but late: p50 500 ms against 1 ms as sent
        // (the server fell behind the schedule): not held, whatever p99.
        let mut late = sweep_run(
            "handoff-listener",
            "keepalive",
            1_000,
            1_000.0,
            (900, 900),
            0,
        );
        if let Some(corrected) = late.latency.request.as_mut() {
            corrected.p50_us = 500_000;
        }
        if let Some(sent) = late.latency.request_uncorrected.as_mut() {
            sent.p50_us = 1_000;
        }
        let mut runs = runs;
        runs.push(late);
        let figures = Figures::of(&runs);
        let line = |mode: Mode, load: Load| {
            figures
                .sweep
                .lines
                .iter()
                .find(|line| line.mode == mode && line.load == load)
                .expect("a sweep line")
        };
        let listener = line(Mode::HandoffListener, Load::KeepAlive);
        assert!(
            !listener.steps[0].held(),
            "answered late: behind the schedule"
        );
        assert_eq!(listener.capacity(10_000.0), SloCapacity::None);
        let proxy = line(Mode::Proxy, Load::KeepAlive);
        let offered: Vec<f64> = proxy.steps.iter().map(|s| s.offered_per_s).collect();
        assert_eq!(
            offered,
            [1_000.0, 2_000.0, 4_000.0, 8_000.0],
            "sorted by rate"
        );
        assert_eq!(proxy.steps[3].achieved_per_s, 6_000.0);
        assert!(!proxy.steps[3].held());
        assert_eq!(proxy.capacity(1_000.0), SloCapacity::Held(2_000.0));
        assert_eq!(proxy.capacity(10_000.0), SloCapacity::Held(4_000.0));
        let socket = line(Mode::HandoffSocket, Load::KeepAlive);
        assert!(!socket.steps[1].held(), "94 % of the offered rate");
        assert_eq!(socket.capacity(1_000.0), SloCapacity::Held(1_000.0));
        let direct = line(Mode::Direct, Load::KeepAlive);
        assert_eq!(direct.capacity(10_000.0), SloCapacity::None);
        let newconn = line(Mode::Proxy, Load::NewConn);
        assert_eq!(newconn.capacity(10_000.0), SloCapacity::NotReached(1_000.0));
        assert_eq!(newconn.capacity(1_000.0), SloCapacity::None);
        assert_eq!(figures.rounds.get(&Section::Sweep), Some(&(1, 1)));
        assert!(
            figures.throughput.rows.is_empty(),
            "sweep runs are not §1's"
        );
    }

    /// Nothing unanswered is 0 errors: a step whose requests were all
    /// answered on time but some left unanswered at the end is not held,
    /// and its row counts them as their own kind; the chart joins only
    /// consecutive held steps, so a step not held breaks the line.
    #[test]
    fn unanswered_steps_are_not_held_nor_joined() {
        let mut cut = sweep_run("proxy", "keepalive", 4_000, 4_000.0, (400, 400), 0);
        cut.requests.ok = 5_400;
        cut.requests.unanswered_at_end = 600;
        let runs = vec![
            sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 300), 0),
            sweep_run("proxy", "keepalive", 2_000, 2_000.0, (300, 300), 0),
            cut,
            sweep_run("proxy", "keepalive", 8_000, 8_000.0, (400, 400), 0),
            sweep_run("proxy", "keepalive", 16_000, 16_000.0, (400, 400), 0),
            sweep_run("proxy", "keepalive", 32_000, 32_000.0, (400, 400), 0),
            // 96 % answered: below loadgen's kept-up ratio.
            sweep_run("proxy", "keepalive", 64_000, 61_440.0, (400, 400), 0),
        ];
        let figures = Figures::of(&runs);
        let line = &figures.sweep.lines[0];
        let held: Vec<bool> = line.steps.iter().map(SweepStep::held).collect();
        assert_eq!(held, [true, true, false, true, true, true, false]);
        assert_eq!(line.steps[2].failures.unanswered, 600);
        let segments: Vec<Vec<f64>> = crate::charts::latency_vs_rate::held_segments(&line.steps)
            .iter()
            .map(|segment| segment.iter().map(|step| step.offered_per_s).collect())
            .collect();
        assert_eq!(
            segments,
            [vec![1_000.0, 2_000.0], vec![8_000.0, 16_000.0, 32_000.0]]
        );
        let text = figures.markdown();
        assert!(
            text.contains("| proxy | 4,000 | 4,000 (100 %) | no |"),
            "{text}"
        );
        assert!(text.contains("| 600 unanswered (10.00 %) |"), "{text}");
    }

    /// Repeated steps: a step is held when most of its repeats were, and
    /// the capacity counts a step only if most repeats met the objective;
    /// beside it the range of each round's own capacity. A p99 of fewer
    /// than 1,000 samples is not quoted: the table gives the maximum, and so
    /// does the objective's test.
    #[test]
    fn repeated_steps_hold_by_majority_and_show_their_range() {
        let step = |rate: u64, round: &str, p99_us: u64, achieved: f64| {
            let mut run = sweep_run("proxy", "keepalive", rate, achieved, (p99_us, p99_us), 0);
            run.labels.round = Some(round.parse().expect("a round"));
            run
        };
        let mut runs = Vec::new();
        for round in ["1", "2", "3"] {
            runs.push(step(1_000, round, 300, 1_000.0));
            runs.push(step(2_000, round, 400, 2_000.0));
        }
        // 4,000/s: one round stalled (p99 40 ms): held, within 10 ms in 2 of 3.
        runs.push(step(4_000, "1", 2_000, 4_000.0));
        runs.push(step(4_000, "2", 40_000, 4_000.0));
        runs.push(step(4_000, "3", 3_000, 4_000.0));
        // 8,000/s: held in round 3 only: not held.
        runs.push(step(8_000, "1", 2_000, 5_000.0));
        runs.push(step(8_000, "2", 2_000, 5_000.0));
        runs.push(step(8_000, "3", 2_000, 8_000.0));
        let figures = Figures::of(&runs);
        let line = &figures.sweep.lines[0];
        let held: Vec<(bool, usize)> = line
            .steps
            .iter()
            .map(|step| (step.held(), step.repeats.len()))
            .collect();
        assert_eq!(held, [(true, 3), (true, 3), (true, 3), (false, 3)]);
        assert_eq!(line.capacity(10_000.0), SloCapacity::Held(4_000.0));
        assert_eq!(
            line.capacity_range(10_000.0),
            Some((SloCapacity::Held(2_000.0), SloCapacity::NotReached(8_000.0)))
        );
        let text = figures.markdown();
        assert!(
            text.contains("4,000/s (each round alone: 2,000–≥ 8,000/s)"),
            "{text}"
        );
        assert!(text.contains("| yes (3 of 3) |"), "{text}");
        assert!(text.contains("| no (1 of 3) |"), "{text}");
        assert!(text.contains("Each figure comes from 3 rounds"), "{text}");

        // 600 samples: the p99 is the 6th largest; the maximum stands in.
        let mut few = sweep_run("direct", "newconn", 500, 500.0, (900, 900), 0);
        for summary in [
            few.latency.request.as_mut(),
            few.latency.request_uncorrected.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            summary.count = 600;
            summary.max_us = 12_000;
        }
        let figures = Figures::of(&[few]);
        let line = &figures.sweep.lines[0];
        assert!(line.steps[0].held());
        assert_eq!(
            line.capacity(10_000.0),
            SloCapacity::None,
            "max 12 ms > 10 ms"
        );
        let text = figures.markdown();
        assert!(
            text.contains("| max of 600: 12.00 ms | max of 600: 12.00 ms |"),
            "{text}"
        );
        assert!(text.contains("| 600 | 0 |"), "{text}");
    }

    /// The harness's sweep: the ladder's steps run once (round 1), the
    /// three around the knee in three rounds. Each round's own capacity
    /// counts a step run once by its one run, so the range says how the
    /// knee moved between rounds and nothing else.
    #[test]
    fn ladder_once_knee_in_rounds() {
        let step = |rate: u64, round: u32, p99_us: u64| {
            let mut run = sweep_run("proxy", "newconn", rate, rate as f64, (p99_us, p99_us), 0);
            run.labels.round = Some(round);
            run
        };
        let mut runs = vec![
            step(1_000, 1, 300),
            step(2_000, 1, 400),
            step(4_000, 1, 2_000),
            step(8_000, 1, 50_000),
        ];
        // The knee: 4,000 (rounds 2 and 3 besides the ladder's), 5,700 in
        // every round, 8,000 again.
        runs.push(step(4_000, 2, 2_500));
        runs.push(step(4_000, 3, 30_000));
        runs.push(step(5_700, 1, 3_000));
        runs.push(step(5_700, 2, 20_000));
        runs.push(step(5_700, 3, 4_000));
        runs.push(step(8_000, 2, 60_000));
        runs.push(step(8_000, 3, 9_000));
        let figures = Figures::of(&runs);
        let line = &figures.sweep.lines[0];
        let repeats: Vec<usize> = line.steps.iter().map(|s| s.repeats.len()).collect();
        assert_eq!(repeats, [1, 1, 3, 3, 3]);
        assert_eq!(line.capacity(10_000.0), SloCapacity::Held(5_700.0));
        // Round 3 missed 4,000 (30 ms) yet met 8,000: its capacity stops at
        // 2,000; round 1 reaches 5,700; the steps run once count in every round.
        assert_eq!(
            line.capacity_range(10_000.0),
            Some((SloCapacity::Held(2_000.0), SloCapacity::Held(5_700.0)))
        );
    }

    /// A Poisson run is not a repeat of the uniform step at its rate: it
    /// stands beside it in its own table, with the ratio of the two p99s.
    #[test]
    fn poisson_runs_stand_beside_the_uniform_step() {
        let uniform = |p99_us: u64| sweep_run("proxy", "newconn", 2_800, 2_800.0, (p99_us, 300), 0);
        let mut poisson = uniform(6_000);
        poisson.parameters.arrivals = Some(Arrivals::Poisson);
        let runs = vec![uniform(2_000), uniform(3_000), uniform(2_500), poisson];
        let figures = Figures::of(&runs);
        let line = &figures.sweep.lines[0];
        assert_eq!(line.steps.len(), 1);
        assert_eq!(line.steps[0].runs, 3, "the Poisson run is not a repeat");
        assert_eq!(line.poisson.len(), 1);
        assert_eq!(line.poisson[0].uniform_runs, 3);
        let text = figures.markdown();
        assert!(
            text.contains("**Poisson arrivals near each knee**"),
            "{text}"
        );
        assert!(
            text.contains(
                "| proxy | new connection per request | 2,800 | yes | 2.50 ms (3 runs) | 6.00 ms | 2.40× |"
            ),
            "{text}"
        );
    }

    /// A step whose open-model runs reached loadgen's bound on requests in
    /// flight says so, with the requests that waited over its runs; a step
    /// that never reached it says nothing.
    #[test]
    fn the_in_flight_bound_reached_is_said() {
        let bounded = |rate: u64, waited: u64| {
            let mut run = sweep_run("proxy", "newconn", rate, rate as f64, (900, 900), 0);
            run.requests.in_flight = Some(runs::InFlight {
                bound: 50,
                max: if waited > 0 { 50 } else { 7 },
                waited,
            });
            run
        };
        let runs = vec![bounded(1_000, 0), bounded(2_000, 12), bounded(2_000, 3)];
        let figures = Figures::of(&runs);
        assert_eq!(figures.sweep.lines[0].steps[1].in_flight, Some((50, 15)));
        let text = figures.markdown();
        assert!(
            text.contains(
                "`proxy` new connection per request: at 2,000/s (15 waited) loadgen's bound \
                 of 50 requests in flight was reached"
            ),
            "{text}"
        );
    }

    /// The 10× rule: a step whose corrected p99 is at least 10 times its p99
    /// as sent had requests waiting to be sent; 9× does not count.
    #[test]
    fn sweep_waiting_steps_by_the_ten_times_rule() {
        let runs = vec![
            sweep_run("node-rr", "keepalive", 1_000, 1_000.0, (900, 100), 0),
            sweep_run("node-rr", "keepalive", 2_000, 1_990.0, (1_000, 100), 0),
            sweep_run("node-rr", "keepalive", 4_000, 3_000.0, (104_000, 3_000), 0),
        ];
        let figures = Figures::of(&runs);
        let line = &figures.sweep.lines[0];
        let waiting: Vec<f64> = line.waiting().map(|step| step.offered_per_s).collect();
        assert_eq!(waiting, [2_000.0, 4_000.0]);
        assert_eq!(line.steps[2].p99_sent_us, Some(3_000.0));
        // Without the uncorrected histogram (a closed loop), no claim.
        let mut closed = line.steps[2].clone();
        closed.p99_sent_us = None;
        assert!(!closed.waiting());
    }

    /// The sweep's section: the capacity at each objective per mode and load
    /// from hand-made steps, every step's row with its held mark, the 10×
    /// rule said where it applies, and the capacity at p99 ≤ 10 ms on the
    /// first screen.
    #[test]
    fn sweep_section_and_its_glance_line() {
        use crate::fixtures::sweep_run;
        let runs = vec![
            sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 290), 0),
            sweep_run("proxy", "keepalive", 2_000, 2_000.0, (900, 850), 0),
            sweep_run("proxy", "keepalive", 4_000, 3_990.0, (4_000, 900), 0),
            sweep_run("proxy", "keepalive", 8_000, 6_000.0, (90_000, 2_000), 0),
            sweep_run("handoff-socket", "keepalive", 1_000, 1_000.0, (200, 200), 0),
            sweep_run("handoff-socket", "keepalive", 2_000, 2_000.0, (300, 300), 0),
            sweep_run("handoff-socket", "keepalive", 4_000, 4_000.0, (400, 400), 0),
            sweep_run("handoff-socket", "keepalive", 8_000, 8_000.0, (500, 500), 0),
            sweep_run("proxy", "newconn", 500, 500.0, (2_000, 2_000), 0),
            sweep_run("proxy", "newconn", 1_000, 999.0, (30_000, 2_900), 3),
            // An error at the lightest step: no capacity at any objective.
            sweep_run("direct", "keepalive", 1_000, 1_000.0, (200, 200), 1),
            sweep_run("direct", "keepalive", 2_000, 2_000.0, (200, 200), 0),
        ];
        let text = Figures::of(&runs).markdown();
        let section = &text[text
            .find("## 1b. Latency against offered load")
            .expect("§1b")..];
        let section = &section[..section.find("\n## 2.").expect("§2 follows")];
        assert!(
            section.contains("at least 97 % of its requests were answered"),
            "{section}"
        );
        assert!(section.contains("One run per figure"), "{section}");
        assert!(section.contains("](latency-vs-rate.svg)"), "{section}");
        assert!(
            section.contains(
                "| `proxy` | 2,000/s | 4,000/s | < 500/s (the lightest step missed) | 500/s |"
            ),
            "{section}"
        );
        assert!(
            section.contains(
                "| `handoff-socket` | ≥ 8,000/s (not reached) | ≥ 8,000/s (not reached) | – | – |"
            ),
            "{section}"
        );
        assert!(
            section.contains("| proxy | 8,000 | 6,000 (75 %) | no | 100 µs | 90.00 ms ² |"),
            "{section}"
        );
        assert!(
            section.contains("| proxy | 1,000 | 999 (100 %) | no |"),
            "{section}"
        );
        assert!(
            section.contains(
                "`proxy` keep-alive: at 1 of its 4 steps (8,000/s offered) the corrected \
                 p99 was 10× or more the p99 as sent (at 8,000/s: 90.00 ms against 2.00 ms): \
                 the load generator's requests were waiting to be sent"
            ),
            "{section}"
        );
        assert!(
            section.contains("With keep-alive, the capacity at p99 ≤ 10 ms ran from 4,000/s (`proxy`) to 8,000/s (`handoff-socket`); `direct` missed it even at the lightest step, 1,000/s; the steps"),
            "{section}"
        );
        // One mode in the new-connection sweep: nothing says "every mode".
        assert!(
            section.contains(
                "With a new connection per request, `proxy` held p99 ≤ 10 ms up to 500/s."
            ),
            "{section}"
        );
        let lines = glance_lines(&text);
        assert_eq!(
            lines,
            [
                "- **Capacity at p99 ≤ 10 ms** (the highest offered rate held with every request answered, \
              open loop; keep-alive / new connection per request): `proxy` 4,000/s / 500/s, \
              `handoff-socket` ≥ 8,000/s (not reached) / –, `direct` < 1,000/s (the lightest \
              step missed) / –. [§1b](#1b-latency-against-offered-load)"
            ]
        );
        assert!(
            text.contains("- **Rounds per figure:** 1 in [§1b](#1b-latency-against-offered-load)"),
            "{text}"
        );
    }
}
