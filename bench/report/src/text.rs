//! The Markdown helpers every section shares: writing a line, a heading's
//! anchor and a link to it, a chart's image link, lists and ranges of
//! values, the figures over rounds, paired ratios and quoted percentiles,
//! failures, and the sentence that ranks modes only where every round
//! paired says so.

use runs::format::{count, count_f64, micros};
use runs::labels::{Load, Mode};

use crate::charts::Chart;
use crate::stats::{
    DISTURBED_OTHERS_SHARE, DISTURBED_STEAL_SHARE, Disturbance, Failures, Paired, PerRound, Quote,
    Spread, Verdict,
};

/// `w!(out, ...)`: writeln! into a String, which cannot fail.
macro_rules! w {
    ($out:expr) => {{
        use ::std::fmt::Write as _;
        let _ = writeln!($out);
    }};
    ($out:expr, $($arg:tt)*) => {{
        use ::std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
pub(crate) use w;

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces
/// as hyphens (`2. The bill at scale` → `2-the-bill-at-scale`).
pub fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `[§2](#2-the-bill-at-scale)`: a link to a numbered section.
pub fn section_link(heading: &str) -> String {
    let number = heading.split('.').next().unwrap_or(heading);
    format!("[§{number}](#{})", anchor(heading))
}

/// The image link of `chart`, a paragraph of its own.
pub fn image(out: &mut String, chart: &dyn Chart) {
    w!(out, "![{}]({})", chart.alt(), chart.file());
    w!(out);
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The values of a figure the runs agree on or not: `50`, `50 or 100`, `16, 50
/// or 100`; `N` without any.
pub fn one_of(values: &[usize]) -> String {
    let texts: Vec<String> = values.iter().map(|&value| count(value as u64)).collect();
    match texts.split_last() {
        None => "N".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// How an open loop's clients ran, from its runs: keep-alive over N
/// connections (the schedule dealt to them, wrk2's model), and a new
/// connection per request either over N connections (runs before loadgen's
/// open model) or each request on its own connection with at most N in
/// flight (the open model: `requests.in_flight`). `"50 connections"` when
/// every run had 50 and none ran the open model.
pub fn open_loop_clients(runs: &[&runs::Report]) -> String {
    let of = |keep: &dyn Fn(&runs::Report) -> bool| -> Vec<usize> {
        let mut values: Vec<usize> = runs
            .iter()
            .filter(|run| keep(run))
            .map(|run| run.parameters.connections)
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    };
    let open_model = of(&|run| run.requests.in_flight.is_some());
    if open_model.is_empty() {
        return format!("{} connections", one_of(&of(&|_| true)));
    }
    let dealt = of(&|run| run.requests.in_flight.is_none());
    let each = format!(
        "a new connection per request on its own connection, at most {} in flight",
        one_of(&open_model)
    );
    match dealt.is_empty() {
        true => each,
        false => format!("keep-alive over {} connections, {each}", one_of(&dealt)),
    }
}

/// The sentence that says how many rounds (the fewest and most runs behind
/// one figure) a section's figures come from; nothing without runs.
pub fn rounds(out: &mut String, rounds: Option<&(usize, usize)>) {
    let text = match rounds {
        None => return,
        Some((1, 1)) => {
            "One run per figure, no rounds: an order of magnitude, not a ranking.".to_owned()
        }
        Some((low, high)) if low == high => {
            format!("Each figure comes from {low} rounds: the median, and min–max beside it.")
        }
        Some((low, high)) => format!(
            "Each figure comes from {low} to {high} rounds: the median, and min–max beside it."
        ),
    };
    w!(out, "_{text}_");
    w!(out);
}

/// A section without runs says so.
pub fn nothing(out: &mut String, what: &str) {
    w!(out, "_No {what} runs in this folder._");
    w!(out);
}

/// The closing paragraph of a section: what the figures teach.
pub fn teach(out: &mut String, lessons: &[String]) {
    if lessons.is_empty() {
        return;
    }
    w!(out, "**What it shows.** {}", lessons.join(" "));
    w!(out);
}

/// A row of a ranking: a name, its figure over rounds, and the figure of
/// each round, to pair with the other rows'.
#[derive(Debug, Clone)]
pub struct Ranked<N> {
    /// The mode or variant.
    pub name: N,
    /// Its figure over rounds.
    pub spread: Spread,
    /// Its figure in each round.
    pub rounds: PerRound,
}

/// The ranking sentence of `rows` (one load) by their figure, higher first
/// when `higher_is_better`: the mode with the best median, then each other
/// mode by the ratios of the two paired by round ([`Paired`]): the modes it
/// beat in every round, those with no clear difference, those with one
/// round in common, those with none.
pub fn ranking<N: std::fmt::Display + PartialEq>(
    what: &str,
    rows: &[Ranked<N>],
    higher_is_better: bool,
    unit: impl Fn(f64) -> String,
) -> Option<String> {
    let best = rows.iter().max_by(|a, b| {
        let order = a.spread.median.total_cmp(&b.spread.median);
        if higher_is_better {
            order
        } else {
            order.reverse()
        }
    })?;
    let others: Vec<&Ranked<N>> = rows.iter().filter(|row| row.name != best.name).collect();
    if others.is_empty() {
        return None;
    }
    let (better, worse) = if higher_is_better {
        (Verdict::Above, Verdict::Below)
    } else {
        (Verdict::Below, Verdict::Above)
    };
    let named = |wanted: Option<Verdict>| -> Vec<String> {
        others
            .iter()
            .filter(|row| {
                Paired::of(&best.rounds, &row.rounds).map(|paired| paired.verdict()) == wanted
            })
            .map(|row| format!("`{}`", row.name))
            .collect()
    };
    let mut text = format!(
        "{what}, `{}` had the {} median ({})",
        best.name,
        if higher_is_better {
            "highest"
        } else {
            "lowest"
        },
        unit(best.spread.median)
    );
    let side = if higher_is_better { "above" } else { "below" };
    let parts = [
        (
            named(Some(better)),
            format!("{side} {{}} in every round (paired by round)"),
        ),
        (
            named(Some(worse)),
            "yet the other way round against {} in every round paired".to_owned(),
        ),
        (
            named(Some(Verdict::NoClearDifference)),
            "no clear difference from {} (the ratios paired by round lie on both sides of 1)"
                .to_owned(),
        ),
        (
            named(Some(Verdict::OnePair)),
            "against {} one round only, no ranking".to_owned(),
        ),
        (
            named(None),
            "{} ran in no round of its own, no ranking".to_owned(),
        ),
    ];
    for (names, template) in parts {
        if !names.is_empty() {
            text.push_str("; ");
            text.push_str(&template.replace("{}", &and_list(&names)));
        }
    }
    text.push('.');
    Some(text)
}

/// A paired ratio: `0.91× (0.85–0.92, 5 rounds, clearly below 1)`, or
/// `0.91× (one round)`.
pub fn paired_ratio(paired: &Paired) -> String {
    if paired.pairs < 2 {
        return format!("{:.2}× (one round)", paired.median);
    }
    format!(
        "{:.2}× ({:.2}–{:.2}, {} rounds, {})",
        paired.median,
        paired.min,
        paired.max,
        paired.pairs,
        paired.verdict().text()
    )
}

/// A quoted percentile: `1.23 ms (n = 5,000)`, or `max of 600: 3.40 ms`
/// when the samples do not support it (see [`Quote`]).
pub fn quote(quote: Quote) -> String {
    match quote {
        Quote::Percentile { us, samples } => format!("{} (n = {})", micros(us), count(samples)),
        Quote::MaxOf { us, samples } => format!("max of {}: {}", count(samples), micros(us)),
    }
}

/// A quoted percentile in a table, whose samples have a column of their
/// own: `1.23 ms`, `max of 600: 3.40 ms`, or `–` without one.
pub fn opt_quote(quoted: Option<Quote>) -> String {
    match quoted {
        None => "–".to_owned(),
        Some(Quote::Percentile { us, .. }) => micros(us),
        Some(quoted) => quote(quoted),
    }
}

/// A latency over rounds: `1.97 ms (1.66 ms–2.23 ms)`, or `–` without one.
pub fn spread_micros(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{} ({}–{})",
            micros(spread.median),
            micros(spread.min),
            micros(spread.max)
        ),
        Some(spread) => micros(spread.median),
    }
}

/// A latency, or `–` without one.
pub fn opt_micros(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), micros)
}

/// A rate over rounds: `1,200 (1,100–1,300)`.
pub fn spread_rate(spread: &Spread) -> String {
    if spread.count > 1 {
        format!(
            "{} ({}–{})",
            count_f64(spread.median),
            count_f64(spread.min),
            count_f64(spread.max)
        )
    } else {
        count_f64(spread.median)
    }
}

/// The requests not served, each kind with its share of those due:
/// `0`, `3 failed (0.01 %)`, `131,854 unanswered (67.62 %)`, or both.
pub fn failures(failures: &Failures) -> String {
    if failures.none() {
        return "0".to_owned();
    }
    let share = |n: u64| 100.0 * n as f64 / failures.due.max(1) as f64;
    let mut parts = Vec::new();
    if failures.failed > 0 {
        parts.push(format!(
            "{} failed ({:.2} %)",
            count(failures.failed),
            share(failures.failed)
        ));
    }
    if failures.unanswered > 0 {
        parts.push(format!(
            "{} unanswered ({:.2} %)",
            count(failures.unanswered),
            share(failures.unanswered)
        ));
    }
    parts.join(", ")
}

/// The requests not served, counts only: `0`, `39`, `5 unanswered`, `39
/// failed + 5 unanswered`.
pub fn failures_count(failures: &Failures) -> String {
    match (failures.failed, failures.unanswered) {
        (failed, 0) => count(failed),
        (0, unanswered) => format!("{} unanswered", count(unanswered)),
        (failed, unanswered) => format!(
            "{} failed + {} unanswered",
            count(failed),
            count(unanswered)
        ),
    }
}

/// The mark of a table row one of whose rounds was disturbed (see
/// [`crate::stats::disturbance`]).
pub const DISTURBED_MARK: &str = " †";

/// The mark of a row if any of its rounds was disturbed, else nothing.
pub fn disturbed_mark(disturbed: &[(Option<u32>, Disturbance)]) -> &'static str {
    if disturbed.is_empty() {
        ""
    } else {
        DISTURBED_MARK
    }
}

/// A row that may carry [`DISTURBED_MARK`]: how the footnote names it, and
/// its disturbed rounds.
pub type Marked<'a> = (String, &'a [(Option<u32>, Disturbance)]);

/// The footnote of [`DISTURBED_MARK`]: the rule, then each marked row's
/// disturbed rounds and what took the machine; nothing if no row has one.
pub fn disturbed_note(out: &mut String, rows: &[Marked<'_>]) {
    let listed: Vec<String> = rows
        .iter()
        .filter(|(_, disturbed)| !disturbed.is_empty())
        .map(|(name, disturbed)| {
            let rounds: Vec<String> = disturbed
                .iter()
                .map(|(round, disturbance)| {
                    let round = round.map_or("a run".to_owned(), |round| format!("round {round}"));
                    let others = disturbance.others.map_or(String::new(), |others| {
                        format!(", others {:.0} %", others * 100.0)
                    });
                    format!("{round} (steal {:.0} %{others})", disturbance.steal * 100.0)
                })
                .collect();
            format!("{name} {}", and_list(&rounds))
        })
        .collect();
    if listed.is_empty() {
        return;
    }
    w!(
        out,
        "{} A disturbed round: the server and loadgen got clearly less CPU than the machine \
         had (steal above {:.0} % of the window's CPU, or other processes' busy time above \
         {:.0} %); marked, kept in every median and range: {}.",
        DISTURBED_MARK.trim(),
        DISTURBED_STEAL_SHARE * 100.0,
        DISTURBED_OTHERS_SHARE * 100.0,
        listed.join("; ")
    );
    w!(out);
}

/// How a table names `load`.
pub fn load_name(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "keep-alive",
        Load::NewConn => "new connection per request",
        Load::OpenLoop => "open loop",
    }
}

/// How a sentence about `load` opens.
pub fn with_load(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "With keep-alive",
        Load::NewConn => "With a new connection per request",
        Load::OpenLoop => "In the open loop",
    }
}

/// What `mode` is called when it is the baseline.
pub fn baseline_name(mode: Mode) -> String {
    match mode {
        Mode::Ceiling => "`ceiling` (one worker's own port)".to_owned(),
        mode => format!("`{mode}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clients of an open loop: the old model says its connections;
    /// the open model says keep-alive's connections and the bound apart.
    #[test]
    fn open_loop_clients_say_each_model() {
        let run = |load: &str, connections: usize, bound: bool| {
            let mut run = crate::fixtures::sweep_run("proxy", load, 1_000, 1_000.0, (300, 300), 0);
            run.parameters.connections = connections;
            run.requests.in_flight = bound.then_some(runs::InFlight {
                bound: connections,
                max: 3,
                waited: 0,
            });
            run
        };
        let old = [run("keepalive", 50, false), run("newconn", 50, false)];
        assert_eq!(
            open_loop_clients(&old.iter().collect::<Vec<_>>()),
            "50 connections"
        );
        let new = [run("keepalive", 50, false), run("newconn", 1_000, true)];
        assert_eq!(
            open_loop_clients(&new.iter().collect::<Vec<_>>()),
            "keep-alive over 50 connections, a new connection per request on its own \
             connection, at most 1,000 in flight"
        );
    }

    fn spread(values: &[f64]) -> Spread {
        Spread::of(values.iter().copied()).expect("values")
    }

    fn ranked(mode: Mode, values: &[f64]) -> Ranked<Mode> {
        Ranked {
            name: mode,
            spread: spread(values),
            rounds: (1..).zip(values.iter().copied()).collect(),
        }
    }

    /// "What it shows" ranks by the ratios paired by round: a mode beaten in
    /// every round is named so even when the ranges overlap; ratios on both
    /// sides of 1 are no clear difference; one round is no ranking.
    #[test]
    fn ranks_by_paired_rounds() {
        let rows = [
            ranked(Mode::Proxy, &[64e3, 71e3, 72e3]),
            // Below the listener in every round, though the ranges overlap.
            ranked(Mode::HandoffSocket, &[114e3, 180e3, 146e3]),
            ranked(Mode::HandoffListener, &[126e3, 192e3, 215e3]),
            ranked(Mode::HandoffReuseport, &[130e3, 150e3, 220e3]),
        ];
        let text =
            ranking("With keep-alive", &rows, true, |v| format!("{v:.0}/s")).expect("a ranking");
        assert_eq!(
            text,
            "With keep-alive, `handoff-listener` had the highest median (192000/s); above \
             `proxy` and `handoff-socket` in every round (paired by round); no clear \
             difference from `handoff-reuseport` (the ratios paired by round lie on both \
             sides of 1)."
        );
        let single = [ranked(Mode::Proxy, &[1.0]), ranked(Mode::Direct, &[2.0])];
        assert!(
            ranking("x", &single, true, |v| format!("{v}"))
                .expect("a sentence")
                .contains("against `proxy` one round only, no ranking")
        );
    }

    /// Paired ratios and quoted percentiles as the report writes them.
    #[test]
    fn ratios_and_quotes() {
        let paired = Paired {
            median: 0.9,
            min: 0.85,
            max: 0.92,
            pairs: 5,
        };
        assert_eq!(
            paired_ratio(&paired),
            "0.90× (0.85–0.92, 5 rounds, clearly below 1)"
        );
        assert_eq!(
            quote(Quote::MaxOf {
                us: 3_400.0,
                samples: 600
            }),
            "max of 600: 3.40 ms"
        );
        assert_eq!(
            failures(&Failures {
                failed: 3,
                unanswered: 297,
                due: 1_000
            }),
            "3 failed (0.30 %), 297 unanswered (29.70 %)"
        );
        assert_eq!(failures(&Failures::default()), "0");
        assert_eq!(
            failures_count(&Failures {
                failed: 0,
                unanswered: 5,
                due: 9
            }),
            "5 unanswered"
        );
    }
}
