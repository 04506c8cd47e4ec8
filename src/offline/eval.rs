//! Evaluation: run a colorizer over a paired dataset, time it, score every image with
//! [`crate::offline::metrics`], and summarise as the mean over images (the published protocol).

use std::time::Instant;

use serde::Serialize;

use crate::images::planes::Rgb;
use crate::models::colorizer::Colorizer;
use crate::offline::data::{DataError, Dataset, Pair};
use crate::offline::metrics::{self, Metrics, MetricsError, Split};

/// Scores of one image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageScore {
    pub name: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(flatten)]
    pub split: Split,
    /// Colorizer time for this image (reading and scoring excluded).
    pub ms: f64,
}

/// The mean over images.
#[derive(Clone, Debug, Serialize)]
pub struct MeanScore {
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(flatten)]
    pub split: Split,
    pub ms_per_image: f64,
}

/// A whole run, in the JSON shape `nircolor eval --json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub data: String,
    pub mean: MeanScore,
    pub images: Vec<ImageScore>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{name}: {source}")]
    Metrics { name: String, source: MetricsError },
}

/// Evaluates `colorizer` on every pair of `data`, calling `on_image` after each (for progress
/// and reports) with the pair, the output and its score.
pub fn evaluate(
    colorizer: &dyn Colorizer,
    data: &Dataset,
    mut on_image: impl FnMut(&Pair, &Rgb, &ImageScore),
) -> Result<Evaluation, EvalError> {
    let mut images = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let pair = data.load(i)?;
        let start = Instant::now();
        let out = colorizer.colorize(&pair.nir);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let out8 = out.to_rgb8();
        let metrics =
            metrics::compute(&out8, &pair.rgb, pair.mask.as_deref()).map_err(|source| {
                EvalError::Metrics {
                    name: pair.name.clone(),
                    source,
                }
            })?;
        let score = ImageScore {
            name: pair.name.clone(),
            metrics,
            split: metrics::split(&out8, &pair.rgb, pair.mask.as_deref()),
            ms,
        };
        on_image(&pair, &out, &score);
        images.push(score);
    }
    let all: Vec<Metrics> = images.iter().map(|s| s.metrics).collect();
    let splits: Vec<Split> = images.iter().map(|s| s.split).collect();
    let ms_per_image = images.iter().map(|s| s.ms).sum::<f64>() / images.len().max(1) as f64;
    Ok(Evaluation {
        model: colorizer.name(),
        data: data.root.display().to_string(),
        mean: MeanScore {
            metrics: Metrics::mean(&all),
            split: Split::mean(&splits),
            ms_per_image,
        },
        images,
    })
}

/// The table `nircolor eval` prints: one row per image, then the mean.
pub fn table(e: &Evaluation) -> String {
    let width = e
        .images
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:>7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>8}\n",
        "name", "PSNR", "SSIM", "AE", "RMSE", "MAE", "dE2000", "dE76", "ms"
    );
    let row = |name: &str, m: &Metrics, ms: f64| {
        format!(
            "{:<width$}  {:>7.3} {:>6.4} {:>6.3} {:>6.2} {:>6.2} {:>7.3} {:>7.3} {:>8.2}\n",
            name, m.psnr, m.ssim, m.ae, m.rmse, m.mae, m.delta_e2000, m.delta_e76, ms
        )
    };
    for s in &e.images {
        out += &row(&s.name, &s.metrics, s.ms);
    }
    out += &row("mean", &e.mean.metrics, e.mean.ms_per_image);
    out
}

/// Where the mean error lies (luma or chroma) and how colourful the output is, as two lines.
pub fn error_split(e: &Evaluation) -> String {
    let s = &e.mean.split;
    format!(
        "PSNR with only the luma wrong {:.2}, with only the chroma wrong {:.2} (the other taken from the truth)\ncolourfulness (mean max - min channel, 0-255): {:.1}, truth {:.1}\n",
        s.psnr_luma_only, s.psnr_chroma_only, s.colourfulness, s.truth_colourfulness
    )
}
