//! Paired NIR/RGB datasets: a folder with `nir/` and `rgb/` (optional `mask/`) whose files pair
//! by stem. Reads PNG, JPEG and TIFF, 8- or 16-bit; every defect is a [`DataError`] naming the file.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};

use crate::images::planes::Gray;

/// What can be wrong with a dataset or an image file, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "dataset folder {0} does not exist; pass a folder that holds nir/ and rgb/ sub-folders"
    )]
    MissingFolder(PathBuf),
    #[error("{0} is not a folder; pass a folder that holds nir/ and rgb/ sub-folders")]
    NotAFolder(PathBuf),
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("{0} holds no PNG, JPEG or TIFF images; put the images there or pick another folder")]
    Empty(PathBuf),
    #[error("{file} has no partner: no file with stem '{stem}' in {expected_in}; add it or remove the file")]
    Unpaired {
        file: PathBuf,
        stem: String,
        expected_in: PathBuf,
    },
    #[error(
        "{first} and {second} share the stem '{stem}'; keep one of them so pairs are unambiguous"
    )]
    DuplicateStem {
        stem: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("sizes differ: {nir} is {nir_w}x{nir_h} but {other} is {other_w}x{other_h}; pairs must be pixel-registered at the same size")]
    SizeMismatch {
        nir: PathBuf,
        nir_w: u32,
        nir_h: u32,
        other: PathBuf,
        other_w: u32,
        other_h: u32,
    },
    #[error("cannot read {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{path} is a colour image (channels differ at pixel ({x}, {y})); a NIR image must be grayscale or have three equal channels")]
    NirHasColour { path: PathBuf, x: u32, y: u32 },
    #[error("{path} is a grayscale image; the ground truth must be a colour (RGB) image")]
    TruthIsGray { path: PathBuf },
    #[error("{path} has an unsupported pixel format ({format}); use 8- or 16-bit integer images")]
    UnsupportedFormat { path: PathBuf, format: String },
    #[error(
        "after applying the include/exclude lists no pair of {0} is left; check the list files"
    )]
    NothingSelected(PathBuf),
    #[error("cannot read the stem list {path}: {source}")]
    StemList { path: PathBuf, source: io::Error },
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The images of one folder keyed by file stem, sorted; hidden files and non-images are ignored.
pub fn list_images(dir: &Path) -> Result<BTreeMap<String, PathBuf>, DataError> {
    if !dir.exists() {
        return Err(DataError::MissingFolder(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(DataError::NotAFolder(dir.to_path_buf()));
    }
    let list_err = |source| DataError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let path = entry.map_err(list_err)?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden || !path.is_file() || !is_image(&path) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(first) = out.insert(stem.clone(), path.clone()) {
            let (first, second) = if first < path {
                (first, path)
            } else {
                (path, first)
            };
            return Err(DataError::DuplicateStem {
                stem,
                first,
                second,
            });
        }
    }
    Ok(out)
}

/// Reads a list of stems (one per line, `#` comments) used to hold pairs out or select them.
pub fn read_stem_list(path: &Path) -> Result<HashSet<String>, DataError> {
    let text = fs::read_to_string(path).map_err(|source| DataError::StemList {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The file paths of one pair.
#[derive(Clone, Debug)]
pub struct PairPaths {
    pub name: String,
    pub nir: PathBuf,
    pub rgb: PathBuf,
    pub mask: Option<PathBuf>,
}

/// A loaded pair: NIR in [0, 1], the 8-bit sRGB ground truth, and the valid-pixel mask if any.
#[derive(Clone, Debug)]
pub struct Pair {
    pub name: String,
    pub nir: Gray,
    pub rgb: RgbImage,
    pub mask: Option<Vec<bool>>,
}

/// A paired dataset folder, listed and checked but not yet read.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub pairs: Vec<PairPaths>,
}

impl Dataset {
    /// Lists `root/nir`, `root/rgb` and `root/mask` and pairs them by stem. Every NIR needs an RGB
    /// partner and vice versa; when `mask/` exists every pair needs a mask.
    pub fn open(root: &Path) -> Result<Dataset, DataError> {
        if !root.exists() {
            return Err(DataError::MissingFolder(root.to_path_buf()));
        }
        if !root.is_dir() {
            return Err(DataError::NotAFolder(root.to_path_buf()));
        }
        let (nir_dir, rgb_dir, mask_dir) = (root.join("nir"), root.join("rgb"), root.join("mask"));
        let nir = list_images(&nir_dir)?;
        let rgb = list_images(&rgb_dir)?;
        let mask = if mask_dir.is_dir() {
            Some(list_images(&mask_dir)?)
        } else {
            None
        };
        if nir.is_empty() {
            return Err(DataError::Empty(nir_dir));
        }
        for (stem, path) in &rgb {
            if !nir.contains_key(stem) {
                return Err(DataError::Unpaired {
                    file: path.clone(),
                    stem: stem.clone(),
                    expected_in: nir_dir,
                });
            }
        }
        let mut pairs = Vec::with_capacity(nir.len());
        for (stem, nir_path) in nir {
            let unpaired = |expected_in: &Path| DataError::Unpaired {
                file: nir_path.clone(),
                stem: stem.clone(),
                expected_in: expected_in.to_path_buf(),
            };
            let rgb_path = rgb.get(&stem).ok_or_else(|| unpaired(&rgb_dir))?.clone();
            let mask_path = match &mask {
                Some(m) => Some(m.get(&stem).ok_or_else(|| unpaired(&mask_dir))?.clone()),
                None => None,
            };
            pairs.push(PairPaths {
                name: stem,
                nir: nir_path,
                rgb: rgb_path,
                mask: mask_path,
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            pairs,
        })
    }

    /// Keeps only the pairs named in `only` (when given) and not named in `exclude`.
    pub fn select(
        mut self,
        only: Option<&HashSet<String>>,
        exclude: &HashSet<String>,
    ) -> Result<Dataset, DataError> {
        self.pairs
            .retain(|p| only.is_none_or(|o| o.contains(&p.name)) && !exclude.contains(&p.name));
        if self.pairs.is_empty() {
            return Err(DataError::NothingSelected(self.root.clone()));
        }
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Reads pair `i` and checks that the three files have one size.
    pub fn load(&self, i: usize) -> Result<Pair, DataError> {
        let p = &self.pairs[i];
        let nir = read_nir(&p.nir)?;
        let rgb = read_rgb(&p.rgb)?;
        check_size(&p.nir, &nir, &p.rgb, rgb.width(), rgb.height())?;
        let mask = match &p.mask {
            Some(path) => {
                let m = read_image(path)?.to_luma8();
                check_size(&p.nir, &nir, path, m.width(), m.height())?;
                Some(m.as_raw().iter().map(|&v| v > 127).collect())
            }
            None => None,
        };
        Ok(Pair {
            name: p.name.clone(),
            nir,
            rgb,
            mask,
        })
    }
}

/// Reads a mask image (any readable type) as 8-bit gray: 255 marks, 0 does not.
pub fn read_mask(path: &Path) -> Result<image::GrayImage, DataError> {
    Ok(read_image(path)?.to_luma8())
}

fn check_size(nir_path: &Path, nir: &Gray, other: &Path, w: u32, h: u32) -> Result<(), DataError> {
    if (nir.width, nir.height) != (w as usize, h as usize) {
        return Err(DataError::SizeMismatch {
            nir: nir_path.to_path_buf(),
            nir_w: nir.width as u32,
            nir_h: nir.height as u32,
            other: other.to_path_buf(),
            other_w: w,
            other_h: h,
        });
    }
    Ok(())
}

fn read_image(path: &Path) -> Result<DynamicImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Unreadable {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    decode_image(&bytes, path)
}

/// Decodes an image file's bytes. JPEG goes through libjpeg-turbo, the decoder PIL, OpenCV,
/// scikit-image and the published evaluations use, so that a JPEG ground truth has the same
/// pixels here as there (the `image` crate's own decoder rounds differently, which moved AE
/// and Delta E in the third digit); everything else through the `image` crate.
fn decode_image(bytes: &[u8], path: &Path) -> Result<DynamicImage, DataError> {
    let unreadable = |why: String| DataError::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        return decode_jpeg(bytes).map_err(|e| unreadable(e.to_string()));
    }
    reader.decode().map_err(|e| unreadable(e.to_string()))
}

/// A JPEG through libjpeg-turbo: gray stays gray, everything else becomes 8-bit RGB.
fn decode_jpeg(bytes: &[u8]) -> Result<DynamicImage, turbojpeg::Error> {
    let mut d = turbojpeg::Decompressor::new()?;
    let header = d.read_header(bytes)?;
    let (width, height) = (header.width, header.height);
    let gray = header.colorspace == turbojpeg::Colorspace::Gray;
    let (format, channels) = if gray {
        (turbojpeg::PixelFormat::GRAY, 1)
    } else {
        (turbojpeg::PixelFormat::RGB, 3)
    };
    let mut image = turbojpeg::Image {
        pixels: vec![0u8; channels * width * height],
        width,
        pitch: channels * width,
        height,
        format,
    };
    d.decompress(bytes, image.as_deref_mut())?;
    let (w, h) = (width as u32, height as u32);
    let pixels = image.pixels;
    let built = if gray {
        image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    Ok(built.expect("the buffer was sized for the header's dimensions"))
}

/// Reads a NIR image as one plane in [0, 1]: 8- or 16-bit gray, or three equal channels.
pub fn read_nir(path: &Path) -> Result<Gray, DataError> {
    nir_from_image(path, read_image(path)?)
}

/// [`read_nir`] of an image file's bytes (`origin` names it in errors).
pub fn nir_from_bytes(bytes: &[u8], origin: &Path) -> Result<Gray, DataError> {
    nir_from_image(origin, decode_image(bytes, origin)?)
}

fn nir_from_image(path: &Path, img: DynamicImage) -> Result<Gray, DataError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = match &img {
        DynamicImage::ImageLuma8(b) => every(b.as_raw(), 1, 255.0),
        DynamicImage::ImageLuma16(b) => every(b.as_raw(), 1, 65535.0),
        DynamicImage::ImageLumaA8(_) => every(img.to_luma8().as_raw(), 1, 255.0),
        DynamicImage::ImageLumaA16(_) => every(img.to_luma16().as_raw(), 1, 65535.0),
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
            let rgb = img.to_rgb8();
            equal_channels(path, w, rgb.as_raw())?;
            every(rgb.as_raw(), 3, 255.0)
        }
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            let rgb = img.to_rgb16();
            equal_channels(path, w, rgb.as_raw())?;
            every(rgb.as_raw(), 3, 65535.0)
        }
        other => {
            return Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: format!("{:?}", other.color()),
            })
        }
    };
    Ok(Gray::new(w, h, data))
}

/// Every `step`-th value (the first channel of interleaved pixels) scaled by 1 / `max`.
fn every<T: Copy + Into<f32>>(raw: &[T], step: usize, max: f32) -> Vec<f32> {
    raw.iter().step_by(step).map(|&v| v.into() / max).collect()
}

fn equal_channels<T: PartialEq>(path: &Path, width: usize, raw: &[T]) -> Result<(), DataError> {
    match raw
        .chunks_exact(3)
        .position(|p| p[0] != p[1] || p[0] != p[2])
    {
        Some(i) => Err(DataError::NirHasColour {
            path: path.to_path_buf(),
            x: (i % width) as u32,
            y: (i / width) as u32,
        }),
        None => Ok(()),
    }
}

/// Reads a ground-truth colour image as 8-bit sRGB (16-bit is rounded to 8, alpha dropped).
pub fn read_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let img = read_image(path)?;
    match img {
        DynamicImage::ImageRgb8(b) => Ok(b),
        DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => Ok(img.to_rgb8()),
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLumaA16(_) => Err(DataError::TruthIsGray {
            path: path.to_path_buf(),
        }),
        other => Err(DataError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: format!("{:?}", other.color()),
        }),
    }
}
