//! `nircolor check`: validate a pipeline configuration and say what it will run.

use std::path::Path;

use anyhow::Result;

pub(crate) fn run_check(file: &Path) -> Result<()> {
    let c = nircolor::daemon::config::Config::load(file)?;
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
    println!("  metrics on http://{}/metrics", c.metrics_bind);
    println!("  {}", super::run::status_page_line(&c));
    Ok(())
}
