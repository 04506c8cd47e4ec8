//! Writing calibration files: `nircolor calibrate` edits a camera's file in place (other keys
//! kept), checks the result as the daemon would read it, and only then replaces the file.

use std::path::{Path, PathBuf};

use super::{CalibrateError, Calibration, Flat, FlatFit};
use crate::images::planes::Gray;
use crate::runtime::toml_file::{read_text, Checker};

/// Colour-correction entries are rounded to this many decimals: finer steps change no 8-bit
/// output and only make the file hard to read.
const COLOR_DECIMALS: i32 = 4;

/// Applies `edit` to the calibration file `path` (created when missing) and checks the result.
/// Keys the edit leaves alone are kept; comments are not, since the file is rewritten.
pub fn update_file(
    path: &Path,
    edit: impl FnOnce(&mut toml::Table),
) -> Result<Calibration, CalibrateError> {
    let mut table: toml::Table = if path.exists() {
        let text = read_text(path, "the calibration file")?;
        // The file must be valid before it is changed: an edit must not bless a broken file.
        Calibration::parse(path, &text)?;
        Checker {
            file: path,
            text: &text,
        }
        .parse()?
    } else {
        toml::Table::new()
    };
    edit(&mut table);
    let body = toml::to_string(&table).map_err(|e| CalibrateError::Write {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let text = format!(
        "# nircolor camera calibration (README: \"Calibration\"); `nircolor calibrate` rewrites this file.\n{body}"
    );
    let checked = Calibration::parse(path, &text)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CalibrateError::Write {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    std::fs::write(path, text).map_err(|e| CalibrateError::Write {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    Ok(checked)
}

/// Writes a fitted polynomial flat field into the calibration file `path`, and the black level
/// when it was measured (`black`).
pub fn write_flat_fit(
    path: &Path,
    fit: &FlatFit,
    black: Option<f32>,
) -> Result<Calibration, CalibrateError> {
    let Flat::Poly {
        degree,
        coefficients,
    } = &fit.flat
    else {
        unreachable!("fit_flat returns a polynomial")
    };
    let mut flat = toml::Table::new();
    flat.insert("degree".into(), toml::Value::Integer(i64::from(*degree)));
    flat.insert(
        "coefficients".into(),
        toml::Value::Array(
            coefficients
                .iter()
                .map(|&c| toml::Value::Float(f64::from(c)))
                .collect(),
        ),
    );
    write_flat(path, flat, black)
}

/// Stores `image` (a smoothed flat field, peak 1) as a 16-bit PNG named `<stem>-flat.png` beside
/// the calibration file `path`, and points the file's flat field at it; returns the PNG's path.
pub fn write_flat_image(
    path: &Path,
    image: &Gray,
    black: Option<f32>,
) -> Result<PathBuf, CalibrateError> {
    let write_err = |p: &Path, why: String| CalibrateError::Write {
        path: p.to_path_buf(),
        why,
    };
    let stem = path
        .file_stem()
        .ok_or_else(|| write_err(path, "the calibration file has no file name".into()))?
        .to_string_lossy()
        .to_string();
    let name = format!("{stem}-flat.png");
    let png = path.with_file_name(&name);
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e.to_string()))?;
    }
    let raw: Vec<u16> = image
        .data
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
        image.width as u32,
        image.height as u32,
        raw,
    )
    .ok_or_else(|| write_err(&png, "the flat image has no pixels".into()))?
    .save(&png)
    .map_err(|e| write_err(&png, e.to_string()))?;
    let mut flat = toml::Table::new();
    flat.insert("image".into(), toml::Value::String(name));
    write_flat(path, flat, black)?;
    Ok(png)
}

fn write_flat(
    path: &Path,
    flat: toml::Table,
    black: Option<f32>,
) -> Result<Calibration, CalibrateError> {
    update_file(path, |t| {
        t.insert("flat".into(), toml::Value::Table(flat));
        if let Some(black) = black {
            t.insert("black_level".into(), toml::Value::Float(f64::from(black)));
        }
    })
}

/// Writes an output colour correction into the calibration file `path`: white-balance gains
/// (the diagonal of `matrix`) with `gains_only`, the full 3x3 matrix otherwise.
pub fn write_color(
    path: &Path,
    matrix: &[[f32; 3]; 3],
    gains_only: bool,
) -> Result<Calibration, CalibrateError> {
    let scale = 10f64.powi(COLOR_DECIMALS);
    let num = |v: f32| toml::Value::Float((f64::from(v) * scale).round() / scale);
    let mut color = toml::Table::new();
    if gains_only {
        color.insert(
            "gains".into(),
            toml::Value::Array((0..3).map(|i| num(matrix[i][i])).collect()),
        );
    } else {
        color.insert(
            "matrix".into(),
            toml::Value::Array(
                matrix
                    .iter()
                    .map(|row| toml::Value::Array(row.iter().map(|&v| num(v)).collect()))
                    .collect(),
            ),
        );
    }
    update_file(path, |t| {
        t.insert("color".into(), toml::Value::Table(color));
    })
}
