//! `nircolor check`: validate a pipeline configuration and say what it will run.

use std::path::Path;

use anyhow::Result;
use nircolor::daemon::shard::owner;

pub(crate) fn run_check(file: &Path, shard: Option<&str>) -> Result<()> {
    let c = nircolor::daemon::config::Config::load(file)?;
    if let Some(arg) = shard {
        return print_shards(&c, arg);
    }
    let m = &c.model;
    println!("{} is valid:", file.display());
    println!(
        "  model {} (device {}) at {} size, batches of up to {} within {} ms; detail radius {}, eps {:e}",
        m.weights,
        format!("{:?}", m.device).to_lowercase(),
        m.scale
            .map_or("the model's own inference".to_string(), |s| format!("{s}x")),
        m.max_batch,
        m.max_wait.as_millis(),
        m.radius,
        m.eps
    );
    println!(
        "  colour refreshed {} (blend {} ms)",
        match m.refresh {
            nircolor::infer::Refresh::Auto =>
                "as often as the machine allows, every frame detailed from its own NIR".to_string(),
            nircolor::infer::Refresh::EveryFrame => "by the network on every frame".to_string(),
            nircolor::infer::Refresh::PerSecond(r) =>
                format!("at most {r} times a second per camera"),
        },
        m.blend.as_millis()
    );
    if m.bf16 {
        println!("  networks compute in bf16 (weights and output in f32)");
    }
    if let Some(q) = &m.quality {
        println!(
            "  tiered refresh: {q} colours each camera's static scene in turn, seconds apart; the model above refreshes the blocks that move"
        );
    }
    for cam in &c.cameras {
        let s = &cam.spec;
        print!(
            "  camera '{}': {}, {} {}x{} @ {} fps -> rtsp://{}:{}{}",
            s.id,
            s.source.describe(),
            s.format.caps_format(),
            s.width,
            s.height,
            s.fps,
            c.rtsp_bind,
            c.rtsp_port,
            cam.rtsp.mount
        );
        if let Some(cal) = &cam.calibration {
            print!(", calibration {}", cal.file.display());
        }
        if let Some(w) = &cam.webcam {
            if let nircolor::encode::webcam::WebcamSink::Device(d) = &w.sink {
                print!(", webcam {} ({})", d.display(), w.format.caps_name());
            }
        }
        if s.day_night {
            print!(", day/night (colour passed through by day)");
        }
        if let Some(r) = &cam.reference {
            let state = match nircolor::reference::store::load(&r.file) {
                Ok(Some(stored)) => format!(
                    "{}x{} from {} frames",
                    stored.meta.width, stored.meta.height, stored.meta.frames
                ),
                Ok(None) => "none yet, built by day".to_string(),
                Err(e) => format!("unusable ({e})"),
            };
            print!(
                ", day reference {} ({state}; a sample every {} s, median of {})",
                r.file.display(),
                r.sample_every.as_secs_f64(),
                r.min_frames
            );
        }
        if let Some(r) = &cam.record {
            print!(
                ", recorded as .{} in {} every {} s",
                r.container.extension(),
                r.folder.display(),
                r.segment.as_secs()
            );
        }
        println!();
    }
    let l = &c.metrics_limits;
    println!(
        "  metrics on http://{}/metrics: at most {} connections ({} more for /healthz, /readyz and /metrics), request heads within {} ms and {} bytes, idle connections closed after {} ms",
        c.metrics_bind,
        l.max_connections,
        l.probe_connections,
        l.header_timeout.as_millis(),
        l.max_header_bytes,
        l.idle_timeout.as_millis()
    );
    println!("  {}", super::run::status_page_line(&c));
    for w in c.warnings() {
        println!("warning: {w}");
    }
    Ok(())
}

/// `check --shard N` prints every shard's cameras; `--shard I/N` (or auto) only shard I's.
fn print_shards(c: &nircolor::daemon::config::Config, arg: &str) -> Result<()> {
    let (count, only) = match arg.parse::<u32>() {
        Ok(n) => (nircolor::daemon::shard::Shard::new(0, n)?.count, None),
        Err(_) => {
            let s = super::run::parse_shard(arg)?;
            (s.count, Some(s.index))
        }
    };
    for index in (0..count).filter(|i| only.is_none_or(|o| o == *i)) {
        let ids: Vec<&str> = c
            .cameras
            .iter()
            .map(|cam| cam.spec.id.as_str())
            .filter(|id| owner(id, count) == index)
            .collect();
        println!(
            "shard {index}/{count}: {} camera(s): {}",
            ids.len(),
            if ids.is_empty() {
                "-".to_string()
            } else {
                ids.join(", ")
            }
        );
    }
    Ok(())
}
