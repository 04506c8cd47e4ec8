//! Paired NIR/RGB datasets: a folder with `nir/` and `rgb/` (optional `mask/`) whose files pair
//! by stem, read through [`crate::images::read`]; every defect is a [`DataError`] naming the file.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::images::planes::Gray;
use crate::images::read::{list_images, read_mask, read_nir, read_rgb, ImageFileError};

/// What can be wrong with a dataset, each saying what to do about it; a file that cannot be read
/// is an [`ImageFileError`] inside.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Image(#[from] ImageFileError),
    #[error("{0} holds no PNG, JPEG or TIFF images; put the images there or pick another folder")]
    Empty(PathBuf),
    #[error("{file} has no partner: no file with stem '{stem}' in {expected_in}; add it or remove the file")]
    Unpaired {
        file: PathBuf,
        stem: String,
        expected_in: PathBuf,
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
    #[error(
        "after applying the include/exclude lists no pair of {0} is left; check the list files"
    )]
    NothingSelected(PathBuf),
    #[error("cannot read the stem list {path}: {source}")]
    StemList { path: PathBuf, source: io::Error },
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
            return Err(ImageFileError::MissingFolder(root.to_path_buf()).into());
        }
        if !root.is_dir() {
            return Err(ImageFileError::NotAFolder(root.to_path_buf()).into());
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
                let m = read_mask(path)?;
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
