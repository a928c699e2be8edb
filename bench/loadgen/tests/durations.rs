//! One duration syntax for every binary of the suite (issue 9: `loadgen
//! --duration 10` was accepted as seconds while `handoff --header-timeout 10`
//! was refused): the same value is accepted or refused alike, with the same
//! one-line message.

mod common;

use std::time::Duration;

use testkit::{run_expect_exit, workspace_bin};

/// How long a binary given bad usage may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `bin args` (a cluster binary; `None`: loadgen) and returns its stderr's
/// message after `<bin>: `, asserting exit code 2 and one line.
fn usage_error(bin: Option<&str>, args: &[&str]) -> String {
    let (status, stderr) = match bin {
        Some(bin) => {
            run_expect_exit(bin, args, EXIT_TIMEOUT).unwrap_or_else(|err| panic!("{err:#}"))
        }
        None => {
            let run = common::loadgen(args);
            (run.status, run.stderr)
        }
    };
    assert_eq!(
        status.code(),
        Some(2),
        "{bin:?} {args:?}: {status}\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    let (_, message) = lines[0]
        .split_once(": ")
        .unwrap_or_else(|| panic!("'<binary>: message': {stderr:?}"));
    message.to_owned()
}

/// A bare number is refused by `loadgen --duration`, `proxy --header-timeout`
/// and `handoff --header-timeout` with the same message but the flag's name.
#[test]
fn a_bare_number_is_refused_alike_by_every_binary() {
    let proxy = workspace_bin("proxy").expect("build proxy");
    let handoff = workspace_bin("handoff").expect("build handoff");
    let messages = [
        usage_error(
            None,
            &["--target", "http://127.0.0.1:9/", "--duration", "10"],
        )
        .replace("--duration", "FLAG"),
        usage_error(proxy.to_str(), &["--header-timeout", "10"])
            .replace("--header-timeout", "FLAG"),
        usage_error(handoff.to_str(), &["--header-timeout", "10"])
            .replace("--header-timeout", "FLAG"),
    ];
    assert!(messages[0].contains("time unit needed"), "{}", messages[0]);
    assert!(
        messages.iter().all(|message| *message == messages[0]),
        "{messages:#?}"
    );
}
