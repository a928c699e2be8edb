//! The suite's instrument: the `loadgen` load generator, the report renderer and
//! the criterion benches. Built by a later issue; an empty member until then.
