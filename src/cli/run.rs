//! `nircolor run`: the daemon until SIGTERM or Ctrl-C, with systemd readiness and watchdog.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nircolor::daemon::shard::{Shard, SHARDS_ENV};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    #[arg(long)]
    config: PathBuf,
    /// Serve only this instance's share of the cameras: I/N (shard I of N), or auto (I from a
    /// StatefulSet pod's host name NAME-I, N from $NIRCOLOR_SHARDS)
    #[arg(long)]
    shard: Option<String>,
    /// Serve RTSP on this port instead of the config's [rtsp] port
    #[arg(long)]
    rtsp_port: Option<u16>,
    /// Serve metrics and the status page here instead of the config's [metrics] bind
    #[arg(long)]
    metrics_bind: Option<std::net::SocketAddr>,
}

/// `--shard I/N` or `--shard auto`.
pub(crate) fn parse_shard(arg: &str) -> Result<Shard> {
    if arg == "auto" {
        // Kubernetes sets HOSTNAME to the pod's name; elsewhere the kernel's is the same thing.
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        Ok(Shard::auto(
            host.trim(),
            std::env::var(SHARDS_ENV).ok().as_deref(),
        )?)
    } else {
        Ok(arg.parse()?)
    }
}

pub(crate) fn run_daemon(args: &RunArgs) -> Result<()> {
    nircolor::runtime::memory::limit_malloc_arenas();
    let file = args.config.as_path();
    let mut config = nircolor::daemon::config::Config::load(file)?;
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    if let Some(port) = args.rtsp_port {
        config.rtsp_port = port;
    }
    if let Some(bind) = args.metrics_bind {
        config.metrics_bind = bind;
    }
    if let Some(arg) = &args.shard {
        let shard = parse_shard(arg)?;
        let others = config.keep_shard(shard);
        println!(
            "shard {}/{}: serving {} of {} cameras",
            shard.index,
            shard.count,
            config.cameras.len(),
            config.cameras.len() + others.len()
        );
        if config.cameras.is_empty() {
            println!("no camera falls to this shard: serving only metrics, health and readiness");
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handlers")?;
    }
    let daemon = nircolor::daemon::Daemon::start(&config)
        .with_context(|| format!("starting {}", file.display()))?;
    for (cam, url) in config.cameras.iter().zip(daemon.urls()) {
        let recording = cam
            .record
            .as_ref()
            .map(|r| format!(", recording into {}", r.folder.display()))
            .unwrap_or_default();
        println!("camera '{}': watch {url}{recording}", cam.spec.id);
    }
    println!("{}", status_page_line(&config));
    println!(
        "metrics: http://{0}/metrics, health: http://{0}/healthz, readiness: http://{0}/readyz",
        config.metrics_bind
    );
    println!("running; SIGTERM or Ctrl-C stops and finalises the recordings");
    let cameras = config.cameras.len();
    nircolor::runtime::notify::notify(&format!("READY=1\nSTATUS=serving {cameras} camera(s)"))
        .context("telling systemd the daemon is ready")?;
    // Keep-alives at half the watchdog interval, and only while frames flow (or no camera is
    // up to send any): a stalled pipeline stops them and systemd restarts the service.
    let mut watchdog = nircolor::runtime::notify::watchdog_interval()
        .map(|i| nircolor::runtime::notify::Watchdog::new(i / 2, std::time::Instant::now()));
    let mut fatal = None;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if daemon.all_finished() {
            println!("every source has ended; finishing the recordings");
            break;
        }
        if let Some((id, why)) = daemon.failed_camera() {
            fatal = Some(format!("camera '{id}' failed and has retry = false: {why}"));
            break;
        }
        if let Some(w) = watchdog.as_mut() {
            let (encoded, any_up) = daemon.progress();
            match w.tick(std::time::Instant::now(), encoded, any_up) {
                Some(true) => {
                    let _ = nircolor::runtime::notify::notify("WATCHDOG=1");
                }
                Some(false) => tracing::warn!(
                    "no frame encoded since the last keep-alive while a camera is up; withholding the watchdog keep-alive"
                ),
                None => {}
            }
        }
    }
    let _ = nircolor::runtime::notify::notify("STOPPING=1");
    let mut failed = false;
    for (cam, result) in config.cameras.iter().zip(daemon.shutdown()) {
        match result {
            Ok(frames) => println!("camera '{}': {frames} frames encoded", cam.spec.id),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if let Some(why) = fatal {
        bail!("{why}");
    }
    if failed {
        bail!("some cameras did not finish cleanly");
    }
    Ok(())
}

/// Where the status page is, or why it is off.
pub(crate) fn status_page_line(config: &nircolor::daemon::config::Config) -> String {
    use nircolor::daemon::http::Access;
    let bind = config.metrics_bind;
    match Access::new(bind, config.metrics_token.clone()) {
        Access::Open => format!("status page: http://{bind}/"),
        Access::Token(_) => {
            format!("status page: http://{bind}/?token=TOKEN (the token of [metrics] in the config)")
        }
        Access::Closed { .. } => format!(
            "status page: off on the non-loopback bind {bind} until [metrics] token or token_file is set"
        ),
    }
}
