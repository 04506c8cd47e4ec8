//! The training curve beside the weights: loss and validation PSNR per epoch as a PNG, drawn
//! with `image` and the 3x5 pixel [`crate::images::font`] so it needs no font files.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::images::font::text;
use crate::offline::train_net::EpochLog;

const W: u32 = 900;
const H: u32 = 360;

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x.round() as i64 + dx, y.round() as i64 + dy);
            if (0..W as i64).contains(&px) && (0..H as i64).contains(&py) {
                img.put_pixel(px as u32, py as u32, colour);
            }
        }
    }
}

/// One panel: `values` per epoch (NaN skipped) in the box from `left` of width 400.
fn panel(img: &mut RgbImage, left: u32, title: &str, values: &[(usize, f64)], colour: Rgb<u8>) {
    let (top, bottom, w) = (30.0, H as f64 - 30.0, 380.0);
    let x0 = left as f64 + 50.0;
    let grey = Rgb([200, 200, 200]);
    let black = Rgb([0, 0, 0]);
    text(img, left + 50, 8, title, black);
    let finite: Vec<(usize, f64)> = values.iter().copied().filter(|v| v.1.is_finite()).collect();
    if finite.is_empty() {
        return;
    }
    let lo = finite.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let last_epoch = finite.iter().map(|v| v.0).max().unwrap_or(1).max(2);
    let px = |e: usize| x0 + w * (e as f64 - 1.0) / (last_epoch as f64 - 1.0);
    let py = |v: f64| bottom - (bottom - top) * (v - lo) / (hi - lo);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = py(v);
        line(img, (x0, y), (x0 + w, y), grey);
        let label = if hi.abs() < 10.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        };
        text(img, left + 2, y as u32 - 5, &label, black);
    }
    line(img, (x0, top), (x0, bottom), black);
    line(img, (x0, bottom), (x0 + w, bottom), black);
    text(img, x0 as u32, bottom as u32 + 8, "1", black);
    let end = last_epoch.to_string();
    text(
        img,
        (x0 + w) as u32 - 8 * end.len() as u32,
        bottom as u32 + 8,
        &end,
        black,
    );
    text(
        img,
        (x0 + w / 2.0) as u32 - 20,
        bottom as u32 + 8,
        "epoch",
        black,
    );
    for pair in finite.windows(2) {
        line(
            img,
            (px(pair[0].0), py(pair[0].1)),
            (px(pair[1].0), py(pair[1].1)),
            colour,
        );
    }
    if finite.len() == 1 {
        let (x, y) = (px(finite[0].0), py(finite[0].1));
        line(img, (x - 2.0, y), (x + 2.0, y), colour);
    }
}

/// Writes the curve of `history` to `path` (PNG).
pub fn write(history: &[EpochLog], path: &Path) -> Result<(), image::ImageError> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let loss: Vec<(usize, f64)> = history.iter().map(|e| (e.epoch, e.loss)).collect();
    let psnr: Vec<(usize, f64)> = history
        .iter()
        .map(|e| (e.epoch, e.val_psnr.unwrap_or(f64::NAN)))
        .collect();
    panel(&mut img, 0, "training loss", &loss, Rgb([200, 40, 40]));
    panel(&mut img, 450, "val psnr db", &psnr, Rgb([40, 80, 200]));
    img.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_curves() {
        let history: Vec<EpochLog> = (1..=5)
            .map(|e| EpochLog {
                epoch: e,
                loss: 1.0 / e as f64,
                val_psnr: Some(10.0 + e as f64),
                seconds: 1.0,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        write(&history, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        assert!(count([200, 40, 40]) > 100, "loss curve drawn");
        assert!(count([40, 80, 200]) > 100, "psnr curve drawn");
    }
}
