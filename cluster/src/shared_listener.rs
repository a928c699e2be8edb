//! How a worker accepts on the listening socket it shares with the other
//! workers (`handoff --pass listener --accept STRATEGY`, [`Accept`]).
//!
//! Not built yet beyond `drain`: every strategy accepts as `drain` does.

#[allow(unused_imports)]
use crate::Accept;
