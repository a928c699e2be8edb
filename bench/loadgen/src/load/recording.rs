//! `--hold` over several processes: what a child loadgen hands its parent,
//! one JSON line each on its stdout, so that the parent merges them into the
//! one report a single process would have written.
//!
//! - [`Opened`]: after the opening, how many connections it holds, those
//!   that failed by kind, and their connect times.
//! - [`Recording`]: after the run, its [`Recorder`] whole: every histogram
//!   as the (value, count) pairs HdrHistogram iterates, which recorded again
//!   into a histogram of the same bounds land in the same buckets, so the
//!   merge is exact (as merging the threads' recorders is); every count; the
//!   instants as µs from the window's start, which each process takes from
//!   its own clock (the parent's "go").

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::recorder::{Moved, Recorder, Slot, TargetCount, Timeline, Window, WorkerCount};
use super::usage::CpuTimes;

/// A histogram as its recorded (value, count) pairs.
pub type Counts = Vec<(u64, u64)>;

/// The (value, count) pairs of `histogram`.
pub fn counts(histogram: &Histogram<u64>) -> Counts {
    histogram
        .iter_recorded()
        .map(|step| (step.value_iterated_to(), step.count_at_value()))
        .collect()
}

/// Adds `counts` to `histogram` (of the bounds the pairs were taken from).
pub fn add_counts(histogram: &mut Histogram<u64>, counts: &Counts) {
    for &(value, count) in counts {
        histogram.saturating_record_n(value, count);
    }
}

/// One process's opening of its `--hold` connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Opened {
    /// Connections open and answered.
    pub held: u64,
    /// Connections that failed to open, indexed by [`Failure::index`].
    pub failures: Vec<u64>,
    /// connect(2) to established of those that connected, µs.
    pub connect: Counts,
    /// From its first connect to its last connection open or failed, µs.
    pub open_time_us: u64,
}

impl Opened {
    /// Adds `other`'s opening to this one (the time to open: the longest).
    pub fn merge(&mut self, other: &Opened) {
        self.held += other.held;
        self.failures.resize(Failure::ALL.len(), 0);
        for (mine, theirs) in self.failures.iter_mut().zip(&other.failures) {
            *mine += theirs;
        }
        self.connect.extend_from_slice(&other.connect);
        self.open_time_us = self.open_time_us.max(other.open_time_us);
    }
}

/// One worker pid's counts in a [`Recording`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRecording {
    /// The `x-worker-pid`.
    pid: u32,
    /// Successful requests it answered.
    requests: u64,
    /// Connections whose first answer of the window came from it.
    connections: u64,
    /// Its first answer of the window, µs from the window's start.
    first_us: Option<u64>,
    /// Its last answer of the window, µs from the window's start.
    last_us: Option<u64>,
    /// Its latency histogram.
    latency: Counts,
}

/// One `--timeline` interval in a [`Recording`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotRecording {
    /// Answers per pid.
    ok_by_pid: Vec<(u32, u64)>,
    /// Failures by [`Failure::index`].
    failures: Vec<u64>,
    /// The longest latency, µs.
    max_latency_us: u64,
}

/// A [`Recorder`] as a child hands it to its parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    latency: Counts,
    latency_uncorrected: Counts,
    connect: Counts,
    workers: Vec<WorkerRecording>,
    requests_without_pid: u64,
    /// Per target: (requests, connections).
    targets: Vec<(u64, u64)>,
    failures: Vec<u64>,
    statuses: Vec<(u16, u64)>,
    scheduled: u64,
    unanswered_at_end: u64,
    reconnects: u64,
    /// (sent, received) bytes.
    moved: (u64, u64),
    waited_for_place: u64,
    in_flight_max: usize,
    /// `--timeline`: the interval in ns and the slots.
    timeline: Option<(u64, Vec<SlotRecording>)>,
    /// The child's own CPU time over its window, (user, system) µs; `None`
    /// if getrusage(2) failed.
    cpu_us: Option<(u64, u64)>,
}

/// µs from `origin` to `at`.
fn since(origin: Instant, at: Option<Instant>) -> Option<u64> {
    at.map(|at| at.saturating_duration_since(origin).as_micros() as u64)
}

impl Recording {
    /// The recording of `recorder`, instants counted from its window's
    /// start, with the process's CPU time `cpu` over its window.
    pub fn of(recorder: &Recorder, cpu: Option<CpuTimes>) -> Recording {
        let origin = recorder.window().start;
        Recording {
            latency: counts(&recorder.latency),
            latency_uncorrected: counts(&recorder.latency_uncorrected),
            connect: counts(&recorder.connect),
            workers: recorder
                .workers
                .iter()
                .map(|worker| WorkerRecording {
                    pid: worker.pid,
                    requests: worker.requests,
                    connections: worker.connections,
                    first_us: since(origin, worker.first),
                    last_us: since(origin, worker.last),
                    latency: counts(&worker.latency),
                })
                .collect(),
            requests_without_pid: recorder.requests_without_pid,
            targets: recorder
                .targets
                .iter()
                .map(|target| (target.requests, target.connections))
                .collect(),
            failures: recorder.failures.to_vec(),
            statuses: recorder.statuses.clone(),
            scheduled: recorder.scheduled,
            unanswered_at_end: recorder.unanswered_at_end,
            reconnects: recorder.reconnects,
            moved: (recorder.moved.sent, recorder.moved.received),
            waited_for_place: recorder.waited_for_place,
            in_flight_max: recorder.in_flight_max,
            timeline: recorder.timeline.as_ref().map(|timeline| {
                (
                    timeline.interval.as_nanos() as u64,
                    timeline
                        .slots
                        .iter()
                        .map(|slot| SlotRecording {
                            ok_by_pid: slot.ok_by_pid.clone(),
                            failures: slot.failures.to_vec(),
                            max_latency_us: slot.max_latency_us,
                        })
                        .collect(),
                )
            }),
            cpu_us: cpu.map(|cpu| (cpu.user.as_micros() as u64, cpu.system.as_micros() as u64)),
        }
    }

    /// This recording as a recorder of `window` (the parent's), built as
    /// `empty` is (its bounds and progress counter).
    pub fn into_recorder(self, mut recorder: Recorder) -> Recorder {
        let window: Window = recorder.window();
        let at = |us: Option<u64>| us.map(|us| window.start + Duration::from_micros(us));
        add_counts(&mut recorder.latency, &self.latency);
        add_counts(&mut recorder.latency_uncorrected, &self.latency_uncorrected);
        add_counts(&mut recorder.connect, &self.connect);
        for worker in self.workers {
            let mut latency = recorder.latency.clone();
            latency.reset();
            add_counts(&mut latency, &worker.latency);
            recorder.workers.push(WorkerCount {
                pid: worker.pid,
                requests: worker.requests,
                connections: worker.connections,
                first: at(worker.first_us),
                last: at(worker.last_us),
                latency,
            });
        }
        recorder.requests_without_pid = self.requests_without_pid;
        recorder.targets = self
            .targets
            .into_iter()
            .map(|(requests, connections)| TargetCount {
                requests,
                connections,
            })
            .collect();
        for (mine, theirs) in recorder.failures.iter_mut().zip(self.failures) {
            *mine = theirs;
        }
        recorder.statuses = self.statuses;
        recorder.scheduled = self.scheduled;
        recorder.unanswered_at_end = self.unanswered_at_end;
        recorder.reconnects = self.reconnects;
        recorder.moved = Moved {
            sent: self.moved.0,
            received: self.moved.1,
        };
        recorder.waited_for_place = self.waited_for_place;
        recorder.in_flight_max = self.in_flight_max;
        recorder.timeline = self.timeline.map(|(interval_ns, slots)| Timeline {
            interval: Duration::from_nanos(interval_ns),
            slots: slots
                .into_iter()
                .map(|slot| {
                    let mut failures = [0; Failure::ALL.len()];
                    for (mine, theirs) in failures.iter_mut().zip(slot.failures) {
                        *mine = theirs;
                    }
                    Slot {
                        ok_by_pid: slot.ok_by_pid,
                        failures,
                        max_latency_us: slot.max_latency_us,
                    }
                })
                .collect(),
        });
        if let Some((user_us, system_us)) = self.cpu_us {
            recorder.children_cpu.user += Duration::from_micros(user_us);
            recorder.children_cpu.system += Duration::from_micros(system_us);
        }
        recorder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A recorder through its recording and back is the same recorder:
    /// histograms bucket for bucket, counts, a worker's first answer.
    #[test]
    fn a_recording_round_trips() {
        let start = Instant::now();
        let window = Window {
            start,
            end: start + Duration::from_secs(10),
        };
        let longest = Duration::from_secs(20);
        let mut recorder = Recorder::new(window, true, longest, Arc::default());
        for (at_ms, pid, status) in [(5, 7, 200), (100, 8, 200), (200, 7, 503)] {
            let scheduled = start + Duration::from_millis(at_ms);
            recorder.record(&super::super::recorder::Sample {
                scheduled,
                sent: scheduled,
                done: scheduled + Duration::from_micros(1234 * at_ms),
                outcome: Ok(super::super::recorder::Answer {
                    status,
                    worker_pid: Some(pid),
                }),
                first_on_connection: true,
                target: 0,
                moved: Moved {
                    sent: 10,
                    received: 20,
                },
            });
        }
        recorder.record_connect(start, Duration::from_micros(77));
        let cpu = CpuTimes {
            user: Duration::from_micros(1_500),
            system: Duration::from_micros(2_500),
        };
        let line = serde_json::to_string(&Recording::of(&recorder, Some(cpu))).expect("serialise");
        let back: Recording = serde_json::from_str(&line).expect("parse");
        let back = back.into_recorder(Recorder::new(window, true, longest, Arc::default()));
        assert_eq!(back.latency, recorder.latency);
        assert_eq!(back.latency_uncorrected, recorder.latency_uncorrected);
        assert_eq!(back.connect, recorder.connect);
        assert_eq!(back.failures, recorder.failures);
        assert_eq!(back.statuses, recorder.statuses);
        assert_eq!(back.moved, recorder.moved);
        // The child's CPU time, carried to the parent's recorder.
        assert_eq!(back.children_cpu, cpu);
        assert_eq!(back.workers.len(), 2);
        for (mine, theirs) in back.workers.iter().zip(&recorder.workers) {
            assert_eq!(mine.pid, theirs.pid);
            assert_eq!(mine.latency, theirs.latency);
            assert_eq!(mine.requests, theirs.requests);
            let micros = |at: Option<Instant>| at.map(|at| (at - start).as_micros());
            assert_eq!(micros(mine.first), micros(theirs.first));
        }
    }
}
