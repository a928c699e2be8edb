//! Lesson 9, a batch at the fd limit: what a receiver learns when the
//! kernel drops fds it has no room for. First the experiment of
//! [`crate::lost_fds`] in a child process of its own (so that this
//! process's limit is untouched): a batch of 16 fds to a receiver with
//! room for 4, read with the `sendfd` crate and with the channel. Then the
//! real `handoff-socket` master with one of its workers at its fd limit:
//! the worker rejects what arrives without its fds, and the master gives
//! those connections to the other worker.

use std::process::Command;

use anyhow::Context;

use super::{Lab, Verdict, WORKERS, lines_from};
use crate::lost_fds::{self, BATCH_FDS, Outcome, ROOM_FDS};

/// Clients of the load on the master, each opening a connection per
/// request, all at once: a wake-up of the master accepts several.
const CLIENTS: usize = 16;
/// The worker's log line of a handoff that arrived without its fds, with
/// `first=` and `last=` (the connections it rejects).
const REFUSED: &str = "handoff arrived without its fds";

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    println!(
        "lesson 9: a batch of {BATCH_FDS} fds in one sendmsg to a receiver with room for {ROOM_FDS} (a child process whose RLIMIT_NOFILE leaves {ROOM_FDS} fd numbers free)"
    );
    let exe = std::env::current_exe().context("this program's path")?;
    let mut child = Command::new(exe);
    child.args(["lesson", "9"]);
    let outcome = lost_fds::run_in_child(child)?;
    print_outcome(&outcome);
    let mut wrong = judge_outcome(&outcome);

    let duration = if lab.quick { "1s" } else { "3s" };
    println!();
    println!(
        "  the handoff-socket master, {WORKERS} workers, one at its fd limit (prlimit: no fd number free); {CLIENTS} clients, a new connection per request, for {duration}"
    );
    println!(
        "  (loadgen --connections {CLIENTS} --new-conn --duration {duration} --warmup 0 --timeout 2s)"
    );
    let log = lab.path("log");
    let logged = lines_from(&log, 0).len();
    let mut server = lab.serve(cluster::Mode::Handoff(cluster::Pass::Socket), WORKERS, &[])?;
    let full = server.first_worker();
    lost_fds::leave_room(full, 0).context("lower the worker's RLIMIT_NOFILE")?;
    let args: Vec<String> = [
        "--target",
        &format!("http://127.0.0.1:{}/", server.port()),
        "--connections",
        &CLIENTS.to_string(),
        "--new-conn",
        "--duration",
        duration,
        "--warmup",
        "0",
        "--timeout",
        "2s",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let report = lab.load("handoff-socket", server.master(), &args)?;
    let full_alive = cluster::procfs::read(full).is_ok();
    server.stop()?;
    // Each rejection: the connections `first..=last` of one message.
    let refused: Vec<u64> = lines_from(&log, logged)
        .iter()
        .filter(|line| line.contains(REFUSED))
        .filter_map(|line| Some(field(line, "last=")? - field(line, "first=")? + 1))
        .collect();
    let rejected: u64 = refused.iter().sum();
    let largest = refused.iter().max().copied().unwrap_or(0);
    let by_full = report
        .workers
        .by_pid
        .iter()
        .find(|worker| worker.pid == full)
        .map_or(0, |worker| worker.requests);
    let failed = report.requests.failed;
    println!(
        "    handed to the worker at its limit and rejected: {rejected} connections in {} messages (the largest {largest})",
        refused.len()
    );
    println!(
        "    answered {} (by the worker at its limit {by_full}), failed {failed} ({})",
        runs::format::count(report.requests.ok),
        crate::loadgen::failures(&report, &[])
    );
    if rejected == 0 {
        wrong.push("the worker at its limit rejected no handoff".to_owned());
    }
    if failed > 0 {
        wrong.push(format!("{failed} requests failed"));
    }
    if by_full > 0 {
        wrong.push(format!(
            "the worker at its limit answered {by_full} requests"
        ));
    }
    if !full_alive {
        wrong.push("the worker at its limit died".to_owned());
    }
    Ok(Verdict {
        wrong,
        ok: format!(
            "sendfd took {ROOM_FDS} of {BATCH_FDS} fds without an error and {} sockets were gone; the channel refused the batch by name and lost none; the master gave the {rejected} connections its worker at the limit rejected to the other worker, and no request failed",
            BATCH_FDS - ROOM_FDS
        ),
    })
}

/// The experiment's table: what each receiver got, said, and lost.
fn print_outcome(outcome: &Outcome) {
    let sent = outcome.sent;
    println!(
        "  {:<34} {:>12}  {:<40} sockets gone (their peers read end of file)",
        "receiver", "fds returned", "error"
    );
    println!(
        "  {:<34} {:>12}  {:<40} {} (its sender kept none: nothing told it to)",
        "sendfd's recv_with_fd",
        format!("{} of {sent}", outcome.sendfd_received),
        outcome.sendfd_error.as_deref().unwrap_or("none"),
        outcome.sendfd_lost
    );
    let refused = match outcome.channel_refused {
        Some((first, last)) => format!("{}: connections {first}–{last}", outcome.channel_result),
        None => outcome.channel_result.clone(),
    };
    println!(
        "  {:<34} {:>12}  {:<40} {} (its sender keeps its copies until acknowledged)",
        "the channel's Channel::try_recv",
        format!("{} of {sent}", outcome.channel_returned),
        refused,
        outcome.channel_lost
    );
    println!(
        "  free fd numbers after the channel's receive: {} of {} (it closed the fds that came with the batch it refused)",
        outcome.channel_room_after, outcome.room
    );
}

/// What differs in the experiment from what LESSONS.md expects.
fn judge_outcome(outcome: &Outcome) -> Vec<String> {
    let mut wrong = Vec::new();
    let lost = BATCH_FDS - ROOM_FDS;
    if outcome.sendfd_received != ROOM_FDS || outcome.sendfd_error.is_some() {
        wrong.push(format!(
            "sendfd returned {} fds (error: {:?}), not {ROOM_FDS} without an error",
            outcome.sendfd_received, outcome.sendfd_error
        ));
    }
    if outcome.sendfd_lost != lost {
        wrong.push(format!(
            "{} of sendfd's sockets were gone, not {lost}",
            outcome.sendfd_lost
        ));
    }
    if outcome.channel_refused != Some((1, BATCH_FDS as u64)) || outcome.channel_returned != 0 {
        wrong.push(format!(
            "the channel's receive said {} ({:?}, {} fds), not ControlTruncated for connections 1–{BATCH_FDS}",
            outcome.channel_result, outcome.channel_refused, outcome.channel_returned
        ));
    }
    if outcome.channel_lost != 0 || outcome.channel_room_after != ROOM_FDS {
        wrong.push(format!(
            "the channel's batch lost {} sockets and left {} fd numbers free, not 0 and {ROOM_FDS}",
            outcome.channel_lost, outcome.channel_room_after
        ));
    }
    wrong
}

/// The number after `name` (`first=3`) in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let (_, after) = line.rsplit_once(name)?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
