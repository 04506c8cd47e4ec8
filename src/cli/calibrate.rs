//! `nircolor calibrate flat|color`: derive a camera's calibration file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use nircolor::calibrate::{self, Calibration};
use nircolor::images::planes::Rgb;
use nircolor::images::read;

#[derive(Subcommand)]
pub(crate) enum CalibrateCommand {
    /// The flat field (lens and lighting fall-off) from frames of a uniformly lit target.
    Flat(FlatArgs),
    /// The output colour matrix from a NIR frame and a colour photo of the same view.
    Color(ColorArgs),
    /// A camera's day reference from a colour photo taken from its place, aligned to its view.
    Reference(ReferenceArgs),
}

#[derive(Args)]
pub(crate) struct ReferenceArgs {
    /// The pipeline configuration; the camera's `reference = { file = ... }` is written.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// The camera id in --config.
    #[arg(long)]
    pub(crate) camera: String,
    /// The colour photo (PNG, JPEG or TIFF), taken from the camera's place, facing its way.
    #[arg(long)]
    pub(crate) image: PathBuf,
    /// A NIR frame of the camera to align to, instead of frames captured from it now.
    #[arg(long)]
    pub(crate) nir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct FlatArgs {
    /// A folder of frames of the target (PNG, JPEG or TIFF, 8 or 16 bit).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub(crate) folder: Option<PathBuf>,
    /// Capture the frames from a camera of this pipeline configuration instead (with --camera).
    #[arg(long, requires = "camera")]
    pub(crate) config: Option<PathBuf>,
    /// The camera id in --config.
    #[arg(long, requires = "config")]
    pub(crate) camera: Option<String>,
    /// Frames to average when capturing from a camera.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) frames: u32,
    /// A folder of frames taken with the lens capped: their mean becomes black_level (otherwise
    /// the file's black_level, or 0).
    #[arg(long)]
    pub(crate) dark: Option<PathBuf>,
    /// Degree of the fitted polynomial.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub(crate) degree: u32,
    /// Store the smoothed mean frame as a 16-bit PNG beside the file instead of a polynomial
    /// (for fall-off a polynomial cannot follow).
    #[arg(long)]
    pub(crate) image: bool,
    /// The calibration file to write, or to update (its other keys are kept).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
pub(crate) struct ColorArgs {
    /// A NIR frame from the camera.
    #[arg(long)]
    pub(crate) nir: PathBuf,
    /// A colour photo of the same view (same framing; it is resized to the NIR frame).
    #[arg(long)]
    pub(crate) reference: PathBuf,
    /// The model the camera's pipeline runs (a weights file or a built-in).
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    /// Fit white-balance gains only (a diagonal matrix) instead of a full 3x3 matrix.
    #[arg(long)]
    pub(crate) gains_only: bool,
    /// The calibration file to write, or to update: its NIR correction is applied to the frame
    /// before the model, as the daemon does.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

/// The calibration already in `path`, or none when the file does not exist yet.
pub(crate) fn existing_calibration(path: &Path) -> Result<Calibration> {
    Ok(if path.exists() {
        Calibration::load(path)?
    } else {
        Calibration::identity(path)
    })
}

pub(crate) fn run_calibrate_flat(args: &FlatArgs) -> Result<()> {
    let existing = existing_calibration(&args.out)?;
    let (frames, from) = match (&args.folder, &args.config, &args.camera) {
        (Some(folder), _, _) => (
            calibrate::frames_from_folder(folder)?,
            folder.display().to_string(),
        ),
        (None, Some(config), Some(id)) => {
            let config = nircolor::daemon::config::Config::load(config)?;
            let cam = config
                .cameras
                .iter()
                .find(|c| &c.spec.id == id)
                .with_context(|| {
                    format!(
                        "{} has no camera '{id}'; its cameras: {}",
                        config.file.display(),
                        config
                            .cameras
                            .iter()
                            .map(|c| c.spec.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            println!(
                "capturing {} frames from camera '{id}' ({})",
                args.frames,
                cam.spec.source.describe()
            );
            let frames = calibrate::frames_from_camera(
                &cam.spec,
                args.frames as usize,
                5,
                Duration::from_secs(20 + u64::from(args.frames / cam.spec.fps.max(1))),
            )?;
            (frames, format!("camera '{id}'"))
        }
        _ => bail!("give --folder, or --config with --camera"),
    };
    let mean = calibrate::mean_frame(&frames);
    let black = match &args.dark {
        Some(dir) => {
            let dark = calibrate::frames_from_folder(dir)?;
            let d = calibrate::mean_frame(&dark);
            if (d.width, d.height) != (mean.width, mean.height) {
                bail!(
                    "the dark frames in {} are {}x{}, the flat frames {}x{}; take both with one camera mode",
                    dir.display(),
                    d.width,
                    d.height,
                    mean.width,
                    mean.height
                );
            }
            let level = d.data.iter().sum::<f32>() / d.data.len() as f32;
            if level > 0.5 {
                bail!(
                    "the dark frames in {} average {level:.3} of full scale; with the lens capped they should be near 0",
                    dir.display()
                );
            }
            level
        }
        None => existing.black_level,
    };
    let measured_black = args.dark.is_some().then_some(black);
    let summary = if args.image {
        let image = calibrate::flat_image(&mean, black)?;
        let png = calibrate::write_flat_image(&args.out, &image, measured_black)?;
        let low = image.data.iter().copied().fold(f32::MAX, f32::min);
        format!(
            "flat field image {} (darkest point at {:.0}% of the brightest)",
            png.display(),
            low * 100.0
        )
    } else {
        let fit = calibrate::fit_flat(&mean, black, args.degree)?;
        calibrate::write_flat_fit(&args.out, &fit, measured_black)?;
        format!(
            "flat field: degree {} polynomial, residual {:.2}% rms, darkest point at {:.0}% of the brightest",
            args.degree,
            fit.rms * 100.0,
            fit.falloff * 100.0
        )
    };
    println!(
        "{} frame(s) of {}x{} from {from}, black level {black:.4}",
        frames.len(),
        mean.width,
        mean.height
    );
    println!("{summary}");
    println!("wrote {}", args.out.display());
    Ok(())
}

pub(crate) fn run_calibrate_color(args: &ColorArgs) -> Result<()> {
    let existing = existing_calibration(&args.out)?;
    let mut nir = read::read_nir(&args.nir)?;
    existing.prepare(nir.width, nir.height)?.nir(&mut nir);
    let reference = Rgb::from_rgb8(&read::read_rgb(&args.reference)?);
    let model = nircolor::models::load(&args.model)
        .with_context(|| format!("loading model '{}'", args.model))?;
    let output = model.colorize(&nir);
    let fit = calibrate::fit_color(&output, &reference, args.gains_only)?;
    let m = fit.matrix;
    calibrate::write_color(&args.out, &m, args.gains_only)?;
    println!(
        "{} fit on {} pixels with {}: RMS error {:.1} -> {:.1} (0-255)",
        if args.gains_only {
            "white-balance gains"
        } else {
            "colour matrix"
        },
        fit.pixels,
        model.name(),
        fit.rmse_before,
        fit.rmse_after
    );
    for row in m {
        println!("  [{:7.4} {:7.4} {:7.4}]", row[0], row[1], row[2]);
    }
    if fit.rmse_after > 0.97 * fit.rmse_before {
        println!("note: the correction barely helps on this pair; is the reference the same view?");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `nircolor calibrate reference`: the photo aligned to the camera's NIR (zoom and shift), and
/// written atomically as the camera's day reference; refused with the score it reached.
pub(crate) fn run_calibrate_reference(args: &ReferenceArgs) -> Result<()> {
    use nircolor::reference::{align, read, store};
    let config = nircolor::daemon::config::Config::load(&args.config)?;
    let id = &args.camera;
    let cam = config
        .cameras
        .iter()
        .find(|c| &c.spec.id == id)
        .with_context(|| format!("{} has no camera '{id}'", config.file.display()))?;
    let Some(settings) = &cam.reference else {
        bail!(
            "camera '{id}' in {} keeps no day reference: add reference = {{ file = \"references/{id}.png\" }} to its [[camera]]",
            config.file.display()
        );
    };
    let photo = read(&args.image)?;
    let nir = match &args.nir {
        Some(path) => read::read_nir(path)?,
        None => {
            println!(
                "capturing 5 frames from camera '{id}' ({})",
                cam.spec.source.describe()
            );
            let frames = calibrate::frames_from_camera(&cam.spec, 5, 5, Duration::from_secs(30))?;
            calibrate::mean_frame(&frames)
        }
    };
    if (nir.width, nir.height) != (cam.spec.width as usize, cam.spec.height as usize) {
        bail!(
            "the NIR frame is {}x{} but camera '{id}' delivers {}x{}",
            nir.width,
            nir.height,
            cam.spec.width,
            cam.spec.height
        );
    }
    let (placed, at) = align::align(&nir, &photo).with_context(|| {
        format!(
            "{} cannot be camera '{id}''s reference",
            args.image.display()
        )
    })?;
    let reference = store::StoredReference {
        meta: store::ReferenceMeta {
            made_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            frames: 1,
            span_seconds: 0.0,
            stillness: 0.0,
            width: placed.width,
            height: placed.height,
            photo: Some(format!(
                "{} (zoom {}, shift {:+} {:+} px, edge correlation {:.3})",
                args.image.display(),
                at.zoom,
                at.dx,
                at.dy,
                at.score
            )),
        },
        image: placed,
    };
    store::save(&settings.file, &reference)?;
    println!(
        "wrote {} for camera '{id}': the photo zoomed {} and shifted {:+} {:+} px, edge correlation with its NIR {:.3}",
        settings.file.display(),
        at.zoom,
        at.dx,
        at.dy,
        at.score
    );
    Ok(())
}
