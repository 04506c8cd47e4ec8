//! What the live stages run on: bounded frame queues between them ([`queue`]), supervised
//! threads ([`worker`]), latency histograms ([`histogram`]), systemd readiness and watchdog
//! ([`notify`]), the allocator's settings ([`memory`]), reading the TOML files people write ([`toml_file`]), free disk space ([`disk`]), and loading libtorch's
//! CUDA backend at run time ([`cuda`]).

pub mod cuda;
pub mod disk;
pub mod histogram;
pub mod memory;
pub mod notify;
pub mod queue;
pub mod toml_file;
pub mod worker;
