//! Readings of a process tree from `/proc`: open fds, RSS, CPU time, children.
//! Used by the load generator's `--watch` and by the tests.
