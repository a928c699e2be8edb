//! Issue 25: payloads through every `handoff --pass`: the worker's `?bytes=N`
//! answer, a counted request body, and their bounds, as `testkit`'s
//! `payload` bodies check them. Their own file, so that they run once per
//! `--pass` beside `cluster.rs` without touching it. The master hands the
//! socket over and never sees a byte, so one run per pass is enough (the
//! `--accept` strategies only change who accepts).

use testkit::Cluster;

/// The binary under test, built by cargo for this test.
const HANDOFF: &str = env!("CARGO_BIN_EXE_handoff");

/// Writes one module of tests per `--pass`: `socket::bytes_answers_that_many`, ...
macro_rules! pass_tests {
    ($($name:ident => $pass:literal;)*) => {$(
        /// The payload tests of `handoff --pass` this module's value.
        mod $name {
            use super::*;

            /// Starts `handoff --workers 2 --pass <pass>` on a free loopback port.
            fn start() -> Cluster {
                testkit::start_two_workers(HANDOFF, &["--pass", $pass], concat!("handoff-", $pass))
            }

            /// `?bytes=1048576` answers exactly that many bytes, twice on one connection; `?bytes=0` is empty; `work_us` still applies.
            #[test]
            fn bytes_answers_that_many() {
                testkit::assert_bytes_answers_that_many(&start());
            }

            /// A 64 KiB POST body (content-length, then chunked) is counted in `x-received-bytes`.
            #[test]
            fn request_body_is_counted() {
                testkit::assert_request_body_is_counted(&start());
            }

            /// `?bytes=` over 64 MiB is a 400; a body over it a 413 that closes the connection, announced or chunked.
            #[test]
            fn payload_bounds() {
                testkit::assert_payload_bounds(&start());
            }
        }
    )*};
}

pass_tests! {
    socket => "socket";
    listener => "listener";
    reuseport => "reuseport";
}
