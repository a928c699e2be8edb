//! What a receiver that ignores MSG_CTRUNC loses at its fd limit: the figure
//! behind "why the channel does not use the `sendfd` crate" (README,
//! Dependencies), and lesson 9's (the experiment is `suite::lost_fds`).
//!
//! The experiment lowers its own process's RLIMIT_NOFILE and counts its
//! free fds: it runs in a child, this test binary run again with only this
//! test selected and `suite::lost_fds::CHILD_ENV` set.

use std::process::Command;

use suite::lost_fds::{self, BATCH_FDS, Outcome, ROOM_FDS};

/// This test's name, as the harness selects it (`--exact`).
const TEST_NAME: &str = "a_naive_receiver_loses_fds_silently_ours_refuses_the_batch";

/// At RLIMIT_NOFILE's edge, a batch of 16 fds with room for 4: `sendfd`
/// reports 4 fds and no error, and 12 sockets are gone (their peers read
/// end of file); the channel's receive refuses the batch as truncated,
/// naming its 16 connections, closes the fds that came, and its sender,
/// which keeps its copies until acknowledged, loses none.
#[test]
fn a_naive_receiver_loses_fds_silently_ours_refuses_the_batch() {
    if lost_fds::is_child() {
        lost_fds::child().unwrap_or_else(|err| panic!("{err:#}"));
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command.args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"]);
    let outcome = lost_fds::run_in_child(command).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(
        outcome,
        Outcome {
            sent: BATCH_FDS,
            room: ROOM_FDS,
            sendfd_received: ROOM_FDS,
            sendfd_error: None,
            sendfd_lost: BATCH_FDS - ROOM_FDS,
            channel_room_after: ROOM_FDS,
            channel_returned: 0,
            channel_result: "ControlTruncated".to_owned(),
            channel_refused: Some((1, BATCH_FDS as u64)),
            channel_lost: 0,
        }
    );
}
