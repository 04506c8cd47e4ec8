//! Offline work on paired NIR/RGB data, beside the live pipeline: loading the pairs ([`data`]),
//! scoring ([`metrics`], [`eval`]), looking ([`report`], [`curve`]), fitting the models
//! ([`train`] for the classical ones, [`train_net`] for the networks), video clips ([`video`]),
//! charts ([`plot`]) and the stage benchmarks ([`bench`](mod@bench)).

pub mod bench;
pub mod curve;
pub mod data;
pub mod eval;
pub mod fit;
pub mod flood;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod train;
pub mod train_net;
pub mod video;
