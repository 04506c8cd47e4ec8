//! nircolor: near-infrared to colour. The library holds every stage so each can be tested on its
//! own; the `nircolor` binary wires them into commands.
//!
//! Stages, in the order data flows: [`data`] (paired NIR/RGB folders), [`colorizer`] (the
//! interface every model implements; classical ones in [`linear`] and [`l3`]), [`detail`] (the
//! guided filter that carries full-resolution NIR detail into the colour), then [`metrics`] and
//! [`eval`] to measure, [`report`] to look, [`train`] to fit.

pub mod bench;
pub mod bfwls;
pub mod calibrate;
pub mod capture;
pub mod colorizer;
pub mod config;
pub mod cuda;
pub mod curve;
pub mod daemon;
pub mod data;
pub mod detail;
pub mod devices;
pub mod encode;
pub mod eval;
pub mod font;
pub mod infer;
pub mod l3;
pub mod linear;
pub mod lstsq;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod planes;
pub mod queue;
pub mod report;
pub mod rng;
pub mod telemetry;
pub mod train;
pub mod train_net;
pub mod weights;
pub mod worker;
