//! What the live stages run on: bounded frame queues between them ([`queue`]), supervised
//! threads ([`worker`]), the counters and histograms behind `/metrics` and `/healthz`
//! ([`telemetry`]), systemd readiness and watchdog ([`notify`]), and loading libtorch's CUDA
//! backend at run time ([`cuda`]).

pub mod cuda;
pub mod histogram;
pub mod notify;
pub mod queue;
pub mod telemetry;
pub mod toml_file;
pub mod worker;
