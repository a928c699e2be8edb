//! What a results folder holds beside its `runs/*.json`, written by the
//! harness that made the runs and read by the renderer: how each peer ran
//! ([`PEERS_FILE`]) and what each server answered to one request
//! ([`ANSWERS_FILE`]). Both are optional: a folder written before them has
//! neither, and the report says so rather than guess.
//!
//! `peers.json`:
//!
//! ```json
//! {"peers": [{"name": "nginx", "version": "1.24.0", "processes": 1, "workers": 2,
//!   "settings": ["master_process off", "worker_processes 1"],
//!   "config": "peers/nginx.conf"}]}
//! ```
//!
//! `answers.json`:
//!
//! ```json
//! {"answers": [{"name": "direct", "status_line": "HTTP/1.1 200 OK",
//!   "headers": {"content_type": "text/plain", "content_length": 31,
//!     "connection": null, "x_worker_pid": 4242},
//!   "body_len": 31}]}
//! ```

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::labels::Mode;

/// The file, beside `runs/`, that says how each peer ran.
pub const PEERS_FILE: &str = "peers.json";

/// The file, beside `runs/`, that holds each server's answer to one request.
pub const ANSWERS_FILE: &str = "answers.json";

/// `peers.json`: one entry per peer the harness started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersFile {
    /// The peers, in the order they ran.
    pub peers: Vec<PeerRun>,
}

/// How one peer ran: what a reader needs to run it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRun {
    /// The peer, as the runs' `mode` label names it.
    pub name: Mode,
    /// Its version, as it prints it (`nginx -v`, `node --version`).
    pub version: String,
    /// Its own processes (nginx with `master_process off`: 1), not counting
    /// the workers behind it that are ours.
    pub processes: u32,
    /// The workers that served the requests (nginx: the proxy cluster's
    /// behind it; Node.js: the cluster's).
    pub workers: u32,
    /// The settings that shape how it shares the port, one a line as its
    /// config spells them (`master_process off`, `schedulingPolicy
    /// SCHED_RR`).
    pub settings: Vec<String>,
    /// The path of its exact config, kept inside the results folder
    /// (`peers/nginx.conf`); `null` for a peer without a config file.
    pub config: Option<String>,
}

/// `answers.json`: one entry per server (mode or peer), its answer to the
/// same request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswersFile {
    /// The answers, one per server.
    pub answers: Vec<Answer>,
}

/// What one server answered to one `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The server, as the runs' `mode` label names it.
    pub name: Mode,
    /// The status line as received (`HTTP/1.1 200 OK`).
    pub status_line: String,
    /// The headers that matter to a client.
    pub headers: AnswerHeaders,
    /// The body's length, bytes.
    pub body_len: u64,
}

/// The headers of an answer that a client's behaviour depends on; `null`
/// when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerHeaders {
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-length`.
    pub content_length: Option<u64>,
    /// `connection` (`keep-alive`, `close`).
    pub connection: Option<String>,
    /// `x-worker-pid`: the worker that answered; `null` when absent.
    pub x_worker_pid: Option<u32>,
}

impl Answer {
    /// The body's length less the digits of the worker's pid, which the body
    /// names (`handled by child, pid is 4242\n`): pids of 4 and 5 digits
    /// are the same answer.
    pub fn body_len_without_pid(&self) -> u64 {
        self.body_len.saturating_sub(self.pid_digits())
    }

    /// `content-length`, less the pid's digits likewise.
    pub fn content_length_without_pid(&self) -> Option<u64> {
        self.headers
            .content_length
            .map(|length| length.saturating_sub(self.pid_digits()))
    }

    /// What `connection` means to a client: on an HTTP/1.1 answer
    /// `keep-alive` is the default (RFC 9112, 9.3), so saying it (Node.js
    /// does, on every answer it keeps open) and saying nothing are the same
    /// answer; any other value as spelled, lowercased.
    pub fn connection_meaning(&self) -> Option<String> {
        let value = self
            .headers
            .connection
            .as_ref()?
            .trim()
            .to_ascii_lowercase();
        let http_1_1 = self.status_line.starts_with("HTTP/1.1 ");
        (!(http_1_1 && value == "keep-alive")).then_some(value)
    }

    fn pid_digits(&self) -> u64 {
        self.headers
            .x_worker_pid
            .map_or(0, |pid| pid.to_string().len() as u64)
    }

    /// How this answer differs from `baseline`'s, one phrase per field
    /// (`content-type text/html, not text/plain`); empty if it is the same.
    pub fn differences(&self, baseline: &Answer) -> Vec<String> {
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".to_owned());
        let number =
            |value: Option<u64>| value.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let mut differences = Vec::new();
        if self.status_line != baseline.status_line {
            differences.push(format!(
                "status line {:?}, not {:?}",
                self.status_line, baseline.status_line
            ));
        }
        let (ours, theirs) = (&self.headers, &baseline.headers);
        if ours.content_type != theirs.content_type {
            differences.push(format!(
                "content-type {}, not {}",
                shown(&ours.content_type),
                shown(&theirs.content_type)
            ));
        }
        if self.content_length_without_pid() != baseline.content_length_without_pid() {
            differences.push(format!(
                "content-length {}, not {}",
                number(ours.content_length),
                number(theirs.content_length)
            ));
        }
        if self.connection_meaning() != baseline.connection_meaning() {
            differences.push(format!(
                "connection {}, not {}",
                shown(&ours.connection),
                shown(&theirs.connection)
            ));
        }
        if ours.x_worker_pid.is_some() != theirs.x_worker_pid.is_some() {
            differences.push(if ours.x_worker_pid.is_some() {
                "an x-worker-pid header the baseline lacks".to_owned()
            } else {
                "no x-worker-pid header".to_owned()
            });
        }
        if self.body_len_without_pid() != baseline.body_len_without_pid() {
            differences.push(format!(
                "a body of {} bytes, not {}",
                self.body_len, baseline.body_len
            ));
        }
        differences
    }
}

/// Reads `dir/peers.json`; `None` if the folder has none.
pub fn read_peers(dir: &Path) -> anyhow::Result<Option<PeersFile>> {
    read_optional(&dir.join(PEERS_FILE))
}

/// Reads `dir/answers.json`; `None` if the folder has none.
pub fn read_answers(dir: &Path) -> anyhow::Result<Option<AnswersFile>> {
    read_optional(&dir.join(ANSWERS_FILE))
}

fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // ENOENT: a folder written before the harness kept this file.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("read {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} does not read", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEERS: &str = r#"{"peers": [
        {"name": "nginx", "version": "1.24.0", "processes": 1, "workers": 2,
         "settings": ["master_process off", "worker_processes 1"],
         "config": "peers/nginx.conf"},
        {"name": "node-rr", "version": "v20.11.1", "processes": 1, "workers": 2,
         "settings": ["schedulingPolicy SCHED_RR"], "config": null}]}"#;

    fn answer(name: Mode, pid: Option<u32>, body_len: u64) -> Answer {
        Answer {
            name,
            status_line: "HTTP/1.1 200 OK".to_owned(),
            headers: AnswerHeaders {
                content_type: Some("text/plain".to_owned()),
                content_length: Some(body_len),
                connection: None,
                x_worker_pid: pid,
            },
            body_len,
        }
    }

    /// peers.json reads with typed names, and a name that is not a mode is
    /// refused with the list of modes.
    #[test]
    fn peers_file_reads_and_refuses_unknown_names() {
        let file: PeersFile = serde_json::from_str(PEERS).expect("peers.json reads");
        assert_eq!(file.peers[0].name, Mode::Nginx);
        assert_eq!(file.peers[0].settings[0], "master_process off");
        assert_eq!(file.peers[0].config.as_deref(), Some("peers/nginx.conf"));
        assert_eq!(file.peers[1].config, None);
        let back: PeersFile =
            serde_json::from_slice(&serde_json::to_vec(&file).expect("writes")).expect("reads");
        assert_eq!(back, file);
        let err = serde_json::from_str::<PeersFile>(&PEERS.replace("node-rr", "haproxy"))
            .expect_err("not a mode");
        assert!(err.to_string().contains("nginx, node-rr"), "{err}");
    }

    /// Two answers are the same whatever the digits of their pids, and
    /// whether an HTTP/1.1 answer says `keep-alive`; a status, a header or
    /// a body that differs is named.
    #[test]
    fn answers_differ_only_where_the_bytes_do() {
        let direct = answer(Mode::Direct, Some(999), 29);
        assert!(
            answer(Mode::Proxy, Some(10_000), 31)
                .differences(&direct)
                .is_empty()
        );
        let mut nginx = answer(Mode::Nginx, Some(1234), 30);
        nginx.headers.connection = Some("close".to_owned());
        assert_eq!(nginx.differences(&direct), ["connection close, not none"]);
        // HTTP/1.1's default said aloud (Node.js) is the same answer; on
        // HTTP/1.0 it is not the default, so it differs.
        let mut node = answer(Mode::NodeNone, Some(777), 29);
        node.headers.connection = Some("Keep-Alive".to_owned());
        assert!(node.differences(&direct).is_empty());
        node.status_line = "HTTP/1.0 200 OK".to_owned();
        assert_eq!(node.differences(&direct).len(), 2);
        let mut node = answer(Mode::NodeRr, None, 40);
        node.status_line = "HTTP/1.1 404 Not Found".to_owned();
        let differences = node.differences(&direct);
        assert_eq!(differences.len(), 4, "{differences:?}");
        assert!(differences[0].starts_with("status line"));
        assert!(differences.iter().any(|d| d == "no x-worker-pid header"));
        assert!(
            differences
                .iter()
                .any(|d| d == "a body of 40 bytes, not 29")
        );
    }

    /// A folder without the files reads as `None`; a file that is not the
    /// shape is an error naming it.
    #[test]
    fn missing_files_are_none_and_bad_ones_errors() {
        let temp = tempfile::tempdir().expect("a temp dir");
        let dir = temp.path();
        assert_eq!(read_peers(dir).expect("no file"), None);
        assert_eq!(read_answers(dir).expect("no file"), None);
        std::fs::write(dir.join(PEERS_FILE), PEERS).expect("write");
        assert_eq!(
            read_peers(dir).expect("reads").map(|file| file.peers.len()),
            Some(2)
        );
        std::fs::write(dir.join(ANSWERS_FILE), "{}").expect("write");
        let err = read_answers(dir).expect_err("no answers field");
        assert!(format!("{err:#}").contains("answers.json"), "{err:#}");
    }
}
