//! Master fds (solid) and the whole tree's (dashed) against the connections
//! held, log-log, per mode; lines at the usual soft limit
//! ([`USUAL_SOFT_LIMIT`]) and at the fd limit the servers ran under, each
//! mode's line marked where it stopped (§2, `fds.svg`).

use runs::format::count;

use super::Chart;
use super::scale::{Scale, Series};
use crate::sections::fd_bill::{FdBillLimit, FdBillRow, USUAL_SOFT_LIMIT};

/// The file REPORT.md links.
pub const FILE: &str = "fds.svg";

/// The chart: what it draws from.
pub struct FdsChart<'a> {
    /// Every mode and count of connections.
    pub rows: &'a [FdBillRow],
    /// Where modes stopped.
    pub limits: &'a [FdBillLimit],
}

impl Chart for FdsChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Master and whole-tree fds against the connections held".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let mut references = vec![(
            USUAL_SOFT_LIMIT,
            format!("{}: the usual ulimit -n", count(USUAL_SOFT_LIMIT as u64)),
        )];
        if let Some(limit) = self.rows.iter().find_map(|row| row.fd_limit) {
            references.push((
                limit as f64,
                format!("{}: each process's limit here", count(limit)),
            ));
        }
        Scale {
            caption: "Open fds against connections held (solid: the master; dashed: the whole tree)",
            y_desc: "open fds, most during the step (log scale)",
            y_label: |y| count(y.round() as u64),
            series: [
                Series {
                    value: |row| row.master_fds,
                },
                Series {
                    value: |row| row.tree_fds,
                },
            ],
            references,
            rows: self.rows,
            limits: self.limits,
        }
        .draw()
    }
}
