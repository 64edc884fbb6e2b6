//! Benchmark servers. `raw-hyper` answers the bench contract's `greet` and `add` (issue 13)
//! with hyper alone: the ceiling oxrpc's per-request cost is compared with
//! (`scripts/callgrind-requests --binary target/release/raw-hyper`).
