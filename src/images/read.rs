//! Image files as the stages read them: a folder's images by stem, NIR as one plane in [0, 1]
//! (8- or 16-bit gray, or three equal channels), colour as 8-bit sRGB. PNG, JPEG (through
//! libjpeg-turbo) and TIFF; every defect is an [`ImageFileError`] naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};

use super::planes::Gray;

/// What can be wrong with an image file or a folder of them, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    #[error(
        "folder {0} does not exist; pass a folder that holds the images (nir/ and rgb/ sub-folders for a dataset)"
    )]
    MissingFolder(PathBuf),
    #[error("{0} is not a folder; pass a folder that holds the images (nir/ and rgb/ sub-folders for a dataset)")]
    NotAFolder(PathBuf),
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error(
        "{first} and {second} share the stem '{stem}'; keep one of them so pairs are unambiguous"
    )]
    DuplicateStem {
        stem: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot read {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{path} is a colour image (channels differ at pixel ({x}, {y})); a NIR image must be grayscale or have three equal channels")]
    NirHasColour { path: PathBuf, x: u32, y: u32 },
    #[error("{path} is a grayscale image; the ground truth must be a colour (RGB) image")]
    TruthIsGray { path: PathBuf },
    #[error("{path} has an unsupported pixel format ({format}); use 8- or 16-bit integer images")]
    UnsupportedFormat { path: PathBuf, format: String },
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The images of one folder keyed by file stem, sorted; hidden files and non-images are ignored.
pub fn list_images(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ImageFileError> {
    if !dir.exists() {
        return Err(ImageFileError::MissingFolder(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(ImageFileError::NotAFolder(dir.to_path_buf()));
    }
    let list_err = |source| ImageFileError::List {
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
            return Err(ImageFileError::DuplicateStem {
                stem,
                first,
                second,
            });
        }
    }
    Ok(out)
}

/// Reads a mask image (any readable type) as 8-bit gray: 255 marks, 0 does not.
pub fn read_mask(path: &Path) -> Result<image::GrayImage, ImageFileError> {
    Ok(read_image(path)?.to_luma8())
}

fn read_image(path: &Path) -> Result<DynamicImage, ImageFileError> {
    let bytes = std::fs::read(path).map_err(|e| ImageFileError::Unreadable {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    decode_image(&bytes, path)
}

/// Decodes an image file's bytes. JPEG goes through libjpeg-turbo, the decoder PIL, OpenCV,
/// scikit-image and the published evaluations use, so that a JPEG ground truth has the same
/// pixels here as there (the `image` crate's own decoder rounds differently, which moved AE
/// and Delta E in the third digit); everything else through the `image` crate.
fn decode_image(bytes: &[u8], path: &Path) -> Result<DynamicImage, ImageFileError> {
    let unreadable = |why: String| ImageFileError::Unreadable {
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
pub fn read_nir(path: &Path) -> Result<Gray, ImageFileError> {
    nir_from_image(path, read_image(path)?)
}

/// [`read_nir`] of an image file's bytes (`origin` names it in errors).
pub fn nir_from_bytes(bytes: &[u8], origin: &Path) -> Result<Gray, ImageFileError> {
    nir_from_image(origin, decode_image(bytes, origin)?)
}

fn nir_from_image(path: &Path, img: DynamicImage) -> Result<Gray, ImageFileError> {
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
            return Err(ImageFileError::UnsupportedFormat {
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

fn equal_channels<T: PartialEq>(
    path: &Path,
    width: usize,
    raw: &[T],
) -> Result<(), ImageFileError> {
    match raw
        .chunks_exact(3)
        .position(|p| p[0] != p[1] || p[0] != p[2])
    {
        Some(i) => Err(ImageFileError::NirHasColour {
            path: path.to_path_buf(),
            x: (i % width) as u32,
            y: (i / width) as u32,
        }),
        None => Ok(()),
    }
}

/// Reads a ground-truth colour image as 8-bit sRGB (16-bit is rounded to 8, alpha dropped).
pub fn read_rgb(path: &Path) -> Result<RgbImage, ImageFileError> {
    let img = read_image(path)?;
    match img {
        DynamicImage::ImageRgb8(b) => Ok(b),
        DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => Ok(img.to_rgb8()),
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLumaA16(_) => Err(ImageFileError::TruthIsGray {
            path: path.to_path_buf(),
        }),
        other => Err(ImageFileError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: format!("{:?}", other.color()),
        }),
    }
}
