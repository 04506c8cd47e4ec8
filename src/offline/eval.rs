//! Evaluation: run a colorizer over a paired dataset, time it, score every image with
//! [`crate::offline::metrics`], and summarise as the mean over images (the published protocol).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::images::planes::Rgb;
use crate::images::read;
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
    /// With an `objects/` folder beside the pairs: the scores inside and outside the objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectScores>,
}

/// Scores inside the marked objects (things the reference does not show) and outside them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ObjectScores {
    pub inside: Metrics,
    pub outside: Metrics,
}

/// The mean over images.
#[derive(Clone, Debug, Serialize)]
pub struct MeanScore {
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(flatten)]
    pub split: Split,
    pub ms_per_image: f64,
    /// The means of [`ImageScore::objects`] over the images that have objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectScores>,
}

/// A whole run, in the JSON shape `nircolor eval --json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub data: String,
    pub mean: MeanScore,
    pub images: Vec<ImageScore>,
    /// Other models' outputs scored on the same pairs (`--compare`), by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub compare: BTreeMap<String, Compared>,
}

impl Evaluation {
    /// The side-by-side rows: the colorizer's mean, then each compared model's, with names.
    pub fn side_by_side(&self) -> impl Iterator<Item = (&str, &MeanScore)> {
        std::iter::once((self.model.as_str(), &self.mean))
            .chain(self.compare.iter().map(|(n, c)| (n.as_str(), &c.mean)))
    }
}

/// Another model's outputs on disk, scored beside the colorizer: one image per pair in `dir`,
/// named by the pair's stem (any of the readable image types).
#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    pub name: String,
    pub dir: PathBuf,
}

/// A compared model's scores (its `ms` are 0: it was not run here).
#[derive(Clone, Debug, Serialize)]
pub struct Compared {
    pub dir: String,
    pub mean: MeanScore,
    pub images: Vec<ImageScore>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Image(#[from] crate::images::read::ImageFileError),
    #[error("{name}: {source}")]
    Metrics { name: String, source: MetricsError },
    #[error("--compare {model}: {dir} has no image named '{stem}' (png, jpg or tif); give a folder with one output per evaluated pair, or select the pairs it has with --only")]
    MissingCompared {
        model: String,
        dir: PathBuf,
        stem: String,
    },
    #[error("--compare {model}: {path} is {got_w}x{got_h}, the ground truth {w}x{h}; compared outputs must be at the truth's size")]
    ComparedSize {
        model: String,
        path: PathBuf,
        got_w: u32,
        got_h: u32,
        w: u32,
        h: u32,
    },
    #[error("--compare {0} is given twice; give each compared model a name of its own")]
    DuplicateCompare(String),
    #[error("{dir} has no object mask named '{stem}'; an objects/ folder beside nir/ and rgb/ needs one mask per pair (255 inside an object)")]
    MissingObjects { dir: PathBuf, stem: String },
    #[error("object mask {path} is {got_w}x{got_h}, the ground truth {w}x{h}; masks must be at the truth's size")]
    ObjectsSize {
        path: PathBuf,
        got_w: u32,
        got_h: u32,
        w: u32,
        h: u32,
    },
    #[error("{0}")]
    Reference(String),
}

/// One output's score against `pair`'s truth (and inside and outside `objects`, when given).
fn score(
    pair: &Pair,
    out8: &image::RgbImage,
    ms: f64,
    objects: Option<&[bool]>,
) -> Result<ImageScore, EvalError> {
    let metric = |mask: Option<&[bool]>| {
        metrics::compute(out8, &pair.rgb, mask).map_err(|source| EvalError::Metrics {
            name: pair.name.clone(),
            source,
        })
    };
    let objects = match objects {
        Some(obj) if obj.iter().any(|&o| o) => {
            let valid = |i: usize| pair.mask.as_ref().is_none_or(|m| m[i]);
            let inside: Vec<bool> = (0..obj.len()).map(|i| obj[i] && valid(i)).collect();
            let outside: Vec<bool> = (0..obj.len()).map(|i| !obj[i] && valid(i)).collect();
            Some(ObjectScores {
                inside: metric(Some(&inside))?,
                outside: metric(Some(&outside))?,
            })
        }
        _ => None,
    };
    Ok(ImageScore {
        name: pair.name.clone(),
        metrics: metric(pair.mask.as_deref())?,
        split: metrics::split(out8, &pair.rgb, pair.mask.as_deref()),
        ms,
        objects,
    })
}

fn mean_of(images: &[ImageScore]) -> MeanScore {
    let all: Vec<Metrics> = images.iter().map(|s| s.metrics).collect();
    let splits: Vec<Split> = images.iter().map(|s| s.split).collect();
    MeanScore {
        metrics: Metrics::mean(&all),
        split: Split::mean(&splits),
        ms_per_image: images.iter().map(|s| s.ms).sum::<f64>() / images.len().max(1) as f64,
        objects: {
            let with: Vec<ObjectScores> = images.iter().filter_map(|s| s.objects).collect();
            (!with.is_empty()).then(|| ObjectScores {
                inside: Metrics::mean(&with.iter().map(|o| o.inside).collect::<Vec<_>>()),
                outside: Metrics::mean(&with.iter().map(|o| o.outside).collect::<Vec<_>>()),
            })
        },
    }
}

/// Evaluates `colorizer` on every pair of `data`, calling `on_image` after each (for progress
/// and reports) with the pair, the output and its score.
pub fn evaluate(
    colorizer: &dyn Colorizer,
    data: &Dataset,
    mut on_image: impl FnMut(&Pair, &Rgb, &ImageScore),
) -> Result<Evaluation, EvalError> {
    evaluate_compared(colorizer, data, &[], |pair, out, score, _| {
        on_image(pair, out, score)
    })
}

/// [`evaluate`], with the outputs of the `compare` models scored on the same pairs;
/// `on_image` also gets their images, in the order of [`Evaluation::compare`] (by name).
pub fn evaluate_compared(
    colorizer: &dyn Colorizer,
    data: &Dataset,
    compare: &[Compare],
    on_image: impl FnMut(&Pair, &Rgb, &ImageScore, &[image::RgbImage]),
) -> Result<Evaluation, EvalError> {
    evaluate_with(
        &colorizer.name(),
        |pair| Ok(colorizer.colorize(&pair.nir)),
        data,
        compare,
        on_image,
    )
}

/// [`evaluate_compared`] with any way of colouring a pair (`colorize`, e.g. a network with the
/// pair's day reference), recorded under `name`. When `data` has an `objects/` folder (masks
/// by stem, 255 inside), every score is also split inside and outside the objects.
pub fn evaluate_with(
    name: &str,
    mut colorize: impl FnMut(&Pair) -> Result<Rgb, EvalError>,
    data: &Dataset,
    compare: &[Compare],
    mut on_image: impl FnMut(&Pair, &Rgb, &ImageScore, &[image::RgbImage]),
) -> Result<Evaluation, EvalError> {
    let objects = ObjectMasks::open(data)?;
    let mut compare = compare.to_vec();
    compare.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = compare.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(EvalError::DuplicateCompare(w[0].name.clone()));
    }
    let listings = compare
        .iter()
        .map(|c| read::list_images(&c.dir))
        .collect::<Result<Vec<_>, _>>()?;
    let mut images = Vec::with_capacity(data.len());
    let mut compared: Vec<Vec<ImageScore>> = vec![Vec::new(); compare.len()];
    for i in 0..data.len() {
        let pair = data.load(i)?;
        let start = Instant::now();
        let out = colorize(&pair)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let object_mask = match &objects {
            Some(masks) => Some(masks.of(&pair)?),
            None => None,
        };
        let image_score = score(&pair, &out.to_rgb8(), ms, object_mask.as_deref())?;
        let mut others = Vec::with_capacity(compare.len());
        for ((c, listing), scores) in compare.iter().zip(&listings).zip(&mut compared) {
            let path = listing
                .get(&pair.name)
                .ok_or_else(|| EvalError::MissingCompared {
                    model: c.name.clone(),
                    dir: c.dir.clone(),
                    stem: pair.name.clone(),
                })?;
            let img = read::read_rgb(path)?;
            if img.dimensions() != pair.rgb.dimensions() {
                return Err(EvalError::ComparedSize {
                    model: c.name.clone(),
                    path: path.clone(),
                    got_w: img.width(),
                    got_h: img.height(),
                    w: pair.rgb.width(),
                    h: pair.rgb.height(),
                });
            }
            scores.push(score(&pair, &img, 0.0, object_mask.as_deref())?);
            others.push(img);
        }
        on_image(&pair, &out, &image_score, &others);
        images.push(image_score);
    }
    let compare = compare
        .into_iter()
        .zip(compared)
        .map(|(c, images)| {
            let scores = Compared {
                dir: c.dir.display().to_string(),
                mean: mean_of(&images),
                images,
            };
            (c.name, scores)
        })
        .collect();
    Ok(Evaluation {
        model: name.to_string(),
        data: data.root.display().to_string(),
        mean: mean_of(&images),
        images,
        compare,
    })
}

/// The masks of the objects that a paired folder marks in `objects/` beside `nir/` (one per
/// stem, 255 inside): the things its day references do not show.
pub struct ObjectMasks {
    dir: PathBuf,
    listing: BTreeMap<String, PathBuf>,
}

impl ObjectMasks {
    /// The folder's masks, or `None` when it has no `objects/`.
    pub fn open(data: &Dataset) -> Result<Option<Self>, EvalError> {
        let dir = data.root.join("objects");
        if !dir.is_dir() {
            return Ok(None);
        }
        let listing = read::list_images(&dir)?;
        Ok(Some(Self { dir, listing }))
    }

    /// The object mask of `pair` (true inside an object).
    pub fn of(&self, pair: &Pair) -> Result<Vec<bool>, EvalError> {
        let path = self
            .listing
            .get(&pair.name)
            .ok_or_else(|| EvalError::MissingObjects {
                dir: self.dir.clone(),
                stem: pair.name.clone(),
            })?;
        let mask = read::read_mask(path)?;
        if mask.dimensions() != pair.rgb.dimensions() {
            return Err(EvalError::ObjectsSize {
                path: path.clone(),
                got_w: mask.width(),
                got_h: mask.height(),
                w: pair.rgb.width(),
                h: pair.rgb.height(),
            });
        }
        Ok(mask.pixels().map(|p| p[0] >= 128).collect())
    }
}

/// The means inside and outside the objects, when the data marks them.
pub fn objects_table(e: &Evaluation) -> Option<String> {
    let mut out = format!(
        "{:<24}  {:>7} {:>6} {:>6} {:>7}\n",
        "objects", "PSNR", "SSIM", "AE", "dE2000"
    );
    let mut any = false;
    for (name, m) in e.side_by_side() {
        let Some(o) = m.objects else { continue };
        any = true;
        for (part, s) in [("inside", o.inside), ("outside", o.outside)] {
            out += &format!(
                "{:<24}  {:>7.3} {:>6.4} {:>6.3} {:>7.3}\n",
                format!("{name} {part}"),
                s.psnr,
                s.ssim,
                s.ae,
                s.delta_e2000
            );
        }
    }
    any.then_some(out)
}

/// The side-by-side of the colorizer and every compared model: one row each (means over the
/// same pairs), with colourfulness beside the truth's.
pub fn compare_table(e: &Evaluation) -> String {
    let rows: Vec<(&str, &MeanScore)> = e.side_by_side().collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$}  {:>7} {:>6} {:>6} {:>7} {:>14}\n",
        "model", "PSNR", "SSIM", "AE", "dE2000", "colourfulness"
    );
    for (name, m) in rows {
        out += &format!(
            "{:<width$}  {:>7.3} {:>6.4} {:>6.3} {:>7.3} {:>14.1}\n",
            name,
            m.metrics.psnr,
            m.metrics.ssim,
            m.metrics.ae,
            m.metrics.delta_e2000,
            m.split.colourfulness
        );
    }
    out += &format!(
        "{:<width$}  {:>7} {:>6} {:>6} {:>7} {:>14.1}\n",
        "truth", "-", "-", "-", "-", e.mean.split.truth_colourfulness
    );
    out
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
