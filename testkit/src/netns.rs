//! A network namespace of the test's own: its own loopback, its own
//! sysctls (`ip_local_port_range`, `somaxconn`), its own counters, nothing
//! shared with the machine or with other tests. The namespace is
//! [`launch::netns`]'s, the one the upgrade driver runs `overlap-migrate`
//! in; this adds a test's way of skipping where none can be made.

/// Runs `body` on a thread of its own in a new network namespace, with its
/// loopback interface up and `sysctls` (paths under `/proc/sys/`, values)
/// written there. `None`, and one line on stderr saying why, where the test
/// may not make a namespace (it needs CAP_SYS_ADMIN: root, or a user
/// namespace of its own): the caller skips its test, and says so.
///
/// # Panics
/// If `body` panics (the panic is passed on), or the namespace is made but
/// cannot be set up.
pub fn in_new_netns<T: Send>(
    sysctls: &[(&str, &str)],
    body: impl FnOnce() -> T + Send,
) -> Option<T> {
    match launch::netns::in_new_netns(sysctls, body) {
        Ok(result) => Some(result),
        Err(err @ launch::netns::NetnsError::Unshare(_)) => {
            eprintln!("skipped: {err}");
            None
        }
        Err(err) => panic!("{err}"),
    }
}
