//! §7, peers: the other software measured in the same rounds by the same
//! loadgen (nginx's stream proxy, Node.js cluster), the ones that were not
//! installed, how each peer ran (`peers.json`: version, processes, workers,
//! the settings that shape how it shares the port, its kept config), and
//! whether every server answered the same bytes as `direct`
//! (`answers.json`). A folder written before the harness kept those files
//! says that they were not recorded.

use runs::Report;
use runs::folder::{Answer, AnswersFile, PeersFile};
use runs::labels::Mode;

use super::Figures;
use crate::text::{and_list, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "7. Peers";

/// §7's figures.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// The peer modes that have runs, in table order.
    pub modes: Vec<Mode>,
    /// How each peer ran, from `peers.json`; `None` without the file.
    pub ran: Option<PeersFile>,
    /// The configs `peers.json` names that are not in the folder.
    pub missing_configs: Vec<String>,
    /// What each server answered, from `answers.json`; `None` without it.
    pub answers: Option<AnswersFile>,
}

impl Peers {
    /// The peers of `runs`, each once.
    pub fn of(runs: &[Report]) -> Peers {
        let mut modes: Vec<Mode> = runs
            .iter()
            .filter_map(|run| run.labels.mode)
            .filter(|mode| mode.is_peer())
            .collect();
        modes.sort();
        modes.dedup();
        Peers {
            modes,
            ..Peers::default()
        }
    }

    /// The answer every other is compared with: `direct`'s (the workers
    /// themselves, nothing in between).
    pub fn baseline_answer(&self) -> Option<&Answer> {
        self.answers
            .as_ref()?
            .answers
            .iter()
            .find(|answer| answer.name.is_baseline())
    }

    /// The servers whose answer differs from the baseline's, with how.
    pub fn different_answers(&self) -> Vec<(Mode, Vec<String>)> {
        let (Some(answers), Some(baseline)) = (&self.answers, self.baseline_answer()) else {
            return Vec::new();
        };
        answers
            .answers
            .iter()
            .filter(|answer| answer.name != baseline.name)
            .filter_map(|answer| {
                let differences = answer.differences(baseline);
                (!differences.is_empty()).then_some((answer.name, differences))
            })
            .collect()
    }
}

/// `a` or `–` for an absent header.
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("`{value}`"))
}

/// §7: which peers were measured, how each ran, whether every server
/// answered the same, and how to measure the others.
pub fn markdown(out: &mut String, figures: &Figures) {
    let peers = &figures.peers;
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Other software in the same rounds, measured by the same loadgen: nginx's stream \
         proxy in front of the same workers as `proxy`, and Node.js cluster with round-robin \
         (`node-rr`) and with SCHED_NONE (`node-none`) scheduling."
    );
    w!(out);
    if peers.modes.is_empty() {
        w!(
            out,
            "_No peer runs: install nginx (`apt-get install nginx libnginx-mod-stream`) and \
             Node.js 20 for the Node.js cluster, then run `scripts/compare.sh --peers`._"
        );
        w!(out);
    } else {
        let names: Vec<String> = peers.modes.iter().map(|mode| format!("`{mode}`")).collect();
        w!(
            out,
            "Measured: {}; they appear in section 1's table and chart, and in every section \
             that ran them.",
            names.join(", ")
        );
        let missing: Vec<&str> = Mode::PEERS
            .into_iter()
            .filter(|mode| !peers.modes.contains(mode))
            .map(Mode::name)
            .collect();
        if !missing.is_empty() {
            w!(out);
            w!(out, "Not measured: {} (not installed).", missing.join(", "));
        }
        w!(out);
        how_they_ran(out, peers);
    }
    same_answer(out, peers);
}

/// How each peer ran, from `peers.json`, or that it was not recorded.
fn how_they_ran(out: &mut String, peers: &Peers) {
    let Some(ran) = &peers.ran else {
        w!(
            out,
            "_How each peer ran (its processes, workers and settings) was not recorded in this \
             folder (no `peers.json`), and its config was not kept._"
        );
        w!(out);
        return;
    };
    w!(out, "How each peer ran (`peers.json`):");
    w!(out);
    w!(
        out,
        "| peer | version | its own processes | workers that served | settings | config |"
    );
    w!(out, "|---|---|---:|---:|---|---|");
    for peer in &ran.peers {
        let settings: Vec<String> = peer
            .settings
            .iter()
            .map(|setting| format!("`{setting}`"))
            .collect();
        let config = match &peer.config {
            None => "–".to_owned(),
            Some(path) if peers.missing_configs.contains(path) => {
                format!("`{path}` (not in the folder)")
            }
            Some(path) => format!("[`{path}`]({path})"),
        };
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {config} |",
            peer.name,
            peer.version,
            peer.processes,
            peer.workers,
            if settings.is_empty() {
                "–".to_owned()
            } else {
                settings.join(", ")
            },
        );
    }
    w!(out);
    let unrecorded: Vec<String> = peers
        .modes
        .iter()
        .filter(|mode| !ran.peers.iter().any(|peer| peer.name == **mode))
        .map(|mode| format!("`{mode}`"))
        .collect();
    if !unrecorded.is_empty() {
        w!(
            out,
            "_{} ran without an entry in `peers.json`: how it ran was not recorded._",
            and_list(&unrecorded)
        );
        w!(out);
    }
}

/// The "same answer" table from `answers.json`, or that it was not checked.
fn same_answer(out: &mut String, peers: &Peers) {
    let Some(answers) = &peers.answers else {
        w!(
            out,
            "_Whether every server answered the same bytes was not recorded in this folder \
             (no `answers.json`)._"
        );
        w!(out);
        return;
    };
    let baseline = peers.baseline_answer();
    w!(
        out,
        "**Same answer.** Each server's answer to one `GET /` (`answers.json`): the status \
         line, the headers a client acts on, the body's length; compared with {}'s, the pid's \
         digits aside (the body and its length name the worker's pid):",
        baseline.map_or("the baseline".to_owned(), |answer| format!(
            "`{}`",
            answer.name
        ))
    );
    w!(out);
    w!(
        out,
        "| server | status line | content-type | content-length | connection | x-worker-pid | body bytes | against the baseline |"
    );
    w!(out, "|---|---|---|---:|---|---|---:|---|");
    let different = peers.different_answers();
    for answer in &answers.answers {
        let verdict = if baseline.is_none() {
            "no baseline answer".to_owned()
        } else if answer.name.is_baseline() {
            "the baseline".to_owned()
        } else {
            match different.iter().find(|(mode, _)| *mode == answer.name) {
                Some((_, differences)) => format!("**differs:** {}", differences.join("; ")),
                None => "same".to_owned(),
            }
        };
        let headers = &answer.headers;
        w!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} | {} | {verdict} |",
            answer.name,
            answer.status_line,
            shown(headers.content_type.as_deref()),
            headers
                .content_length
                .map_or("–".to_owned(), |length| length.to_string()),
            shown(headers.connection.as_deref()),
            if headers.x_worker_pid.is_some() {
                "present"
            } else {
                "absent"
            },
            answer.body_len,
        );
    }
    w!(out);
    if baseline.is_some() {
        let names: Vec<String> = different
            .iter()
            .map(|(mode, _)| format!("`{mode}`"))
            .collect();
        if names.is_empty() {
            w!(
                out,
                "Every server answered as the baseline did: the figures compare servers that \
                 did the same work per request."
            );
        } else {
            w!(
                out,
                "{} answered differently from the baseline: {} per request is not the same \
                 work, and its figures compare less well.",
                and_list(&names),
                if names.len() > 1 {
                    "their cost"
                } else {
                    "its cost"
                }
            );
        }
        w!(out);
    }
}

#[cfg(test)]
mod tests {
    use runs::folder::{AnswerHeaders, PeerRun};

    use super::*;
    use crate::fixtures::throughput_run;

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

    /// §7 states how each peer ran from peers.json, links its kept config
    /// (or says it is missing), and names a measured peer without an entry.
    #[test]
    fn peers_say_how_they_ran() {
        let mut figures = Figures::of(&[
            throughput_run("nginx", "keepalive", "1"),
            throughput_run("node-rr", "keepalive", "1"),
        ]);
        figures.peers.ran = Some(PeersFile {
            peers: vec![PeerRun {
                name: Mode::Nginx,
                version: "1.24.0".to_owned(),
                processes: 1,
                workers: 2,
                settings: vec![
                    "master_process off".to_owned(),
                    "worker_processes 1".to_owned(),
                ],
                config: Some("peers/nginx.conf".to_owned()),
            }],
        });
        let text = figures.markdown();
        assert!(
            text.contains(
                "| `nginx` | 1.24.0 | 1 | 2 | `master_process off`, `worker_processes 1` | \
                 [`peers/nginx.conf`](peers/nginx.conf) |"
            ),
            "{text}"
        );
        assert!(
            text.contains("_`node-rr` ran without an entry in `peers.json`"),
            "{text}"
        );
        figures.peers.missing_configs = vec!["peers/nginx.conf".to_owned()];
        assert!(
            figures
                .markdown()
                .contains("`peers/nginx.conf` (not in the folder)")
        );
        // Old folders: not recorded, said so.
        figures.peers.ran = None;
        let text = figures.markdown();
        assert!(text.contains("was not recorded in this folder (no `peers.json`)"));
        assert!(text.contains("(no `answers.json`)"));
    }

    /// The "same answer" table flags a server whose status line, headers
    /// or body length differ from direct's, the pid's digits aside.
    #[test]
    fn same_answer_flags_what_differs_from_direct() {
        let mut figures = Figures::of(&[throughput_run("nginx", "keepalive", "1")]);
        let mut node = answer(Mode::NodeRr, Some(7), 27);
        node.headers.connection = Some("close".to_owned());
        figures.peers.answers = Some(AnswersFile {
            answers: vec![
                answer(Mode::Proxy, Some(10_001), 31),
                answer(Mode::Direct, Some(999), 29),
                answer(Mode::Nginx, Some(1234), 30),
                node,
            ],
        });
        assert_eq!(
            figures.peers.different_answers(),
            [(Mode::NodeRr, vec!["connection close, not none".to_owned()])]
        );
        let text = figures.markdown();
        assert!(
            text.contains(
                "| `nginx` | `HTTP/1.1 200 OK` | `text/plain` | 30 | – | present | 30 | same |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| `node-rr` | `HTTP/1.1 200 OK` | `text/plain` | 27 | `close` | present | 27 | **differs:** connection close, not none |"),
            "{text}"
        );
        assert!(
            text.contains("`node-rr` answered differently from the baseline"),
            "{text}"
        );
        // Everyone the same.
        if let Some(answers) = figures.peers.answers.as_mut() {
            answers.answers.pop();
        }
        assert!(
            figures
                .markdown()
                .contains("Every server answered as the baseline did")
        );
    }
}
