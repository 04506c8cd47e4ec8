//! Offline work on paired NIR/RGB data, beside the live pipeline: loading the pairs ([`data`]),
//! scoring ([`metrics`], [`eval`]), looking ([`report`], [`curve`]), fitting the models
//! ([`train`] for the classical ones, [`train_net`] for the networks) and the stage benchmarks
//! ([`bench`](mod@bench)).

pub mod bench;
pub mod curve;
pub mod data;
pub mod eval;
pub mod metrics;
pub mod report;
pub mod train;
pub mod train_net;
