//! The deterministic simulation harness: the six real services as hosts of a turmoil
//! cluster driven by one seed, shoppers working through the gateway, faults drawn from the
//! seed, and the invariants of `shared/spec/SIMULATION.md` checked after every run.
//!
//! One file per noun: `seed` (labelled streams), `seams` (simulated clock and network),
//! `cluster` (hosts and their databases), `shopper` (the workload), `history`, `faults`
//! (plan and timeline), `checks` (the invariants), `errors` (invariant 11: what the hosts
//! logged at ERROR and their panics), `run` (the driver), `timers` (the deadlines the hosts wait for), `scenario`, `sweep`, `shard` (sweeps cut
//! across machines, and merged back).

pub mod bench;
pub mod catalog;
pub mod checks;
pub mod cluster;
pub mod commands;
pub mod errors;
pub mod faults;
pub mod figures;
pub mod gauges;
pub mod history;
pub mod model;
pub mod plan;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seams;
pub mod seed;
pub mod shard;
pub mod shopper;
pub mod shrink;
pub mod snapshot;
pub mod sweep;
pub mod timeline;
pub mod timers;
pub mod wall;
