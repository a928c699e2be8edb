//! The whole tree's memory against the connections held, log-log, per mode:
//! user space (the processes' RSS, solid) and the kernel's (charged to the
//! tree's own memory cgroup, dashed), each mode's line marked where it
//! stopped (§2, `memory.svg`).

use super::Chart;
use super::scale::{Scale, Series};
use crate::sections::fd_bill::{FdBillLimit, FdBillRow};
use crate::style::trim;

/// Bytes in a MiB: the axis counts MiB, so that its decades (1, 10, 100,
/// 1,000 MiB) are round numbers.
const MIB: f64 = 1024.0 * 1024.0;

/// The file REPORT.md links.
pub const FILE: &str = "memory.svg";

/// The chart: what it draws from.
pub struct MemoryChart<'a> {
    /// Every mode and count of connections.
    pub rows: &'a [FdBillRow],
    /// Where modes stopped.
    pub limits: &'a [FdBillLimit],
}

impl Chart for MemoryChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "The whole tree's memory against the connections held, user space and kernel".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        Scale {
            caption: "The server tree's memory against connections held (solid: user space, RSS; dashed: kernel, its cgroup)",
            y_desc: "memory, most during the step (log scale)",
            y_label: |mib| format!("{} MiB", trim(mib)),
            series: [
                Series {
                    value: |row| row.tree_rss_bytes.map(|bytes| bytes / MIB),
                },
                Series {
                    value: |row| row.kernel_bytes.map(|bytes| bytes / MIB),
                },
            ],
            references: Vec::new(),
            rows: self.rows,
            limits: self.limits,
        }
        .draw()
    }
}
