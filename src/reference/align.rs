//! A colour photo from the camera's viewpoint made into its day reference
//! (`nircolor calibrate reference`): resized to the frame, then zoomed and shifted until its
//! edges line up with a NIR frame's ([`super::alignment`]); refused, with the score it reached,
//! when nothing lines up.

use super::{alignment, Alignment};
use crate::detail::{resize_area, resize_bilinear};
use crate::images::planes::{Gray, Rgb};

/// Zooms tried, about the centre: a phone photo from the camera's place frames a little wider
/// or narrower than the camera's lens.
const ZOOMS: [f32; 13] = [
    0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12,
];

/// The search runs at this width (the alignment's shifts are up to 6 of its pixels: 4 % of the
/// frame's width each way).
const SEARCH_WIDTH: usize = 160;

/// A photo whose aspect ratio differs from the frame's by more than this is of another camera
/// or was cropped: resizing it would distort the scene.
const MAX_ASPECT_DIFFERENCE: f32 = 0.03;

/// The least edge correlation of an accepted alignment. Registered NIR/colour pairs of the
/// hold-out score 0.11-0.92 in place (median 0.58); another scene's photo 0.02-0.2.
pub const MIN_SCORE: f32 = 0.25;

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    #[error("the photo is {pw}x{ph} (aspect {pa:.3}) but the camera's frames are {w}x{h} (aspect {a:.3}); take it with the camera's framing or crop it to that aspect")]
    Aspect {
        pw: usize,
        ph: usize,
        pa: f32,
        w: usize,
        h: usize,
        a: f32,
    },
    #[error("the photo does not line up with the camera's view: the best alignment's edge correlation is {score:.3} (zoom {zoom}, shift {dx:+} {dy:+} px), at least {MIN_SCORE} is needed; take the photo from the camera's place, facing where it faces")]
    NoMatch {
        score: f32,
        zoom: f32,
        dx: i32,
        dy: i32,
    },
}

/// How the photo was placed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    pub zoom: f32,
    /// The shift in full-resolution pixels.
    pub dx: i32,
    pub dy: i32,
    /// The edge correlation with the NIR once placed.
    pub score: f32,
}

/// `img` (planar, `w` x `h`) zoomed by `zoom` about its centre and shifted by (`dx`, `dy`)
/// pixels, bilinear, edges clamped.
fn place(img: &Rgb, zoom: f32, dx: f32, dy: f32) -> Rgb {
    let (w, h) = (img.width, img.height);
    let n = w * h;
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = vec![0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            let sx = ((x as f32 + 0.5 - dx - cx) / zoom + cx - 0.5).clamp(0.0, (w - 1) as f32);
            let sy = ((y as f32 + 0.5 - dy - cy) / zoom + cy - 0.5).clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            for c in 0..3 {
                let p = &img.data[c * n..][..n];
                let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
                let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
                out[c * n + y * w + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    Rgb::new(w, h, out)
}

/// `photo` placed on the camera's view as `nir` (a frame of it) shows it.
pub fn align(nir: &Gray, photo: &Rgb) -> Result<(Rgb, Placement), AlignError> {
    let (w, h) = (nir.width, nir.height);
    let (pw, ph) = (photo.width, photo.height);
    let (a, pa) = (w as f32 / h as f32, pw as f32 / ph as f32);
    if (pa / a - 1.0).abs() > MAX_ASPECT_DIFFERENCE {
        return Err(AlignError::Aspect {
            pw,
            ph,
            pa,
            w,
            h,
            a,
        });
    }
    let sized = Rgb::new(w, h, resize_area(&photo.data, pw, ph, 3, w, h));
    let lw = SEARCH_WIDTH.min(w);
    let lh = ((h * lw) as f32 / w as f32).round().max(1.0) as usize;
    let nir_low = Gray::new(lw, lh, resize_area(&nir.data, w, h, 1, lw, lh));
    let photo_low = Rgb::new(lw, lh, resize_area(&sized.data, w, h, 3, lw, lh));
    let (zoom, best): (f32, Alignment) = ZOOMS
        .iter()
        .map(|&z| (z, alignment(&nir_low, &place(&photo_low, z, 0.0, 0.0))))
        .max_by(|a, b| a.1.best.total_cmp(&b.1.best))
        .expect("zooms to try");
    let scale = w as f32 / lw as f32;
    let (dx, dy) = (
        (best.offset.0 as f32 * scale).round() as i32,
        (best.offset.1 as f32 * scale).round() as i32,
    );
    if best.best < MIN_SCORE {
        return Err(AlignError::NoMatch {
            score: best.best,
            zoom,
            dx,
            dy,
        });
    }
    let placed = place(&sized, zoom, dx as f32, dy as f32);
    let placed_low = Rgb::new(lw, lh, resize_bilinear(&placed.data, w, h, 3, lw, lh));
    let score = alignment(&nir_low, &placed_low).in_place;
    Ok((
        placed,
        Placement {
            zoom,
            dx,
            dy,
            score,
        },
    ))
}
