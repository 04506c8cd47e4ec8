//! `nircolor eval-video`: a model on a paired NIR / colour clip, the colour made as the daemon
//! makes it under one or more refresh settings; per-frame quality, flicker, JSON and a plot.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use nircolor::detail::{GuidedFilter, DAEMON_EPS, DAEMON_RADIUS};
use nircolor::images::planes::Gray;
use nircolor::offline::plot::{charts_png, Chart};
use nircolor::offline::video::{self, VideoRefresh, VideoSettings};

use super::progress;

#[derive(Args)]
pub(crate) struct EvalVideoArgs {
    /// A weights file or built-in colorizer (as `eval --model`).
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    /// The NIR clip (any video GStreamer decodes; scripts/make-video-pairs makes some).
    #[arg(long)]
    pub(crate) nir: PathBuf,
    /// The ground-truth colour clip, frame for frame.
    #[arg(long)]
    pub(crate) truth: PathBuf,
    /// How the colour is refreshed, in video time: every-frame, auto (as often as the network
    /// runs on this machine, one camera) or refreshes per second. Repeat to compare settings in
    /// one table and one plot.
    #[arg(long, default_values = ["every-frame", "auto"])]
    pub(crate) refresh: Vec<nircolor::infer::Refresh>,
    /// Frames per second of the clips.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) fps: f64,
    /// Blend time constant of amortised refreshes, in milliseconds (the daemon's
    /// `model.blend_ms`).
    #[arg(long, default_value_t = nircolor::infer::BLEND.as_millis() as u64)]
    pub(crate) blend_ms: u64,
    /// Write the results (every frame's figures too) as JSON here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Draw PSNR and Delta E per frame, one line per refresh setting, into this PNG.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    /// Colour with this day reference of the clip's scene (a colour image at the clip's size),
    /// as the daemon does for a camera that keeps one.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) reference: Option<PathBuf>,
    /// A quality model for a tiered refresh (`[model] quality`): each rate-limited setting is
    /// run again with it beside --model.
    #[arg(long)]
    pub(crate) quality: Option<String>,
    /// Seconds of video between two of the quality model's refreshes of the clip (the daemon
    /// measured about 0.5 s per camera with four cameras and hq).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) quality_every: f64,
}

pub(crate) fn run_eval_video(args: &EvalVideoArgs) -> Result<()> {
    if !(args.fps > 0.0 && args.fps <= 1000.0) {
        bail!(
            "--fps {} is out of range; allowed: above 0, at most 1000",
            args.fps
        );
    }
    let (colorizer, net) = nircolor::models::load_bare(&args.model, tch::Device::Cpu)
        .with_context(|| format!("loading model '{}'", args.model))?;
    let (scale, max_pixels) = net.map_or((0.5, 0), |c| (c.scale, c.max_pixels));
    let settings = VideoSettings {
        fps: args.fps,
        scale,
        max_pixels,
        detail: GuidedFilter {
            radius: DAEMON_RADIUS,
            eps: DAEMON_EPS,
        },
        blend: std::time::Duration::from_millis(args.blend_ms),
    };
    let refreshes = args
        .refresh
        .iter()
        .map(|r| match r {
            nircolor::infer::Refresh::EveryFrame => VideoRefresh::EveryFrame,
            nircolor::infer::Refresh::PerSecond(r) => VideoRefresh::PerSecond(*r),
            nircolor::infer::Refresh::Auto => {
                VideoRefresh::PerSecond(auto_rate(colorizer.as_ref(), scale, max_pixels))
            }
        })
        .collect::<Vec<_>>();
    let quality = args
        .quality
        .as_deref()
        .map(|q| {
            nircolor::models::load_bare(q, tch::Device::Cpu)
                .map(|(m, _)| m)
                .with_context(|| format!("loading the quality model '{q}'"))
        })
        .transpose()?;
    if quality.is_some() && !(args.quality_every > 0.0 && args.quality_every.is_finite()) {
        anyhow::bail!("--quality-every must be a number of seconds above 0");
    }
    let mut refreshes = refreshes;
    if quality.is_some() {
        let tiered: Vec<VideoRefresh> = refreshes
            .iter()
            .filter_map(|r| match r {
                VideoRefresh::PerSecond(rate) => Some(VideoRefresh::Tiered {
                    rate: *rate,
                    quality_every: args.quality_every,
                }),
                _ => None,
            })
            .collect();
        if tiered.is_empty() {
            anyhow::bail!("--quality needs a rate-limited --refresh (auto or a number): with every-frame the quality model would never show");
        }
        refreshes.extend(tiered);
    }
    println!(
        "{} on {} against {} at {} fps",
        colorizer.name(),
        args.nir.display(),
        args.truth.display(),
        args.fps
    );
    let reference = args
        .reference
        .as_deref()
        .map(nircolor::reference::read)
        .transpose()?;
    if let Some(r) = &args.reference {
        println!("with the day reference {}", r.display());
    }
    let bar = progress(0, "frames");
    let (runs, truth) = video::evaluate(
        video::VideoModels {
            realtime: colorizer.as_ref(),
            quality: quality.as_deref(),
        },
        &args.nir,
        &args.truth,
        &refreshes,
        settings,
        reference.as_ref(),
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    println!(
        "| refresh | PSNR dB | dE2000 | colour age ms | CDC | static chroma change | gray frames |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.5} | {:.3} | {} |",
            r.label,
            r.mean_psnr,
            r.mean_delta_e2000,
            r.mean_colour_age_ms,
            r.flicker.cdc,
            r.flicker.static_chroma,
            r.gray_frames
        );
    }
    println!(
        "| truth | - | - | - | {:.5} | {:.3} (on {:.0}% of pixels) | - |",
        truth.cdc,
        truth.static_chroma,
        100.0 * truth.static_share
    );
    if args.reference.is_some() {
        for r in &runs {
            println!(
                "{}: the reference was refused (out of line with the NIR) on {} of {} refreshes",
                r.label, r.reference_refused, r.refreshes
            );
        }
    }
    if let Some(path) = &args.json {
        let value = serde_json::json!({
            "model": colorizer.name(),
            "nir": args.nir,
            "truth": args.truth,
            "fps": args.fps,
            "truth_flicker": truth,
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let series = |f: &dyn Fn(&video::FrameScore) -> f64| {
            runs.iter()
                .map(|r| {
                    (
                        r.label.clone(),
                        r.frames.iter().map(|s| (s.frame as f64, f(s))).collect(),
                    )
                })
                .collect()
        };
        let charts = [
            Chart {
                title: "PSNR against the truth, per frame",
                x_label: "frame",
                y_label: "PSNR (dB)",
                series: series(&|s| s.psnr),
            },
            Chart {
                title: "CIEDE2000 against the truth, per frame",
                x_label: "frame",
                y_label: "mean Delta E 2000",
                series: series(&|s| s.delta_e2000),
            },
        ];
        charts_png(path, &charts, 900, 320)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// Refreshes per second the daemon's `auto` would give one camera here: one over the network's
/// median time on a frame of the clip's inference size (640x480 assumed), idle machine.
fn auto_rate(
    colorizer: &dyn nircolor::models::colorizer::Colorizer,
    scale: f64,
    max: usize,
) -> f64 {
    let (w, h) = nircolor::detail::lowres::inference_size(640, 480, scale, max);
    let low = Gray::new(w, h, vec![0.5; w * h]);
    let timing = nircolor::offline::bench::time_model(colorizer, &low, 5, (w, h), || {});
    let rate = 1e3 / timing.median_ms.max(0.1);
    println!(
        "auto: the network takes {:.0} ms here, {rate:.1} refreshes/s",
        timing.median_ms
    );
    rate
}
