//! The kernel's own count of TCP sockets: the `TCP:` line of
//! `/proc/net/sockstat` (`net/ipv4/proc.c`, `sockstat_seq_show`). Two of its
//! counters belong to a network namespace, three to the whole machine:
//!
//! - `inuse`: the namespace's TCP sockets in the kernel's hash tables
//!   (listening, connecting, established, closing; not TIME_WAIT);
//! - `tw`: the namespace's connections in TIME_WAIT;
//! - `orphan`: sockets no fd refers to any more that the kernel is still
//!   closing, on the whole machine;
//! - `alloc`: TCP sockets allocated, on the whole machine (every namespace's,
//!   TIME_WAIT not included);
//! - `mem`: the pages the machine's TCP buffers use.
//!
//! Measured here: `unshare --net cat /proc/net/sockstat` reads `inuse 0 …
//! tw 0` and the same `alloc` and `mem` as the machine outside.
//!
//! `/proc/net` is `/proc/self/net`, the namespace of the process's *main*
//! thread; a lesson that moved one thread into a namespace of its own
//! (`launch::netns::in_new_netns`) reads `/proc/thread-self/net/sockstat`,
//! the namespace of the thread that reads.

/// The `TCP:` line of `/proc/net/sockstat` at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    /// TCP sockets in use in this namespace (TIME_WAIT not included).
    pub inuse: i64,
    /// Orphaned sockets, machine-wide.
    pub orphan: i64,
    /// Connections in TIME_WAIT in this namespace.
    pub tw: i64,
    /// TCP sockets allocated, machine-wide.
    pub alloc: i64,
    /// Pages of TCP buffer memory, machine-wide.
    pub mem: i64,
}

/// The file, as the calling thread's network namespace sees it.
pub const PATH: &str = "/proc/thread-self/net/sockstat";

/// The calling thread's namespace's `TCP:` line now; `None` if the file
/// cannot be read or has no such line.
pub fn read() -> Option<Tcp> {
    parse(&std::fs::read_to_string(PATH).ok()?)
}

/// The `TCP:` line of sockstat's `text`: `TCP: inuse 3 orphan 0 tw 0 alloc
/// 103 mem 51`.
pub fn parse(text: &str) -> Option<Tcp> {
    let line = text.lines().find_map(|line| line.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| -> Option<i64> {
        let at = words.iter().position(|word| *word == name)?;
        words.get(at + 1)?.parse().ok()
    };
    Some(Tcp {
        inuse: field("inuse")?,
        orphan: field("orphan")?,
        tw: field("tw")?,
        alloc: field("alloc")?,
        mem: field("mem")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tcp_line() {
        let text = "sockets: used 125\nTCP: inuse 102 orphan 1 tw 56046 alloc 104 mem 51\nUDP: inuse 0 mem 0\n";
        assert_eq!(
            parse(text),
            Some(Tcp {
                inuse: 102,
                orphan: 1,
                tw: 56046,
                alloc: 104,
                mem: 51
            })
        );
        assert_eq!(parse("sockets: used 1\nUDP: inuse 0 mem 0\n"), None);
        assert_eq!(parse("TCP: inuse 1 orphan 0\n"), None);
    }

    #[test]
    fn reads_this_threads_namespace() {
        let now = read().expect("/proc/thread-self/net/sockstat has a TCP line");
        assert!(now.inuse >= 0 && now.alloc >= 0, "{now:?}");
    }
}
