//! Criterion benches of each mechanism the suite compares, in isolation
//! (`cargo bench -p mechanisms`; see `benches/`):
//!
//! - `fd_passing`: one frame and its acknowledgement over the master–worker
//!   channel, with a socket passed by SCM_RIGHTS and without; and one
//!   message of 1 or 16 fds with the channel's `send_fds` / `recv_fds`
//!   against the `sendfd` crate;
//! - `handoff_floor`: the `handoff-socket` master's own work per connection
//!   (`accept4`, the handoff `sendmsg`, the acknowledgement's `recvmsg`,
//!   `close`) for batches of 1, 4 and 16 connections per frame;
//! - `relay`: bytes through the proxy's relay against a direct connection;
//! - `cluster_modes`: a new connection, or a keep-alive request, through each
//!   mode against one worker's own port.
//!
//! The crate has no code of its own: the benches measure the other crates.
#![deny(missing_docs)]
