//! The Markdown helpers every section shares: writing a line, a heading's
//! anchor and a link to it, a chart's image link, lists and ranges of
//! values, the figures over rounds, and the sentence that ranks modes only
//! where their rounds do not overlap.

use runs::format::{count, count_f64, micros};
use runs::labels::{Load, Mode};

use crate::charts::Chart;
use crate::stats::{Order, Spread};

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
/// as hyphens (`2. The fd bill` → `2-the-fd-bill`).
pub fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `[§2](#2-the-fd-bill)`: a link to a numbered section.
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

/// The ranking sentence of `rows` (one load) by `figure`, higher first: the
/// top mode, the modes clearly below it and those with no clear difference.
pub fn ranking<N: std::fmt::Display + PartialEq, T>(
    what: &str,
    rows: &[(N, Spread, T)],
    higher_is_better: bool,
    unit: impl Fn(f64) -> String,
) -> Option<String> {
    let best = rows.iter().max_by(|a, b| {
        let order = a.1.median.total_cmp(&b.1.median);
        if higher_is_better {
            order
        } else {
            order.reverse()
        }
    })?;
    let others: Vec<&(N, Spread, T)> = rows.iter().filter(|row| row.0 != best.0).collect();
    if others.is_empty() {
        return None;
    }
    let named = |order: Order| -> Vec<String> {
        others
            .iter()
            .filter(|row| Order::of(&best.1, &row.1) == order)
            .map(|row| format!("`{}`", row.0))
            .collect()
    };
    let (beaten, beaten_order) = if higher_is_better {
        (named(Order::Above), "above")
    } else {
        (named(Order::Below), "below")
    };
    let overlap = named(Order::Overlap);
    let one_round = named(Order::OneRound);
    let mut text = format!(
        "{what}, `{}` had the {} median ({})",
        best.0,
        if higher_is_better {
            "highest"
        } else {
            "lowest"
        },
        unit(best.1.median)
    );
    if !beaten.is_empty() {
        text.push_str(&format!(
            "; every round {beaten_order} every round of {}",
            and_list(&beaten)
        ));
    }
    if !overlap.is_empty() {
        text.push_str(&format!(
            "; no clear difference from {} (the rounds' ranges overlap)",
            and_list(&overlap)
        ));
    }
    if !one_round.is_empty() {
        text.push_str(&format!(
            "; against {} one round only, no ranking",
            and_list(&one_round)
        ));
    }
    text.push('.');
    Some(text)
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

/// Failed requests, and their share of `requests` when there are any.
pub fn errors(failed: u64, requests: u64) -> String {
    if failed == 0 {
        "0".to_owned()
    } else {
        format!(
            "{} ({:.2} %)",
            count(failed),
            100.0 * failed as f64 / requests.max(1) as f64
        )
    }
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

    fn spread(values: &[f64]) -> Spread {
        Spread::of(values.iter().copied()).expect("values")
    }

    /// "What it shows" ranks only modes whose rounds do not overlap, and says
    /// "no clear difference" for the others.
    #[test]
    fn ranks_only_what_does_not_overlap() {
        let rows = [
            (Mode::Proxy, spread(&[64e3, 71e3, 72e3]), ()),
            (Mode::HandoffSocket, spread(&[114e3, 131e3, 146e3]), ()),
            (Mode::HandoffListener, spread(&[126e3, 192e3, 215e3]), ()),
        ];
        let text =
            ranking("With keep-alive", &rows, true, |v| format!("{v:.0}/s")).expect("a ranking");
        assert_eq!(
            text,
            "With keep-alive, `handoff-listener` had the highest median (192000/s); every \
             round above every round of `proxy`; no clear difference from `handoff-socket` \
             (the rounds' ranges overlap)."
        );
        let single = [
            (Mode::Proxy, spread(&[1.0]), ()),
            (Mode::Direct, spread(&[2.0]), ()),
        ];
        assert!(
            ranking("x", &single, true, |v| format!("{v}"))
                .expect("a sentence")
                .contains("one round only, no ranking")
        );
    }
}
